"""The verdict: which z-dim, which beta (or σ-VAE), and why. Computed here, once, from the balance
table's data (pipelines/report/data.py); `vae sweep`, `vae report`, the report page, MLflow's parent run
and the Optuna study all state this one result (pipelines/usecases/publish.py puts it there).

    v = decide(report, histories)     # a dict: verdict.json
    lines(v)                          # the sentences every surface prints

The rule, stated with every verdict:
1. Candidates are the complete rows that did not collapse (vae/collapse.py). Collapse is judged on
   the test subset's diagnostics, which may exclude a model but never rank one.
2. Models are ranked on the validation split only; the test split reports them.
   - Where FID was measured (`val/fid`: the prior samples against validation images), the rule is
     the seed's question, a balance of reconstruction and generation: the smallest
     R/R* + FID/FID*, with R* and FID* the best validation R-loss and FID among the candidates, so
     that 10 % more distortion weighs as much as a 10 % worse FID. Its minimiser is always on the
     Pareto front of (R-loss, FID).
   - Without FID, the beta-free likelihood: the lowest validation −ELBO in bits/dim with the
     decoder's σ fitted (vae/metrics.py). It weighs reconstruction against rate and says nothing
     about generation, and the verdict says so.
3. The z-dim: the smallest z-dim whose best model is within noise (2 standard errors of the
   difference) of the best overall on every deciding number; a larger latent that buys nothing
   measurable is not recommended. The verdict's row is that model, so the z-dim answer and the
   chosen row never disagree.
4. Noise: a row with several seeds, the standard error of its mean over them (training noise and
   the estimators' together); a row with one seed, where other rows have several, the pooled seed
   spread (the standard deviation over seeds, pooled over the rows that have several: what one
   seed may move); with one seed everywhere, each estimator's own standard error over the
   validation images (R-loss, −ELBO) or the prior samples (FID, a bootstrap: vae/fid.py), which
   leaves training noise out, and the verdict says so.
5. A winner is named only beyond noise: where the runner-up is within noise on every deciding
   number, the verdict is a tie, names the tied rows, and the rule above (the best mean; a smaller
   z-dim within noise first) picks the row it hands over.
6. The edge of the searched range (pipelines/report/extend.py): a choice at the end of the betas or
   z-dims searched gets the values beyond it and the command that grows the study to them.
"""

from __future__ import annotations

import pandas as pd

from pipelines.report.advice import (
    continuum_of,
    given_up,
    optuna_note,
    seeds_command,
    warnings_of,
    z_dim_answer,
)
from pipelines.report.data import Report, label
from pipelines.report.noise import ELBO, FID, NAMES, R, compare, fmt, noise_text


def _rule(t: pd.DataFrame) -> tuple[str, list[str]]:
    if FID in t and t[FID].notna().all() and len(t):
        return "balance", [R, FID]
    return "likelihood", [ELBO]


def _scores(t: pd.DataFrame, kind: str, base: pd.DataFrame | None = None) -> pd.Series:
    base = t if base is None else base
    if kind == "balance":
        return t[R] / base[R].min() + t[FID] / base[FID].min()
    return t[ELBO]


RULES = {
    "balance": "the smallest sum of validation R-loss and validation FID (prior samples against validation "
               "images), each relative to the best of the models that did not collapse: reconstruction and "
               "generation weigh equally (10 % more R-loss costs as much as a 10 % worse FID)",
    "likelihood": "the lowest validation −ELBO in bits/dim with the decoder's σ fitted, a likelihood that "
                  "favours no beta; generation was not measured, so it does not weigh in",
}


def _trial(rep: Report, i, kind: str, scores_base: pd.DataFrame) -> tuple[int, str, str, int]:
    """(trial number, run name, run id, seed) of the row's best seed."""
    row = rep.table.loc[i]
    runs = rep.runs[(rep.runs["z_dim"] == row["Z-dim"]) & (rep.runs["loss"] == row["Loss"])
                    & (rep.runs["mode"] == row["Training"])]
    runs = runs[runs["beta"].isna()] if pd.isna(row["Beta"]) else runs[runs["beta"] == row["Beta"]]
    cols = {R: "metrics.val/r_loss", FID: "metrics.val/fid", ELBO: "metrics.val/elbo_bpd"}
    values = pd.DataFrame({c: runs[m].astype(float) for c, m in cols.items() if m in runs})
    best = runs.index[0]
    if len(runs) > 1 and (kind == "likelihood" and ELBO in values or kind == "balance" and FID in values):
        best = _scores(values, kind, scores_base).idxmin()
    r = runs.loc[best]
    return int(r["tags.vae.trial"]), str(r["tags.mlflow.runName"]), str(r["run_id"]), int(r["seed"])


def _numbers(rep: Report, i) -> dict:
    row = rep.table.loc[i]
    names = {R: "val/r_loss", ELBO: "val/elbo_bpd", FID: "val/fid", "R-loss": "test/r_loss",
             "KLD-loss": "test/kld_loss", "KL (nats)": "test/kl", "AU": "diag/active_units",
             "NLL (bits/dim)": "diag/nll_bpd", "FID (samples)": "diag/fid"}
    return {key: float(row[col]) for col, key in names.items() if col in row and not pd.isna(row[col])}


def _row(t: pd.DataFrame, i) -> dict:
    """A row's identity: what a point of the study needs to train it again (pipelines/confirm.py)."""
    row = t.loc[i]
    return {"z_dim": int(row["Z-dim"]), "beta": None if pd.isna(row["Beta"]) else float(row["Beta"]),
            "loss": row["Loss"], "training": row["Training"], "label": label(row), "seeds": int(row["Seeds"])}


def _entry(rep: Report, i, kind: str, base: pd.DataFrame, rule: str) -> dict:
    row = rep.table.loc[i]
    trial, run, run_id, seed = _trial(rep, i, kind, base)
    return {"z_dim": int(row["Z-dim"]), "beta": None if pd.isna(row["Beta"]) else float(row["Beta"]),
            "loss": row["Loss"], "training": row["Training"], "label": label(row), "trial": trial, "run": run,
            "run_id": run_id, "seed": seed, "seeds": int(row["Seeds"]), "rule": rule, "numbers": _numbers(rep, i)}


def decide(rep: Report, histories: dict[str, list[float]] | None = None, optuna_best: dict | None = None,
           study: dict | None = None, continua: dict | None = None) -> dict:
    """The verdict (verdict.json) from the report's data. `histories`: run name -> per-epoch
    `val/elbo_bpd`, for the undertraining warning; `optuna_best`: {"trial", "metric", "value"} of
    Optuna's own best trial, to say where it differs; `study`: how the study was run ("spec_file",
    "overrides", "search", "mode": pipelines/usecases/publish.py study_info), for the commands the
    verdict prints; `continua`: z-dim -> the β-conditional models' scans of their range
    (pipelines/report/continuum.py), judged at the chosen z-dim."""
    t, histories = rep.table, histories or {}
    excluded = [label(t.loc[i]) for i in t.index if rep.dead[i]]
    alive = t[~rep.dead]
    kind, cols = _rule(alive)
    alive = alive.dropna(subset=cols)
    if alive.empty:
        return {"study": rep.study, "z_dim": None, "beta": None, "loss": None, "trial": None, "kind": kind,
                "rule": "no model can be recommended: every complete model collapsed or lacks validation numbers",
                "per_z_dim": {}, "excluded": excluded, "warnings": ["no candidate", *given_up(study or {})]}
    scores = _scores(alive, kind)
    best_per_z = {int(z): rows_scores.idxmin() for z, rows_scores in scores.groupby(alive["Z-dim"])}
    overall = scores.idxmin()
    # parsimony: the smallest z-dim whose best is not worse beyond noise than the best overall
    chosen, z_note = overall, ""
    for z in sorted(best_per_z):
        i = best_per_z[z]
        if z >= t.at[overall, "Z-dim"]:
            break
        _, worse, _ = compare(rep, overall, i, cols)
        if not worse:
            chosen = i
            z_note = (f"z-dim {z} is within noise of the best overall ({label(t.loc[overall])}) on every deciding "
                      f"number, so the smaller latent is chosen")
            break
    rule = f"{RULES[kind]}; then the smallest z-dim within noise of the best"
    v = _entry(rep, chosen, kind, alive, rule)
    per_z = {str(z): _entry(rep, i, kind, alive, f"best at z-dim {z} by {RULES[kind].split(';')[0]}")
             for z, i in best_per_z.items()}
    v = {"study": rep.study, **v, "per_z_dim": per_z, "excluded": excluded, "kind": kind}
    n = v["numbers"]
    v["reason"] = f"{label(t.loc[chosen])} has {_deciding(alive, chosen, cols)}" + (f"; {z_note}" if z_note else "")
    if kind == "likelihood" and R in alive and alive.at[chosen, R] > alive[R].min():
        j = alive[R].idxmin()  # the trade-off the likelihood made: it charges the rate as well
        v["reason"] += (f"; its validation R-loss {fmt(alive.at[chosen, R])} is above the lowest, "
                        f"{fmt(alive.at[j, R])} ({label(t.loc[j])}), whose extra rate the likelihood charges")
    v["z_dim_answer"] = z_dim_answer(rep, chosen, best_per_z, cols, n)
    v["generation"] = (f"generation measured: validation FID {fmt(n['val/fid'])} of the chosen model's prior samples"
                       + (f" (test: {fmt(n['diag/fid'])})" if "diag/fid" in n else "") if kind == "balance" else
                       "generation was not measured (fid_samples 0, the default below 28 px, or the [fid] extra "
                       "missing): the verdict rests on likelihood alone")
    _rival(rep, v, chosen, scores.drop(chosen).sort_values(), kind, cols, rule, bool(z_note), alive)
    _beyond(rep, v, chosen, alive, kind, study or {}, continua or {})
    v["warnings"] = warnings_of(rep, v, chosen, alive, histories, excluded) + given_up(study or {})
    if optuna_best:
        v["optuna_best"] = optuna_note(optuna_best, v, rep, bool(z_note))
    return v


def _rival(rep: Report, v: dict, chosen, others: pd.Series, kind: str, cols: list[str], rule: str, parsimony: bool,
           alive: pd.DataFrame) -> None:
    """The runner-up and its margin, a tie where it is within noise, the seeds, the noise."""
    t = rep.table
    v["tie"], v["tied"] = False, []
    if len(others):
        j = others.index[0]
        phrases, worse, _ = compare(rep, chosen, j, cols)
        v["runner_up"] = {**{k: _entry(rep, j, kind, alive, rule)[k] for k in ("z_dim", "beta", "loss", "trial",
                                                                               "label", "seeds")},
                          "beyond_noise": worse, "margin": "; ".join(phrases)}
        v["tie"] = not worse
        v["tied"] = [label(t.loc[k]) for k in others.index if not compare(rep, chosen, k, cols)[1]]
        v["tie_rule"] = ("the smallest z-dim within noise of the best" if parsimony else
                         f"the best mean by the rule ({'R/R* + FID/FID*' if kind == 'balance' else NAMES[ELBO]})")
    v["seeds"] = {"chosen": v["seeds"], "runner_up": v["runner_up"]["seeds"] if v.get("runner_up") else None}
    v["contenders"] = [{**_row(t, k), "within_noise": not compare(rep, chosen, k, cols)[1]} for k in others.index]
    v["noise"] = noise_text(rep, cols)


def _beyond(rep: Report, v: dict, chosen, alive: pd.DataFrame, kind: str, info: dict, continua: dict) -> None:
    """What lies past the searched range: the continuum's best, the values beyond the edge, and the
    commands that add seeds or grow the study."""
    from pipelines.report.extend import commands, extend

    v["seeds_command"] = seeds_command(info)
    v["continuum"] = continuum_of(continua, v, kind, info)
    ext = extend(rep, alive, chosen)
    conditional = v["training"] == "conditional"
    if conditional and v["continuum"]:  # the model was read between and beyond its grid: the continuum answers
        ext["beta"], ext["why"]["beta"] = [], []
    v["extend"] = {"beta": ext["beta"], "z_dim": ext["z_dim"]}
    v["extend_why"] = ext["why"]
    v["extend_command"] = commands(info.get("spec_file"), info.get("overrides", []), info.get("search", {}), ext,
                                   conditional, rep.study)


def _deciding(alive: pd.DataFrame, chosen, cols: list[str]) -> str:
    """'validation R-loss 0.0412 (the lowest is 0.0374, z-dim 10, beta 0.001) and validation FID 447.9
    (the lowest of all candidates)': each number beside whose it is, never one model's beside another's."""
    parts = []
    for c in cols:
        mine, low = alive.at[chosen, c], alive[c].min()
        note = ("" if len(alive) < 2 else " (the lowest of all candidates)" if mine <= low else
                f" (the lowest is {fmt(low)}, {label(alive.loc[alive[c].idxmin()])})")
        parts.append(f"{NAMES[c]} {fmt(mine)}{note}")
    return " and ".join(parts)


def row_index(table: pd.DataFrame, v: dict | None):
    """The index of the verdict's row in the balance table, or None."""
    if not v or v.get("trial") is None:
        return None
    match = (table["Z-dim"] == v["z_dim"]) & (table["Loss"] == v["loss"]) & (table["Training"] == v["training"])
    match &= table["Beta"].isna() if v["beta"] is None else table["Beta"] == v["beta"]
    found = table.index[match]
    return found[0] if len(found) else None


def _seeds(n: int | None) -> str:
    return "seeds unknown" if n is None else f"{n} seed{'s' if n != 1 else ''}"


def lines(v: dict) -> list[str]:
    """The verdict as sentences: the answer first, then why, then how sure. A provisional one (configurations
    left) says so first: the best so far, which a configuration still to run may beat."""
    head = "verdict"
    if v.get("provisional"):
        head = f"provisional verdict ({v['provisional']}; rerun `vae sweep` to finish, then `vae report`)"
    if v.get("trial") is None:
        return [f"{head}: {v['rule']}"]
    out = [f"{head}: {v['label']} (trial {v['trial']}, run {v['run']})"
           + (f"; model {v['model']}" if v.get("model") else "")
           + (f"; a tie with {', '.join(v['tied'])} (within noise)" if v.get("tie") else ""),
           f"  why: {v['reason']}", f"  rule: {v['rule']}", f"  {v['z_dim_answer']}",
           f"  generation: {v['generation']}"]
    if v.get("tie"):
        out.append(f"  tie: no row is better beyond noise than {', '.join(v['tied'])}; {v['tie_rule']} picks "
                   f"{v['label']}, which is not a win")
    if v.get("runner_up"):
        r = v["runner_up"]
        out.append(f"  runner-up: {r['label']} (trial {r['trial']}, {_seeds(r['seeds'])}): {r['margin']}")
    out.append(f"  noise: {v['noise']}")
    from pipelines.report.continuum import sentence

    for z, c in (v.get("continuum") or {}).items():
        out.append(f"  continuum: {sentence(c, int(z), c.get('command'))}")
    out.append("  best per z-dim: " + "; ".join(f"{e['label']} (trial {e['trial']})" for e in v["per_z_dim"].values()))
    ob = v.get("optuna_best")
    if ob and not ob["same"]:
        out.append(f"  Optuna's best trial ({ob['metric']} {ob['value']:.4g}) is trial {ob['trial']}: {ob['why']}")
    out += [f"  warning: {w}" for w in v["warnings"]]
    return out
