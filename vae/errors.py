"""Errors a user can cause and fix: the CLI prints their message on one line and exits 2."""


class VAEError(Exception):
    """Base class: bad input, unusable data, a diverged run. Never a bug in vae-balance."""


class ConfigError(VAEError):
    """A setting is out of range or of the wrong kind."""


class DataError(VAEError):
    """A dataset cannot be found, downloaded or decoded."""


class CheckpointError(VAEError):
    """A checkpoint or run folder is missing or unreadable."""


class TrainingDiverged(VAEError):
    """The loss became NaN or infinite."""

    def __init__(self, epoch: int, detail: str = "loss is NaN or infinite"):
        super().__init__(f"training diverged in epoch {epoch}: {detail}")
        self.epoch = epoch


class MeasurementFailed(VAEError):
    """The end-of-training measurements raised after the model trained: its checkpoint and
    metrics.json (the epochs) are on disk; `history` is what the epochs measured."""

    def __init__(self, out, history: list[dict], cause: BaseException):
        super().__init__(f"the end-of-training measurements failed ({type(cause).__name__}: {first_line(cause)[:300]}); "
                         f"the trained model is saved in {out} (checkpoint.pt, metrics.json with epochs "
                         f"1-{history[-1]['epoch']}, traceback.txt); `vae evaluate {out}` measures it again")
        self.out, self.history, self.cause = out, history, cause


class DiskFull(VAEError):
    """A file could not be written for want of space: the path, what it needed (where known) and
    what is free, in one line. What was there before (an earlier checkpoint) is intact."""

    def __init__(self, path, free: int, needed: int | None = None):
        need = f"{_size(needed)} needed at least, " if needed else ""
        super().__init__(f"no space left to write {path}: {need}{_size(free)} free there; free some space or "
                         "write elsewhere (what was there before is intact)")
        self.path, self.free, self.needed = path, free, needed


def _size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (libraries explain over many), or its type's name."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
