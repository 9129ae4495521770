"""The options of the `vae` commands, each declared once: the training settings generated from
their declarations (vae/config.py), the stores' options shared by every command that reads them.

    @train_options                 # one option per TrainConfig setting: type, default, help
    @storage_option()              # --storage, its default named once (pipelines/common/stores.py)
    @tracking_option()             # --tracking-uri
    @artifact_option()             # --artifact-location
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from pipelines.common.stores import DEFAULTS
from vae.config import TrainConfig, declared, default, names


def storage_option(what: str = "The study's Optuna storage URL"):
    return click.option("--storage", default=None, help=f"{what} [env VAE_STORAGE; default {DEFAULTS['optuna']}].")


def tracking_option(what: str = "The MLflow tracking URI"):
    return click.option("--tracking-uri", default=None,
                        help=f"{what} [env MLFLOW_TRACKING_URI; default {DEFAULTS['mlflow']}].")


def artifact_option():
    return click.option("--artifact-location", default=None, metavar="PATH|URI",
                        help="Where a new study's MLflow artifacts go: one location every host reaches (a shared "
                             "folder, s3://...); needed with a database tracking URI other than SQLite "
                             "[env VAE_ARTIFACT_LOCATION].")


def study_option(required: bool = True, what: str = "Study name (the spec's `study`)."):
    return click.option("--study", required=required, default=None, help=what)


class FloatList(click.ParamType):
    """`0.1,0.01,0.001` -> [0.1, 0.01, 0.001]."""
    name = "X,Y,..."

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        try:
            return [float(v) for v in str(value).split(",") if v.strip()]
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of numbers", param, ctx)


def default_text(name: str) -> str:
    """A setting's default as `vae train --help` shows it: its declared `shown` words, else its value."""
    meta = declared(name).metadata
    if meta["shown"] is not None:
        return meta["shown"]
    value = default(name)
    if isinstance(value, bool):
        return f"--{name.replace('_', '-')}" if value else f"--no-{name.replace('_', '-')}"
    return str(value)


def train_option(name: str):
    """The `vae train` option of one setting, from its declaration (vae/config.py): type, default, help."""
    f = declared(name)
    flag, hint = f"--{name.replace('_', '-')}", str(f.type)
    value = None if f.default is dataclasses.MISSING else f.default  # a factory (data_dir): resolved in TrainConfig
    kwargs = {"default": value, "help": f"{f.metadata['help']} [default: {default_text(name)}]"}
    if hint.startswith("bool"):
        return click.option(f"{flag}/--no-{flag[2:]}", **kwargs)
    if f.metadata["choices"]:
        kwargs["type"] = click.Choice(f.metadata["choices"])
    elif hint.startswith("list[float]"):
        kwargs["type"] = FloatList()
    elif hint.startswith(("int", "float")):
        kwargs["type"] = {"int": int, "float": float}[hint.split(" ")[0]]
    return click.option(flag, **kwargs)


def train_options(f):
    """One option per TrainConfig setting, generated from its declaration."""
    for name in reversed(names()):
        f = train_option(name)(f)
    return f


def config_from_options(options: dict) -> TrainConfig:
    values = dict(options)
    if values.get("data_dir") is None:  # its default comes from the environment (TrainConfig)
        values.pop("data_dir", None)
    return TrainConfig(**values).validate()


def resumed_options(options: dict) -> dict:
    """`vae train --resume`: each setting that defines the run (vae/config.py IDENTITY roles) and that
    the command line leaves at its default reads as the run folder recorded it (config.json), so that
    a run resumes as it was started, also after a default has changed since; an option given on the
    command line still overrides it (and `train` refuses a model setting that differs from the
    checkpoint's). A setting its config.json predates reads as version 1 had it (legacy_defaults)."""
    import json

    from vae.config import IDENTITY, legacy_defaults

    out = Path(TrainConfig(**{k: v for k, v in options.items() if k != "data_dir" or v is not None}).run_dir)
    try:
        recorded = {**legacy_defaults(1), **json.loads((out / "config.json").read_text())}
    except (OSError, ValueError):  # no run there yet (train says so), or not ours: train decides
        return options
    source = click.get_current_context().get_parameter_source
    return {**options, **{k: recorded[k] for k in names(IDENTITY)
                          if k in recorded and source(k) is click.core.ParameterSource.DEFAULT}}
