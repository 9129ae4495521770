"""The report folder: report.html (one self-contained page, images embedded as data URIs),
report.md, table.csv and verdict.json, assembled from the data (pipelines/report/data.py), the verdict
(pipelines/report/verdict.py), its tables (pipelines/report/tables.py) and figures (pipelines/report/plots.py,
pipelines/report/heatmaps.py).

    files = write_report(report, tracker, experiment_id, out, verdict=v)

The verdict comes first, on the page (its row highlighted in the key table and outlined in the
heatmaps), in report.md and in verdict.json. The folder is built beside the old one and swapped in
as a whole, so an interrupted report (a kill, SIGTERM, Ctrl-C) leaves the previous one whole.

The page shows the key table first, narrow enough for a laptop screen, and the other columns in a
collapsed "More columns" section. Once loaded it sets `data-images="loaded/total"` on <body>, so a
headless browser can check that every image rendered, and `data-key-right` / `data-view-width`
(pixels), so it can check that the key table fits the window without scrolling sideways.
"""

from __future__ import annotations

import base64
import html
import re
import tempfile
from pathlib import Path

from pipelines.report import plots, tables
from pipelines.report.compare import summary as compare_summary
from pipelines.report.continuum import fetch_continua
from pipelines.report.continuum import figure as continuum_figure
from pipelines.report.data import Report, curve_points, meta, sources
from pipelines.report.fetch import fetch_artifacts, fetch_curves
from pipelines.report.folder import write_owned
from pipelines.report.heatmaps import heatmaps
from pipelines.report.verdict import lines as verdict_lines
from pipelines.report.verdict import row_index
from pipelines.tracking.runs import Tracker, TrackingError
from vae.atomic import atomic_write_text
from vae.redact import redact

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vae-balance: {study}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1280px; padding: 0 16px; color: #222; }}
table {{ border-collapse: collapse; font-variant-numeric: tabular-nums; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: right; white-space: nowrap; }}
th {{ background: #f4f4f4; }} td.collapsed {{ color: #b00020; font-weight: 600; }}
td.verdict {{ background: #fff3c4; font-weight: 600; }}
section.verdict {{ border-left: 4px solid #d62728; padding: 0.2em 1em; background: #fafafa; }}
section.verdict .answer {{ font-size: 18px; }} section.verdict .warn {{ color: #8a4b00; }}
.scroll {{ overflow-x: auto; }} table.balance {{ font-size: 13px; }}
details {{ margin: 1em 0; }} summary {{ cursor: pointer; font-weight: 600; }}
details h3 {{ font-size: 14px; margin: 1em 0 0.3em; }}
.grids {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(600px, 1fr)); gap: 1em; }}
.grids img, .plot {{ max-width: 100%; }}
</style></head>
<body data-images="pending">
<h1>Balance table: {study}</h1>
<p>{meta}</p>
{verdict}
<p>Final values <b>per image</b>: KLD-loss = KL / z-dim (nats), R-loss = SSE / (H·W·C); AU = active
units; NLL uses a Gaussian decoder with a fitted σ (bits/dim); {fid}Status: collapsed when AU = 0 or the total KL is below 0.01 nats per image.{seeds}
More columns below: {more}. table.csv holds every column.</p>
<div class="scroll">{key_table}</div>
<details><summary>More columns: {detail_titles}</summary>{details}</details>
<p>Where each number comes from:</p><ul class="sources">{sources}</ul>
{failures}
{comparison}
{heatmaps}
<h2>Rate–distortion</h2>
<img class="plot" alt="rate-distortion" src="{rate_distortion}">
{conditional}
{continuum}
{generation}
<h2>Training curves (validation split, every epoch)</h2>
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


def _comparison_html(c, files=None) -> str:
    if c is None:
        return ""
    frames = tables.comparison(c)
    out = (f"<h2>{html.escape(c.other)} against {html.escape(c.base)}</h2>"
           + "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in compare_summary(c)) + "</ul>"
           + "<h3>The two verdicts</h3>" + tables.html(frames["Verdicts"], list(frames["Verdicts"].columns), "details")
           + (_img(files, "fronts", "Both rate–distortion fronts") if files else "")
           + "<h3>Compute</h3>" + tables.html(frames["Compute"], list(frames["Compute"].columns), "details"))
    if "Gaps" in frames:
        out += (f"<h3>Gap at every shared (z-dim, β): A = {html.escape(c.base)}, B = {html.escape(c.other)}, "
                "Δ = (B − A) / A</h3><div class='scroll'>"
                + tables.html(frames["Gaps"], list(frames["Gaps"].columns), "details") + "</div>")
    return out


def _comparison_markdown(c) -> list[str]:
    if c is None:
        return []
    frames = tables.comparison(c)
    out = ["", f"## {c.other} against {c.base}", "", *[f"- {line}" for line in compare_summary(c)], "",
           "### The two verdicts", "", tables.markdown(frames["Verdicts"], list(frames["Verdicts"].columns)), "",
           "### Compute", "", tables.markdown(frames["Compute"], list(frames["Compute"].columns))]
    if "Gaps" in frames:
        out += ["", f"### Gap at every shared (z-dim, β): A = {c.base}, B = {c.other}, Δ = (B − A) / A", "",
                tables.markdown(frames["Gaps"], list(frames["Gaps"].columns))]
    return out


# what the caption says of each detail column, in its words; a column the study did not measure
# (KID without FID, say) is not in the frame (pipelines/report/data.py) and so not in the caption
DESCRIBED = {
    "KL (nats)": "the rate (KL, MI, at most log N)",
    "−ELBO (bits/dim)": "−ELBO",
    "R-loss ×B": "the ×B columns (the same times the batch size {batch}, the units the original README's table "
                 "appears to use)",
    "σ implied": "σ implied = √(β·D / 2z) (the decoder σ the loss stands for)",
    "FID (recon)": "FID of the reconstructions", "KID": "KID", "Precision": "precision", "Recall": "recall",
    "Epochs": "epochs", "Seeds": "seeds",
}


def _more(frame, batch: int) -> str:
    """The caption's list of the detail columns this study has: "a, b and c"."""
    said = [text.format(batch=batch) for col, text in DESCRIBED.items() if col in frame]
    return ", ".join(said[:-1]) + (" and " if len(said) > 1 else "") + said[-1] if said else "none"


def _inline(text: str) -> str:
    """Plain text as HTML, its `code` spans (commands, settings) as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _headline(first: str) -> tuple[str, str]:
    """(heading, answer) of the verdict's first line (pipelines/report/verdict.py `lines`): "Verdict", or
    "Provisional verdict (2 of 4 configurations finished, 2 left; ...)" while configurations are left."""
    head, _, answer = first.partition(": ")
    return head[:1].upper() + head[1:], answer


def _verdict_html(v: dict | None) -> str:
    if not v:
        return ""
    first, *rest = verdict_lines(v)
    items = []
    for line in rest:
        head, _, text = line.strip().partition(": ")
        css = " class='warn'" if head == "warning" else ""
        items.append(f"<li{css}><b>{html.escape(head)}</b>: {_inline(text)}</li>")
    title, answer = _headline(first)
    return (f"<section class='verdict' id='verdict'><h2>{_inline(title)}</h2><p class='answer'>"
            f"{_inline(answer)}</p><ul>{''.join(items)}</ul>"
            "<p>verdict.json beside this page holds the same, for scripts.</p></section>")


def to_html(report: Report, files: dict[str, Path], meta_line: str, comparison=None, verdict=None) -> str:
    frame, seeds = tables.display_frame(report), tables.seeds_note(report)
    grouped = tables.groups(frame)
    key, details = grouped[tables.KEY], {k: v for k, v in grouped.items() if k != tables.KEY}
    failures = ""
    if not report.failures.empty:
        items = "".join(f"<li>trial {r.trial} ({html.escape(str(r.run))}): {r.state} — {html.escape(str(r.reason))}</li>"
                        for r in report.failures.itertuples())
        failures = f"<h2>Not in the table</h2><ul class='failures'>{items}</ul>"
    grids = "".join(f"<img alt='{html.escape(name[5:])}' src='{_data_uri(path)}'>"
                    for name, path in files.items() if name.startswith("grid/"))
    return PAGE.format(
        study=html.escape(report.study), meta=html.escape(meta_line), more=html.escape(_more(frame, report.batch_size)),
        fid="FID measures the prior samples (generation); " if "FID (samples)" in frame else "",
        seeds=f" {html.escape(seeds[:1].upper() + seeds[1:])}." if seeds else "",
        key_table=tables.html(frame, key, highlight=row_index(report.table, verdict)),
        verdict=_verdict_html(verdict),
        heatmaps=_img(files, "heatmaps", "z-dim × beta at a glance (the verdict outlined)"),
        detail_titles=html.escape(", ".join(t.lower() for t in details)),
        details="".join(f"<h3>{html.escape(title)}</h3><div class='scroll'>{tables.html(frame, cols, 'details')}</div>"
                        for title, cols in details.items()),
        failures=failures,
        sources="".join(f"<li>{_inline(line)}</li>" for line in sources(report)),
        rate_distortion=_data_uri(files["rate_distortion"]), curves=_data_uri(files["curves"]),
        comparison=_comparison_html(comparison, files),
        conditional=_img(files, "conditional", "One β-conditional model per z-dim: the whole curve"),
        continuum=_img(files, "continuum", "Between and beyond the grid: the β-conditional model on the validation split"),
        generation=_img(files, "generation", "Generation vs reconstruction"),
        kl_per_dim=_img(files, "kl_per_dim", "KL per latent dimension"), grids=grids)


def to_markdown(report: Report, comparison=None, verdict=None) -> str:
    frame, seeds = tables.display_frame(report), tables.seeds_note(report)
    grouped = tables.groups(frame)
    lines = [f"# Balance table: {report.study}", ""]
    if verdict:
        first, *rest = verdict_lines(verdict)
        title, answer = _headline(first)
        lines += [f"## {title}", "", f"**{answer}**", "",
                  *[f"- {line.strip()}" for line in rest], ""]
    chosen = row_index(report.table, verdict) if verdict else None
    lines += [
             "Final test-set values per image (KLD-loss = KL/z-dim, R-loss = SSE/(H·W·C))"
             + (", the verdict's row in bold" if chosen is not None else "") + "; "
             f"×B (under Original units) = times the batch size {report.batch_size}, the original README's units"
             + (f"; {seeds}" if seeds else "") + ".", "",
             tables.markdown(frame, grouped.pop(tables.KEY), chosen), ""]
    if grouped:
        lines += ["## More columns", ""]
        for title, cols in grouped.items():
            lines += [f"### {title}", "", tables.markdown(frame, cols), ""]
    lines += ["Where each number comes from:", "", *[f"- {line}" for line in sources(report)]]
    if not report.failures.empty:
        lines += ["", "## Not in the table", ""]
        lines += [f"- trial {r.trial} ({r.run}): {r.state} — {r.reason}" for r in report.failures.itertuples()]
    lines += _comparison_markdown(comparison)
    return "\n".join(lines) + "\n"


def write_report(report: Report, tracker: Tracker, experiment_id: str, out: Path, other: Report | None = None,
                 comparison=None, verdict: dict | None = None) -> dict[str, Path]:
    """Figures, report.md, table.csv, verdict.json and report.html in `out`; then a copy as artifacts
    of the study's parent run. With `other` (a compared study) and its `comparison`
    (pipelines/report/compare.py): a comparison section, and the conditional curve with both studies' points.
    The folder is built beside `out` and swapped in as a whole (pipelines/report/folder.py): a kill at
    any moment leaves the previous report or the new one, and no file the report did not write is
    ever replaced."""
    out = Path(out)
    files = write_owned(out, lambda new: _write_files(report, tracker, new, other, comparison, verdict))
    parent = tracker.parent(experiment_id)
    if parent is not None:
        try:
            tracker.log_folder(parent.info.run_id, out, "report")
        except TrackingError:
            raise
        except Exception as e:  # the files on disk are the report; the upload is a copy
            print(f"warning: report not logged to MLflow: {e}")
    return files


def _write_files(report: Report, tracker: Tracker, out: Path, other, comparison, verdict) -> dict[str, Path]:
    import json

    with tempfile.TemporaryDirectory() as tmp:  # the runs' own grids: only the labelled figures stay
        artifacts = fetch_artifacts(report, tracker, Path(tmp))
        if other is not None and not artifacts.rd_curves:  # the compared study's conditional curves
            artifacts.rd_curves = fetch_curves(other, tracker)
        points = curve_points(report, *([other] if other is not None else []))
        files = plots.report_figures(report.table, report.dead, artifacts, out, points)
    continua = fetch_continua(report, tracker)
    if continua:
        files["continuum"] = plots.save(continuum_figure(continua, (verdict or {}).get("continuum")),
                                        out / "continuum.png")
    if comparison is not None:
        files["fronts"] = plots.save(plots.two_fronts(comparison), out / "fronts.png")
    fig = heatmaps(report.table, report.std, row_index(report.table, verdict))
    if fig is not None:
        files["heatmaps"] = plots.save(fig, out / "heatmaps.png")
    texts = {"markdown": ("report.md", to_markdown(report, comparison, verdict)),
             "csv": ("table.csv", tables.to_csv(report)),
             "html": ("report.html", to_html(report, files, meta(report), comparison, verdict))}
    if verdict:
        texts["verdict"] = ("verdict.json", json.dumps(verdict, indent=2) + "\n")
    for key, (name, text) in texts.items():
        atomic_write_text(out / name, redact(text))
        files[key] = out / name
    return files
