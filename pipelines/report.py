"""The balance table, figures and an HTML report, built from a study's MLflow runs.

    vae report --study balance --out reports/balance     # table in the terminal + files
    vae report --study balance --format csv > table.csv

Writes report.md, table.csv, report.html (self-contained: figures and image grids embedded)
and the figures as PNG files, and logs them as artifacts of the study's parent run.

Units: KLD-loss and R-loss are final test-set values *per image*, normalised as in vae/loss.py;
the "×B" columns multiply by the sweep's batch size, the units the original README's table
appears to use (sums over a batch of 64). `sources()` says which split each column comes from:
the losses from the whole test split, the diagnostics and generation metrics from its evaluation
subset (vae/data.py, vae/metrics.py, vae/fid.py). Runs from before a column existed show it blank.
Recommendations: pipelines/recommend.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipelines.recommend import recommendations
from pipelines.tracking import Tracker, TrackingError
from vae.errors import VAEError
from vae.redact import redact

KEYS = ["loss", "z_dim", "beta"]
# column -> MLflow metric, in table order after Z-dim and Beta
METRICS = {
    "KLD-loss": "test/kld_loss", "R-loss": "test/r_loss",
    "KL (nats)": "test/kl", "SSE": "test/sse", "Loss": None,
    "AU": "diag/active_units", "NLL (bits/dim)": "diag/nll_bpd", "-ELBO (bits/dim)": "diag/elbo_bpd",
    "MI (nats)": "diag/mi_nats", "MI ceiling log N": "diag/mi_ceiling_nats", "Rate − MI (nats)": "diag/rate_minus_mi",
    "σ implied": "diag/sigma_implied", "σ MLE": "diag/sigma_mle",
    "FID (samples)": "diag/fid", "FID (recon)": "diag/fid_recon", "KID": "diag/kid",
    "Precision": "diag/precision", "Recall": "diag/recall",
    # used by the rules and the cells, not shown as columns
    "_mi_saturated": "diag/mi_saturated", "_mi_se": "diag/mi_se_nats", "_r_loss_eval": "diag/r_loss",
}
ALWAYS = ("FID (samples)", "FID (recon)", "Precision", "Recall")  # shown blank for runs without them
# split sizes and estimator sizes, for sources(): metric -> what it counts
SIZES = {"data/train_images": "train", "data/val_images": "validation", "data/test_images": "test",
         "diag/eval_images": "evaluation subset", "diag/iw_images": "IWAE images", "diag/fid_samples": "FID samples"}


TERMINAL_COLUMNS = ["Z-dim", "Beta", "Loss", "KLD-loss", "R-loss", "KLD-loss ×B", "R-loss ×B", "AU",
                    "NLL (bits/dim)", "MI (nats)", "FID (samples)", "FID (recon)", "Precision", "Recall",
                    "Epochs", "Seeds"]


class ReportError(VAEError):
    """No study, no runs, or nothing finished to report."""


@dataclass
class Report:
    study: str
    table: pd.DataFrame          # one row per (loss, z_dim, beta); numbers as means
    std: pd.DataFrame            # the same shape: standard deviations over seeds (NaN for one seed)
    failures: pd.DataFrame       # trials not in the table, with their reason
    runs: pd.DataFrame           # the complete trial runs behind the table
    batch_size: int
    sizes: dict[str, int] = field(default_factory=dict)  # SIZES keys -> the most common value over runs
    files: dict[str, Path] = field(default_factory=dict)


def load_runs(study: str, tracker: Tracker) -> tuple[str, pd.DataFrame]:
    import mlflow

    tracker.check()
    exp = tracker.client.get_experiment_by_name(study)
    if exp is None:
        names = [e.name for e in tracker.client.search_experiments() if e.name != "Default"]
        raise ReportError(f"no study named {study!r} in {redact(tracker.uri)} (studies: {', '.join(names) or 'none'})")
    mlflow.set_tracking_uri(tracker.uri)
    runs = mlflow.search_runs([exp.experiment_id], max_results=50_000)
    if runs.empty or "tags.vae.role" not in runs:
        raise ReportError(f"study {study!r} has no runs yet; run `vae sweep` first")
    return exp.experiment_id, runs


def build(study: str, runs: pd.DataFrame) -> Report:
    trials = runs[runs["tags.vae.role"] == "trial"].copy()
    if trials.empty:
        raise ReportError(f"study {study!r} has no trial runs yet; run `vae sweep` first")
    # params come back as strings
    trials["z_dim"] = trials["params.z_dim"].astype(int)
    trials["beta"] = pd.to_numeric(trials["params.beta"], errors="coerce")  # "None" for sigma-vae
    trials["seed"] = trials["params.seed"].astype(int)
    trials["loss"] = trials.get("params.loss", pd.Series("beta", index=trials.index)).fillna("beta")
    trials["epochs"] = trials["params.epochs"].astype(int)
    state = trials["tags.vae.state"].fillna("RUNNING")
    done = trials[(state == "COMPLETE") & (trials["status"] == "FINISHED")]
    rest = trials.drop(done.index)
    failures = pd.DataFrame({
        "trial": rest["tags.vae.trial"].astype(int), "run": rest["tags.mlflow.runName"],
        "z_dim": rest["z_dim"], "beta": rest["beta"], "seed": rest["seed"],
        "state": state[rest.index].where(rest["status"] != "RUNNING", "RUNNING"),
        "reason": rest.get("tags.vae.fail_reason", pd.Series(index=rest.index, dtype=object)).fillna(
            pd.Series({i: "pruned" if state[i] == "PRUNED" else "unfinished" for i in rest.index})),
    }).sort_values("trial").reset_index(drop=True)
    if done.empty:
        raise ReportError(f"study {study!r} has no complete trials yet ({len(failures)} failed or unfinished)")

    present = {col: m for col, m in METRICS.items()
               if m is not None and (f"metrics.{m}" in done or col in ALWAYS)}
    values = done[KEYS + ["seed", "epochs"]].copy()
    for col, metric in present.items():
        values[col] = done[f"metrics.{metric}"].astype(float) if f"metrics.{metric}" in done else float("nan")
    grouped = values.groupby(KEYS, sort=False, dropna=False)  # sigma-vae rows have no beta
    mean = grouped[list(present)].mean()
    std = grouped[list(present)].std()  # NaN for a single seed
    extra = grouped.agg(Epochs=("epochs", "max"), Seeds=("seed", "nunique"))
    table = pd.concat([mean, extra], axis=1).reset_index()
    std = std.reset_index()
    batch = int(done["params.batch_size"].astype(int).mode().iloc[0])
    for t in (table, std):
        t.insert(0, "Z-dim", t.pop("z_dim"))
        t.insert(1, "Beta", t.pop("beta"))
        t.insert(2, "Loss", t.pop("loss"))
    if "σ implied" in table:  # undefined for sigma-vae (runs before this rule logged beta 1's value)
        table.loc[table["Loss"] == "sigma-vae", "σ implied"] = float("nan")
    table.insert(5, "KLD-loss ×B", table["KLD-loss"] * batch)
    table.insert(6, "R-loss ×B", table["R-loss"] * batch)
    std.insert(5, "KLD-loss ×B", std["KLD-loss"] * batch)
    std.insert(6, "R-loss ×B", std["R-loss"] * batch)
    # the original's order: z-dim ascending, beta descending; sigma-vae rows after each z-dim's betas
    order = table.assign(_s=table["Loss"] != "beta").sort_values(["Z-dim", "_s", "Beta"],
                                                                  ascending=[True, True, False]).index
    table, std = table.loc[order].reset_index(drop=True), std.loc[order].reset_index(drop=True)
    sizes = {k: int(done[f"metrics.{k}"].dropna().mode().iloc[0]) for k in SIZES
             if f"metrics.{k}" in done and done[f"metrics.{k}"].notna().any()}
    return Report(study, table, std, failures, done, batch, sizes)


def sources(report: Report) -> list[str]:
    """Which split and how many images each group of columns comes from."""
    n = report.sizes

    def size(key):
        return f"{n[key]:,}" if key in n else "size not recorded"

    lines = [f"KLD-loss, R-loss, KL, SSE, Loss (and ×B): the whole test split ({size('data/test_images')} images), "
             f"final epoch.",
             f"AU, −ELBO, MI, Rate − MI, σ MLE: the evaluation subset of the test split ({size('diag/eval_images')} "
             f"images, stratified by class, the same for every run); NLL: its first {size('diag/iw_images')}. "
             f"MI cannot exceed log N (N = the subset's size): values within noise of it read '≥ log N, saturated' "
             f"and rank nothing.",
             (f"FID (samples), KID, precision, recall (Kynkäänniemi et al., k = 3): {size('diag/fid_samples')} prior "
              f"samples against the evaluation subset, Inception-v3 features; FID (recon): the reconstructions of its "
              f"first {size('diag/fid_samples')} images. FID at this N is biased upwards: compare within this study, "
              f"not with published values; on images smaller than Inception's 299 px (upscaled) it is only relative."
              if "diag/fid_samples" in n else
              "FID (samples), FID (recon), precision, recall: not measured in this study (`fid_samples` 0, the "
              "default below 28 px, or the `[fid]` extra missing)."),
             f"Validation split ({size('data/val_images')} images carved from the training split, which keeps "
             f"{size('data/train_images')} to train on): the sweep's objective and pruning; not in this table."]
    return lines


# --- rendering -----------------------------------------------------------------------------
def _cell(col: str, mean, std) -> str:
    if isinstance(mean, str) or col in ("Z-dim", "Epochs", "Seeds"):
        return str(mean)
    if mean is None or math.isnan(mean):
        return ""
    text = f"{mean:.4g}"
    if std is not None and not math.isnan(std):
        text += f" ± {std:.2g}"
    return text


def _mi_cells(t: pd.DataFrame, i: int, row: dict) -> None:
    """MI at its ceiling says only "at least log N"; within two standard errors of 0 (or negative)
    it is noise, not a finding."""
    mi = t["MI (nats)"].iloc[i]
    if math.isnan(mi):
        return
    if "_mi_saturated" in t and t["_mi_saturated"].iloc[i] >= 0.5:
        row["MI (nats)"] = f"≥ {t['MI ceiling log N'].iloc[i]:.1f}, saturated"
        if "Rate − MI (nats)" in row and row["Rate − MI (nats)"]:
            row["Rate − MI (nats)"] = f"≤ {t['Rate − MI (nats)'].iloc[i]:.4g}"
    elif mi < 0 or ("_mi_se" in t and mi < 2 * t["_mi_se"].iloc[i]):
        row["MI (nats)"] = "≈ 0 (noise)"


def display_frame(report: Report) -> pd.DataFrame:
    """The table as strings: mean ± std where several seeds ran; sigma-vae rows say so in Beta."""
    t, s = report.table, report.std
    rows = []
    for i in range(len(t)):
        row = {}
        for col in t.columns:
            std = s[col].iloc[i] if col in s and col not in ("Z-dim", "Beta", "Loss") else None
            value = t[col].iloc[i]
            if col == "Beta" and t["Loss"].iloc[i] == "sigma-vae":
                value = "σ-VAE"
            row[col] = _cell(col, value if not hasattr(value, "item") else value.item(), std)
        if "MI (nats)" in t:
            _mi_cells(t, i, row)
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame = frame.drop(columns=[c for c in frame if c.startswith("_")])
    if (t["Loss"] == "beta").all():
        frame = frame.drop(columns="Loss")
    return frame


def to_markdown(report: Report) -> str:
    frame = display_frame(report)
    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    lines = [f"# Balance table: {report.study}", "",
             f"Final test-set values per image (KLD-loss = KL/z-dim, R-loss = SSE/(H·W·C)); "
             f"×B = times the batch size {report.batch_size}, the original README's units.", "",
             head, rule, *body, "", "Where each number comes from:", "", *[f"- {line}" for line in sources(report)]]
    if not report.failures.empty:
        lines += ["", "## Not in the table", ""]
        lines += [f"- trial {r.trial} ({r.run}): {r.state} — {r.reason}" for r in report.failures.itertuples()]
    recs = recommendations(report.table)
    if recs:
        lines += ["", "## Recommendations", "", *[f"- {r}" for r in recs]]
    return "\n".join(lines) + "\n"


def to_csv(report: Report) -> str:
    t = report.table.drop(columns=[c for c in report.table if c.startswith("_")])
    for col in report.std.columns:
        if col not in ("Z-dim", "Beta", "Loss") and not col.startswith("_") and report.std[col].notna().any():
            t[f"{col} std"] = report.std[col]
    return t.to_csv(index=False)


def write_report(report: Report, tracker: Tracker, experiment_id: str, out: Path) -> dict[str, Path]:
    from pipelines.page import figures, to_html

    out.mkdir(parents=True, exist_ok=True)
    files = figures(report, tracker, out)
    runs = report.runs
    meta = (f"dataset {runs['params.dataset'].iloc[0]}"
            + (f" (limit {runs['params.limit'].iloc[0]})" if runs["params.limit"].iloc[0] not in ("None", None) else "")
            + f", {int(report.table['Epochs'].max())} epochs, batch {report.batch_size}, "
            f"{len(runs)} complete trials, device {runs['tags.vae.device'].iloc[0]}, host {runs['tags.vae.host'].iloc[0]}")
    (out / "report.md").write_text(redact(to_markdown(report)))
    (out / "table.csv").write_text(redact(to_csv(report)))
    (out / "report.html").write_text(redact(to_html(report, files, meta)))
    files.update({k: out / n for k, n in (("markdown", "report.md"), ("csv", "table.csv"), ("html", "report.html"))})
    parents = tracker.client.search_runs([experiment_id], "tags.`vae.role` = 'parent'", max_results=1)
    if parents:
        try:
            tracker.client.log_artifacts(parents[0].info.run_id, str(out), "report")
        except TrackingError:
            raise
        except Exception as e:  # the files on disk are the report; the upload is a copy
            print(f"warning: report not logged to MLflow: {e}")
    return files
