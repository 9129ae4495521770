"""Sweep specs: a YAML file naming the study, the data, the training settings and the search.

    study: balance
    dataset: cifar10
    epochs: 50                     # any `vae train` setting, by its config name
    search:
      z_dim: [10, 100]             # a grid of values ...
      beta: {low: 0.001, high: 1.0, log: true}   # ... or a range for a sampler
      seed: [0]
    sampler: grid                  # grid | tpe | random
    pruner: {type: median, warmup_epochs: 2}     # optional (none | median | hyperband)
    n_trials: 30                   # samplers only; a grid runs each point once
    metric: val/elbo_bpd           # the objective: a per-epoch train/ or val/ metric of `vae train`
                                   # (one that favours no beta when several are searched)
    direction: minimize
    images_every: 5                # log reconstruction and sample grids every K epochs
    checkpoint_every: auto         # upload each trial's checkpoint every K epochs (a retry resumes on any host)
    keep_checkpoints: 2            # the latest uploads each trial keeps
    mode: independent              # or conditional: one beta-conditional model per z_dim and seed
                                   # for all of search.beta (vae/conditional.py; grid sampler only)
    confirm: {top: 2, seeds: 3}    # optional: seeds for the verdict's finalists, then decide again

`load_spec(path, overrides=["epochs=5", "search.beta=[0.1, 0.01]"])` validates everything and
names the offending key on error; values of --set are parsed as YAML.

Longer than ~300 lines: what defines a study (its fingerprint, `changes`, `search_changes`,
`for_study`) is the spec's own rule, kept beside the fields it reads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    PrivateAttr,
    field_validator,
    model_validator,
)

from pipelines.common.metrics import BETA_BIASED, BETA_FREE, METRICS, OBJECTIVES
from vae import config as settings
from vae.config import TrainConfig
from vae.errors import VAEError

SWEPT = ("z_dim", "beta", "seed")  # and `loss`, when search.loss lists several  # set per trial, never in the spec's training settings
NOT_IN_SPEC = {"out", "resume", "betas", *SWEPT}  # betas: `mode: conditional` sets them from search.beta
# settings that change where or how fast a trial runs, not what it computes (vae/config.py roles); out
# and resume, the same in every spec (None, False), were hashed by version 1's fingerprint and still are
NOT_IN_FINGERPRINT = set(settings.names()) - set(settings.names(settings.IDENTITY)) - {"out", "resume"}
IDENTITY_KEYS = ("sampler", "metric", "direction", "mode")  # with the train settings' IDENTITY roles and the search
# (a grid study grows: Spec.search_changes)
class SpecError(VAEError):
    """A sweep spec is missing, malformed or out of range."""


class Strict(BaseModel):
    # strict: YAML's `true` is no z_dim 1; no NaN or inf anywhere (a NaN beta trains nothing)
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class Range(Strict):
    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self):
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self


class Search(Strict):
    z_dim: Annotated[list[int], Field(min_length=1)] | Range
    beta: Annotated[list[float], Field(min_length=1)] | Range
    seed: Annotated[list[int], Field(min_length=1)] = [0]
    loss: Annotated[list[Literal["beta", "sigma-vae"]], Field(min_length=1)] = ["beta"]
    """sigma-vae has no beta: its points run once per z_dim and seed, with beta None (KL weight 1)."""

    @field_validator("z_dim", "beta", "seed", "loss")
    @classmethod
    def _distinct(cls, v):
        if isinstance(v, list):
            twice = sorted({x for x in v if v.count(x) > 1}, key=str)
            if twice:
                raise ValueError(f"lists {', '.join(map(str, twice))} more than once; each value runs once")
        return v

    @field_validator("z_dim", "beta", "seed")
    @classmethod
    def _as_declared(cls, v, info):
        """Each value (a range: its ends) by the rule vae/config.py declares for that setting: one
        rule for `vae train --beta` and a sweep's beta."""
        for value in (v.low, v.high) if isinstance(v, Range) else v:
            try:
                settings.check(info.field_name, int(value) if info.field_name == "z_dim" and isinstance(v, Range)
                               else value)
            except VAEError as e:
                raise ValueError(str(e)) from None
        return v


class Confirm(Strict):
    """Seeds where they decide (pipelines/confirm.py): once every point has run, the verdict's choice
    and its rivals get seeds up to `seeds` each, as trials of the same study, and the verdict is
    decided again."""
    top: PositiveInt = 2
    """the finalists: the verdict's choice and at most top - 1 rivals (the rows within noise of it;
    while every row has one seed, whose noise leaves training out, the runners-up)."""
    seeds: int = Field(default=3, ge=2)
    """seeds per finalist, the ones it has included."""


class Pruner(Strict):
    type: Literal["none", "median", "hyperband"] = "median"
    warmup_epochs: int = Field(default=1, ge=0)


def check_study_name(name: str) -> str:
    """Letters, digits, `_`, `.` and `-`, but not `.` or `..`: the name is a folder under
    mlruns/artifacts and reports/, and `..` would write outside them."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in (".", ".."):
        raise SpecError(f"study name {name!r} must be letters, digits, '_', '.' or '-' (and not '.' or '..')")
    if len(name) > MAX_STUDY_NAME:  # it names files (the study lock: optuna.db.NAME.lock): 255 bytes at most
        raise SpecError(f"study name {name[:20]}... is {len(name)} characters long; at most {MAX_STUDY_NAME}")
    return name


MAX_STUDY_NAME = 120  # two of them name a comparison folder (NAME-vs-OTHER): under 255 bytes


class Spec(Strict):
    study: str
    search: Search
    sampler: Literal["grid", "tpe", "random"] = "grid"
    pruner: Pruner | None = None
    n_trials: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    """samplers only: trials to run (at most a million: more is a typo, and would train until killed)."""
    metric: str = "val/elbo_bpd"
    direction: Literal["minimize", "maximize"] = "minimize"
    images_every: PositiveInt = 5
    checkpoint_every: Literal["auto"] | NonNegativeInt = "auto"
    """upload a trial's checkpoint to the study's artifact store every this many epochs (0: never), so
    that a retry on another host resumes from it; auto: every epoch while that costs under 5 % of the
    trial's time, and never where the artifacts stay on this host (SQLite) (pipelines/tracking/checkpoints.py)."""
    keep_checkpoints: PositiveInt = 2
    """uploaded checkpoints a running trial keeps (its latest); older ones are deleted from the store,
    and all of them once it is complete (its model is then the run's checkpoint.pt)."""
    heartbeat_interval: PositiveInt = 10
    """seconds between a running trial's heartbeats in the Optuna storage."""
    grace_period: PositiveInt = 60
    """a trial whose heartbeat is older than this is failed and its configuration run again."""
    max_retries: PositiveInt = 3
    """deaths of its worker (killed, a stale heartbeat; never a Ctrl-C or SIGTERM) after which a
    configuration is given up for good, named in `vae status`, the report and the verdict."""
    confirm: Confirm | None = None
    """add seeds to the finalists once every point has run, then decide again (grid only; not part of
    a study's identity: turning it on for a finished study confirms its finalists)."""
    mode: Literal["independent", "conditional"] = "independent"
    """conditional: one Optuna trial per z_dim and seed trains one beta-conditional model for every
    beta of search.beta (its value: the mean over the betas of the metric); sigma-vae points run as
    ordinary trials."""
    train: TrainConfig = Field(default_factory=TrainConfig)
    _given: frozenset = PrivateAttr(default_factory=frozenset)
    """the training settings the spec file or --set gives; the others are defaults (`for_study`)"""
    _command: dict = PrivateAttr(default_factory=dict)
    """how it was given: {"spec_file", "overrides"} (the --set options but the search's and confirm's),
    stored with the study so that the verdict's commands grow this study (pipelines/report/extend.py)"""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    _study = field_validator("study")(check_study_name)

    @field_validator("metric")
    @classmethod
    def _metric(cls, v):
        split, _, term = v.partition("/")
        if split in ("test", "test_subset") and f"val/{term}" in OBJECTIVES:
            biased = (f" (when the search spans several betas: {' or '.join(BETA_FREE)}, as 'val/{term}' moves "
                      f"with beta by construction)") if f"val/{term}" in BETA_BIASED else ""
            raise ValueError(f"{v!r} is measured on the test split, which reports models but must not choose "
                             f"them; use 'val/{term}', the same measure on the validation split{biased}")
        if v in METRICS and v not in OBJECTIVES:
            raise ValueError(f"{v!r} is an end-of-training diagnostic on the test split, not an objective; "
                             f"use a val/ metric (one of: {', '.join(sorted(m for m in OBJECTIVES if m.startswith('val/')))})")
        if v not in OBJECTIVES:
            raise ValueError(f"unknown metric {v!r}; one of: {', '.join(sorted(OBJECTIVES))}")
        return v

    @model_validator(mode="after")
    def _grid(self):
        if self.sampler != "grid" and len(self.search.loss) > 1:
            raise ValueError("search.loss may list several losses only for sampler 'grid'")
        if self.sampler == "grid":
            ranges = [k for k in ("z_dim", "beta") if isinstance(getattr(self.search, k), Range)]
            if ranges:
                raise ValueError(f"sampler 'grid' needs lists of values, but search.{ranges[0]} is a range")
        elif self.n_trials is None:
            raise ValueError(f"sampler '{self.sampler}' needs n_trials")
        given = [k for k, value in settings.conditional_only().items() if getattr(self.train, k) != value]
        if given and self.mode != "conditional":
            what = "is the training range" if given[0].startswith("beta_") else "is a setting"
            raise ValueError(f"{given[0]} {what} of mode 'conditional'; set mode: conditional")
        if self.confirm is not None and self.sampler != "grid":
            raise ValueError("confirm adds seeds to grid points: it needs sampler 'grid'")
        if self.mode == "conditional" and self.sampler != "grid":
            raise ValueError("mode 'conditional' needs sampler 'grid' (one model per z_dim and seed covers every beta)")
        if self.mode == "conditional" and "beta" not in self.search.loss:
            raise ValueError("mode 'conditional' trains the beta loss: search.loss must include 'beta'")
        if self.mode == "conditional" and len(self.search.beta) < 2:
            raise ValueError("mode 'conditional' needs at least two values in search.beta")
        return self

    def beta_bias(self) -> str | None:
        """Why this spec's objective cannot choose between its trials, or None: a metric that
        favours a beta by construction (BETA_BIASED) while the search spans several betas or
        mixes a sigma-VAE with beta losses. Samplers would be driven to one end of the range, and a
        grid's "best" decided by it."""
        if self.metric not in BETA_BIASED:
            return None
        b = self.search.beta
        several = isinstance(b, Range) or len(b) > 1
        mixed = "sigma-vae" in self.search.loss and "beta" in self.search.loss
        if not (several or mixed):
            return None
        why = ("R + beta·KLD and its terms move with beta by construction" if several else
               "a σ-VAE's loss is a Gaussian NLL, on another scale than R + beta·KLD")
        return (f"metric {self.metric!r} cannot compare the trials of this search ({why}); use "
                f"{' or '.join(BETA_FREE)} (negative ELBO in bits/dim with a fitted decoder σ, on the validation "
                f"split), which favours no beta")

    def grid(self) -> list[dict]:
        """Every (z_dim, beta, seed[, loss]) point of a grid spec, in a stable order."""
        s = self.search
        points = []
        for loss in s.loss:
            # sigma-vae has no beta (TrainConfig); a conditional model covers all of them at once
            betas = [None] if loss == "sigma-vae" or self.mode == "conditional" else s.beta
            for z, b, r in itertools.product(s.z_dim, betas, s.seed):
                points.append(dict(z_dim=z, beta=b, seed=r) | ({} if s.loss == ["beta"] else {"loss": loss}))
        return points

    def trial_config(self, params: dict) -> TrainConfig:
        """The training settings of one trial: the spec's with the trial's z_dim, beta, seed (and
        loss); in mode conditional a beta point trains on every beta of search.beta."""
        if self.training_of(params) == "conditional":
            return dataclasses.replace(self.train, **params, betas=list(self.search.beta))
        return dataclasses.replace(self.train, **params, betas=None, **settings.conditional_only())  # a sigma-VAE point

    def trial_configs(self) -> list[TrainConfig]:
        """The training settings of every trial a grid runs (a conditional one with its betas), or of
        a sampler's at the ends of its ranges: what load_spec validates, by TrainConfig's one rule."""
        if self.sampler == "grid":
            return [self.trial_config(p) for p in self.grid()]
        s = self.search
        ends = [(z, b) for z in ((int(s.z_dim.low), int(s.z_dim.high)) if isinstance(s.z_dim, Range) else s.z_dim[:1])
                for b in ((s.beta.low, s.beta.high) if isinstance(s.beta, Range) else s.beta[:1])]
        return [self.trial_config({"z_dim": z, "beta": b, "seed": s.seed[0]}) for z, b in ends]

    def training_of(self, params: dict) -> str:
        """How a trial with these parameters trains (one of config.TRAININGS): a beta point of mode
        conditional trains the conditional model, a sigma-vae point a σ-VAE in either mode."""
        loss = params.get("loss", self.train.loss)
        return "conditional" if self.mode == "conditional" and loss == "beta" else loss

    def space_size(self) -> int | None:
        """How many distinct points a sampler can propose: the product of the lists' lengths, or
        None when a dimension is a range."""
        s = self.search
        if any(isinstance(getattr(s, k), Range) for k in ("z_dim", "beta")):
            return None
        return len(s.z_dim) * len(s.beta) * len(s.seed) * len(s.loss)

    @property
    def total(self) -> int:
        return len(self.grid()) if self.sampler == "grid" else self.n_trials

    def fingerprint(self) -> str:
        """Version 1's identity of a study, a hash (stored as the study's `fingerprint`): a study of
        version 1 whose stored spec differs only in what that version did not store still resumes
        when its fingerprint matches. Identity itself is `changes()`, setting by setting."""
        # the settings version 1 added late, and the conditional model's added since: hashed only off their
        # defaults (as version 1 had them, or as today)
        v1 = {**settings.conditional_only(), **settings.LEGACY_DEFAULTS[1], "fid_recon": False}
        train = {k: v for k, v in self.train.to_dict().items() if k not in NOT_IN_FINGERPRINT
                 and not (k in v1 and v in (v1[k], settings.default(k)))}
        blob = {"train": train, "search": self.search.model_dump(), "sampler": self.sampler,
                "metric": self.metric, "direction": self.direction}
        if self.mode != "independent":
            blob["mode"] = self.mode
        return hashlib.sha1(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:12]

    def describe(self) -> dict:
        """The spec as stored with the study, whole and resolved (every setting, defaults included):
        training settings without those the search sets per trial."""
        train = {k: v for k, v in self.train.record().items() if k not in NOT_IN_SPEC}
        return {**self.model_dump(exclude={"train"}), "train": train}

    def for_study(self, stored: dict, version: int) -> Spec:
        """This spec as it runs an existing study stored with spec `stored` at settings `version`: a
        setting that defines the study (IDENTITY roles) and that this spec leaves at its default reads
        as the study has it (its stored spec, else that version's default: vae/config.py
        legacy_defaults), so that a later change of a default changes no study; a setting the file or
        --set gives stays as given, and `changes` names it where it differs."""
        old = {**settings.legacy_defaults(version), **stored.get("train", {})}
        keep = {k: old[k] for k in settings.names(settings.IDENTITY)
                if k not in self._given and k not in NOT_IN_SPEC and k in old}
        spec = self.model_copy(update={"train": dataclasses.replace(self.train, **keep)})
        spec.train.convert()  # JSON's lists and numbers as the settings declare them
        return spec

    def changes(self, stored: dict, version: int) -> list[str]:
        """How this spec differs from the one stored with a study of settings `version`, in what
        defines a study (the IDENTITY roles' settings, the sampler, objective and mode, and the search
        where it cannot grow: `search_changes`): `epochs: the study has 2, this spec 3`; [] for the
        same study. A setting the stored spec lacks (it predates the setting, or version 1 did not
        store it) reads as that version's default (vae/config.py legacy_defaults), so a new setting
        at its default changes no study."""
        new = self.describe()
        old_train = {**settings.legacy_defaults(version), **stored.get("train", {})}
        diffs = [f"{k}: the study has {old_train.get(k)!r}, this spec {v!r}"
                 for k, v in settings.identity(new["train"]).items() if old_train.get(k) != v]
        old = {"mode": "independent", **stored}  # version 1 studies from before `mode`
        diffs += [f"{k}: the study has {_plain(old.get(k))!r}, this spec {_plain(new[k])!r}"
                  for k in IDENTITY_KEYS if _plain(old.get(k)) != _plain(new[k])]
        return diffs + self.search_changes(stored.get("search"))

    def search_changes(self, stored: dict | None) -> list[str]:
        """The search changes a study cannot take, [] where it grows. A grid study takes any
        change of its lists: the values it lacks become new points (pipelines/engine/points.py),
        the ones no longer listed stay. A sampler's space is fixed (its model of the space is
        Optuna's: give it more trials instead), and a β-conditional model trains on its study's
        betas (its continuum scan reads the rest)."""
        new = _plain(self.search.model_dump())
        old = _plain(stored) if stored is not None else new
        old = {**{"seed": [0], "loss": ["beta"]}, **old}  # version 1 studies stored no defaults
        differ = [k for k in new if old.get(k) != new[k]]
        if not differ:
            return []
        if self.sampler != "grid":
            why = "a sampler's search space is fixed: give it more trials (--n-trials), or start a new study"
        elif self.mode == "conditional" and "beta" in differ:
            differ = ["beta"]
            why = ("a β-conditional study's models train on its betas; its continuum scan reads the betas "
                   "between and beyond them (README, 'The continuum'): train other betas in a new study")
        else:
            return []
        return [f"search.{k}: the study has {old.get(k)}, this spec {new[k]} ({why})" for k in differ]


def _plain(value):
    """A stored value as JSON gives it back (lists, not tuples), for comparing with a stored spec."""
    return json.loads(json.dumps(value))
