"""The balance table in every format — markdown, CSV, HTML, the terminal — from one list of columns.

    frame = display_frame(report)          # the cells as strings: mean ± std, "σ-VAE", "≥ 7.6, saturated"
    for title, cols in groups(frame).items(): markdown(frame, cols)   # the key table, then the details
    to_csv(report)                         # every column of every group, numbers, plus "<column> std"

Which column is shown, and in which table, is data: GROUPS. The first group is the key table (the
page's main table, the terminal's table, first in report.md), narrow enough for a laptop screen
(at most MAX_KEY_COLUMNS columns); the others are the details, each repeating ROW_ID so that a row
can be read on its own. A column the report has but no group names lands in "Other", so nothing is
ever dropped. The rule all formats share: report.md's tables and the page's tables hold exactly
the columns of table.csv (which adds a "<column> std" column for each one with a spread over seeds).
Adding a column: a METRICS entry in pipelines/report/data.py and its place in GROUPS here.
"""

from __future__ import annotations

import hashlib
import math

import pandas as pd

from pipelines.report.data import COLLAPSED

# "Loss" only where a study mixes loss kinds (beta, sigma-vae); "Training" where it mixes independent
# trials and rows of a beta-conditional model
ROW_ID = ["Z-dim", "Beta", "Loss", "Training"]
OPTIONAL_IDS = ("Loss", "Training")
GROUPS: dict[str, list[str]] = {
    "Balance": [*ROW_ID, "R-loss", "KLD-loss", "AU", "NLL (bits/dim)", "FID (samples)", "Status"],
    "Rate and likelihood": ["KL (nats)", "−ELBO (bits/dim)", "MI (nats)", "MI ceiling log N", "Rate − MI (nats)"],
    "Original units and decoder σ": ["R-loss ×B", "KLD-loss ×B", "SSE", "σ implied", "σ MLE"],
    "Generation": ["FID (recon)", "KID", "Precision", "Recall"],
    "Runs": ["Epochs", "Seeds"],
}
KEY = next(iter(GROUPS))
MAX_KEY_COLUMNS = 10  # ~110 px each at the page's font: fits 1,366 px with the ± spreads
WHOLE = ("Z-dim", "Epochs", "Seeds")  # counts: no decimals, no spread


def _cell(col: str, mean, std) -> str:
    if isinstance(mean, str) or col in WHOLE:
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


def seeds_note(report) -> str:
    """What a ± in the table is, where a row has several seeds (else ''): the spread, not the verdict's error."""
    seeds = report.table["Seeds"].max() if "Seeds" in report.table and len(report.table) else 1
    return ("" if not seeds or seeds <= 1 else
            "a row of several seeds shows mean ± standard deviation over its seeds (the verdict judges a margin "
            "by the standard error of the mean, SD/√seeds)")


def display_frame(report) -> pd.DataFrame:
    """report.table (pipelines/report/data.py) as strings, in the columns of `shown`: mean ± std where several seeds ran;
    sigma-vae rows say so in Beta."""
    t, s = report.table, report.std
    rows = []
    for i in range(len(t)):
        row = {}
        for col in t.columns:
            std = s[col].iloc[i] if col in s and col not in ROW_ID else None
            value = t[col].iloc[i]
            if col == "Beta" and t["Loss"].iloc[i] == "sigma-vae":
                value = "σ-VAE"
            row[col] = _cell(col, value if not hasattr(value, "item") else value.item(), std)
        if "MI (nats)" in t:
            _mi_cells(t, i, row)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(t.columns))[shown(t)]


def shown(table: pd.DataFrame) -> list[str]:
    """Every column a user sees, in group order: internal "_" columns out, Loss only when mixed."""
    # Loss when mixed; Training when mixed or all conditional (an all-independent study says nothing new)
    hidden = {c for c in table if c.startswith("_")} | {c for c in OPTIONAL_IDS if c in table and (
        table[c].nunique() <= 1 and (c == "Loss" or set(table[c]) <= {"independent"}))}
    grouped = [c for cols in GROUPS.values() for c in cols]
    order = list(dict.fromkeys(grouped + list(table.columns)))
    return [c for c in order if c in table and c not in hidden]


def groups(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Title -> columns of each table, the key table first; details repeat the row identifiers."""
    ids = [c for c in ROW_ID if c in frame]
    placed = {c for cols in GROUPS.values() for c in cols}
    out = {}
    for title, cols in [*GROUPS.items(), ("Other", [c for c in frame if c not in placed])]:
        cols = [c for c in cols if c in frame and c not in ROW_ID]
        if cols:
            out[title] = ids + cols
    return out


def markdown(frame: pd.DataFrame, cols: list[str], highlight=None) -> str:
    """A Markdown table; `highlight`: the index of the row to mark (the verdict's), in bold."""
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for i, row in zip(frame.index, frame[cols].itertuples(index=False)):
        cells = [f"**{v}**" if i == highlight else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def html(frame: pd.DataFrame, cols: list[str], css: str = "balance", highlight=None) -> str:
    """An HTML table (pandas' Styler); `highlight`: the index of the row to mark (the verdict's): its
    cells get class `verdict`; a collapsed Status cell class `collapsed` (it stands out in red)."""
    shown = frame[cols]
    classes = pd.DataFrame("", index=shown.index, columns=shown.columns)
    if "Status" in shown:
        classes.loc[shown["Status"] == COLLAPSED, "Status"] = "collapsed"
    if highlight is not None and highlight in shown.index:
        classes.loc[highlight] = (classes.loc[highlight] + " verdict").str.strip()
    uuid = css + hashlib.sha1(",".join(cols).encode()).hexdigest()[:6]  # ids the same on every run, one per table
    styler = (shown.style.set_uuid(uuid).hide(axis="index").format(escape="html", na_rep="").set_td_classes(classes)
              .set_table_attributes(f'class="dataframe {css}" border="0"'))
    return styler.to_html()


def to_csv(report) -> str:
    """Every shown column as numbers (Beta blank for σ-VAE rows; Loss says so), then the spreads."""
    t = report.table
    cols = shown(t)
    out = t[cols].copy()
    for col in cols:
        if col in report.std and col not in ROW_ID and report.std[col].notna().any():
            out[f"{col} std"] = report.std[col]
    return out.to_csv(index=False)


def terminal(frame: pd.DataFrame, cols: list[str], title: str, highlight=None):
    """A rich Table of the given columns; collapsed rows in red, the verdict's row (`highlight`,
    an index of frame) bold and marked ◀."""
    from rich.table import Table

    table = Table(*cols, *([""] if highlight is not None else []), title=title)
    for i, row in frame[cols].iterrows():
        style = "bold green" if i == highlight else "red" if row.get("Status") == COLLAPSED else None
        table.add_row(*map(str, row), *(["◀ verdict" if i == highlight else ""] if highlight is not None else []),
                      style=style)
    return table


def comparison(c) -> dict[str, pd.DataFrame]:
    """A pipelines/report/compare.py Comparison as two frames of strings: "Compute" and "Gaps" (Δ in %)."""
    gaps = c.gaps.drop(columns=["Loss"]).copy()
    out = pd.DataFrame({"Z-dim": gaps["Z-dim"].astype(int).astype(str), "Beta": gaps["Beta"].map("{:g}".format)})
    for col in gaps.columns[2:]:
        if col.startswith("Δ "):
            out[col] = gaps[col].map(lambda v: "" if math.isnan(v) else f"{v:+.1%}")
        elif col == "Within goal":
            out[col] = gaps[col].map({True: "yes", False: "no"})
        else:
            out[col] = gaps[col].map(lambda v: "" if math.isnan(v) else f"{v:.4g}")
    compute = c.compute.copy()
    for col in ("Training (s)", "Wall (s)"):
        compute[col.replace("(s)", "(min)")] = compute.pop(col).map(lambda v: f"{v / 60:.1f}")
    compute["Optimiser steps"] = compute["Optimiser steps"].map("{:,}".format)
    from pipelines.report.compare import verdict_rows

    verdicts = verdict_rows(c)
    for col in verdicts.columns:
        if verdicts[col].map(lambda v: isinstance(v, float)).any():
            verdicts[col] = verdicts[col].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v))
                                              else f"{v:.4g}")
    frames = {"Verdicts": verdicts.fillna("").astype(str), "Compute": compute.astype(str)}
    if len(out):
        frames["Gaps"] = out
    return frames
