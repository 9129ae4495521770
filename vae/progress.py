"""What the terminal shows while a run works: a line (or a bar) per slow phase, the epoch bar.

    from vae.progress import EpochBar, phase, say
    with phase(f"decoding {n:,} images", total=n) as bar:   # silent unless it takes > DELAY_S
        ...; bar.update(1)

On a terminal, tqdm draws the bars (on stderr) and lines go above them. When stderr is not a
terminal (a log file, CI), a bar would write every frame with a carriage return, so the same calls
print plain lines instead: one per slow phase, one per epoch, nothing in between. tqdm alone
cannot do that switch, which is why this small module exists; it holds every message format
(numbers with 4 significant digits, the `z=100 β=0.01 seed 0` label) so that the sweep's trial bar
(pipelines/engine/trial_bar.py) says things the same way.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager

DELAY_S = 2.0
"""A phase shorter than this prints nothing."""
UPDATES_PER_EPOCH = 10
"""The epoch bar's running losses refresh at least this often per epoch (one host sync each)."""


def interactive() -> bool:
    """Bars only on a terminal; plain lines otherwise."""
    return getattr(sys.stderr, "isatty", lambda: False)()


def num(value: float) -> str:
    """4 significant digits: 0.02345, 1.237, 1.2e-05."""
    return f"{value:.4g}"


def label(z_dim, training: str, beta=None, seed=0, betas=None) -> str:
    """The configuration a run trains, as the bars name it (`training`: one of config.TRAININGS):
    `z=100 β=0.01 seed 0`, `z=100 σ-VAE seed 0`, a beta-conditional run `z=100 β-conditional
    (0.005–0.1) seed 0` (without its range where the caller has none)."""
    if training == "conditional":
        balance = f"β-conditional ({min(betas):g}–{max(betas):g})" if betas else "β-conditional"
    elif training == "sigma-vae":
        balance = "σ-VAE"
    else:
        balance = f"β={beta:g}"
    return f"z={z_dim} {balance} seed {seed}"


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def say(line: str) -> None:
    """One line on stderr, above any bar."""
    if interactive():
        from tqdm import tqdm

        tqdm.write(line, file=sys.stderr)
    else:  # one write: the tickers of nested phases may print at the same moment
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


class _Silent:
    """A phase's counter where no bar is drawn: listeners (listen) still see how far it is."""

    def __init__(self, total: int | None = None):
        self.n, self.total = 0, total

    def update(self, n: int = 1) -> None:
        self.n += n


_listeners: list = []
_phases: list[tuple[str, object]] = []  # the phases now running, innermost last: (message, counter)


def listen(fn) -> None:
    """`fn(current)` whenever a phase starts or ends: current is (message, counter with .n and
    .total) of the innermost phase running, or None. A sweep's trial bar shows it (what a trial is
    doing after its last epoch: minutes of FID)."""
    _listeners.append(fn)


def unlisten(fn) -> None:
    if fn in _listeners:
        _listeners.remove(fn)


def current_phase() -> tuple[str, object] | None:
    return _phases[-1] if _phases else None


def _notify() -> None:
    for fn in list(_listeners):
        try:
            fn(current_phase())
        except Exception:  # a display must never stop a measurement
            pass


@contextmanager
def _tracked(message: str, counter):
    _phases.append((message, counter))
    _notify()
    try:
        yield counter
    finally:
        _phases.remove((message, counter))
        _notify()


@contextmanager
def phase(message: str, total: int | None = None, enabled: bool = True, unit: str = "it"):
    """Announce a step that may take seconds: nothing if it ends within DELAY_S; else a bar of
    `total` items on a terminal, or a line when it starts and one with its time when it ends."""
    if not enabled:
        yield _Silent(total)
        return
    start = time.perf_counter()
    if total is not None and interactive():
        from tqdm import tqdm

        with tqdm(total=total, desc=message, delay=DELAY_S, leave=True, file=sys.stderr,
                  dynamic_ncols=True, unit=unit) as bar, _tracked(message, bar):
            yield bar
        return
    shown = threading.Event()
    done = threading.Event()

    def announce():
        if not done.wait(DELAY_S):
            shown.set()
            say(f"{message} …")

    ticker = threading.Thread(target=announce, daemon=True)
    ticker.start()
    try:
        with _tracked(message, _Silent(total)) as counter:
            yield counter
    finally:
        done.set()
        ticker.join()
        if shown.is_set():
            say(f"{message}: done in {duration(time.perf_counter() - start)}")


class EpochBar:
    """One epoch: a bar of batches with the running losses on a terminal; either way, one line
    with the epoch's train and test losses when it ends (`end`)."""

    def __init__(self, name: str, epoch: int, epochs: int, steps: int, enabled: bool = True):
        self.name, self.epoch, self.epochs, self.steps = name, epoch, epochs, steps
        self.enabled = enabled
        self.every = max(1, steps // UPDATES_PER_EPOCH)
        self.bar = None
        if enabled and interactive():
            from tqdm import tqdm

            self.bar = tqdm(total=steps, desc=f"{name} epoch {epoch}/{epochs}", leave=False, unit="batch",
                            file=sys.stderr, dynamic_ncols=True)

    def wants_losses(self, step: int) -> bool:
        """Whether batch `step` (0-based) should report the running losses: every 10% and the last."""
        return self.bar is not None and (step % self.every == self.every - 1 or step == self.steps - 1)

    def update(self, running: dict | None = None) -> None:
        if self.bar is None:
            return
        if running is not None:
            self.bar.set_postfix_str(f"R-loss {num(running['r_loss'])}  KLD-loss {num(running['kld_loss'])}",
                                     refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def end(self, train: dict, val: dict, seconds: float) -> None:
        """The epoch's line: training and validation losses (the test split is for the final report),
        and the validation −ELBO in bits/dim, what a sweep's default objective and the verdict compare
        (the loss R + β·KLD moves with beta by construction)."""
        self.close()
        if self.enabled:
            elbo = f"  val −ELBO {num(val['elbo_bpd'])} bits/dim" if val.get("elbo_bpd") is not None else ""
            say(f"{self.name} epoch {self.epoch}/{self.epochs}: train loss {num(train['loss'])} "
                f"(R {num(train['r_loss'])}, KLD {num(train['kld_loss'])})  val loss {num(val['loss'])} "
                f"(R {num(val['r_loss'])}, KLD {num(val['kld_loss'])}){elbo}  {seconds:.1f} s")
