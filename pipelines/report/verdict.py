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

import math

import pandas as pd

from pipelines.report.data import Report

UNIFORM_BPD = 8.0
"""bits/dim of a uniform model of 8-bit pixels: a model worse than this has learned nothing useful."""
STILL_FALLING = 0.01
"""a validation −ELBO that fell by more than this fraction over the last fifth of the epochs."""
Z_SE = 2.0
"""a difference counts as beyond noise when larger than this many standard errors."""
# deciding numbers: the table's hidden columns (pipelines/report/data.py METRICS), their standard errors
R, FID, ELBO = "_val_r_loss", "_val_fid", "_val_elbo_bpd"
NAMES = {R: "validation R-loss", FID: "validation FID", ELBO: "validation −ELBO (bits/dim)"}


def label(row) -> str:
    """'z-dim 16, beta 0.01' / 'z-dim 16, σ-VAE', with '(β-conditional model)' for its rows."""
    kind = "σ-VAE" if row["Loss"] == "sigma-vae" else f"beta {row['Beta']:g}"
    return f"z-dim {int(row['Z-dim'])}, {kind}" + (" (β-conditional model)" if row.get("Training") == "conditional" else "")


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def pooled_sd(rep: Report, col: str) -> float | None:
    """The standard deviation of `col` over seeds, pooled over the rows with several seeds
    (sqrt of sum (n_i - 1) s_i^2 / sum (n_i - 1)); None where no row has several."""
    if col not in rep.std:
        return None
    n = rep.table["Seeds"].astype(int)
    s = rep.std[col]
    use = (n > 1) & s.notna()
    if not use.any():
        return None
    return math.sqrt(float(((n[use] - 1) * s[use] ** 2).sum()) / float((n[use] - 1).sum()))


def _se(rep: Report, i, col: str) -> float:
    """Standard error of a row's mean of `col`: over its seeds where several ran; for one seed, the
    pooled seed spread where other rows have several; else the estimator's own."""
    seeds = int(rep.table.at[i, "Seeds"])
    if seeds > 1 and col in rep.std and not math.isnan(rep.std.at[i, col]):
        return float(rep.std.at[i, col]) / math.sqrt(seeds)
    pooled = pooled_sd(rep, col)
    if pooled is not None:
        return pooled
    se = f"{col}_se"
    return float(rep.table.at[i, se]) if se in rep.table and not math.isnan(rep.table.at[i, se]) else 0.0


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


def _compare(rep: Report, a, b, cols: list[str]) -> tuple[list[str], bool, bool]:
    """How row b differs from row a on each deciding number: (phrases, b worse beyond noise on any,
    b better beyond noise on any)."""
    t, phrases, worse, better = rep.table, [], False, False
    for col in cols:
        diff = float(t.at[b, col] - t.at[a, col])
        noise = math.hypot(_se(rep, a, col), _se(rep, b, col))
        beyond = abs(diff) > Z_SE * noise
        worse |= beyond and diff > 0
        better |= beyond and diff < 0
        rel = f" ({diff / t.at[a, col]:+.1%})" if col != ELBO else ""
        phrases.append(f"{NAMES[col]} {diff:+.4g}{rel}, noise threshold ±{Z_SE * noise:.2g} (2 standard errors): "
                       + ("beyond noise" if beyond else "within noise"))
    return phrases, worse, better


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


def _still_falling(histories: dict[str, list[float]], run: str) -> str | None:
    h = histories.get(run)
    if not h:
        return None
    if len(h) < 2:
        return f"trained {len(h)} epoch: whether it converged cannot be told"
    k = max(1, round(len(h) / 5))
    drop = (h[-1 - k] - h[-1]) / abs(h[-1 - k])
    if drop > STILL_FALLING:
        return f"its validation −ELBO still fell {drop:.1%} over " + (f"the last {k} epochs" if k > 1 else "its last epoch")
    return None


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
                "per_z_dim": {}, "excluded": excluded, "warnings": ["no candidate", *_given_up(study or {})]}
    scores = _scores(alive, kind)
    best_per_z = {int(z): rows_scores.idxmin() for z, rows_scores in scores.groupby(alive["Z-dim"])}
    overall = scores.idxmin()
    # parsimony: the smallest z-dim whose best is not worse beyond noise than the best overall
    chosen, z_note = overall, ""
    for z in sorted(best_per_z):
        i = best_per_z[z]
        if z >= t.at[overall, "Z-dim"]:
            break
        _, worse, _ = _compare(rep, overall, i, cols)
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
        v["reason"] += (f"; its validation R-loss {_fmt(alive.at[chosen, R])} is above the lowest, "
                        f"{_fmt(alive.at[j, R])} ({label(t.loc[j])}), whose extra rate the likelihood charges")
    v["z_dim_answer"] = _z_dim_answer(rep, chosen, best_per_z, cols, n)
    v["generation"] = (f"generation measured: validation FID {_fmt(n['val/fid'])} of the chosen model's prior samples"
                       + (f" (test: {_fmt(n['diag/fid'])})" if "diag/fid" in n else "") if kind == "balance" else
                       "generation was not measured (fid_samples 0, the default below 28 px, or the [fid] extra "
                       "missing): the verdict rests on likelihood alone")
    others = scores.drop(chosen).sort_values()
    v["tie"], v["tied"] = False, []
    if len(others):
        j = others.index[0]
        phrases, worse, _ = _compare(rep, chosen, j, cols)
        v["runner_up"] = {**{k: _entry(rep, j, kind, alive, rule)[k] for k in ("z_dim", "beta", "loss", "trial",
                                                                               "label", "seeds")},
                          "beyond_noise": worse, "margin": "; ".join(phrases)}
        v["tie"] = not worse
        v["tied"] = [label(t.loc[k]) for k in others.index if not _compare(rep, chosen, k, cols)[1]]
        v["tie_rule"] = ("the smallest z-dim within noise of the best" if z_note else
                         f"the best mean by the rule ({'R/R* + FID/FID*' if kind == 'balance' else NAMES[ELBO]})")
    v["seeds"] = {"chosen": v["seeds"], "runner_up": v["runner_up"]["seeds"] if v.get("runner_up") else None}
    v["contenders"] = [{**_row(t, k), "within_noise": not _compare(rep, chosen, k, cols)[1]} for k in others.index]
    v["noise"] = _noise(rep, cols)
    from pipelines.report.extend import commands, extend

    info = study or {}
    v["seeds_command"] = _seeds_command(info)
    v["continuum"] = _continuum(continua or {}, v, kind, info)
    ext = extend(rep, alive, chosen)
    conditional = v["training"] == "conditional"
    if conditional and v["continuum"]:  # the model was read between and beyond its grid: the continuum answers
        ext["beta"], ext["why"]["beta"] = [], []
    v["extend"] = {"beta": ext["beta"], "z_dim": ext["z_dim"]}
    v["extend_why"] = ext["why"]
    v["extend_command"] = commands(info.get("spec_file"), info.get("overrides", []), info.get("search", {}), ext,
                                   conditional, rep.study)
    v["warnings"] = _warnings(rep, v, chosen, alive, histories, excluded) + _given_up(info)
    if optuna_best:
        v["optuna_best"] = _optuna_note(optuna_best, v, rep, bool(z_note))
    return v


def _deciding(alive: pd.DataFrame, chosen, cols: list[str]) -> str:
    """'validation R-loss 0.0412 (the lowest is 0.0374, z-dim 10, beta 0.001) and validation FID 447.9
    (the lowest of all candidates)': each number beside whose it is, never one model's beside another's."""
    parts = []
    for c in cols:
        mine, low = alive.at[chosen, c], alive[c].min()
        note = ("" if len(alive) < 2 else " (the lowest of all candidates)" if mine <= low else
                f" (the lowest is {_fmt(low)}, {label(alive.loc[alive[c].idxmin()])})")
        parts.append(f"{NAMES[c]} {_fmt(mine)}{note}")
    return " and ".join(parts)


def _z_dim_answer(rep: Report, chosen, best_per_z: dict, cols: list[str], n: dict) -> str:
    t = rep.table
    z = int(t.at[chosen, "Z-dim"])
    parts = []
    for other in sorted(best_per_z):
        if other == z:
            continue
        phrases, worse, better = _compare(rep, chosen, best_per_z[other], cols)
        verdict = "worse beyond noise" if worse else "better beyond noise" if better else "within noise"
        parts.append(f"z-dim {other}'s best ({label(t.loc[best_per_z[other]])}) is {verdict} ({'; '.join(phrases)})"
                     + (", and a larger latent is chosen only when it buys something measurable"
                        if other > z and not worse and not better else ""))
    parts = [f"z-dim {z}" + (f": {parts[0]}" if parts else ": the only z-dim tried"), *parts[1:]]
    au = n.get("diag/active_units")
    if au is not None:
        if au < 0.9 * z:
            parts.append(f"the chosen model uses {au:.0f} of its {z} dimensions (active units): a z-dim near "
                         f"{max(1, math.ceil(au))} may do as well (not tried; retune beta with it: one beta is another "
                         f"balance at another z-dim, σ implied = √(β·D/2z))")
        elif z == max(best_per_z):
            parts.append(f"it uses {au:.0f} of {z} dimensions and is the largest z-dim tried: a larger z-dim may help")
        else:
            parts.append(f"it uses {au:.0f} of {z} dimensions (active units)")
    return "; ".join(parts)


def _continuum(continua: dict, v: dict, kind: str, info: dict) -> dict:
    """{z-dim: the continuum's judgement (pipelines/report/continuum.py), with the command that trains
    its best beta independently where it beats the grid}, for the chosen z-dim."""
    from pipelines.report.continuum import judge
    from pipelines.report.extend import _quote

    scans = continua.get(v["z_dim"])
    c = judge(scans, kind) if scans else None
    if c is None:
        return {}
    if c["beats_grid"]:
        parts = ["vae sweep", info.get("spec_file") or "SPEC", *[f"--set {_quote(o)}" for o in info.get("overrides", [])],
                 f"--set study={v['study']}-beyond", "--set mode=independent",
                 f"--set 'search.beta=[{c['best_beta']:.3g}]'", f"--set 'search.z_dim=[{v['z_dim']}]'",
                 "--set 'search.loss=[beta]'"]
        c["command"] = " ".join(parts)
    return {str(v["z_dim"]): c}


def _given_up(info: dict) -> list[str]:
    """The configurations given up (no run in the table: their attempts killed their workers)."""
    out = []
    for g in info.get("given_up", []):
        what = "σ-VAE" if g.get("beta") is None else f"beta {g['beta']:g}"
        out.append(f"left out, given up: z-dim {g.get('z_dim')}, {what} (seed {g.get('seed', 0)}): "
                   f"{g['reason'].removeprefix('given up: ')}")
    return out


def _noise(rep: Report, cols: list[str]) -> str:
    """What the margins are judged against, in words."""
    seeds = rep.table["Seeds"].astype(int)
    if seeds.max() == 1:
        return "each estimator's own standard error over the validation images (and, for FID, the samples)"
    pooled = [f"{NAMES[c]} ±{_fmt(p)}" for c in cols if (p := pooled_sd(rep, c)) is not None]
    several = int((seeds > 1).sum())
    where = "every row" if several == len(seeds) else f"{several} of {len(seeds)} rows"
    return (f"{seeds.max()} seeds at {where}: margins are judged against the standard error over seeds (training "
            "and estimator noise together)"
            + (f"; a one-seed row against the pooled seed spread ({', '.join(pooled)}: what one seed may move)"
               if (seeds == 1).any() and pooled else ""))


def _seeds_command(info: dict) -> str:
    from pipelines.report.extend import _quote

    parts = ["vae sweep", info.get("spec_file") or "SPEC", *[f"--set {_quote(o)}" for o in info.get("overrides", [])]]
    return " ".join([*parts, "--set 'confirm={top: 2, seeds: 3}'"])


def _warnings(rep, v, chosen, alive, histories, excluded) -> list[str]:
    out = []
    note = _still_falling(histories, v["run"])
    if note:
        out.append(f"undertrained: {note}; train longer (epochs) before trusting the verdict")
    falling = sum(_still_falling(histories, r) is not None for r in rep.runs["tags.mlflow.runName"])
    if falling > (1 if note else 0):
        out.append(f"{falling} of {len(rep.runs)} models were still improving at their last epoch")
    nll = v["numbers"].get("diag/nll_bpd")
    if nll is not None and nll > UNIFORM_BPD:
        out.append(f"the chosen model's NLL ({nll:.3f} bits/dim) is worse than a uniform model of the pixels "
                   f"({UNIFORM_BPD:g} bits/dim): the models have barely learned the data")
    if excluded:
        out.append(f"left out as collapsed (AU = 0 or KL < 0.01 nats): {'; '.join(excluded)}")
    if int(rep.table["Seeds"].max()) == 1:  # with seeds somewhere, a one-seed row counts their pooled spread
        out.append("one seed: the noise above leaves out training noise; "
                   f"`{v['seeds_command']}` adds seeds to the finalists of this study and decides again")
    if v.get("runner_up") and not v["runner_up"]["beyond_noise"]:
        out.append(f"the runner-up ({v['runner_up']['label']}) is within noise on every deciding number: "
                   "the choice between them is not settled by this study")
    for name, word in (("beta", "beta"), ("z_dim", "z-dim")):
        if v["extend"][name]:
            out.append(f"edge: {'; '.join(v['extend_why'][name])}; try {word} "
                       f"{', '.join(f'{x:g}' for x in v['extend'][name])}: `{v['extend_command'][name]}` "
                       + ("trains them" if v["training"] == "conditional" and name == "beta" else "grows the study to them"))
    if len(alive) == 1:
        out.append("only one model could be compared")
    return out


def _optuna_note(best: dict, v: dict, rep: Report, parsimony: bool) -> dict:
    from pipelines.common.spec import BETA_BIASED
    from vae.collapse import collapsed

    runs = rep.runs[rep.runs["tags.vae.trial"].astype(int) == best["trial"]]
    dead = any(collapsed(r.get("metrics.diag/active_units"), r.get("metrics.test/kl")) for _, r in runs.iterrows())
    same = best["trial"] == v["trial"]
    if same:
        why = "Optuna's best trial is the verdict's"
    elif dead:
        why = "that model collapsed (AU = 0 or KL < 0.01 nats), and the verdict leaves collapsed models out"
    elif best["metric"] in BETA_BIASED:
        why = (f"its objective {best['metric']} moves with beta by construction (R + β·KLD) and is on another "
               "scale for a σ-VAE, so it cannot compare betas; the verdict uses the rule above")
    elif v["kind"] == "balance":
        why = f"Optuna ranks by {best['metric']} alone; the verdict weighs generation too (FID)"
    elif parsimony:
        why = f"Optuna ranks by {best['metric']} alone; the verdict prefers the smallest z-dim within noise"
    else:
        why = (f"Optuna ranks single trials by {best['metric']}; the verdict ranks each configuration's mean over "
               "its seeds, on the validation −ELBO")
    return {**best, "same": same, "why": why}


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
