"""The sweep's trial bar: trials done of total, the configuration running now, the best so far,
and an ETA for the whole sweep from the epochs trained since it started.

    bar = TrialBar(study, total, epochs, spec.training_of, enabled=True)
    bar.epoch(trial_number, epoch)      # after each epoch of a trial this process runs
    bar.refresh()                       # after each trial, or every few seconds (several workers)
    bar.close()

On a terminal it is a tqdm bar above the epoch bar, redrawn every second so that its clock
runs; otherwise it prints one plain line per trial that finished since the last refresh. Formats come from vae/progress.py.
The ETA counts epochs, not trials: remaining epochs (of unfinished trials) over the rate of epochs
done since this bar started; a pruned trial counts as all its epochs.
"""

from __future__ import annotations

import sys
import threading
import time

from pipelines.common.trials import finished, heads, params_of
from vae.progress import duration, interactive, label, listen, num, say, unlisten

REFRESH_S = 1.0




class TrialBar:
    def __init__(self, study, total: int, epochs: int, training_of, enabled: bool = True):
        """training_of: a trial's parameters -> how it trains (Spec.training_of), for its label."""
        self.study, self.total, self.epochs, self.training_of = study, total, epochs, training_of
        self.enabled = enabled
        self.current: dict[int, int] = {}  # trial number -> epochs done, for trials run by this process
        self.start = time.monotonic()
        self.base = None  # epochs done when the bar started
        self.eta_at = None  # monotonic time the sweep should end
        self.bar = None
        self.announced: set[int] | None = None  # finished trials already printed (plain lines)
        self._n, self._running, self._best = 0, [], ""
        self._phase = None  # (message, counter) of what this process's trial measures now (vae/progress.py)
        self._stop = threading.Event()
        listen(self._on_phase)
        if not enabled:
            return
        if interactive():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=f"{study.study_name}", unit="trial", position=0, file=sys.stderr,
                            dynamic_ncols=True, bar_format="{desc} {n_fmt}/{total_fmt} trials |{bar}| {elapsed}{postfix}")
            threading.Thread(target=self._tick, daemon=True).start()
        self.refresh()

    def _label(self, t) -> str:
        p = params_of(t)
        return label(p.get("z_dim"), self.training_of(p), p.get("beta"), p.get("seed", 0))

    def _on_phase(self, current) -> None:
        self._phase = current
        self._draw()

    def _phase_text(self) -> str:
        """'; FID: Inception-v3 features of 2,000 samples… 35%': what the trial does after its epochs."""
        if self._phase is None:
            return ""
        message, counter = self._phase
        total, n = getattr(counter, "total", None), getattr(counter, "n", 0)
        return f"; {message}" + (f" {n / total:.0%}" if total else "")

    def _tick(self) -> None:
        while not self._stop.wait(REFRESH_S):
            self._draw()

    # --- what happened ------------------------------------------------------------------
    def epoch(self, number: int, epoch: int) -> None:
        """Trial `number` (run by this process) finished `epoch` (0: it starts)."""
        self.current[number] = epoch
        self.refresh()

    def refresh(self) -> None:
        """Read the study again (another worker may have finished trials) and redraw."""
        if not self.enabled:
            return
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        ended = [t for t in heads(trials) if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)]
        self._n = sum(map(finished, ended))  # as pipelines/engine/study.py progress() counts
        for t in ended:
            self.current.pop(t.number, None)
        running = [t for t in trials if t.state == TrialState.RUNNING]
        done_epochs = self._n * self.epochs + sum(
            self.current.get(t.number, len(t.intermediate_values)) for t in running)
        if self.base is None:
            self.base = done_epochs
        elapsed, trained = time.monotonic() - self.start, done_epochs - self.base
        left = max(0, self.total * self.epochs - done_epochs)
        self.eta_at = time.monotonic() + elapsed / trained * left if trained > 0 else None
        self._running = [(t.number, self._label(t)) for t in running]
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        self._best = ""
        if complete:
            pick = min if self.study.direction.name == "MINIMIZE" else max
            best = pick(complete, key=lambda t: t.value)
            self._best = f"{num(best.value)} (#{best.number} {self._label(best)})"
        self._draw()
        self._announce(ended)

    def _announce(self, ended) -> None:
        """Without a bar: one line per trial that finished since the last refresh."""
        if self.bar is not None:
            return
        fresh = [t for t in ended if self.announced is not None and t.number not in self.announced]
        self.announced = {t.number for t in ended}
        for t in fresh:
            value = f" {self.study.metric_names[0] if self.study.metric_names else 'value'} {num(t.value)}" \
                if t.value is not None else ""
            say(f"trial {t.number} ({self._label(t)}) {t.state.name}{value}; {self._n}/{self.total} trials done"
                + (f"; best {self._best}" if self._best else "") + (f"; sweep ETA {self._eta}" if self._eta else ""))

    @property
    def _eta(self) -> str:
        return duration(max(0.0, self.eta_at - time.monotonic())) if self.eta_at is not None else ""

    def _now(self) -> str:
        """The trials running, with the epochs of this process's and what it measures after them."""
        out = []
        for number, name in self._running:
            if number in self.current:
                epochs = self.current[number]
                measuring = self._phase_text() if epochs >= self.epochs else ""
                name += f" ({epochs}/{self.epochs} epochs{measuring})"
            out.append(name)
        return ", ".join(out)

    def _draw(self) -> None:
        if self.bar is None:
            return
        now = self._now()
        # all epochs trained, only measurements left: an epoch-based ETA would say 0:00 for minutes
        measuring = self._phase is not None and self._eta == "0:00"
        parts = [f"now {now}" if now else "", f"best {self._best}" if self._best else "",
                 f"sweep ETA {self._eta}" if self._eta and not measuring else ""]
        self.bar.n = self._n
        self.bar.set_postfix_str(" · ".join(p for p in parts if p), refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self._stop.set()
        unlisten(self._on_phase)
        if self.bar is not None:
            self.refresh()
            self.bar.close()
