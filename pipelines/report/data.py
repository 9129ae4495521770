"""The balance table's data, built from a study's MLflow runs: one row per (loss, z-dim, beta).

    rep = build(study, runs)   # runs: pipelines/report/fetch.py; rep.table: numbers, rep.std: over seeds

This module holds numbers only: it reads no store (pipelines/report/fetch.py does). pipelines/report/tables.py renders them (markdown, CSV, HTML, terminal),
pipelines/report/plots.py draws the figures, pipelines/report/page.py assembles report.html and report.md and
writes the report folder; pipelines/report/verdict.py decides the verdict.

Units: KLD-loss and R-loss are final test-set values *per image*, normalised as in vae/loss.py;
the "×B" columns multiply by the sweep's batch size, the units the original README's table
appears to use (sums over a batch of 64). `sources()` says which split each column comes from:
the losses from the whole test split, the diagnostics and generation metrics from its evaluation
subset (vae/data.py, vae/metrics.py, vae/fid.py). Runs from before a column existed show it blank.
"Status" says whether a row's model collapsed (vae/collapse.py, the one definition).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from vae.collapse import collapsed
from vae.errors import VAEError

KEYS = ["loss", "mode", "z_dim", "beta"]  # mode: independent, or a row of a beta-conditional model
# column -> MLflow metric, in table order after Z-dim and Beta
METRICS = {
    "KLD-loss": "test/kld_loss", "R-loss": "test/r_loss",
    "KL (nats)": "test/kl", "SSE": "test/sse", "Loss": None,
    "AU": "diag/active_units", "NLL (bits/dim)": "diag/nll_bpd", "−ELBO (bits/dim)": "diag/elbo_bpd",
    "MI (nats)": "diag/mi_nats", "MI ceiling log N": "diag/mi_ceiling_nats", "Rate − MI (nats)": "diag/rate_minus_mi",
    "σ implied": "diag/sigma_implied", "σ MLE": "diag/sigma_mle",
    "FID (samples)": "diag/fid", "FID (recon)": "diag/fid_recon", "KID": "diag/kid",
    "Precision": "diag/precision", "Recall": "diag/recall",
    # used by the rules and the cells, not shown as columns
    "_subset_kl": "test_subset/kl", "_subset_r_loss": "test_subset/r_loss",  # the rd curve's images (curve_points)
    "_mi_saturated": "diag/mi_saturated", "_mi_se": "diag/mi_se_nats", "_r_loss_eval": "diag/r_loss",
    # the verdict's deciding numbers (pipelines/report/verdict.py): the validation split, with their standard errors
    "_val_r_loss": "val/r_loss", "_val_r_loss_se": "val/r_loss_se", "_val_elbo_bpd": "val/elbo_bpd",
    "_val_elbo_bpd_se": "val/elbo_bpd_se", "_val_fid": "val/fid", "_val_fid_se": "val/fid_se",
}
# split sizes and estimator sizes, for sources(): metric -> what it counts
SIZES = {"data/train_images": "train", "data/val_images": "validation", "data/test_images": "test",
         "diag/eval_images": "evaluation subset", "diag/iw_images": "IWAE images", "diag/fid_samples": "FID samples"}
COLLAPSED, OK = "collapsed", "ok"  # the Status column


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

    @property
    def dead(self) -> pd.Series:
        """Per row: did the model collapse (vae/collapse.py)?"""
        return self.table["Status"] == COLLAPSED


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
    trials["mode"] = trials.get("params.mode", pd.Series(index=trials.index, dtype=object)).fillna("independent")
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
    # a failure whose configuration a later trial completed says so (its reason was written before)
    finished = set(zip(done["z_dim"], done["beta"].fillna(-1), done["seed"], done["loss"], done["mode"]))
    again = [(z, b, s_, lo, m) in finished for z, b, s_, lo, m in
             zip(rest["z_dim"], rest["beta"].fillna(-1), rest["seed"], rest["loss"], rest["mode"])]
    retried = {int(t) for t, done_later in zip(rest["tags.vae.trial"], again) if done_later}
    failures.loc[failures["trial"].isin(retried), "reason"] += " (a later trial has since completed it)"

    # a column no run measured is left out, not shown blank
    present = {col: m for col, m in METRICS.items() if m is not None and f"metrics.{m}" in done
               and done[f"metrics.{m}"].notna().any()}
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
        t.insert(3, "Training", t.pop("mode"))
    if "σ implied" in table:  # undefined for sigma-vae (runs before this rule logged beta 1's value)
        table.loc[table["Loss"] == "sigma-vae", "σ implied"] = float("nan")
    table.insert(6, "KLD-loss ×B", table["KLD-loss"] * batch)
    table.insert(7, "R-loss ×B", table["R-loss"] * batch)
    std.insert(6, "KLD-loss ×B", std["KLD-loss"] * batch)
    std.insert(7, "R-loss ×B", std["R-loss"] * batch)
    table["Status"] = [COLLAPSED if collapsed(r.get("AU"), r.get("KL (nats)")) else OK for _, r in table.iterrows()]
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

    recon = (f"; FID (recon): the reconstructions of its first {size('diag/fid_samples')} images (`fid_recon`)"
             if "FID (recon)" in report.table.columns else "")
    lines = [f"KLD-loss, R-loss, KL, SSE, Loss (and ×B): the whole test split ({size('data/test_images')} images), "
             f"final epoch.",
             f"AU, −ELBO, MI, Rate − MI, σ MLE: the evaluation subset of the test split ({size('diag/eval_images')} "
             f"images, stratified by class, the same for every run); NLL: its first {size('diag/iw_images')}. "
             f"MI cannot exceed log N (N = the subset's size): values within noise of it read '≥ log N, saturated' "
             f"and rank nothing.",
             (f"FID (samples), KID, precision, recall (Kynkäänniemi et al., k = 3): {size('diag/fid_samples')} prior "
              f"samples against the evaluation subset, Inception-v3 features{recon}. FID at this N is biased upwards: "
              "compare within this study, not with published values; on images smaller than Inception's 299 px "
              "(upscaled) it is only relative."
              if "diag/fid_samples" in n else
              "FID (samples), FID (recon), precision, recall: not measured in this study (`fid_samples` 0, the "
              "default below 28 px, or the `[fid]` extra missing)."),
             f"Validation split ({size('data/val_images')} images carved from the training split, which keeps "
             f"{size('data/train_images')} to train on): the sweep's objective, pruning and the verdict; not in this table."]
    return lines


def meta(report: Report) -> str:
    """One line on what was trained, for the top of the page."""
    runs = report.runs
    limit = runs["params.limit"].iloc[0] if "params.limit" in runs else None
    return (f"dataset {runs['params.dataset'].iloc[0]}"
            + (f" (limit {limit})" if limit not in ("None", None) else "")
            + f", {int(report.table['Epochs'].max())} epochs, batch {report.batch_size}, "
            f"{len(runs)} complete trials{_conditional_note(runs)}, device {runs['tags.vae.device'].iloc[0]}, "
            f"host {runs['tags.vae.host'].iloc[0]}{_threads_note(runs)}")


def _threads_note(runs: pd.DataFrame) -> str:
    """'; CPU threads mixed (1, 2): ...' where the trials ran with different thread counts, which
    change a β-conditional model's numbers (README, "Reproducibility"); never refused: hosts differ."""
    if "params.threads" not in runs or runs["params.threads"].nunique() < 2:
        return ""
    counts = sorted(runs["params.threads"].dropna().unique(), key=lambda v: (len(str(v)), str(v)))
    return (f"; CPU threads mixed ({', '.join(map(str, counts))}): ordinary trials agree to ~1e-7 across thread "
            f"counts, a β-conditional model's numbers can differ by up to ~1 %")


def _conditional_note(runs: pd.DataFrame) -> str:
    """' (6 of them rows of 2 β-conditional models)' where a study has such rows."""
    if "tags.vae.trained_by" not in runs or runs["tags.vae.trained_by"].isna().all():
        return ""
    rows = runs["tags.vae.trained_by"].dropna()
    return f" ({len(rows)} of them rows of {rows.nunique()} β-conditional model{'s' if rows.nunique() > 1 else ''})"


def curve_points(*reports: Report) -> pd.DataFrame:
    """The beta rows of these reports as markers for the conditional curve: Z-dim, Beta, KL (nats),
    R-loss and Source ("trained per β (study)" or "conditional model at grid β (study)"), measured on
    the images of the curve (rd_curve.json: the evaluation subset of the test split, `test_subset/` at
    the last epoch), so that a marker's distance from the line is the models' gap, not a difference of
    images. A run from before `test_subset/` existed has no marker."""
    frames = []
    for r in reports:
        t = r.table[r.table["Loss"] == "beta"]
        if "_subset_kl" not in t:
            continue
        source = t["Training"].map({"independent": f"trained per β ({r.study})",
                                    "conditional": f"conditional model at grid β ({r.study})"})
        frames.append(t[["Z-dim", "Beta"]].assign(**{"KL (nats)": t["_subset_kl"], "R-loss": t["_subset_r_loss"]},
                                                  Source=source).dropna(subset=["KL (nats)", "R-loss"]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["Z-dim", "Beta", "KL (nats)", "R-loss", "Source"])


def label(row) -> str:
    """'z-dim 16, beta 0.01' / 'z-dim 16, σ-VAE', with '(β-conditional model)' for its rows."""
    kind = "σ-VAE" if row["Loss"] == "sigma-vae" else f"beta {row['Beta']:g}"
    return f"z-dim {int(row['Z-dim'])}, {kind}" + (" (β-conditional model)" if row.get("Training") == "conditional" else "")
