"""The quick demo on a busy machine: torch's default threads against the ones a sweep chooses, side by side.

    python benchmarks/busy_machine.py                          # the whole quick demo, 2 rounds
    python benchmarks/busy_machine.py --epochs 10 --rounds 1   # a quicker look

For the whole benchmark a competing sweep runs in the background: another user's, the quick demo's
grid with many epochs, in stores of its own, with torch's default threads (one per usable core),
as a sweep ran before it chose its threads. Beside it the quick demo (`sweeps/quick.yaml`, fresh
stores and a fresh working folder each time) runs alternately, A B B A ..., so that whatever
else the machine does hits both:
  A  `--threads N`, N the usable cores: torch's default, what every sweep used before;
  B  the threads a sweep chooses today (the spec's pinned `threads` removed: vae/runtime.py
     choose_threads reads the usable cores and the load already on them), as printed by the sweep.
Prints each run's wall time (the process, as a user waits for it) and threads, then the ratio of
the medians, A / B. The competitor's own pace is not measured: what it loses or gains is the
other half of the story (with B it gets a core to itself). Run it with nothing else training.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "sweeps" / "quick.yaml"
sys.path.insert(0, str(ROOT))

from vae.runtime import usable_cores  # noqa: E402


def sweep_command(folder: Path, study: str, sets: list[str], threads: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "pipelines.cli", "sweep", str(SPEC), "--set", f"study={study}", "--no-progress",
           "--storage", f"sqlite:///{folder}/optuna.db", "--tracking-uri", f"sqlite:///{folder}/mlflow.db"]
    for s in sets:
        cmd += ["--set", s]
    return cmd + (["--threads", str(threads)] if threads else ["--set", "threads=null"])


def run_demo(folder: Path, label: str, sets: list[str], threads: int | None) -> tuple[float, str]:
    """One quick demo in its own folder: (wall seconds, threads it used)."""
    folder.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    out = subprocess.run(sweep_command(folder, "quick", sets, threads), cwd=folder, env=env,
                         capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"{label}: the quick demo failed (exit {out.returncode}):\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    chosen = re.search(r"CPU threads per trial: (\d+) \(([^;]*)", out.stdout + out.stderr)
    used = f"{chosen.group(1)} (chosen: {chosen.group(2)})" if chosen else f"{threads} (--threads)"
    return wall, used


def wait_for_load(minimum: float, timeout: float = 180) -> float:
    """Until the competitor shows in the 1-minute load average (it lags), at most `timeout` seconds."""
    end = time.monotonic() + timeout
    while os.getloadavg()[0] < minimum and time.monotonic() < end:
        time.sleep(5)
    return os.getloadavg()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2, help="A B pairs (each round's order flips) [2]")
    ap.add_argument("--epochs", type=int, default=None, help="the demo's epochs [the spec's, 30]")
    a = ap.parse_args()
    cores = usable_cores()
    sets = [f"epochs={a.epochs}"] if a.epochs else []
    print(f"{cores} usable core(s); load before the competitor {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="busy-") as tmp:
        tmp = Path(tmp)
        (tmp / "competitor").mkdir()
        log = open(tmp / "competitor.log", "w")
        competitor = subprocess.Popen(
            sweep_command(tmp / "competitor", "competitor", ["epochs=100000"], cores), cwd=tmp / "competitor",
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            load = wait_for_load(min(cores, 1.5))
            print(f"competing sweep running ({cores} threads, torch's default); load {load:.2f}")
            walls: dict[str, list[float]] = {"A": [], "B": []}
            for r in range(a.rounds):
                for label in ("AB" if r % 2 == 0 else "BA"):
                    threads = cores if label == "A" else None
                    wall, used = run_demo(tmp / f"{label}{r}", label, sets, threads)
                    walls[label].append(wall)
                    print(f"round {r + 1} {label}: {wall:7.1f} s, threads {used}; load {os.getloadavg()[0]:.2f}",
                          flush=True)
            if competitor.poll() is not None:
                sys.exit(f"the competing sweep ended early (exit {competitor.returncode}): see its log")
        finally:
            os.killpg(competitor.pid, signal.SIGTERM)
            competitor.wait(timeout=60)
            log.close()
    a_med, b_med = statistics.median(walls["A"]), statistics.median(walls["B"])
    print(f"quick demo beside a competing sweep: {a_med:.1f} s with torch's default threads, "
          f"{b_med:.1f} s with the chosen ones: {a_med / b_med:.2f}x faster (median of {a.rounds})")


if __name__ == "__main__":
    main()
