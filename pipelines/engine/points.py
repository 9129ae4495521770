"""A grid study's points: every (z_dim, beta, seed[, loss]) configuration it runs, and how it grows.

    points = study_points(study)                 # the study's user attribute `points`
    grown = grow(study, spec)                    # a spec listing more values: the new points, added
    add_points(study, [{"z_dim": 100, ...}])     # confirm's extra seeds (pipelines/confirm.py)
    params = record(trial, point, study)         # a claimed trial's point, as Optuna parameters

A study is the union of everything it was asked to run. Its points are stored as the study's user
attribute `points` (a list, in the order they were added), and the recovery pass enqueues every
point that has no trial yet (pipelines/engine/recovery.py), under the study lock. So a spec whose
`search` lists more values than the study has (seeds, betas, z-dims, losses) adds the missing
points of its grid to the same study: completed points are kept and never trained again. A value
the spec no longer lists leaves its points in the study: they are kept, still run if unfinished,
and reported; `grow` names them. Points outside the grid's product (the extra seeds `confirm` gives
the finalists) are added the same way.

How a point is recorded in Optuna: `CategoricalDistribution` refuses a changed set of choices
within one study ("does not support dynamic value space"), so a dimension with several values is
recorded as an `IntDistribution` (z_dim, seed) or a `FloatDistribution` (beta) spanning the
study's values when the trial was claimed; Optuna checks only the kind and the log flag of those
between trials, so a grown study records its new values as it did the old ones. A dimension with
one value is a user attribute (a constant has no importance), a σ-VAE point has no beta, and loss
is a categorical over every loss there is. Studies created before growth (no `grid_params`
attribute) recorded categoricals: there a value their choices lack is recorded as a user
attribute instead (pipelines/engine/trial.py params_of reads both).
"""

from __future__ import annotations

from pipelines.common.trials import CONSTANT_ATTRS, chains, params_of

POINTS = "points"          # study user attribute: the list of point dicts
GRID_PARAMS = "grid_params"  # study user attribute: "ranges" for studies that record points as ranges
LOSSES = ("beta", "sigma-vae")


def key(point: dict) -> tuple:
    """A point's identity: the same configuration whether it was enqueued, a parameter or an attribute."""
    beta = point.get("beta")
    return (point.get("z_dim"), None if beta is None else float(beta), point.get("seed", 0),
            point.get("loss") or "beta")


def _derived(study) -> list[dict]:
    """A study from before `points`: its trials' configurations, in the order they were added."""
    return [params_of(c[0]) for c in chains(study.get_trials(deepcopy=False)).values()]


def study_points(study) -> list[dict]:
    stored = study.user_attrs.get(POINTS)
    return list(stored) if stored is not None else _derived(study)


def add_points(study, new: list[dict]) -> list[dict]:
    """Add the points the study lacks (call under the study lock); return those added."""
    points = study_points(study)
    have = {key(p) for p in points}
    added = []
    for p in new:
        if key(p) not in have:
            have.add(key(p))
            added.append(p)
    if added or study.user_attrs.get(POINTS) is None:
        study.set_user_attr(POINTS, [*points, *added])
    study.set_user_attr("total", len(points) + len(added))
    return added


def removed(study, spec) -> list[str]:
    """The values of the study's search (its lists, grown: the spec attribute) that `spec`'s search no
    longer lists ("search.beta 0.1"): their points stay in the study. Seeds `confirm` gave a few rows
    are no values of the search."""
    stored = study.user_attrs.get("spec", {}).get("search", {})
    out = []
    for name in ("z_dim", "beta", "seed", "loss"):
        listed, have = getattr(spec.search, name), stored.get(name)
        if not isinstance(have, list) or not isinstance(listed, list):
            continue
        gone = [v for v in have if v not in listed]
        if gone:
            out.append(f"search.{name} {', '.join(f'{v:g}' if isinstance(v, float) else str(v) for v in gone)}")
    return out


def grow(study, spec) -> list[dict]:
    """Add the points of `spec`'s grid the study lacks (under the study lock); the study's stored
    search becomes the union of the two. Returns the points added."""
    added = add_points(study, spec.grid())
    if added:
        stored = dict(study.user_attrs.get("spec", {}))
        search = dict(stored.get("search", {}))
        for name, values in spec.search.model_dump().items():
            old = search.get(name)
            if isinstance(values, list) and isinstance(old, list):
                search[name] = [*old, *[v for v in values if v not in old]]
            else:
                search[name] = values
        study.set_user_attr("spec", {**stored, "search": search})
    return added


def record(trial, point: dict, study) -> dict:
    """Record a claimed grid trial's point in Optuna (see the module docstring); return its parameters."""
    legacy = study.user_attrs.get(GRID_PARAMS) != "ranges"
    points = study_points(study) or [point]
    params = {}
    for name in CONSTANT_ATTRS:
        if name not in point:
            continue  # a study of one loss names none
        value = params[name] = point[name]
        if value is None:
            continue  # a σ-VAE has no beta: nothing to record
        values = {p.get(name) for p in points if p.get(name) is not None} | {value}
        if len(values) == 1:
            trial.set_user_attr(name, value)
        elif legacy:
            _legacy(trial, study, name, value)
        elif name == "loss":
            trial.suggest_categorical(name, LOSSES)
        elif name == "beta":
            trial.suggest_float(name, min(values), max(values))
        else:
            trial.suggest_int(name, min(values), max(values))
    return params


def _legacy(trial, study, name: str, value) -> None:
    """A study from before growth recorded categoricals: the same choices where the value is one of
    them, else a user attribute (a new choice would be refused)."""
    for t in study.get_trials(deepcopy=False):
        dist = t.distributions.get(name)
        if dist is not None:
            if value in dist.choices:
                trial.suggest_categorical(name, dist.choices)
            else:
                trial.set_user_attr(name, value)
            return
    trial.set_user_attr(name, value)
