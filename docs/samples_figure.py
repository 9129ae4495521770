"""The README's figure of prior samples: one panel per row of one or more studies, captioned with its FID and R-loss.

    python docs/samples_figure.py credible credible-conditional --out docs/credible_samples.png

Reads the studies' MLflow runs as `vae report` does (the Tracker, the balance table's data, each
run's samples.png artifact); one figure row per study, in table order. matplotlib's own grid of
images is used because the panels are whole PNGs already (torchvision's make_grid is for tensors).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))

from pipelines.report.data import build  # noqa: E402
from pipelines.report.fetch import fetch_artifacts, load_runs, ordered_runs  # noqa: E402
from pipelines.tracking.runs import Tracker  # noqa: E402


def rows_of(study: str, tracker: Tracker, folder: Path) -> list[tuple[str, Path]]:
    """(caption, samples.png) per row of the study's table, in its order."""
    report = build(study, load_runs(study, tracker)[1])
    art = fetch_artifacts(report, tracker, folder / study)
    panels = []
    for _, run in ordered_runs(report.runs).iterrows():
        label = run["tags.mlflow.runName"]
        sigma = run["loss"] == "sigma-vae"
        row = report.table[(report.table["Z-dim"] == run["z_dim"])
                           & (report.table["Loss"] == run["loss"])
                           & ((report.table["Beta"] == run["beta"]) if not sigma else True)].iloc[0]
        name = "σ-VAE" if sigma else f"β = {run['beta']:g}"
        trained = "one model for all β" if isinstance(run.get("tags.vae.trained_by"), str) else "trained for it"
        caption = f"z {run['z_dim']}, {name} ({trained})\nFID {row['FID (samples)']:.0f}, R-loss {row['R-loss']:.4f}"
        # a row with several seeds shows its first seed's samples once (the caption gives the row's mean)
        if "samples" in art.grids.get(label, {}) and caption not in [c for c, _ in panels]:
            panels.append((caption, art.grids[label]["samples"]))
    return panels


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("studies", nargs="+")
    p.add_argument("--tracking-uri", default=None, help="the studies' MLflow store [sqlite:///mlruns/mlflow.db]")
    p.add_argument("--title", default="prior samples")
    p.add_argument("--out", default="docs/samples.png")
    args = p.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tracker = Tracker(args.tracking_uri, create=False)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [rows_of(study, tracker, Path(tmp)) for study in args.studies]
        cols = max(len(r) for r in rows)
        fig, axes = plt.subplots(len(rows), cols, figsize=(2.6 * cols, 3.3 * len(rows)), squeeze=False)
        for r, panels in enumerate(rows):
            for c in range(cols):
                ax = axes[r][c]
                ax.axis("off")
                if c < len(panels):
                    caption, png = panels[c]
                    ax.imshow(plt.imread(png))
                    ax.set_title(caption, fontsize=8)
        fig.suptitle(args.title, fontsize=11)
        fig.tight_layout()
        fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
