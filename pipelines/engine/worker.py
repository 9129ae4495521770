"""What every trial of one worker process shares: the spec as the study runs it, the stores, the
decoded data, its CPU threads (chosen once), and a watch on its epoch times.

    worker = Worker(spec, tracker, experiment_id, parent)
    worker.pick()          # CPU threads for its trials: vae/runtime.py choose_threads, said once
    worker.timed(12.3)     # a line, once, when epochs run far slower than its first ones
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.common.spec import Spec
from pipelines.tracking.runs import Tracker
from vae.progress import say

SLOW = 3.0
"""an epoch this many times slower than the worker's first ones is worth a line."""


@dataclass
class Worker:
    """What every trial of this process shares: the spec as the study runs it, the stores, the
    decoded data, and how it shows progress."""
    spec: Spec
    tracker: Tracker
    experiment_id: str
    parent: str
    progress: bool = True
    threads: int | None = None
    bar: object = None  # pipelines/engine/trial_bar.py TrialBar, or None
    data: dict = field(default_factory=dict)  # (dataset, data_dir, limit, seed) -> vae.data.Data
    chosen: int | None = None  # CPU threads this worker chose (no --threads, none in the spec)
    epoch_s: list = field(default_factory=list)  # this worker's epoch times, to notice a machine grown busy
    warned: bool = False

    def pick(self) -> int:
        """Threads for this worker's trials, chosen once from the cores it may use and the load
        already on them (vae/runtime.py choose_threads), said once."""
        if self.chosen is None:
            from vae.runtime import choose_threads

            self.chosen, why = choose_threads()
            # said with or without --no-progress: the choice changes the numbers
            say(f"CPU threads per trial: {self.chosen} ({why}; --threads N sets it; the numbers depend on it)")
        return self.chosen

    def timed(self, seconds: float) -> str | None:
        """A line, once, when this worker's epochs run far slower than its first ones (a machine that
        has become busy, or workers sharing too few cores), with the remedy."""
        self.epoch_s.append(seconds)
        first = sorted(self.epoch_s[:3])[len(self.epoch_s[:3]) // 2]
        if self.warned or len(self.epoch_s) < 4 or seconds < SLOW * first:
            return None
        from vae.runtime import other_load, usable_cores

        self.warned = True
        return (f"note: epochs now take {seconds:.1f} s, {seconds / first:.1f}x this worker's first ({first:.1f} s): the "
                f"machine is busy (load {other_load():.1f} on {usable_cores()} usable cores); fewer workers, "
                "--threads 1, or a quieter machine would help (the numbers do not change, only the time)")
