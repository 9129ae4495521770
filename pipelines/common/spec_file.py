"""A sweep spec from its YAML file and `--set` overrides, checked whole (pipelines/common/spec.py).

    spec = load_spec("sweeps/quick.yaml", overrides=["epochs=5", "search.beta=[0.1, 0.01]"])

Errors name the offending key, and the --set that gave it where one did, never the file for it.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import ValidationError

from pipelines.common.spec import NOT_IN_SPEC, Confirm, Pruner, Search, Spec, SpecError
from vae import config as settings
from vae.config import TrainConfig
from vae.errors import VAEError


def _set(values: dict, override: str) -> None:
    if "=" not in override:
        raise SpecError(f"--set needs KEY=VALUE, got {override!r}")
    key, raw = override.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw else None
    except yaml.YAMLError as e:
        raise SpecError(f"--set {key.strip()}: {raw!r} is malformed YAML: {getattr(e, 'problem', e)}") from None
    if isinstance(value, (int, float, bool)) and key.strip() in ("study", "dataset"):
        value = raw  # names stay strings
    *parents, leaf = key.strip().split(".")
    node = values
    for p in parents:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise SpecError(f"--set {key}: {p} is not a section")
    node[leaf] = value


def _given(overrides) -> dict[str, str]:
    """--set KEY=VALUE by key: what an error names instead of the spec file when --set gave the value."""
    return {o.split("=", 1)[0].strip(): o.strip() if len(o.strip()) <= 80 else o.strip()[:40] + "..." for o in overrides}


def _did_you_mean(loc: tuple, train_names: set[str]) -> str:
    """'; did you mean 'epochs'?' for a misspelled key (difflib), naming the keys allowed there."""
    import difflib

    *section, key = [str(p) for p in loc]
    model = {"search": Search, "pruner": Pruner, "confirm": Confirm}.get(section[0]) if section else None
    allowed = set(model.model_fields) if model else (set(Spec.model_fields) - {"train"}) | (train_names - NOT_IN_SPEC)
    close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(sorted(allowed))}"


def load_spec(path: str | Path, overrides: tuple[str, ...] | list[str] = (), n_trials: int | None = None) -> Spec:
    """The spec at `path` with `--set` overrides and `--n-trials` applied, then checked as a whole
    (`--set sampler=tpe --n-trials 3` is valid though the file has no n_trials)."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"sweep spec {str(path)!r} does not exist")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a text file (a sweep spec is YAML, in UTF-8)") from None
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" (line {where.line + 1})" if where else ""
        raise SpecError(f"{path}: malformed YAML{line}: {getattr(e, 'problem', e)}") from None
    if not isinstance(values, dict):
        raise SpecError(f"{path}: expected a mapping of settings, got {type(values).__name__}")
    for override in overrides:
        _set(values, override)
    if n_trials is not None:
        values["n_trials"] = n_trials

    train_names = set(settings.names())
    for key in values:
        if key in NOT_IN_SPEC:
            where = "mode: conditional trains on search.beta" if key == "betas" else "put it under search:"
            raise SpecError(f"{path}: {key!r} is set per trial; {where}")
    train_values = {k: values.pop(k) for k in list(values) if k in train_names}
    try:
        train = TrainConfig.from_dict(train_values).convert()  # every value typed ("1e3" from YAML a float)
        spec = Spec(**values, train=train)
        for cfg in spec.trial_configs():  # the one validator of every setting, as each trial will train
            cfg.validate()
        spec._given = frozenset(train_values)
        spec._command = {"spec_file": str(path), "overrides": [
            o.strip() for o in overrides if not o.strip().startswith(("search.", "search=", "confirm"))]}
    except ValidationError as e:
        errors = e.errors()  # a misspelled key also makes its right spelling "missing": name the misspelling
        err = next((x for x in errors if x["type"] == "extra_forbidden"), None) or max(
            errors, key=lambda x: len(x["loc"]))  # else, of a union's branches, the one that got furthest
        where = ".".join(str(p) for p in err["loc"] if not isinstance(p, int) and not str(p)[:1].isupper()
                         and not str(p).startswith(("list[", "function-"))) or "spec"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown key{_did_you_mean(err['loc'], train_names)}"
        given, parts = _given(overrides), where.split(".")  # a value --set gave is its fault, not the file's
        key = next((k for k in (".".join(parts[:i]) for i in range(len(parts), 0, -1)) if k in given), None)
        if key is None:
            raise SpecError(f"{path}: {where}: {msg}") from None
        raise SpecError(f"--set {given[key]}: " + (f"{where}: " if where != key else "") + msg) from None
    except VAEError as e:
        by = _given(overrides).get(re.match(r"[\w.]*", str(e)).group())  # "epochs must be >= 1": its setting first
        raise SpecError(f"--set {by}: {e}" if by else f"{path}: {e}") from None
    return spec
