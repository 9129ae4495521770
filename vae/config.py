"""Every setting of one training run, declared once: type, default, bounds, help and role.

    cfg = TrainConfig(z_dim=16, beta=0.001).validate()   # the one validator: `vae train` and sweep specs
    names(IDENTITY)                                       # the settings that define a trial

Each field is one `setting(default, help, role, ...)`. From these declarations come the `vae train`
options with their help and defaults (pipelines/cli.py, `z_dim` is `--z-dim`), the validation of
`vae train` and of a sweep spec's settings (`validate`), what defines a trial and a study
(IDENTITY), what a trial logs as MLflow params (LOGGED), what a resumed run must match (MODEL for
`vae train --resume`, IDENTITY for a sweep's retry) and what a stored study reads for a setting it
does not record (`legacy_defaults`). Adding a setting is one `setting(...)` line here.

Types are checked with pydantic (lax: `lr: 1` is 1.0, YAML's `lr: 1e-3` string is 0.001), except
that a bool is never a number (YAML's `epochs: true`); numbers must be finite.

Longer than the ~300 lines a module aims at, on purpose: the table of every setting is one
declaration each, and splitting it would put a setting's rule away from its declaration.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import dataclass

from vae.errors import ConfigError

LOSSES = ("beta", "sigma-vae")
CONDITIONINGS = ("film", "mrvae")
"""How a conditional model is fed beta (vae/conditional.py)."""
FILM_DAMPING = 0.1
"""YOTO's damping of the FiLM outputs: scale = 1 + 0.1*MLP, shift = 0.1*MLP."""
TRAININGS = ("beta", "sigma-vae", "conditional")
"""How a model is trained (`TrainConfig.training`): `beta`, R + beta*KLD at one beta; `sigma-vae`, a
calibrated Gaussian decoder with no beta; `conditional`, one model for every beta of `betas`."""
AUTO_COMPILE_STEPS = 3000

ROLES = {
    "data": "what is trained on",
    "model": "the network's shape: a checkpoint fits only the same values",
    "training": "the objective and the optimisation",
    "measurement": "what is measured at the end of training",
    "runtime": "where and how fast it runs, not what it computes (logged, not part of a trial's identity)",
    "location": "where files are on this machine (neither logged nor part of a trial's identity)",
    "invocation": "how a run is started, never recorded with it (a sweep trains in a folder that is gone afterwards)",
}
IDENTITY = ("data", "model", "training", "measurement")
"""The roles that define a trial: a study's identity, and what a sweep's retry must match to resume."""
LOGGED = (*IDENTITY, "runtime")
"""The roles a trial logs as MLflow params (the values as applied: vae.runtime.applied)."""
MODEL = ("model",)
"""The roles `vae train --resume` refuses to change: its checkpoint's weights fit only these."""

BETA_LIMITS = (1e-8, 1e4)
"""the betas a conditional model may be trained on: far outside, log β and the loss weights overflow
(a beta_span of 1e300 passed validation, then diverged)."""
SETTINGS_VERSION = 3
"""Of the declarations: 1 before studies stored every setting (their stored spec may lack some), 2
since, 3 since a conditional model trains on a range 1000x wide by default (beta_span). A change of
a default bumps it and records the old version's defaults in LEGACY_DEFAULTS."""
LEGACY_DEFAULTS: dict[int, dict] = {
    # version 1: before the declarations; a study stored then lacks the settings added after it
    # began, which it ran at these values
    1: {"betas": None, "beta_range": None, "film_hidden": 512, "beta_span": None},
    # (version 1 also measured FID (recon) whenever FID was on; fid_recon reads as today's False, so
    # that its studies resume unchanged: their later trials leave the FID (recon) column empty)
    # version 2: a conditional model trained on the span of its betas (beta_span none)
    2: {"beta_span": None},
}
BETA_SPAN = 1000.0
"""A conditional model's default training range, high / low, centred on its betas: the variant that
came closest to independent training (benchmarks/conditional_accuracy.py, README)."""


def setting(default, help: str, role: str, *, ge=None, gt=None, choices=None, bound: str | None = None,
            shown: str | None = None, factory=None):
    """A field of TrainConfig: its default (or `factory`), help (the `vae train` option's), role (ROLES),
    bounds (`ge`, `gt`; None always passes), `choices`, `bound` (the words for the bound in an error)
    and `shown` (the default as help shows it, where the value itself says too little)."""
    assert role in ROLES, role
    meta = {"help": help, "role": role, "ge": ge, "gt": gt, "choices": choices, "bound": bound, "shown": shown}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    dataset: str = setting("cifar10", "cifar10, mnist, fashion-mnist (torchvision, downloaded), digits "
                           "(scikit-learn's bundled 8x8 digits) or folder:PATH (ImageFolder, PATH/train and PATH/test).",
                           "data")
    data_dir: str = setting(None, "Download/cache folder for datasets and decoded tensors [env VAE_DATA_DIR].",
                            "location", factory=lambda: os.environ.get("VAE_DATA_DIR", "data"), shown="data")
    limit: int | None = setting(None, "At most N images per split (a seeded subset; quick runs).", "data", ge=1,
                                shown="every image")
    val_size: int | None = setting(None, "Validation images carved from the training split after --limit "
                                   "(seeded); they choose models (objectives, pruning).", "data", ge=1,
                                   shown="10% of the training split, at most 5000")
    z_dim: int = setting(100, "Latent dimensions.", "model", ge=1, bound="a positive integer")
    beta: float | None = setting(0.01, "KLD-loss weight: loss = R + beta*KLD (none for sigma-vae or --betas).",
                                 "training", ge=0)
    betas: list[float] | None = setting(None, "Train one β-conditional model (YOTO, Dosovitskiy & Djolonga, 2020) "
                                        "for all these betas, e.g. 0.1,0.01,0.001 (replaces --beta): beta drawn per "
                                        "image, log-uniform over --beta-range; losses and diagnostics measured at "
                                        "each (metric keys b0.01/val/r_loss).", "model", shown="none")
    beta_range: list[float] | None = setting(None, "LOW,HIGH: the betas a conditional model trains on (or --beta-span).",
                                             "model", shown="--beta-span around --betas")
    beta_span: float | None = setting(BETA_SPAN, "A conditional model's training range as one number, high/low, "
                                      "centred in log space on --betas (on sqrt(min*max)), never narrower than "
                                      "they span: 1000 trains betas 0.1-0.005 on 0.00071-0.71 (MR-VAE's width; "
                                      "YOTO's CIFAR-10 VAE: 4096), 1 on their own span; --beta-range gives the "
                                      "ends instead.", "model", gt=0)
    conditioning: str = setting("film", "How a conditional model is fed beta (vae/conditional.py): film, YOTO's FiLM "
                                "(an MLP of log beta gives a per-channel scale and shift after every conv block); "
                                "mrvae, Multi-Rate VAE's gates (Bae et al., 2023: a linear map of log beta per "
                                "hidden conv multiplies its pre-activations per channel).", "model",
                                choices=CONDITIONINGS)
    film_hidden: int = setting(512, "Hidden units of a conditional model's FiLM MLP of log beta (YOTO's VAE: 512).",
                               "model", ge=1)
    film_damping: float = setting(FILM_DAMPING, "The factor d on FiLM's outputs, scale = 1 + d*MLP and shift = "
                                  "d*MLP: 0.1 is YOTO's damping (a fresh network starts near an unconditioned one), "
                                  "1 undamped.", "model", gt=0)
    normalize_loss_weights: bool = setting(False, "Divide a conditional model's loss weights per image (1 for R-loss, "
                                           "beta for KLD-loss) by their geometric mean sqrt(beta), as YOTO's option "
                                           "of that name: the small betas of the range pull on the network as hard "
                                           "as the large ones (scaled to 1 at the range's centre; the per-beta "
                                           "losses measured are unchanged).", "training")
    width: int = setting(32, "First conv layer's channels (the encoder uses width, 2*width, 4*width).", "model", ge=1)
    epochs: int = setting(50, "Passes over the training split.", "training", ge=1)
    batch_size: int = setting(64, "Images per optimiser step (the original table's 64).", "training", ge=1)
    lr: float = setting(1e-3, "Adam learning rate.", "training", gt=0)
    seed: int = setting(0, "Seeds weights, subset, shuffles and noise (same seed on CPU: same numbers).", "training")
    device: str = setting("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps.", "runtime")
    out: str | None = setting(None, "Run folder for checkpoint, metrics and images.", "invocation",
                              shown="runs/<dataset>-z<z>-b<beta>")
    resume: bool = setting(False, "Continue from the run folder's checkpoint instead of starting over.", "invocation")
    loss: str = setting("beta", "beta: R + beta*KLD, the original rule; sigma-vae: Gaussian decoder with the "
                        "analytic optimal variance (Rybkin et al., 2021), no beta.", "training", choices=LOSSES)
    kl_warmup_epochs: int = setting(0, "Beta rises linearly from 0 over this many epochs (Bowman et al., 2016).",
                                    "training", ge=0)
    free_bits: float = setting(0.0, "KL floor per dimension, in nats, on the batch-averaged KL (Kingma et al., 2016).",
                               "training", ge=0)
    amp: bool = setting(True, "bf16 autocast on CUDA; no effect on CPU, where it is slower.", "runtime")
    compile: bool | None = setting(None, "torch.compile the model (~25% faster steps on CPU after 10-20 s of "
                                   "compiling).", "runtime",
                                   shown=f"automatic, for runs of >= {AUTO_COMPILE_STEPS} steps on cpu/cuda")
    threads: int | None = setting(None, "torch CPU threads; set when several workers share the cores.", "runtime",
                                  ge=1, shown="torch's choice")
    iw_samples: int = setting(100, "K of the IWAE bound in the final diagnostics; 0 skips all of them: AU, KL (nats) "
                              "and KL per dimension, MI, -ELBO, IWAE NLL, σ MLE and σ implied (not FID: "
                              "--fid-samples).", "measurement", ge=0)
    eval_images: int = setting(2000, "Evaluation subset of the test split (stratified by class, seeded) for the "
                               "final diagnostics and the FID reference.", "measurement", ge=2)
    iw_images: int = setting(256, "IWAE NLL on the first N images of the evaluation subset (K decoder passes "
                             "each).", "measurement", ge=1)
    fid_samples: int | None = setting(None, "Prior samples for FID, KID and precision/recall; 0 turns off these four "
                                      "and their Inception passes (a minute on a CPU).", "measurement",
                                      shown="500, 0 below 28 px")
    fid_recon: bool = setting(False, "Also FID (recon), of the posterior-mean reconstructions of as many images: as "
                              "many Inception passes again; R-loss measures reconstruction already.", "measurement")
    test_every: int = setting(5, "Per-epoch test curve (test_subset/: the evaluation subset) every N epochs and at the "
                              "last; the whole test split (test/, the table's numbers) once, at the end. 0: the last "
                              "only.", "runtime", ge=0)
    progress: bool = setting(True, "Epoch bar with running losses, a line per slow phase; plain lines when piped.",
                             "invocation")

    def __post_init__(self):
        # the one definition of "sigma-VAE has no beta": whatever beta came with it is dropped
        if self.loss == "sigma-vae" or self.betas:  # a conditional model's betas come from `betas`
            self.beta = None

    @property
    def training(self) -> str:
        """How this model is trained, one of TRAININGS: from `loss` and `betas`, never from beta None."""
        return "conditional" if self.betas else self.loss

    @property
    def kl_weight(self) -> float:
        """The KL term's full weight: beta for the original loss; 1 for sigma-vae, whose objective
        is the negative ELBO itself (Rybkin et al., 2021)."""
        return 1.0 if self.training == "sigma-vae" else self.beta

    @property
    def conditional(self) -> bool:
        """One beta-conditional model for every beta of `betas` (vae/conditional.py)."""
        return self.training == "conditional"

    @property
    def training_range(self) -> tuple[float, float]:
        """The betas a conditional model is trained on: `beta_range`, `beta_span` times wide around
        `betas`, or the span of `betas`."""
        if self.beta_range:
            low, high = self.beta_range
        elif self.beta_span:  # none: a study of settings version 2 or older (LEGACY_DEFAULTS)
            low, high = centred_range(self.betas, self.beta_span)
        else:
            low, high = min(self.betas), max(self.betas)
        return float(low), float(high)

    def at(self, beta: float) -> TrainConfig:
        """This conditional run's settings as an ordinary run at one beta: what its per-beta
        evaluation computes and what the row of that beta records."""
        return dataclasses.replace(self, betas=None, beta=beta, **conditional_only())

    def convert(self) -> TrainConfig:
        """Each value as its setting declares it (type, finiteness, bounds, choices), in place; the
        first half of `validate`, which adds the rules between settings. Returns self."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, _checked(f, getattr(self, f.name)))
        return self

    def validate(self) -> TrainConfig:
        """The one validator of these settings (types, finiteness, declared bounds and choices, the rules
        between settings); converts values in place to their declared types; returns self."""
        self.convert()
        self.__post_init__()
        ratio = max(self.betas) / min(self.betas) if self.conditional and min(self.betas) > 0 else 1.0
        sane = self.beta_range is None or (len(self.beta_range) == 2 and 0 < self.beta_range[0] < self.beta_range[1])
        span = self.training_range if self.conditional and min(self.betas) > 0 and sane else (1.0, 1.0)
        checks = [
            (self.beta is not None or self.loss != "beta" or self.conditional, "loss 'beta' needs a beta"),
            (not self.conditional or self.loss == "beta",
             "betas (a beta-conditional model) needs loss 'beta'; sigma-vae has no beta"),
            (not self.conditional or min(self.betas) > 0, "betas must all be > 0 (they are drawn log-uniform)"),
            (not self.conditional or len(set(self.betas)) == len(self.betas), "betas lists a value twice"),
            (not self.conditional or len(self.betas) >= 2,
             "betas needs at least two values (a conditional model spans a range); for one beta use beta"),
            (not self.conditional or self.free_bits == 0, "free_bits is not supported with betas"),
            (self.beta_range is None or self.conditional,
             "beta_range is the training range of a conditional model: it needs betas"),
            (self.beta_range is None or (len(self.beta_range) == 2 and 0 < self.beta_range[0] < self.beta_range[1]),
             f"beta_range must be [low, high] with 0 < low < high; got {self.beta_range}"),
            (self.beta_range is None or not self.conditional or len(self.beta_range) != 2 or
             self.beta_range[0] <= min(self.betas) and max(self.betas) <= self.beta_range[1],
             f"beta_range {self.beta_range} must cover every beta of betas"),
            # beta_span at its default (or none) is no choice: an ordinary run and a given beta_range leave it so
            (self.beta_span in (None, BETA_SPAN) or self.conditional,
             "beta_span is the training range of a conditional model: it needs betas"),
            (self.beta_span in (None, BETA_SPAN) or self.beta_range is None,
             "give the training range as beta_range or as beta_span, not both"),
            (self.beta_span in (None, BETA_SPAN) or self.beta_span >= ratio * (1 - 1e-9),
             f"beta_span {self.beta_span} is narrower than betas (max / min = {ratio:g}): the range must cover every beta"),
            *[(self.conditional or getattr(self, name) == value, f"{name} applies to a conditional model only: it needs betas")
              for name, value in conditional_only().items() if name not in ("beta_range", "beta_span")],
            (self.conditioning != "mrvae" or all(getattr(self, n) == default(n) for n in FILM),
             "film_hidden and film_damping set FiLM; conditioning 'mrvae' has none"),
            (not self.conditional or (BETA_LIMITS[0] <= span[0] and span[1] <= BETA_LIMITS[1]),
             f"the training range {span[0]:.3g}–{span[1]:.3g} reaches beyond "
             f"{BETA_LIMITS[0]:g}–{BETA_LIMITS[1]:g}, where a conditional model's log-β input and loss weights "
             "overflow: use a narrower beta_span (1000 by default) or beta_range"),
            (self.fid_samples is None or self.fid_samples == 0 or self.fid_samples >= 2,
             f"fid_samples must be 0 (off) or >= 2, got {self.fid_samples}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self

    @property
    def run_dir(self) -> str:
        return self.out or f"runs/{self.dataset.replace(':', '-').replace('/', '_')}-{run_name(self.z_dim, self.training, self.beta)}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def record(self) -> dict:
        """The settings a run's files (config.json, checkpoint, metrics.json) record: all but the invocation's."""
        return {k: v for k, v in self.to_dict().items() if k not in INVOCATION}

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        unknown = sorted(set(values) - set(names()))
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
        return cls(**values)


def names(roles: tuple[str, ...] | None = None) -> list[str]:
    """The settings of these roles (all settings without), in declaration order."""
    return [f.name for f in dataclasses.fields(TrainConfig) if roles is None or f.metadata["role"] in roles]


INVOCATION = tuple(names(("invocation",)))
"""How a run is started, not what it computes: never recorded with the run."""


def declared(name: str) -> dataclasses.Field:
    """The declaration of one setting (its metadata: help, role, ge, gt, choices, bound, shown)."""
    return {f.name: f for f in dataclasses.fields(TrainConfig)}[name]


def default(name: str):
    """A setting's declared default (a factory's value as it is now)."""
    f = declared(name)
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def centred_range(betas: list[float], span: float) -> tuple[float, float]:
    """A training range `span` times wide (high / low), centred in log space on the betas (on their
    geometric midpoint sqrt(min * max)), never narrower than they are."""
    low, high = min(betas), max(betas)
    middle, half = math.sqrt(low * high), math.sqrt(span)
    # 12 significant digits: the range a user reads back (1.0, not 0.9999999999999999)
    return min(low, float(f"{middle / half:.12g}")), max(high, float(f"{middle * half:.12g}"))


FILM = ("film_hidden", "film_damping")  # the FiLM conditioning's own settings (vae/conditional.py)


def conditional_only() -> dict:
    """The settings of a conditional model only, at their defaults: an ordinary run (one beta of it,
    `TrainConfig.at`; a sigma-VAE point of a conditional spec) has them so."""
    return {n: default(n) for n in ("beta_range", "beta_span", "conditioning", *FILM, "normalize_loss_weights")}


def applying(settings: dict) -> dict:
    """`settings` (TrainConfig's fields by name) without those that do not apply to its run: an
    ordinary run (no betas) has no conditional-only setting, whatever value it records (their
    defaults change: LEGACY_DEFAULTS). What two runs are compared on, to resume one from the other."""
    if settings.get("betas"):
        return dict(settings)
    return {k: v for k, v in settings.items() if k not in conditional_only()}


def legacy_defaults(version: int) -> dict:
    """What a study stored at settings `version` reads for a setting it does not record: the defaults
    recorded for that version, else the declared default (a setting added later, whose default is
    the behaviour before it existed)."""
    return {**{n: default(n) for n in names()}, **LEGACY_DEFAULTS.get(version, {})}


def identity(settings: dict) -> dict:
    """The settings of `settings` that define a trial (IDENTITY roles)."""
    keep = set(names(IDENTITY))
    return {k: v for k, v in settings.items() if k in keep}


def logged(settings: dict) -> dict:
    """The settings a trial logs as MLflow params (LOGGED roles). `limit` None means every image."""
    keep = set(names(LOGGED))
    return {k: v for k, v in settings.items() if k in keep}


def _balance(training: str, beta: float | None, at: float | None = None) -> str:
    if training == "conditional":
        return "cond" if at is None else f"b{at:g}-cond"
    return "sigma" if training == "sigma-vae" else f"b{beta:g}"


def run_name(z_dim: int, training: str, beta: float | None = None, seed: int = 0, trial: int | None = None,
             at: float | None = None) -> str:
    """The one rule that names a run: `z16-b0.01`, `z16-sigma`, `z16-cond` (a conditional model),
    `z16-b0.01-cond` (its row at beta `at`); `-s<seed>` for a seed other than 0 and `-t<trial>` for a
    sweep's trial: `z16-b0.01-s1-t2`. Run folders (`runs/<dataset>-z16-b0.01`) use it without either."""
    return (f"z{z_dim}-{_balance(training, beta, at)}" + (f"-s{seed}" if seed else "")
            + (f"-t{trial}" if trial is not None else ""))


def check(name: str, value):
    """`value` as setting `name` declares it (type, finiteness, bounds, choices), or ConfigError:
    the one rule, for a setting given to `vae train` and for a value a sweep's search lists."""
    return _checked(declared(name), value)


def _checked(f: dataclasses.Field, value):
    """`value` as setting `f` declares it, or ConfigError naming the setting."""
    meta, kind = f.metadata, _HINTS[f.name]
    if isinstance(value, bool) and not f.type.startswith("bool"):  # YAML's `epochs: true` would count as 1
        raise ConfigError(f"{f.name} must be of type {f.type}, got {value}")
    if value is not None or type(None) not in typing.get_args(kind):
        try:
            value = _adapter(f.name).validate_python(value)
        except Exception as e:  # pydantic's ValidationError: its first message
            message = e.errors()[0]["msg"] if hasattr(e, "errors") else str(e)
            raise ConfigError(f"{f.name}: {message}") from None
    for v in value if isinstance(value, list) else [value]:
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{f.name} must be a finite number, got {v}")
    if value is None or isinstance(value, list):
        return value
    for bound, ok in (("ge", lambda lo: value >= lo), ("gt", lambda lo: value > lo)):
        if meta[bound] is not None and not ok(meta[bound]):
            words = meta["bound"] or f"{'>=' if bound == 'ge' else '>'} {meta[bound]}"
            raise ConfigError(f"{f.name} must be {words}, got {value}")
    if meta["choices"] and value not in meta["choices"]:
        raise ConfigError(f"{f.name} must be one of {', '.join(meta['choices'])}, got {value!r}")
    return value


_HINTS = typing.get_type_hints(TrainConfig)
_ADAPTERS: dict = {}


def _adapter(name: str):
    """pydantic's lax check of one setting's declared type (imported on first use: `vae --help` stays fast)."""
    if name not in _ADAPTERS:
        from pydantic import TypeAdapter

        _ADAPTERS[name] = TypeAdapter(_HINTS[name])
    return _ADAPTERS[name]
