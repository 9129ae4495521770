"""Where a tracked trial's wall time goes: runs `vae ...` in this process with timers on its phases.

    python benchmarks/phases.py --code ROOT --json OUT.json -- sweep spec.yaml --no-progress

Used by benchmarks/sweep_cost.py, once per trial and code revision (ROOT: the project tree whose
`vae` and `pipelines` run). The timers wrap functions by name, so one instrument fits today's code
and a baseline revision alike: every module attribute that *is* a wrapped function is replaced
(a `from vae.measure import measure` binds the name at import), and nested phases are counted
once, in the innermost phase (a timer's own time excludes the phases it calls).

Phases: per-epoch validation and test (`vae.measure.measure`, split by split), the end-of-training
estimators (vae/metrics.py's, and `final`'s other work: the whole test split, the rate-distortion
curve), the Inception passes (`vae.fid.features`: seconds and images), FID's sampling and
statistics, image grids, MLflow calls (tracking and artifact upload), checkpoints. Training epochs
are the runs' own `time/epoch_s`. Only time inside the sweep's `run_trial` counts (what every
trial of a sweep costs); what a process pays once (imports, creating the stores, the verdict at the
end) is the rest of its wall. Start-up is the trial's start to its first epoch's bar.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

START = time.perf_counter()
seconds: dict[str, float] = {}
counts: dict[str, int] = {}
stack: list[list] = []  # [phase, start, time of the phases inside]
first_epoch: list[float] = []
before_first: dict[str, float] = {}  # the phases' seconds when the first epoch began (part of start-up)
epoch_seconds: list[float] = []


trial: list[float] = []  # [start, end] of run_trial: the phases count inside it only


def timed(phase, fn, count=None):
    def wrapper(*args, **kwargs):
        if len(trial) != 1 or (stack and stack[-1][0] == phase):  # outside the trial; a phase calling itself
            return fn(*args, **kwargs)
        stack.append([phase, time.perf_counter(), 0.0])
        try:
            return fn(*args, **kwargs)
        finally:
            name, t0, inner = stack.pop()
            took = time.perf_counter() - t0
            seconds[name] = seconds.get(name, 0.0) + took - inner
            if stack:
                stack[-1][2] += took
            if count is not None:
                counts[name] = counts.get(name, 0) + count(*args, **kwargs)

    wrapper.__wrapped__ = fn
    return wrapper


def replace_everywhere(module, name: str, new) -> None:
    old = getattr(module, name)
    for m in list(sys.modules.values()):
        for attr, value in list(getattr(m, "__dict__", {}).items()):
            if value is old:
                setattr(m, attr, new)


def instrument() -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    import vae.checkpoint
    import vae.fid
    import vae.images
    import vae.measure
    import vae.metrics
    import vae.progress
    import vae.train

    measure = vae.measure.measure
    def measure_by_split(model, splits, cfg, *a, **k):  # each split its own phase; same numbers
        out = {}
        for name, x in splits.items():
            phase = {"val": "validation", "test": "test split, whole"}.get(name, "test split, evaluation subset")
            out |= timed(phase, measure)(model, {name: x}, cfg, *a, **k)
        return out

    replace_everywhere(vae.measure, "measure", measure_by_split)
    replace_everywhere(vae.measure, "final", timed("end: other (rd curve, ...)", vae.measure.final))
    replace_everywhere(vae.metrics, "diagnostics", timed("end: AU, MI, IWAE NLL, σ", vae.metrics.diagnostics))
    replace_everywhere(vae.fid, "features", timed("Inception passes", vae.fid.features, count=lambda x, *a, **k: len(x)))
    replace_everywhere(vae.fid, "generation_metrics", timed("end: FID sampling, statistics", vae.fid.generation_metrics))
    replace_everywhere(vae.images, "save_grids", timed("image grids", vae.images.save_grids))
    replace_everywhere(vae.checkpoint, "save_checkpoint", timed("checkpoints", vae.checkpoint.save_checkpoint))
    for name in ("log_batch", "log_metric", "log_param", "log_artifact", "log_artifacts", "log_image", "log_figure",
                 "log_text", "log_dict", "set_tag", "create_run", "set_terminated", "update_run", "search_runs",
                 "get_run", "create_experiment", "get_experiment_by_name"):
        if hasattr(MlflowClient, name):
            setattr(MlflowClient, name, timed("tracking and artifact upload", getattr(MlflowClient, name)))
    import mlflow.pytorch
    mlflow.pytorch.log_model = timed("tracking and artifact upload", mlflow.pytorch.log_model)
    del mlflow

    bar_init = vae.progress.EpochBar.__init__

    def bar_first(self, *a, **k):
        if not first_epoch and trial:
            first_epoch.append(time.perf_counter())
            before_first.update(seconds)
        return bar_init(self, *a, **k)

    vae.progress.EpochBar.__init__ = bar_first
    train = vae.train.train

    def train_kept(*a, **k):
        history = train(*a, **k)
        epoch_seconds.extend(h["time/epoch_s"] for h in history)
        return history

    replace_everywhere(vae.train, "train", train_kept)
    for module in [m for name, m in list(sys.modules.items()) if name.startswith("pipelines")]:
        run_trial = getattr(module, "run_trial", None)
        if callable(run_trial) and getattr(run_trial, "__module__", "") == module.__name__:
            def trial_timed(*a, _run=run_trial, **k):
                trial.append(time.perf_counter())
                try:
                    return _run(*a, **k)
                finally:
                    trial.append(time.perf_counter())

            replace_everywhere(module, "run_trial", trial_timed)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--code", required=True, help="project root whose vae/ and pipelines/ run")
    parser.add_argument("--json", required=True)
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    sys.path.insert(0, args.code)
    import importlib
    import pkgutil

    import pipelines
    import pipelines.cli

    for info in pkgutil.walk_packages(pipelines.__path__, "pipelines."):  # the lazy imports too: all wrapped
        importlib.import_module(info.name)
    instrument()
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    code = 0
    try:
        pipelines.cli.cli.main(argv, prog_name="vae", standalone_mode=False)
    except SystemExit as e:
        code = e.code or 0
    wall = time.perf_counter() - START
    with open(args.json, "w") as f:
        json.dump({"wall": wall, "seconds": seconds, "counts": counts, "exit": code,
                   "trial": trial[1] - trial[0] if len(trial) == 2 else None,
                   "startup": (first_epoch[0] - trial[0]) if first_epoch else None, "before_first": before_first,
                   "epochs": sum(epoch_seconds), "n_epochs": len(epoch_seconds)}, f)


if __name__ == "__main__":
    main()
