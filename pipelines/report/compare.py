"""Two studies side by side: the gap at every shared (z-dim, beta) and what each cost to train.

    vae report --study balance --compare balance-conditional

Made for a beta-conditional study (one model per z-dim, vae/conditional.py) against the
independent one (one model per beta), measured the same way: the gap of the compared study
relative to the base study, (B - A) / A with A the base study and B the compared one, for R-loss and the rate KL (nats, test split)
and FID where both have it. GOALS: what "as good as independent training" means here (R-loss
within 5 %, KL within 10 %). Compute counts the trainings behind the compared rows (a conditional
model once for all its betas), their optimiser steps (epochs x batches of the training split),
the seconds spent in training epochs (`time/epoch_s`) and the runs' wall time (training plus the
per-epoch evaluation, diagnostics and FID).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from pipelines.report.data import Report, ReportError
from pipelines.tracking.beta_runs import TRAINED_BY

MEASURES = {"R-loss": "R-loss", "KL": "KL (nats)", "FID": "FID (samples)"}  # label -> report column
GOALS = {"R-loss": 0.05, "KL": 0.10}  # largest relative gap that counts as matching independent training
ON = ["Loss", "Z-dim", "Beta"]


@dataclass
class Comparison:
    base: str                # study names
    other: str
    gaps: pd.DataFrame       # ON + per measure: "<m> A" (base), "<m> B" (other), "Δ <m>" (fraction), "Within goal"
    compute: pd.DataFrame    # one row per study: trainings, optimiser steps, training s, wall s, rows
    verdicts: tuple = (None, None)  # each study's verdict (pipelines/report/verdict.py), side by side
    fronts: tuple = (None, None)    # each study's balance table, for the rate-distortion fronts on one figure


def gaps(base: Report, other: Report) -> pd.DataFrame:
    # the beta curve: sigma-vae rows have no beta to compare at
    a, b = (r.table[r.table["Loss"] == "beta"].copy() for r in (base, other))
    for t in (a, b):
        t["Beta"] = t["Beta"].astype(float).round(12)  # the same beta from two params strings
    both = a.merge(b, on=ON, suffixes=(" a", " b"))
    if base.study == other.study:
        raise ReportError(f"--compare names the study itself ({base.study!r}); name a second study")
    out = both[ON].copy()  # empty where the grids differ: then the verdicts and fronts compare them
    for label, col in MEASURES.items():
        if f"{col} a" not in both or both[f"{col} a"].isna().all() or both[f"{col} b"].isna().all():
            continue
        out[f"{label} A"] = both[f"{col} a"]
        out[f"{label} B"] = both[f"{col} b"]
        out[f"Δ {label}"] = (both[f"{col} b"] - both[f"{col} a"]) / both[f"{col} a"]
    out["Within goal"] = [all(abs(r[f"Δ {m}"]) <= g for m, g in GOALS.items() if f"Δ {m}" in out)
                          for _, r in out.iterrows()]
    return out.sort_values(["Z-dim", "Beta"], ascending=[True, False]).reset_index(drop=True)


def trainings(report: Report, rows: pd.DataFrame) -> list[str]:
    """Run ids of the trainings behind the table rows `rows` (ON columns): an independent trial's
    own run; a conditional row's training run, once for all its betas."""
    runs = report.runs
    wanted = set(map(tuple, rows[["Z-dim", "Beta"]].astype(float).round(12).values.tolist()))
    keep = [(float(z), round(float(b), 12)) in wanted for z, b in zip(runs["z_dim"], runs["beta"].fillna(math.nan))]
    runs = runs[keep]
    by = runs.get(f"tags.{TRAINED_BY}", pd.Series(index=runs.index, dtype=object))
    return list(dict.fromkeys(by.fillna(runs["run_id"])))


def _stem(run) -> tuple:
    """A configuration's runs share role and run name but for the trial number (`z100-cond-t1`)."""
    return run.data.tags.get("vae.role"), run.info.run_name.rsplit("-t", 1)[0]


def cost(tracker, run_ids: list[str]) -> dict:
    """Trainings, optimiser steps, seconds in training epochs (each epoch once: a retry's history
    carries the epochs it resumed from) and wall seconds of every attempt of these runs."""
    steps = train_s = wall_s = 0.0
    everything: list = []  # every run of the study, fetched once: a run's attempts are its stem's runs
    for run_id in run_ids:
        run = tracker.run(run_id)
        if not everything:
            everything = tracker.runs(run.info.experiment_id)
        p, m = run.data.params, run.data.metrics
        batches = math.ceil(m["data/train_images"] / int(p["batch_size"]))
        steps += int(p["epochs"]) * batches
        train_s += sum(value for _, value in tracker.metric_history(run_id, "time/epoch_s"))
        # every attempt: runs killed or failed before a retry resumed them count too
        wall_s += sum(((r.info.end_time or r.info.start_time) - r.info.start_time) / 1000
                      for r in everything if _stem(r) == _stem(run))
    return {"Trainings": len(run_ids), "Optimiser steps": int(steps), "Training (s)": train_s, "Wall (s)": wall_s}


def compare(base: Report, other: Report, tracker, verdicts: tuple = (None, None)) -> Comparison:
    """The shared rows' gaps and compute; with no row in common, each study's whole compute, and
    (always) both verdicts and both fronts."""
    g = gaps(base, other)
    compute = pd.DataFrame([{"Study": r.study, "Rows": len(g) if len(g) else len(r.table),
                             "Epochs": int(r.table["Epochs"].max()),
                             **cost(tracker, trainings(r, g if len(g) else r.table[["Z-dim", "Beta"]]))}
                            for r in (base, other)])
    return Comparison(base.study, other.study, g, compute, verdicts, (base.table, other.table))


def verdict_rows(c: Comparison) -> pd.DataFrame:
    """The two verdicts side by side: the answer, its deciding numbers, its test numbers, its noise."""
    rows = []
    for study, v in zip((c.base, c.other), c.verdicts):
        if not v or v.get("trial") is None:
            rows.append({"Study": study, "Verdict": (v or {}).get("rule", "none")[:60]})
            continue
        n = v.get("numbers", {})
        rows.append({"Study": study, "Verdict": v["label"], "Rule": v.get("kind", ""),
                     "val R-loss": n.get("val/r_loss"), "val FID": n.get("val/fid"), "val −ELBO": n.get("val/elbo_bpd"),
                     "R-loss": n.get("test/r_loss"), "KL (nats)": n.get("test/kl"), "FID": n.get("diag/fid"),
                     "Seeds": (v.get("seeds") or {}).get("chosen"), "Tie": "yes" if v.get("tie") else "no",
                     "Provisional": "yes" if v.get("provisional") else "no"})
    return pd.DataFrame(rows).dropna(axis=1, how="all")


def summary(c: Comparison) -> list[str]:
    """The comparison in sentences: compute ratios, the largest gaps, how many rows meet the goal."""
    a, b = c.compute.iloc[0], c.compute.iloc[1]
    answers = [f"{s}: {v['label'] if v and v.get('trial') is not None else 'no verdict'}"
               for s, v in zip((c.base, c.other), c.verdicts)]
    if c.gaps.empty:
        return [f"no (z-dim, beta) row in common: the verdicts side by side ({'; '.join(answers)}) and both "
                f"rate–distortion fronts on one figure",
                f"{c.other}: {b['Trainings']} training(s), {b['Training (s)'] / 60:.1f} min in training epochs, "
                f"{b['Wall (s)'] / 60:.1f} min wall; {c.base}: {a['Trainings']}, {a['Training (s)'] / 60:.1f} min, "
                f"{a['Wall (s)'] / 60:.1f} min (all rows of each)."]
    lines = [f"{c.other}: {b['Trainings']} training(s), {b['Optimiser steps']:,} optimiser steps, "
             f"{b['Training (s)'] / 60:.1f} min in training epochs, {b['Wall (s)'] / 60:.1f} min wall; "
             f"{c.base}: {a['Trainings']}, {a['Optimiser steps']:,}, {a['Training (s)'] / 60:.1f} min, "
             f"{a['Wall (s)'] / 60:.1f} min (for the {a['Rows']} rows both have)."]
    for m, goal in GOALS.items():
        if f"Δ {m}" in c.gaps:
            worst = c.gaps[f"Δ {m}"].abs().max()
            lines.append(f"{m}: largest gap {worst:.1%} (goal ≤ {goal:.0%}); "
                         f"{(c.gaps[f'Δ {m}'].abs() <= goal).sum()} of {len(c.gaps)} rows within it.")
    if "Δ FID" in c.gaps:
        lines.append(f"FID: gaps from {c.gaps['Δ FID'].min():+.1%} to {c.gaps['Δ FID'].max():+.1%} "
                     "(negative: the compared study generates better).")
    lines.append(f"All goals met in {int(c.gaps['Within goal'].sum())} of {len(c.gaps)} rows.")
    return [f"verdicts: {'; '.join(answers)}", *lines]
