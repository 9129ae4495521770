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


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (libraries explain over many), or its type's name."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
