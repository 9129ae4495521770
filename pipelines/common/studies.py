"""The one read-only way to an existing Optuna study, and where a study stands.

    with existing_study("quick", storage) as study:   # None when the storage or the study is not there
        ...
    study = load_existing("quick", storage)           # StorageError naming the studies there instead
    progress(study, total)                            # configurations finished, left, failed, running

Nothing here creates a storage, a table or a study: `vae status`, `vae report`, `vae export` and
the verdict's publication read through these; a sweep creates its study in pipelines/engine/study.py.
The store messages ("cannot use Optuna storage …", "no study named …") are written here once.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager

from pipelines.common.stores import DEFAULTS, check_database, check_kind, connect_args, sqlite_path
from pipelines.common.trials import fail_kind, finished, heads
from vae.errors import VAEError, first_line
from vae.redact import redact

DEFAULT_STORAGE = DEFAULTS["optuna"]


class StorageError(VAEError):
    """The Optuna storage cannot be reached or used."""


def storage_url(url: str | None) -> str:
    """--storage, else env VAE_STORAGE, else the default SQLite file."""
    return url or os.environ.get("VAE_STORAGE") or DEFAULT_STORAGE


def unusable(url: str, e: BaseException) -> StorageError:
    """'cannot use Optuna storage URL: why', the password hidden."""
    return StorageError(f"cannot use Optuna storage {redact(url)}: {redact(first_line(e))[:300]}")


def no_study(name: str, where: str, names: list[str], error: type[Exception] = StorageError) -> Exception:
    """'no study named X in STORE (studies: a, b)': one wording for the Optuna and the MLflow side."""
    return error(f"no study named {name!r} in {redact(where)} (studies: {', '.join(names) or 'none'})")


def quiet_optuna() -> None:
    """Our own progress bar and messages say what matters; Optuna's per-trial logs and
    warnings about the experimental heartbeat API would drown them."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # we record heartbeats ourselves (pipelines/engine/lease.py), with ask/tell instead of Study.optimize
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


def check_storage(storage: str | None) -> None:
    """The Optuna storage a read-only command may write its verdict to is not an MLflow store."""
    check_kind(storage_url(storage), "optuna", StorageError)


def existing_storage(storage: str | None):
    """(url, store) of a storage that must exist already: nothing is created."""
    import optuna

    quiet_optuna()
    url = storage_url(storage)
    check_database(url, "Optuna storage", StorageError, create=False)  # read-only: creates nothing
    try:
        return url, optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": connect_args(url)})
    except Exception as e:
        raise unusable(url, e) from None


def study_exists(storage: str | None, name: str) -> bool:
    """Whether the storage holds a study of this name, read without creating anything (no file,
    no table): a missing SQLite file or a database without Optuna's tables holds none."""
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.pool import NullPool

    url = storage_url(storage)
    path = sqlite_path(url)
    if url.startswith("sqlite") and (path is None or not path.exists()):
        return False
    check_database(url, "Optuna storage", StorageError, create=False)
    # read-only: a check writes nothing
    engine = (create_engine(f"sqlite:///{path.resolve().as_uri()}?mode=ro&uri=true", poolclass=NullPool) if path
              else create_engine(url, poolclass=NullPool, connect_args=connect_args(url)))
    try:
        if not inspect(engine).has_table("studies"):
            return False
        with engine.connect() as conn:
            return conn.execute(text("SELECT 1 FROM studies WHERE study_name = :n"), {"n": name}).first() is not None
    except Exception as e:
        raise unusable(url, e) from None
    finally:
        engine.dispose()


def study_names(storage: str | None = None) -> list[str]:
    """Every study in the storage, oldest first (`vae status` without --study)."""
    import optuna

    _, store = existing_storage(storage)
    return [s.study_name for s in optuna.get_all_study_summaries(store, include_best_trial=False)]


def load_existing(name: str, storage: str | None, error: type[Exception] = StorageError):
    """The Optuna study `name` from a storage that must exist; `error` names the studies there when
    it holds no such study."""
    import optuna

    url, store = existing_storage(storage)
    try:
        return optuna.load_study(study_name=name, storage=store)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(store, include_best_trial=False)]
        raise no_study(name, url, names, error) from None
    except Exception as e:
        raise unusable(url, e) from None


@contextmanager
def existing_study(name: str, storage: str | None):
    """The Optuna study, or None when the storage or the study does not exist (nothing is created);
    its connections are closed afterwards (a sweep's workers share a server's)."""
    import optuna

    if not study_exists(storage, name):
        yield None
        return
    _, store = existing_storage(storage)
    try:
        yield optuna.load_study(study_name=name, storage=store)
    finally:
        store.engine.dispose()


def progress(study, total: int) -> dict:
    """Where a study stands, counting configurations (chains of retries), not trials: the one
    definition behind `vae status`, the exit code of `vae sweep` and its progress bar."""
    trials = study.get_trials(deepcopy=False)
    last = heads(trials)
    states = [t.state.name for t in last]
    kinds = [fail_kind(t) for t in last if t.state.name == "FAIL"]
    out = {"total": total, "started": len(last),
           "complete": states.count("COMPLETE"), "pruned": states.count("PRUNED"),
           "diverged": kinds.count("diverged"), "errors": kinds.count("error"), "gave_up": kinds.count("gave-up"),
           "running": states.count("RUNNING"), "waiting": states.count("WAITING"),
           "finished": sum(map(finished, last)),
           "unfinished": [t.number for t in last if not finished(t)],
           "given_up": [t.number for t in last if t.state.name == "FAIL" and fail_kind(t) == "gave-up"]}
    out["left"] = max(0, total - out["finished"])
    out["done"] = out["left"] == 0
    return out
