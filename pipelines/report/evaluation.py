"""What `vae evaluate RUN_DIR` prints: the key numbers as a short table, with the columns named as
in the balance table (pipelines/report/data.py METRICS), and where it wrote its files.

    for line in lines(result, run_dir): print(line)

Losses come from the whole validation and test splits, the diagnostics and FID from the test
split's evaluation subset (their column is "test"); evaluation.json has every number.
"""

from __future__ import annotations

import re
from pathlib import Path

from pipelines.report.data import METRICS
from vae.conditional import prefix, split
from vae.progress import num

LEFT_OUT = ("SSE", "Loss")  # in evaluation.json; not key numbers


def rows(values: dict) -> list[tuple[str, str, str]]:
    """(column, validation, test) for each column of the report that `values` has."""
    out = []
    for column, metric in METRICS.items():
        if metric is None or column.startswith("_") or column in LEFT_OUT:
            continue
        test = values.get(metric)
        val = values.get("val/" + metric[len("test/"):]) if metric.startswith("test/") else None
        if test is None and val is None:
            continue
        cell = "" if test is None else (f"{test:.0f}" if column == "AU" else num(test))
        if column == "MI (nats)" and values.get("diag/mi_saturated", 0) >= 0.5:
            cell += " (saturated: within 2 standard errors of its ceiling log N, or above)"
        out.append((column, "" if val is None else num(val), cell))
    return out


def table(values: dict) -> list[str]:
    body = rows(values)
    width = max([len("validation"), *(len(r[0]) for r in body)])
    val_width = max([len("validation"), *(len(r[1]) for r in body)])
    return [f"  {'':<{width}}  {'validation':<{val_width}}  test",
            *(f"  {c:<{width}}  {v:<{val_width}}  {t}".rstrip() for c, v, t in body)]


def betas_of(result: dict) -> list[float]:
    """The betas a conditional run was measured at (its `b0.01/` prefixes), in their order."""
    found = []
    for key in result:
        m = re.match(r"b([0-9.e+-]+)/", key)
        if m and float(m.group(1)) not in found:
            found.append(float(m.group(1)))
    return found


def lines(result: dict, run_dir: str | Path) -> list[str]:
    run_dir = Path(run_dir)
    betas = betas_of(result)
    per = split(result, betas)[1] if betas else {None: result}
    sizes = next(iter(per.values()))
    subset = (f"; diagnostics on the test split's evaluation subset of {sizes['diag/eval_images']:.0f} images"
              + (f" (NLL on its first {sizes['diag/iw_images']:.0f})" if "diag/iw_images" in sizes else "")
              if "diag/eval_images" in sizes else "")
    out = [f"{run_dir}: epoch {result['epoch']}, per image; losses on the {result['data/val_images']:,} validation "
           f"and {result['data/test_images']:,} test images{subset}"]
    folders = []
    for beta, values in per.items():
        if beta is not None:
            out.append(f"β = {beta:g}:")
        out += table(values)
        folders.append(run_dir / prefix(beta) if beta is not None else run_dir)
    files = [run_dir / "evaluation.json"]
    for folder in folders:
        files += [folder / name for name in ("recon.png", "samples.png", "kl_per_dim.json") if (folder / name).exists()]
    out.append(f"wrote {files[0]} (every number); grids: "
               + ", ".join(str(f) for f in files[1:] if f.suffix == ".png")
               + "".join(f"; KL per dimension: {f}" for f in files[1:] if f.suffix == ".json"))
    if betas and (run_dir / "rd_curve.json").exists():
        out.append(f"rate-distortion curve: {run_dir / 'rd_curve.json'}")
    return out
