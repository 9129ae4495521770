"""How close each way of training a beta-conditional model comes to independent training (issue 21).

    python benchmarks/conditional_accuracy.py                          # CIFAR-10 copy, limit 10,000, 10 epochs
    python benchmarks/conditional_accuracy.py --dataset digits --limit 600 --epochs 2 --z-dim 4 \\
        --betas 0.1,0.01 --between 0.03 --width 8 --out runs/accuracy-tiny   # a minute: does it work
    python benchmarks/conditional_accuracy.py --independent-study balance --tracking-uri sqlite:///mlruns/mlflow.db

Trains, one after the other, the variants of VARIANTS at each z-dim, each at --epochs and at twice
that (a quarter and half of the independent sweep's optimiser steps with 4 grid betas), and one
independent model per z-dim and grid beta at --epochs (or reads those rows from an existing
study: --independent-study), plus independent models at the --between betas, which lie between
grid points and which the conditional models never saw as grid betas. Every model is measured as
`vae train` measures it (test split; FID with --fid-samples > 0). Prints one table, a row per
variant and epoch count: optimiser steps, the largest |Δ R-loss| and |Δ KL| against the independent
model at each grid beta (Δ = (B - A) / A, B conditional, A independent), the rows within both goals
(pipelines/report/compare.py GOALS: R-loss 5 %, KL 10 %), the worst Δ loss (the objective at that beta,
R-loss + beta * KLD-loss: a negative worst means the conditional model reaches a lower loss than the
independent one at every grid beta, a better point rather than the same one), the largest |Δ FID| where
measured, and the same at the between betas. Writes table.md, gaps.csv (every row) and results.json to --out.

Each training is a run folder under --out, resumed where it stopped (`vae train --resume`): an
interrupted benchmark continues, and a finished one prints its table again without training.
Timings are not its subject (steps are exact); run it on an otherwise idle machine anyway: hours
on a CPU at the defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent.parent))

from pipelines.report.compare import GOALS  # noqa: E402
from vae.config import TrainConfig, conditional_only  # noqa: E402

VARIANTS = {
    "film": {"beta_span": None},                      # FiLM on the grid's span (the default before settings version 3)
    "film-1000x": {"beta_span": 1000.0},              # FiLM on a 1000x range centred on the grid (MR-VAE's width): the default
    "normalised": {"beta_span": None, "normalize_loss_weights": True},  # YOTO's loss weights / their geometric mean
    "undamped": {"beta_span": None, "film_damping": 1.0},  # FiLM's outputs as they are (YOTO damps by 0.1)
    "mrvae": {"conditioning": "mrvae", "beta_span": 1000.0},  # MR-VAE's gates on its 1000x range
    # two of them together: the small betas' pull raised (they are under-fitted at equal epochs)
    "film-1000x-normalised": {"beta_span": 1000.0, "normalize_loss_weights": True},
    "mrvae-normalised": {"conditioning": "mrvae", "beta_span": 1000.0, "normalize_loss_weights": True},
}
"""Each variant: its conditioning settings, each given (the defaults change: vae/config.py SETTINGS_VERSION)."""


def arguments(argv=None) -> argparse.Namespace:
    floats = lambda s: [float(v) for v in s.split(",") if v.strip()]  # noqa: E731
    ints = lambda s: [int(v) for v in s.split(",") if v.strip()]  # noqa: E731
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="folder:data/cifar10", help="as `vae train --dataset` [folder:data/cifar10]")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--limit", type=int, default=10_000, help="images per split (seeded subset) [10000]")
    p.add_argument("--epochs", type=int, default=10, help="the independent models' epochs; variants train this and 2x [10]")
    p.add_argument("--z-dim", type=ints, default=[10, 100], help="z-dims [10,100]")
    p.add_argument("--betas", type=floats, default=[0.1, 0.05, 0.01, 0.005], help="the grid [0.1,0.05,0.01,0.005]")
    p.add_argument("--between", type=floats, default=[0.02, 0.007],
                   help="independent models between grid points, against the conditional models there [0.02,0.007]")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"some of {','.join(VARIANTS)} [all]")
    p.add_argument("--out", default="runs/conditional-accuracy", help="run folders and results [runs/conditional-accuracy]")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fid-samples", type=int, default=0, help="prior samples for FID per beta (0: off) [0]")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--independent-study", default=None,
                   help="read the independent grid rows from this study instead of training them")
    p.add_argument("--tracking-uri", default=None, help="the study's MLflow store [sqlite:///mlruns/mlflow.db]")
    args = p.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variant {unknown[0]!r}; one of {', '.join(VARIANTS)}")
    if len(args.betas) < 2:
        p.error("--betas needs at least two grid betas")
    outside = [b for b in args.between if not min(args.betas) < b < max(args.betas)]
    if outside:
        p.error(f"--between {outside[0]:g} is not between grid betas ({min(args.betas):g} to {max(args.betas):g})")
    return args


def base_config(args, z_dim: int, epochs: int, out: Path, **settings) -> TrainConfig:
    return TrainConfig(dataset=args.dataset, data_dir=args.data_dir, limit=args.limit, z_dim=z_dim, width=args.width,
                       epochs=epochs, batch_size=args.batch_size, seed=args.seed, device=args.device,
                       threads=args.threads, iw_samples=0, fid_samples=args.fid_samples, out=str(out),
                       test_every=0, resume=True, progress=sys.stderr.isatty(), **settings).validate()


def trained(cfg: TrainConfig) -> dict:
    """The last epoch's metrics of the run in cfg.out, training (or finishing) it first."""
    from vae.train import train

    saved = Path(cfg.out) / "config.json"
    if saved.exists():  # a folder of this benchmark: the same settings, or it says which differ
        before = json.loads(saved.read_text())
        now = json.loads(json.dumps(cfg.record()))
        skip = {"compile", "device", "threads", "amp", *(() if cfg.conditional else conditional_only())}  # not what it computes
        differ = [k for k in now if k not in skip and before.get(k) != now[k]]
        if differ:
            raise SystemExit(f"error: {cfg.out} holds a run with other settings ({differ[0]}: {before.get(differ[0])} "
                             f"there, {now[differ[0]]} now); use another --out")
    print(f"training {cfg.out}", file=sys.stderr, flush=True)
    return train(cfg)[-1]


def steps(final: dict, cfg: TrainConfig) -> int:
    return cfg.epochs * math.ceil(final["data/train_images"] / cfg.batch_size)


def measured_at(cfg: TrainConfig, betas: list[float]) -> dict[float, dict]:
    """A trained conditional model's test R-loss and KL at betas it was not measured at in
    training (inside its range), as `vae evaluate --betas` measures them, without the diagnostics."""
    from vae.checkpoint import load_model
    from vae.data import load_dataset
    from vae.measure import measure
    from vae.runtime import pick_device

    model, saved, _ = load_model(cfg.out, pick_device(cfg.device))
    data = load_dataset(saved.dataset, saved.data_dir, saved.limit, saved.seed)
    at = dataclasses.replace(saved, betas=betas, beta_range=list(saved.training_range), beta_span=None)
    values = measure(model, {"test": data.test}, at)
    return {b: {"r_loss": values[f"b{b:g}/test/r_loss"], "kl": values[f"b{b:g}/test/kl"]} for b in betas}


def independent(args, root: Path) -> tuple[pd.DataFrame, dict[int, int]]:
    """One row per (z-dim, beta) of the grid and the between betas: R-loss, KL, FID; and the
    independent sweep's optimiser steps per z-dim (the grid's models only)."""
    rows, cost = [], {}
    study = read_study(args) if args.independent_study else None
    for z in args.z_dim:
        for beta in [*args.betas, *args.between]:
            grid = beta in args.betas
            if study is not None and grid:
                hit = study[(study["Z-dim"] == z) & (study["Beta"].round(12) == round(beta, 12))]
                if hit.empty:
                    raise SystemExit(f"error: study {args.independent_study!r} has no independent row at z-dim {z}, beta {beta:g}")
                r = hit.iloc[0]
                rows.append(dict(z_dim=z, beta=beta, grid=True, r_loss=r["R-loss"], kl=r["KL (nats)"],
                                 fid=r.get("FID (samples)", math.nan), steps=int(r["steps"])))
                continue
            cfg = base_config(args, z, args.epochs, root / "independent" / f"z{z}-b{beta:g}", beta=beta)
            final = trained(cfg)
            rows.append(dict(z_dim=z, beta=beta, grid=grid, r_loss=final["test/r_loss"], kl=final["test/kl"],
                             fid=final.get("diag/fid", math.nan), steps=steps(final, cfg)))
        cost[z] = sum(r["steps"] for r in rows if r["z_dim"] == z and r["grid"])
    return pd.DataFrame(rows), cost


def read_study(args) -> pd.DataFrame:
    """The study's independent beta rows (its balance table) with each row's optimiser steps."""
    from pipelines.report.compare import cost, trainings
    from pipelines.report.data import build
    from pipelines.report.fetch import load_runs
    from pipelines.tracking.runs import Tracker

    tracker = Tracker(args.tracking_uri, create=False)
    report = build(args.independent_study, load_runs(args.independent_study, tracker)[1])
    table = report.table[(report.table["Loss"] == "beta") & (report.table["Training"] == "independent")].copy()
    epochs = set(table["Epochs"].astype(int))
    if epochs != {args.epochs}:
        print(f"note: study {args.independent_study!r} trained {sorted(epochs)} epochs, --epochs is {args.epochs}",
              file=sys.stderr)
    table["steps"] = [cost(tracker, trainings(report, table.loc[[i]]))["Optimiser steps"] for i in table.index]
    return table


def gap_rows(variant: str, epochs: int, z: int, per: dict[float, dict], ind: pd.DataFrame) -> list[dict]:
    rows = []
    for beta, b in per.items():
        a = ind[(ind["z_dim"] == z) & (ind["beta"] == beta)].iloc[0]
        row = dict(variant=variant, epochs=epochs, z_dim=z, beta=beta, grid=bool(a["grid"]),
                   r_loss_a=a["r_loss"], r_loss_b=b["r_loss"], kl_a=a["kl"], kl_b=b["kl"],
                   d_r_loss=(b["r_loss"] - a["r_loss"]) / a["r_loss"], d_kl=(b["kl"] - a["kl"]) / a["kl"])
        # the objective both were trained for at this beta, R-loss + beta * KLD-loss (vae/loss.py; KLD-loss =
        # KL / z-dim): below 0, the conditional model is the better model at this beta, not only another one
        loss_a, loss_b = (v["r_loss"] + beta * v["kl"] / z for v in (a, b))
        row["d_loss"] = (loss_b - loss_a) / loss_a
        fid_a, fid_b = a["fid"], b.get("fid", math.nan)
        row["d_fid"] = (fid_b - fid_a) / fid_a if fid_a == fid_a and fid_b == fid_b else math.nan
        row["within"] = abs(row["d_r_loss"]) <= GOALS["R-loss"] and abs(row["d_kl"]) <= GOALS["KL"]
        rows.append(row)
    return rows


def summarise(gaps: pd.DataFrame, steps_of: dict, independent_steps: int) -> pd.DataFrame:
    out = [{"variant": "independent", "epochs": None, "optimiser steps": independent_steps}]
    for (variant, epochs), g in gaps.groupby(["variant", "epochs"], sort=False):
        grid, between = g[g["grid"]], g[~g["grid"]]
        row = {"variant": variant, "epochs": epochs, "optimiser steps": steps_of[variant, epochs],
               "largest |Δ R-loss|": grid["d_r_loss"].abs().max(), "largest |Δ KL|": grid["d_kl"].abs().max(),
               "within both goals": f"{int(grid['within'].sum())} of {len(grid)}",
               "Δ loss, worst": grid["d_loss"].max(),
               "largest |Δ FID|": grid["d_fid"].abs().max()}
        if len(between):
            row |= {"between: |Δ R-loss|": between["d_r_loss"].abs().max(),
                    "between: |Δ KL|": between["d_kl"].abs().max(),
                    "between: within both": f"{int(between['within'].sum())} of {len(between)}"}
        out.append(row)
    return pd.DataFrame(out)


def markdown(table: pd.DataFrame) -> str:
    def cell(col, v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "–" if col != "epochs" else ""
        if col.startswith(("largest", "between: |")):
            return f"{v:.1%}"
        if col.startswith("Δ"):
            return f"{v:+.1%}".replace("-", "−")
        return f"{int(v):,}" if isinstance(v, (int, float)) else str(v)
    cols = [c for c in table.columns if not table[c].isna().all() or c == "epochs"]
    head = [c.replace("|", "\\|") for c in cols]  # |Δ R-loss| inside a markdown cell
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(c, r[c]) for c in cols) + " |" for _, r in table.iterrows()]
    return "\n".join(lines)


def main(argv=None) -> None:
    args = arguments(argv)
    root = Path(args.out)
    ind, cost = independent(args, root)
    rows, steps_of = [], {}
    for variant in args.variants:
        for epochs in (args.epochs, 2 * args.epochs):
            total = 0
            for z in args.z_dim:
                cfg = base_config(args, z, epochs, root / f"{variant}-e{epochs}" / f"z{z}", betas=args.betas,
                                  **VARIANTS[variant])
                final = trained(cfg)
                total += steps(final, cfg)
                per = {b: {"r_loss": final[f"b{b:g}/test/r_loss"], "kl": final[f"b{b:g}/test/kl"],
                           "fid": final.get(f"b{b:g}/diag/fid", math.nan)} for b in args.betas}
                if args.between:
                    per |= measured_at(cfg, args.between)
                rows += gap_rows(variant, epochs, z, per, ind)
            steps_of[variant, epochs] = total
    gaps = pd.DataFrame(rows)
    table = summarise(gaps, steps_of, sum(cost.values()))
    text = markdown(table)
    grid = ", ".join(f"{b:g}" for b in args.betas)
    head = (f"{args.dataset}, limit {args.limit}, z-dim {', '.join(map(str, args.z_dim))}, grid β {grid}"
            + (f", between {', '.join(f'{b:g}' for b in args.between)}" if args.between else "")
            + f"; independent: {args.independent_study or f'{args.epochs} epochs each'}; goals: R-loss "
            f"{GOALS['R-loss']:.0%}, KL {GOALS['KL']:.0%}")
    print(head)
    print(text)
    root.mkdir(parents=True, exist_ok=True)
    (root / "table.md").write_text(head + "\n\n" + text + "\n")
    gaps.to_csv(root / "gaps.csv", index=False)
    (root / "results.json").write_text(json.dumps({"settings": vars(args), "summary": table.to_dict("records"),
                                                   "gaps": gaps.to_dict("records"),
                                                   "independent": ind.to_dict("records")}, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
