"""What one sweep trial costs, phase by phase: an independent and a conditional trial, tracked.

    python benchmarks/sweep_cost.py --dataset folder:data/cifar10 --limit 10000 --epochs 10 --baseline
    python benchmarks/sweep_cost.py --dataset digits --epochs 3 --fid-samples 0   # a quick look

Each trial is a one-point `vae sweep` (its own Optuna study, MLflow store and working folder, in
a temporary folder; z-dim 100 by default, beta 0.01, or the conditional model of betas 0.1, 0.05,
0.01, 0.005), run in a fresh process under benchmarks/phases.py, which times each phase:
start-up, training epochs, validation (every epoch), the test split (whole; today once at the end,
at the baseline every epoch) and its evaluation subset (every test_every epochs), each end-of-training estimator,
the Inception passes (with images/s), image grids, checkpoints, tracking and artifact upload.

`--baseline [REV]`: the same trials with the code of git revision REV (default BASELINE, the last
revision before measurement got cheaper) as well, taken from this repository with `git archive`,
run alternately with today's (A B A B) so that machine noise hits both; the last line is
`per-trial speed-up: X.XXx (independent), Y.YYx (conditional)`: the ratio of the trials' wall times
(median over repeats), a trial being what every trial of a sweep costs (`run_trial`, from its
start to its result and uploads; a process's imports, store creation and the study's verdict at
the end are paid once per sweep and shown beside it).
Before the timed trials an untimed warm-up fills the caches a sweep has after its first trial:
the decoded data and the Inception features of the FID references (data_dir/cache).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "6fa243c"
"""main before issue 19: per-epoch test on the whole test split, FID of reconstructions on."""
ORDER = ["start-up", "training epochs", "validation", "test split, whole", "test split, evaluation subset",
         "end: AU, MI, IWAE NLL, σ", "Inception passes", "end: FID sampling, statistics", "end: other (rd curve, ...)",
         "image grids", "checkpoints", "tracking and artifact upload", "other"]


def spec_text(args, conditional: bool, study: str, fid_samples: int | None) -> str:
    lines = [f"study: {study}", f"dataset: {args.dataset}", f"data_dir: {args.data_dir}", f"epochs: {args.epochs}",
             f"batch_size: {args.batch_size}", "sampler: grid", "metric: val/elbo_bpd",
             f"images_every: {args.images_every}"]
    if args.limit:
        lines.append(f"limit: {args.limit}")
    if fid_samples is not None:
        lines.append(f"fid_samples: {fid_samples}")
    if conditional:  # one model for all the betas (vae/conditional.py)
        lines.append("mode: conditional")
    betas = args.betas if conditional else [args.beta]
    lines += ["search:", f"  z_dim: [{args.z_dim}]", f"  beta: [{', '.join(map(str, betas))}]", "  seed: [0]"]
    return "\n".join(lines) + "\n"


def run_trial(code: Path, args, conditional: bool, fid_samples: int | None = None) -> dict:
    """One trial in a fresh process and working folder; its phases (benchmarks/phases.py)."""
    with tempfile.TemporaryDirectory(prefix="sweep-cost-") as work:
        work = Path(work)
        (work / "trial.yaml").write_text(spec_text(args, conditional, "cost", fid_samples))
        cmd = [sys.executable, str(ROOT / "benchmarks" / "phases.py"), "--code", str(code), "--json",
               str(work / "phases.json"), "--", "sweep", "trial.yaml", "--no-progress"]
        env = {**os.environ, "PYTHONPATH": str(code)}
        for k in ("VAE_STORAGE", "MLFLOW_TRACKING_URI"):
            env.pop(k, None)
        done = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
        if done.returncode != 0 or not (work / "phases.json").exists():
            sys.exit(f"trial failed ({code}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return json.loads((work / "phases.json").read_text())


def table(result: dict) -> dict[str, float]:
    """Seconds per phase of ORDER; start-up without the phases timed inside it, `other` the rest."""
    s = dict(result["seconds"])
    startup = (result["startup"] or 0.0) - sum(result["before_first"].values())
    row = {"start-up": startup, "training epochs": result["epochs"], **s}
    row["other"] = result["trial"] - sum(row.values())
    return row


def checkout(rev: str, into: Path) -> Path:
    """The project's code (vae/, pipelines/) at git revision `rev`, extracted under `into`."""
    dest = into / f"rev-{rev}"
    if not dest.exists():
        archive = into / f"{rev}.tar"
        subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(archive), rev, "vae", "pipelines"],
                       check=True)
        with tarfile.open(archive) as t:
            t.extractall(dest, filter="data")
    return dest


def show(name: str, runs: dict[str, list[dict]]) -> dict[str, float]:
    """Median seconds per phase of each code version, side by side, with shares of the wall."""
    rows = {label: {k: statistics.median(table(r).get(k, 0.0) for r in results) for k in ORDER}
            for label, results in runs.items()}
    walls = {label: statistics.median(r["trial"] for r in results) for label, results in runs.items()}
    process = {label: statistics.median(r["wall"] for r in results) for label, results in runs.items()}
    labels = list(rows)
    print(f"\n{name} trial" + " — ".join([""] + [f"{lb}: {walls[lb]:.1f} s (its process: {process[lb]:.1f} s)"
                                                  for lb in labels]))
    print(f"  {'phase':34s}" + "".join(f"{lb:>22s}" for lb in labels))
    for k in ORDER:
        if all(rows[lb][k] < 0.05 for lb in labels):
            continue
        print(f"  {k:34s}" + "".join(f"{rows[lb][k]:>11.1f} s {100 * rows[lb][k] / walls[lb]:5.1f} %" for lb in labels))
    for lb, results in runs.items():
        n = statistics.median(r["counts"].get("Inception passes", 0) for r in results)
        t = rows[lb]["Inception passes"]
        epochs = statistics.median(r["n_epochs"] for r in results) or 1
        epoch_s = rows[lb]["training epochs"] / epochs
        # what every epoch measures: validation and the test split where that version measures it
        # every epoch (the baseline: the whole split; today: the evaluation subset every test_every
        # epochs); `with the end's`: today's one pass over the whole test split after the last
        # epoch, spread over the epochs as well
        whole_every_epoch = rows[lb]["test split, evaluation subset"] < 0.05
        per_epoch = (rows[lb]["validation"] + rows[lb]["test split, evaluation subset"]
                     + (rows[lb]["test split, whole"] if whole_every_epoch else 0.0)) / epochs
        amortised = per_epoch + (0.0 if whole_every_epoch else rows[lb]["test split, whole"] / epochs)
        print(f"  {lb}: {n:.0f} Inception passes" + (f" at {n / t:.1f} images/s" if t > 0 and n else "")
              + f"; per-epoch measurement {per_epoch:.2f} s = {100 * per_epoch / epoch_s:.0f} % of an epoch's training"
              + ("" if whole_every_epoch else f" ({100 * amortised / epoch_s:.0f} % with the end's whole test split)"))
    return walls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="folder:data/cifar10",
                        help="as `vae train --dataset`; a folder: path is read from the current directory")
    parser.add_argument("--data-dir", default=os.environ.get("VAE_DATA_DIR", str(ROOT / "data")),
                        help="decoded-data and FID-feature cache (shared by all trials) [default: the project's data/]")
    parser.add_argument("--limit", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--z-dim", type=int, default=100)
    parser.add_argument("--beta", type=float, default=0.01)
    parser.add_argument("--betas", type=float, nargs="+", default=[0.1, 0.05, 0.01, 0.005])
    parser.add_argument("--fid-samples", type=int, default=None, help="[default: the version's own default, 500 here]")
    parser.add_argument("--images-every", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--only", choices=["independent", "conditional"], default=None)
    parser.add_argument("--baseline", nargs="?", const=BASELINE, default=None, metavar="REV",
                        help=f"also run the code of git revision REV [default: {BASELINE}]")
    args = parser.parse_args()
    if args.dataset.startswith("folder:"):
        args.dataset = "folder:" + str(Path(args.dataset[7:]).expanduser().resolve())
    args.data_dir = str(Path(args.data_dir).resolve())
    scratch = Path(tempfile.mkdtemp(prefix="sweep-cost-code-"))
    try:
        codes = {"today": ROOT}
        if args.baseline:
            codes = {f"baseline {args.baseline}": checkout(args.baseline, scratch), "today": ROOT}
        kinds = [k for k in ("independent", "conditional") if args.only in (None, k)]
        print(f"warm-up: decoded data and FID reference features in {args.data_dir}/cache", flush=True)
        run_trial(ROOT, argparse.Namespace(**{**vars(args), "epochs": 1}), False, fid_samples=0 if args.fid_samples == 0 else 2)
        runs = {k: {label: [] for label in codes} for k in kinds}
        for i in range(args.repeats):
            for k in kinds:
                for label, code in codes.items():
                    print(f"repeat {i + 1}/{args.repeats}: {k} trial, {label} ...", flush=True)
                    runs[k][label].append(run_trial(code, args, k == "conditional", args.fid_samples))
        walls = {k: show(k, runs[k]) for k in kinds}
        if args.baseline:
            base, today = list(codes)
            print("per-trial speed-up: " + ", ".join(f"{walls[k][base] / walls[k][today]:.2f}x ({k})" for k in kinds))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
