"""Locks that serialise the few steps of a sweep that must not interleave across workers.

    with study_lock(storage_url, "balance"):
        ...  # recover dead trials, enqueue missing points: never two workers at once

Optuna's storages give one atomic step, a trial's WAITING -> RUNNING claim; recovery (fail a dead
trial, enqueue its configuration again, finish its MLflow run) is several steps, and two workers
doing it at once, or one killed halfway, would lose or repeat a point. Recovery is therefore
written as "make the study's state right" (idempotent: a second pass repairs what a killed first
pass left) and runs under this lock, so that passes never overlap. Neither Optuna nor MLflow
offers a study lock, so this module is ours, built on the `filelock` package and PostgreSQL's own:

- SQLite (one host): `filelock.FileLock` on a file beside the database (an exclusive `flock` on
  Unix), released by the kernel when its process dies, even by SIGKILL.
- PostgreSQL (many hosts): a session-level advisory lock (`pg_advisory_lock`), released by the
  server when the connection closes, which a killed process's kernel does at once.
- Other databases: no lock; recovery there relies on Optuna's atomic state changes alone.

`create_sqlite` serialises the creation of a new SQLite store (Optuna's or MLflow's) with `file_lock`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: str | Path):
    """An exclusive lock on `path` (created if missing) for this block; blocks until free."""
    from filelock import FileLock

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # preserved: a lock file removed while another process waits on it would let two hold "the" lock
    with FileLock(str(path), timeout=-1, is_singleton=False, preserve_lock_file=True):
        yield


def _advisory_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock."""
    return int.from_bytes(hashlib.sha1(f"vae-balance:{name}".encode()).digest()[:8], "big", signed=True)


@contextmanager
def study_lock(url: str, study: str):
    """Hold the study's recovery lock for this block (see the module docstring)."""
    from pipelines.common.stores import sqlite_path

    db = sqlite_path(url)
    if db is not None:
        with file_lock(db.with_name(f"{db.name}.{study}.lock")):
            yield
        return
    if url.startswith("postgresql"):
        import sqlalchemy

        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool,
                                          connect_args={"connect_timeout": 5})
        key = _advisory_key(study)
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
        engine.dispose()
        return
    yield


def create_sqlite(url: str, init: Callable[[str], object]) -> None:
    """Create a new SQLite store whole or not at all: `init(tmp_url)` makes its tables in a
    temporary file, which is renamed into place. MLflow's and Optuna's schema migrations are not
    atomic in SQLite: a process killed while making a new file left a half-made schema that every
    later start tripped over ("table _alembic_tmp_tags already exists"), and two processes making
    it at once collided ("duplicate column"). One process at a time, under a file lock."""
    from pipelines.common.stores import sqlite_path

    path = sqlite_path(url)
    if path is None or path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path.with_name(f"{path.name}.init.lock")):
        if path.exists():
            return  # made by another process meanwhile
        for stale in path.parent.glob(f".{path.name}.tmp*"):  # left by a process killed here
            stale.unlink(missing_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        init(f"sqlite:///{tmp}")
        os.replace(tmp, path)
