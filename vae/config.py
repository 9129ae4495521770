"""The settings of one training run, shared by `vae train`, sweep specs and checkpoints.

Every field is one `vae train` option (`z_dim` is `--z-dim`); sweep specs set the same names.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass

from vae.errors import ConfigError

LOSSES = ("beta", "sigma-vae")
CONDITIONINGS = ("film", "mrvae")
"""How a conditional model is fed beta (vae/conditional.py)."""
FILM_DAMPING = 0.1
"""YOTO's damping of the FiLM outputs: scale = 1 + 0.1*MLP, shift = 0.1*MLP."""
AUTO_COMPILE_STEPS = 3000
INVOCATION = ("out", "resume", "progress")
"""How a run is started, not what it computes: never recorded with the run (a sweep trains in a
temporary folder that is gone afterwards)."""


@dataclass
class TrainConfig:
    dataset: str = "cifar10"
    """`cifar10`, `mnist`, `fashion-mnist` (torchvision, downloaded), `digits` (scikit-learn's
    bundled 8x8 digits) or `folder:PATH` (ImageFolder layout, PATH/train and PATH/test)."""
    data_dir: str = dataclasses.field(default_factory=lambda: os.environ.get("VAE_DATA_DIR", "data"))
    """where datasets are downloaded and decoded tensors cached (env VAE_DATA_DIR)."""
    limit: int | None = None
    """take a seeded subset of at most this many images from each split (quick runs)."""
    val_size: int | None = None
    """validation images carved from the training split after `limit` (seeded); they choose models
    (sweep objectives, pruning). Default: 10 % of the training split, at most 5,000."""
    z_dim: int = 100
    """latent dimensions."""
    beta: float | None = 0.01
    """weight of KLD-loss against R-loss in loss = R + beta * KLD; None for sigma-vae, which has
    no beta (see `kl_weight`), and for a beta-conditional run (see `betas`)."""
    betas: list[float] | None = None
    """train one beta-conditional model for all these betas instead of one model per beta
    (YOTO, Dosovitskiy & Djolonga, 2020; vae/conditional.py): beta is drawn per image, log-uniform
    over `beta_range`, and every epoch's validation and test losses and the final diagnostics are
    measured at each of these betas (metric keys `b0.01/val/r_loss`); `val/<term>` is their mean."""
    beta_range: list[float] | None = None
    """[low, high] of the betas a conditional model trains on; default [min(betas), max(betas)]
    (or see `beta_span`)."""
    beta_span: float | None = None
    """a conditional model's training range as one number, high / low, centred in log space on
    `betas` (on their geometric midpoint sqrt(min * max)): 1000 trains betas 0.005-0.1 on
    0.00071-0.71. At least max(betas) / min(betas); instead of `beta_range`. MR-VAE trains on
    1000x, YOTO's CIFAR-10 VAE on 4096x."""
    conditioning: str = "film"
    """how a conditional model is fed beta (vae/conditional.py): `film`, YOTO's FiLM (an MLP of log
    beta gives a per-channel scale and shift after every conv block); `mrvae`, Multi-Rate VAE's
    gates (Bae et al., 2023: one linear map of log beta per hidden conv layer multiplies its
    pre-activations per channel)."""
    film_hidden: int = 512
    """hidden units of the conditioning MLP of log beta (FiLM; YOTO's VAE uses 512)."""
    film_damping: float = FILM_DAMPING
    """the factor d on FiLM's outputs, scale = 1 + d*MLP and shift = d*MLP: 0.1 is YOTO's damping
    (a fresh network starts near an unconditioned one), 1 undamped (the MLP's outputs as they are)."""
    normalize_loss_weights: bool = False
    """divide each image's loss weights (1 for R-loss, beta for KLD-loss) by their geometric mean
    sqrt(beta), as YOTO's option of that name: every beta of the range then pulls on the network
    with gradients of a like scale, where the plain loss lets the large betas' terms dominate
    (scaled to 1 at the centre of the range; the per-beta losses measured are unchanged)."""
    width: int = 32
    """channels of the first conv layer; the encoder uses width, 2*width, 4*width."""
    epochs: int = 50
    """passes over the training split."""
    batch_size: int = 64
    """images per optimiser step (the original README's table used 64)."""
    lr: float = 1e-3
    """Adam learning rate."""
    seed: int = 0
    """seeds the weights, the subset, the shuffling and the latent noise."""
    device: str = "auto"
    """`auto` (cuda, then mps, then cpu), or any torch device string."""
    out: str | None = None
    """run folder for checkpoint, metrics and images (default runs/<dataset>-z<z>-b<beta>)."""
    resume: bool = False
    """continue from the checkpoint in `out` instead of starting over."""
    loss: str = "beta"
    """`beta`: R + beta*KLD, the original rule; `sigma-vae`: Gaussian decoder with the analytic
    optimal variance (Rybkin et al., 2021), which balances R and KL with no beta."""
    kl_warmup_epochs: int = 0
    """beta rises linearly from 0 to its value over this many epochs (Bowman et al., 2016)."""
    free_bits: float = 0.0
    """per-dimension floor, in nats, on the batch-averaged KL (Kingma et al., 2016)."""
    amp: bool = True
    """mixed precision (bf16 autocast) on CUDA; no effect on CPU, where it is slower."""
    compile: bool | None = None
    """torch.compile the model (~25% faster steps on CPU after 10-20 s of compiling). None: only for
    runs of at least AUTO_COMPILE_STEPS optimiser steps on cpu or cuda, where it pays for itself."""
    threads: int | None = None
    """torch CPU threads (default: torch's choice); set when several workers share the cores."""
    iw_samples: int = 100
    """K of the importance-weighted NLL bound in the end-of-training diagnostics; 0 skips all of
    vae/metrics.py's (AU, KL per dimension, MI, -ELBO, NLL, sigma), not FID (`fid_samples`)."""
    eval_images: int = 2000
    """size of the evaluation subset of the test split (stratified by class, seeded) that the
    end-of-training diagnostics use: KL, AU, MI, sigma, and the FID reference."""
    iw_images: int = 256
    """the IWAE NLL uses the first this many images of the evaluation subset (K decoder passes each)."""
    fid_samples: int | None = None
    """prior samples (and reconstructions) for FID, KID and precision/recall at the end of training;
    0 turns them off. Default: 500 for images of at least 28 px a side, 0 for smaller ones."""
    progress: bool = True
    """show a progress bar per epoch."""

    def __post_init__(self):
        # the one definition of "sigma-VAE has no beta": whatever beta came with it is dropped
        if self.loss == "sigma-vae" or self.betas:  # a conditional model's betas come from `betas`
            self.beta = None

    @property
    def kl_weight(self) -> float:
        """The KL term's full weight: beta for the original loss; 1 for sigma-vae, whose objective
        is the negative ELBO itself (Rybkin et al., 2021)."""
        return 1.0 if self.loss == "sigma-vae" else self.beta

    @property
    def conditional(self) -> bool:
        """One beta-conditional model for every beta of `betas` (vae/conditional.py)."""
        return bool(self.betas)

    @property
    def training_range(self) -> tuple[float, float]:
        """The betas a conditional model is trained on: `beta_range`, `beta_span` times wide around
        `betas`, or the span of `betas`."""
        if self.beta_range:
            low, high = self.beta_range
        elif self.beta_span:
            from vae.conditional import centred_range

            low, high = centred_range(self.betas, self.beta_span)
        else:
            low, high = min(self.betas), max(self.betas)
        return float(low), float(high)

    def at(self, beta: float) -> TrainConfig:
        """This conditional run's settings as an ordinary run at one beta: what its per-beta
        evaluation computes and what the row of that beta records."""
        return dataclasses.replace(self, betas=None, beta=beta, **CONDITIONAL_ONLY)

    @property
    def balance(self) -> str:
        """How R and KL are balanced, for names and labels: `b0.01`, `sigma` for sigma-vae, `cond`
        for a beta-conditional model."""
        if self.conditional:
            return "cond"
        return "sigma" if self.beta is None else f"b{self.beta:g}"

    def validate(self) -> TrainConfig:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            # YAML reads `epochs: true` as a bool, which Python would count as 1
            if isinstance(value, bool) and not f.type.startswith("bool"):
                raise ConfigError(f"{f.name} must be of type {f.type}, got {value}")
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, float) and not math.isfinite(v):
                    raise ConfigError(f"{f.name} must be a finite number, got {v}")
        ratio = max(self.betas) / min(self.betas) if self.conditional and min(self.betas) > 0 else 1.0
        checks = [
            (self.z_dim >= 1, f"z_dim must be a positive integer, got {self.z_dim}"),
            (self.beta is None or self.beta >= 0, f"beta must be >= 0, got {self.beta}"),
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
            (self.beta_range is None or not self.conditional or
             self.beta_range[0] <= min(self.betas) and max(self.betas) <= self.beta_range[1],
             f"beta_range {self.beta_range} must cover every beta of betas"),
            (self.beta_span is None or self.conditional,
             "beta_span is the training range of a conditional model: it needs betas"),
            (self.beta_span is None or self.beta_range is None,
             "give the training range as beta_range or as beta_span, not both"),
            (self.beta_span is None or self.beta_span >= ratio * (1 - 1e-9),
             f"beta_span {self.beta_span} is narrower than betas (max / min = {ratio:g}): the range must cover every beta"),
            (self.conditioning in CONDITIONINGS,
             f"conditioning must be one of {', '.join(CONDITIONINGS)}, got {self.conditioning!r}"),
            (self.film_hidden >= 1, f"film_hidden must be >= 1, got {self.film_hidden}"),
            (self.film_damping > 0, f"film_damping must be > 0 (1 = undamped), got {self.film_damping}"),
            *[(self.conditional or getattr(self, name) == default,
               f"{name} applies to a conditional model only: it needs betas")
              for name, default in CONDITIONAL_ONLY.items() if name not in ("beta_range", "beta_span")],
            (self.conditioning != "mrvae" or all(getattr(self, k) == d for k, d in DEFAULT_VALUES.items() if k.startswith("film_")),
             "film_hidden and film_damping set FiLM; conditioning 'mrvae' has none"),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.width >= 1, f"width must be >= 1, got {self.width}"),
            (self.limit is None or self.limit >= 1, f"limit must be >= 1, got {self.limit}"),
            (self.loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}"),
            (self.kl_warmup_epochs >= 0, "kl_warmup_epochs must be >= 0"),
            (self.free_bits >= 0, f"free_bits must be >= 0, got {self.free_bits}"),
            (self.iw_samples >= 0, f"iw_samples must be >= 0, got {self.iw_samples}"),
            (self.val_size is None or self.val_size >= 1, f"val_size must be >= 1, got {self.val_size}"),
            (self.eval_images >= 2, f"eval_images must be >= 2, got {self.eval_images}"),
            (self.iw_images >= 1, f"iw_images must be >= 1, got {self.iw_images}"),
            (self.fid_samples is None or self.fid_samples == 0 or self.fid_samples >= 2,
             f"fid_samples must be 0 (off) or >= 2, got {self.fid_samples}"),
            (self.threads is None or self.threads >= 1, "threads must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self

    @property
    def run_dir(self) -> str:
        return self.out or f"runs/{self.dataset.replace(':', '-').replace('/', '_')}-z{self.z_dim}-{self.balance}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def record(self) -> dict:
        """The settings a run's files (config.json, checkpoint, metrics.json) record: all but INVOCATION."""
        return {k: v for k, v in self.to_dict().items() if k not in INVOCATION}

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
        return cls(**values)


DEFAULT_VALUES = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
CONDITIONAL_ONLY = {name: DEFAULT_VALUES[name]
                    for name in ("beta_range", "beta_span", "conditioning", "film_damping", "normalize_loss_weights")}
"""Settings of a conditional model only, at their defaults: an ordinary run (one beta of it,
`TrainConfig.at`; a sigma-VAE point of a conditional spec) has them so."""
