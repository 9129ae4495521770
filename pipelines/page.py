"""The report folder: report.html (one self-contained page, images embedded as data URIs),
report.md and table.csv, assembled from the data (pipelines/report.py), its tables
(pipelines/tables.py), figures (pipelines/plots.py) and recommendations (pipelines/recommend.py).

    files = write_report(report, tracker, experiment_id, out)

The page shows the key table first, narrow enough for a laptop screen, and the other columns in a
collapsed "More columns" section. Once loaded it sets `data-images="loaded/total"` on <body>, so a
headless browser can check that every image rendered, and `data-key-right` / `data-view-width`
(pixels), so it can check that the key table fits the window without scrolling sideways.
"""

from __future__ import annotations

import base64
import html
import tempfile
from pathlib import Path

from pipelines import plots, tables
from pipelines.compare import summary as compare_summary
from pipelines.recommend import recommendations
from pipelines.report import Report, curve_points, fetch_artifacts, fetch_curves, meta, sources
from pipelines.tracking import Tracker, TrackingError
from vae.redact import redact

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vae-balance: {study}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1280px; padding: 0 16px; color: #222; }}
table {{ border-collapse: collapse; font-variant-numeric: tabular-nums; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: right; white-space: nowrap; }}
th {{ background: #f4f4f4; }} td.collapsed {{ color: #b00020; font-weight: 600; }}
.scroll {{ overflow-x: auto; }} table.balance {{ font-size: 13px; }}
details {{ margin: 1em 0; }} summary {{ cursor: pointer; font-weight: 600; }}
details h3 {{ font-size: 14px; margin: 1em 0 0.3em; }}
.grids {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(600px, 1fr)); gap: 1em; }}
.grids img, .plot {{ max-width: 100%; }}
</style></head>
<body data-images="pending">
<h1>Balance table: {study}</h1>
<p>{meta}</p>
<p>Final values <b>per image</b>: KLD-loss = KL / z-dim (nats), R-loss = SSE / (H·W·C); AU = active
units; NLL uses a Gaussian decoder with a fitted σ (bits/dim); FID measures the prior samples
(generation); Status: collapsed when AU = 0 or the total KL is below 0.01 nats per image.
More columns below: the rate (KL, MI, at most log N), −ELBO, the ×B columns (the same times the
batch size {batch}, the units the original README's table appears to use), σ implied = √(β·D / 2z)
(the decoder σ the loss stands for), FID of the reconstructions, KID, precision, recall, epochs and
seeds. table.csv holds every column.</p>
<div class="scroll">{key_table}</div>
<details><summary>More columns: {detail_titles}</summary>{details}</details>
<p>Where each number comes from:</p><ul class="sources">{sources}</ul>
{failures}
{recommendations}
{comparison}
<h2>Rate–distortion</h2>
<img class="plot" alt="rate-distortion" src="{rate_distortion}">
{conditional}
{generation}
<h2>Training curves (test set)</h2>
<img class="plot" alt="curves" src="{curves}">
{kl_per_dim}
<h2>Reconstructions and samples</h2>
<div class="grids">{grids}</div>
<script>
window.addEventListener("load", () => {{
  const imgs = [...document.images];
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.images = ok + "/" + imgs.length;
  const key = document.querySelector("table.balance");
  document.body.dataset.keyRight = Math.ceil(key.getBoundingClientRect().right);
  document.body.dataset.viewWidth = document.documentElement.clientWidth;
}});
</script>
</body></html>
"""


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _img(files: dict[str, Path], name: str, title: str) -> str:
    path = files.get(name)
    return f"<h2>{title}</h2><img class='plot' alt='{name}' src='{_data_uri(path)}'>" if path else ""


def _comparison_html(c) -> str:
    if c is None:
        return ""
    frames = tables.comparison(c)
    return (f"<h2>{html.escape(c.other)} against {html.escape(c.base)}</h2>"
            + "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in compare_summary(c)) + "</ul>"
            + "<h3>Compute</h3>" + tables.html(frames["Compute"], list(frames["Compute"].columns), "details")
            + f"<h3>Gap at every shared (z-dim, β): A = {html.escape(c.base)}, B = {html.escape(c.other)}, "
              "Δ = (B − A) / A</h3><div class='scroll'>"
            + tables.html(frames["Gaps"], list(frames["Gaps"].columns), "details") + "</div>")


def _comparison_markdown(c) -> list[str]:
    if c is None:
        return []
    frames = tables.comparison(c)
    return ["", f"## {c.other} against {c.base}", "", *[f"- {line}" for line in compare_summary(c)], "",
            "### Compute", "", tables.markdown(frames["Compute"], list(frames["Compute"].columns)), "",
            f"### Gap at every shared (z-dim, β): A = {c.base}, B = {c.other}, Δ = (B − A) / A", "",
            tables.markdown(frames["Gaps"], list(frames["Gaps"].columns))]


def to_html(report: Report, files: dict[str, Path], meta_line: str, comparison=None) -> str:
    frame = tables.display_frame(report)
    grouped = tables.groups(frame)
    key, details = grouped[tables.KEY], {k: v for k, v in grouped.items() if k != tables.KEY}
    failures = ""
    if not report.failures.empty:
        items = "".join(f"<li>trial {r.trial} ({html.escape(str(r.run))}): {r.state} — {html.escape(str(r.reason))}</li>"
                        for r in report.failures.itertuples())
        failures = f"<h2>Not in the table</h2><ul class='failures'>{items}</ul>"
    recs = recommendations(report.table)
    recommendations_html = ("<h2>Recommendations</h2><ul>" + "".join(f"<li>{html.escape(r)}</li>" for r in recs)
                            + "</ul>") if recs else ""
    grids = "".join(f"<img alt='{html.escape(name[5:])}' src='{_data_uri(path)}'>"
                    for name, path in files.items() if name.startswith("grid/"))
    return PAGE.format(
        study=html.escape(report.study), meta=html.escape(meta_line), batch=report.batch_size,
        key_table=tables.html(frame, key),
        detail_titles=html.escape(", ".join(t.lower() for t in details)),
        details="".join(f"<h3>{html.escape(title)}</h3><div class='scroll'>{tables.html(frame, cols, 'details')}</div>"
                        for title, cols in details.items()),
        failures=failures, recommendations=recommendations_html,
        sources="".join(f"<li>{html.escape(line)}</li>" for line in sources(report)),
        rate_distortion=_data_uri(files["rate_distortion"]), curves=_data_uri(files["curves"]),
        comparison=_comparison_html(comparison),
        conditional=_img(files, "conditional", "One β-conditional model per z-dim: the whole curve"),
        generation=_img(files, "generation", "Generation vs reconstruction"),
        kl_per_dim=_img(files, "kl_per_dim", "KL per latent dimension"), grids=grids)


def to_markdown(report: Report, comparison=None) -> str:
    frame = tables.display_frame(report)
    grouped = tables.groups(frame)
    lines = [f"# Balance table: {report.study}", "",
             f"Final test-set values per image (KLD-loss = KL/z-dim, R-loss = SSE/(H·W·C)); "
             f"×B = times the batch size {report.batch_size}, the original README's units.", "",
             tables.markdown(frame, grouped.pop(tables.KEY)), ""]
    if grouped:
        lines += ["## More columns", ""]
        for title, cols in grouped.items():
            lines += [f"### {title}", "", tables.markdown(frame, cols), ""]
    lines += ["Where each number comes from:", "", *[f"- {line}" for line in sources(report)]]
    if not report.failures.empty:
        lines += ["", "## Not in the table", ""]
        lines += [f"- trial {r.trial} ({r.run}): {r.state} — {r.reason}" for r in report.failures.itertuples()]
    recs = recommendations(report.table)
    if recs:
        lines += ["", "## Recommendations", "", *[f"- {r}" for r in recs]]
    lines += _comparison_markdown(comparison)
    return "\n".join(lines) + "\n"


def write_report(report: Report, tracker: Tracker, experiment_id: str, out: Path, other: Report | None = None,
                 comparison=None) -> dict[str, Path]:
    """Figures, report.md, table.csv and report.html in `out`; then a copy as artifacts of the
    study's parent run. With `other` (a compared study) and its `comparison` (pipelines/compare.py):
    a comparison section, and the conditional curve with both studies' points."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:  # the runs' own grids: only the labelled figures stay
        artifacts = fetch_artifacts(report, tracker, Path(tmp))
        if other is not None and not artifacts.rd_curves:  # the compared study's conditional curves
            artifacts.rd_curves = fetch_curves(other, tracker)
        points = curve_points(report, *([other] if other is not None else []))
        files = plots.report_figures(report.table, report.dead, artifacts, out, points)
    (out / "report.md").write_text(redact(to_markdown(report, comparison)))
    (out / "table.csv").write_text(redact(tables.to_csv(report)))
    (out / "report.html").write_text(redact(to_html(report, files, meta(report), comparison)))
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
