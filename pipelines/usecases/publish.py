"""Where the verdict (pipelines/report/verdict.py) is stated: the study's MLflow parent run and the Optuna
study. One computation, written to every store, so that MLflow, Optuna and the report agree.

    rep, v = compute_verdict("quick", tracker, storage) # from the study's MLflow runs
    v = state_verdict("quick", tracking_uri, storage)   # both, after a sweep: never an error
    publish(v, tracker, storage)                        # parent run: best.* tags, description,
                                                        # verdict.json; Optuna: user attr `verdict`

MLflow: the chosen model registered under the study's name (`models:/<study>/<version>`); the
parent run's tags `best.z_dim`, `best.beta` ("none" for a σ-VAE), `best.loss`, `best.trial`,
`best.run`, `best.run_id`, `best.model`, `best.rule`; its description (the verdict's sentences)
and `verdict.json`; the chosen run is tagged `vae.verdict` = chosen. Optuna: the study's user
attribute `verdict`, the same JSON.
"""

from __future__ import annotations

import json

from pipelines.common.studies import existing_study
from pipelines.report.data import Report, build
from pipelines.report.fetch import load_runs
from pipelines.report.verdict import decide, lines
from pipelines.tracking.runs import Tracker

CHOSEN_TAG = "vae.verdict"


def histories(rep: Report, tracker: Tracker, key: str = "val/elbo_bpd") -> dict[str, list[float]]:
    """Run name -> the per-epoch values of `key` (MLflow metric history), for the undertraining check."""
    out = {}
    for _, run in rep.runs.iterrows():
        out[run["tags.mlflow.runName"]] = [value for step, value in tracker.metric_history(run["run_id"], key) if step > 0]
    return out


def optuna_best(study: str, storage: str | None) -> dict | None:
    """{"trial", "metric", "value"} of the Optuna study's own best trial; None without one."""
    try:
        with existing_study(study, storage) as s:
            if s is None:
                return None
            best = s.best_trial
            metric = (s.metric_names or ["objective"])[0]
    except Exception:  # no complete trial, or a store we cannot read: the verdict stands without it
        return None
    return {"trial": best.number, "metric": metric, "value": float(best.value)}


def study_info(study: str, storage: str | None) -> dict:
    """How the study was run, for the commands the verdict prints: {"spec_file", "overrides" (the
    last sweep's --set but search and confirm), "search" (the study's, grown), "mode", "given_up" (the
    configurations given up after their attempts died)}; {} without the Optuna study."""
    from pipelines.common.trials import FAIL_KIND, FAIL_REASON, heads, params_of

    try:
        with existing_study(study, storage) as s:
            if s is None:
                return {}
            attrs = s.user_attrs
            given_up = [{**params_of(t), "reason": t.user_attrs.get(FAIL_REASON, "")} for t in heads(s.trials)
                        if t.state.name == "FAIL" and t.user_attrs.get(FAIL_KIND) == "gave-up"]
    except Exception:
        return {}
    spec = attrs.get("spec", {})
    return {**attrs.get("command", {}), "search": spec.get("search", {}), "mode": spec.get("mode", "independent"),
            "given_up": given_up}


def unfinished(study: str, storage: str | None) -> str | None:
    """Why the study's verdict can only be provisional ("1 of 4 configurations finished, 3 left"), or
    None when every configuration has finished (pipelines/engine/study.py `progress`, what `vae status`
    counts) or the runs' Optuna storage is elsewhere."""
    from pipelines.common.studies import progress

    with existing_study(study, storage) as s:
        if s is None:
            return None
        info = progress(s, s.user_attrs.get("total", len(s.trials)))
    if info["done"]:
        return None
    return f"{info['finished']} of {info['total']} configurations finished, {info['left']} left"


def compute_verdict(study: str, tracker: Tracker, storage: str | None = None,
                    rep: Report | None = None) -> tuple[Report, dict]:
    """The verdict of the study's complete runs; `provisional` (why) while configurations are left:
    the best so far, which the remaining ones may beat."""
    if rep is None:
        rep = build(study, load_runs(study, tracker)[1])
    from pipelines.report.continuum import fetch_continua

    v = decide(rep, histories(rep, tracker), optuna_best(study, storage), study_info(study, storage),
               fetch_continua(rep, tracker))
    if (why := unfinished(study, storage)) is not None:
        v["provisional"] = why
    return rep, v


def state_verdict(study: str, tracking_uri: str | None, storage: str | None,
                  artifact_location: str | None = None) -> dict | None:
    """Compute a finished study's verdict and state it in MLflow and Optuna, at the end of a sweep.
    A failure here never costs a trained model: it is one line, and `vae report` computes it again."""
    import sys

    from pipelines.common.studies import storage_url
    from vae.errors import VAEError

    try:
        tracker = Tracker(tracking_uri, artifacts=artifact_location)
        _, v = compute_verdict(study, tracker, storage_url(storage))
        publish(v, tracker, storage_url(storage))
        return v
    except VAEError as e:  # e.g. no complete trial: the exit line already says so
        print(f"note: no verdict: {e}", file=sys.stderr)
    return None


def publish(v: dict, tracker: Tracker, storage: str | None = None, experiment_id: str | None = None) -> None:
    """The chosen model in MLflow's Model Registry (pipelines/usecases/export.py; its URI added to `v` as
    `model`), then the verdict on the parent run and as the Optuna study's user attribute `verdict`.
    A provisional verdict (configurations left) registers no model and tags no run: the parent run's
    description and verdict.json say it, an earlier verdict's best.* tags go, and `vae export` refuses it."""
    from pipelines.tracking.models import log_chosen_model

    if experiment_id is None:
        experiment_id = tracker.experiment_id(v["study"])
    final = not v.get("provisional")
    if v.get("run_id") and final:
        v["model"] = log_chosen_model(tracker, v["study"], v, v["run_id"])  # None after a one-line warning
    found = tracker.parent(experiment_id)
    if found is not None:
        parent = found.info.run_id
        tags = {"best.z_dim": v["z_dim"], "best.beta": "none" if v["beta"] is None else f"{v['beta']:g}",
                "best.loss": v["loss"], "best.trial": v["trial"], "best.run": v.get("run"),
                "best.run_id": v.get("run_id"), "best.model": v.get("model"), "best.rule": v["rule"][:5000]}
        if not final:
            tags = dict.fromkeys(tags)  # none: the best so far is no answer yet
        tags["mlflow.note.content"] = ("**Verdict**" if final else "**Provisional verdict**") + "\n\n" + "\n".join(
            f"- {line.strip()}" for line in lines(v)) + "\n"
        tracker.set_tags(parent, {k: val for k, val in tags.items() if val is not None})
        for stale in {k for k, val in tags.items() if val is None} & set(found.data.tags):
            tracker.delete_tag(parent, stale)  # an earlier verdict's, when this one names no model
        tracker.log_text(parent, json.dumps(v, indent=2) + "\n", "verdict.json")
    for run in tracker.runs(experiment_id, f"tags.`{CHOSEN_TAG}` = 'chosen'", max_results=100):
        if run.info.run_id != v.get("run_id") or not final:
            tracker.delete_tag(run.info.run_id, CHOSEN_TAG)
    if v.get("run_id") and final:
        tracker.set_tags(v["run_id"], {CHOSEN_TAG: "chosen"})
    _to_optuna(v, storage)


def _to_optuna(v: dict, storage: str | None) -> None:
    with existing_study(v["study"], storage) as s:
        if s is not None:  # else a report of MLflow runs whose Optuna storage lives elsewhere: MLflow has it
            s.set_user_attr("verdict", json.loads(json.dumps(v)))
