"""`vae status`: where a study stands, from its Optuna storage alone (nothing is created).

    info = study_status("balance")   # counts (pipelines/common/studies.py progress) and a row per trial
"""

from __future__ import annotations

from pipelines.common.studies import load_existing, progress
from pipelines.common.trials import FAIL_REASON, chains, params_of
from vae.collapse import collapsed


def study_status(name: str, storage: str | None = None) -> dict:
    """Progress of a study from the Optuna storage alone: counts and one row per trial."""
    from optuna.trial import TrialState

    study = load_existing(name, storage)
    trials = study.get_trials(deepcopy=False)
    successor = {c[i].number: c[i + 1].number for c in chains(trials).values() for i in range(len(c) - 1)}
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    total = study.user_attrs.get("total", len(trials))
    # loss is a parameter only where the search varies it: else the spec's (beta unless it says sigma-vae)
    spec_loss = study.user_attrs.get("spec", {}).get("train", {}).get("loss") or "beta"
    rows = []
    for t in trials:
        params = params_of(t)  # waiting trials: enqueued values
        note = t.user_attrs.get(FAIL_REASON) or ""
        if t.number in successor:
            note = f"{note}; ran again as trial {successor[t.number]}" if note else f"ran again as trial {successor[t.number]}"
        rows.append({"trial": t.number, "state": t.state.name, "z_dim": params.get("z_dim"),
                     "beta": params.get("beta"), "seed": params.get("seed"), "loss": params.get("loss") or spec_loss,
                     "epochs": len(t.intermediate_values), "value": t.value,
                     "collapsed": t.state == TrialState.COMPLETE and collapsed(t.user_attrs.get("diag/active_units"),
                                                                             t.user_attrs.get("test/kl")),
                     "note": note})
    return {"study": name, **counts, **progress(study, total), "trials": rows}
