"""The report's figures and its one self-contained HTML page (images embedded as data URIs).

    from pipelines.page import figures, to_html
    files = figures(report, tracker, out)            # PNGs, and each run's image grids
    (out / "report.html").write_text(to_html(report, files, "dataset ..."))

The page sets `data-images="loaded/total"` on <body> once it has loaded, so a headless browser
can check that every image rendered.
"""

from __future__ import annotations

import base64
import html
import json
import os
import tempfile
from pathlib import Path

import pandas as pd

from pipelines.recommend import is_collapsed, recommendations
from pipelines.report import Report, display_frame, sources
from pipelines.tracking import Tracker


def _png(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def figures(report: Report, tracker: Tracker, out: Path) -> dict[str, Path]:
    """Rate–distortion, generation vs reconstruction, test curves and per-dimension KL plots; each
    row's image grids."""
    from pipelines import plots

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    t = report.table
    dead = t.apply(is_collapsed, axis=1)
    files = {"rate_distortion": _png(plots.rate_distortion(t, dead=dead), out / "rate_distortion.png")}
    if t["FID (samples)"].notna().any():
        r_col = "_r_loss_eval" if "_r_loss_eval" in t else "R-loss"
        files["generation"] = _png(plots.generation_vs_reconstruction(t, r_col=r_col, dead=dead),
                                   out / "generation_vs_reconstruction.png")
    histories, kl_curves = {}, {}
    grids = out / "grids"
    grids.mkdir(exist_ok=True)
    for _, run in _ordered(report.runs).iterrows():
        label = run["tags.mlflow.runName"]
        history = {}
        for key in ("test/r_loss", "test/kld_loss"):
            points = tracker.client.get_metric_history(run["run_id"], key)
            for m in points:
                history.setdefault(m.step, {"epoch": m.step})[key] = m.value
        histories[label] = [history[k] for k in sorted(history)]
        with tempfile.TemporaryDirectory() as tmp:
            for name in ("recon.png", "samples.png", "kl_per_dim.json"):
                try:
                    local = Path(tracker.client.download_artifacts(run["run_id"], name, tmp))
                except Exception:
                    continue
                if name.endswith(".json"):
                    kl_curves[label] = json.loads(local.read_text())
                else:
                    target = grids / f"{label}-{name}"
                    target.write_bytes(local.read_bytes())
                    files[f"{label}/{name[:-4]}"] = target
    files["curves"] = _png(_curves(histories), out / "curves.png")
    if kl_curves:
        files["kl_per_dim"] = _png(plots.kl_per_dim(kl_curves), out / "kl_per_dim.png")
    return files


def _ordered(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs in the table's order: z-dim up, beta down, sigma-vae last, then seed."""
    return runs.assign(_s=runs["loss"] != "beta").sort_values(["z_dim", "_s", "beta", "seed"],
                                                                ascending=[True, True, False, True])


def _curves(histories: dict[str, list[dict]]):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    for label, history in histories.items():
        epochs = [h["epoch"] for h in history]
        line = axes[0].plot(epochs, [h.get("test/r_loss") for h in history], label=label)[0]
        axes[1].plot(epochs, [h.get("test/kld_loss") for h in history], color=line.get_color())
    axes[0].set_ylabel("test R-loss (per image)")
    axes[1].set_ylabel("test KLD-loss (per image)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    return fig


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vae-balance: {study}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; font-variant-numeric: tabular-nums; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: right; white-space: nowrap; }}
th {{ background: #f4f4f4; }}
.grids {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(480px, 1fr)); gap: 1em; }}
figure {{ margin: 0; }} figure img {{ width: 48%; image-rendering: pixelated; vertical-align: top; }}
.scroll {{ overflow-x: auto; }} table.balance {{ font-size: 12.5px; }}
figcaption {{ font-size: 12px; color: #555; }}
.plot {{ max-width: 100%; }}
</style></head>
<body data-images="pending">
<h1>Balance table: {study}</h1>
<p>{meta}</p>
<p>Final values <b>per image</b>: KLD-loss = KL / z-dim (nats), R-loss = SSE / (H·W·C).
×B = the same times the batch size {batch}: the units the original README's table appears to use.
NLL and −ELBO use a Gaussian decoder with a fitted σ (bits/dim); AU = active units; MI = I(x; z),
at most log N; σ implied = √(β·D / 2z), the decoder σ the loss stands for; FID, precision and
recall measure the prior samples (generation), FID (recon) the reconstructions.</p>
<div class="scroll">{table}</div>
<p>Where each number comes from:</p><ul class="sources">{sources}</ul>
{failures}
{recommendations}
<h2>Rate–distortion</h2>
<img class="plot" alt="rate-distortion" src="{rate_distortion}">
{generation}
<h2>Training curves (test set)</h2>
<img class="plot" alt="curves" src="{curves}">
{kl_per_dim}
<h2>Reconstructions (rows: originals, then reconstructions) and samples</h2>
<div class="grids">{grids}</div>
<script>
window.addEventListener("load", () => {{
  const imgs = [...document.images];
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.images = ok + "/" + imgs.length;
}});
</script>
</body></html>
"""


def to_html(report: Report, files: dict[str, Path], meta: str) -> str:
    frame = display_frame(report)
    table = frame.to_html(index=False, classes="balance", border=0, escape=True)
    failures = ""
    if not report.failures.empty:
        items = "".join(f"<li>trial {r.trial} ({html.escape(str(r.run))}): {r.state} — {html.escape(str(r.reason))}</li>"
                        for r in report.failures.itertuples())
        failures = f"<h2>Not in the table</h2><ul class='failures'>{items}</ul>"
    recs = recommendations(report.table)
    recommendations_html = ("<h2>Recommendations</h2><ul>" + "".join(f"<li>{html.escape(r)}</li>" for r in recs) + "</ul>") if recs else ""
    grids = []
    for _, run in _ordered(report.runs).iterrows():
        name = run["tags.mlflow.runName"]
        recon, samples = files.get(f"{name}/recon"), files.get(f"{name}/samples")
        if recon is None or samples is None:
            continue
        balance = "σ-VAE" if run["loss"] == "sigma-vae" else f"β = {run['beta']:g}"
        caption = f"z-dim = {run['z_dim']}; {balance}; seed {run['seed']} — left: reconstructions, right: samples"
        grids.append(f"<figure><img alt='reconstructions {html.escape(name)}' src='{_data_uri(recon)}'>"
                     f"<img alt='samples {html.escape(name)}' src='{_data_uri(samples)}'>"
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    kl, gen = files.get("kl_per_dim"), files.get("generation")
    generation = ("<h2>Generation vs reconstruction</h2><img class='plot' alt='generation vs reconstruction' "
                  f"src='{_data_uri(gen)}'>") if gen else ""
    return PAGE.format(
        study=html.escape(report.study), meta=html.escape(meta), batch=report.batch_size, table=table,
        failures=failures, recommendations=recommendations_html, generation=generation,
        sources="".join(f"<li>{html.escape(line)}</li>" for line in sources(report)),
        rate_distortion=_data_uri(files["rate_distortion"]), curves=_data_uri(files["curves"]),
        kl_per_dim=f"<h2>KL per latent dimension</h2><img class='plot' alt='kl per dim' src='{_data_uri(kl)}'>" if kl else "",
        grids="".join(grids))
