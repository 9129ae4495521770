"""Database URLs (the Optuna storage, an MLflow tracking store), checked before anything is created.

    check_database("sqlite:///mlruns/optuna.db", "Optuna storage", StorageError)

Left to themselves, the libraries find a bad URL late and loudly: MLflow creates an empty SQLite
file on the way, or retries a refused PostgreSQL connection for about two minutes and then prints
a long traceback. Here an unknown scheme, a missing driver, a corrupt SQLite file or a server that
does not answer within CONNECT_TIMEOUT_S is one line, and nothing has been written yet.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from vae.errors import first_line
from vae.paths import check_folder
from vae.redact import redact

KINDS = {"Optuna storage": "optuna", "tracking store": "mlflow"}  # what -> the tables it must hold
DATABASES = ("sqlite", "postgresql", "mysql", "mariadb", "mssql", "oracle")
CONNECT_TIMEOUT_S = 5


def scheme(url: str) -> str:
    """The database or protocol of a URL: `postgresql` for postgresql+psycopg://…, "" for a plain path."""
    return url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""


def is_database(url: str) -> bool:
    return scheme(url) in DATABASES


def connect_args(url: str) -> dict:
    """Driver arguments that make an unreachable server fail within seconds."""
    return {"connect_timeout": CONNECT_TIMEOUT_S} if scheme(url) in ("postgresql", "mysql", "mariadb") else {}


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory SQLite)."""
    if scheme(url) != "sqlite":
        return None
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    return Path(database) if database and database != ":memory:" else None


def create_parent(url: str) -> None:
    """Make the folder a SQLite file goes into (mlruns/ for the defaults), once it is checked."""
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def create_sqlite(url: str, init: Callable[[str], object]) -> None:
    """Create a new SQLite store whole or not at all: `init(tmp_url)` makes its tables in a
    temporary file, which is renamed into place. MLflow's and Optuna's schema migrations are not
    atomic in SQLite: a process killed while making a new file left a half-made schema that every
    later start tripped over ("table _alembic_tmp_tags already exists"), and two processes making
    it at once collided ("duplicate column"). One process at a time, under a file lock."""
    from pipelines.locks import file_lock

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


def check_database(url: str, what: str, error: type[Exception], create: bool = True) -> None:
    """Raise `error` (one line, password hidden) unless `url` is a database we can use; with
    create=False a SQLite file must exist already (read-only commands create nothing). A store of
    the other kind (an MLflow database given as the Optuna storage, or the reverse) is refused,
    read only (pipelines/stores.py)."""
    from sqlalchemy.engine import make_url

    shown = redact(url)
    try:
        parsed = make_url(url)
        parsed.get_dialect()
    except Exception as e:  # ArgumentError, NoSuchModuleError ("Can't load plugin")
        raise error(f"cannot use {what} {shown}: not a database URL we can use ({first_line(e)}); "
                    f"e.g. sqlite:///PATH or postgresql://USER@HOST/DB") from None
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite(sqlite_path(url), what, shown, error, create)
    else:
        _check_server(parsed, connect_args(url), what, shown, error)
    if what in KINDS:
        from pipelines.stores import check_kind

        check_kind(url, KINDS[what], error)


def _check_sqlite(path: Path | None, what: str, shown: str, error, create: bool) -> None:
    import sqlite3

    if path is None:
        return
    if path.is_dir():
        raise error(f"cannot use {what} {shown}: {path} is a folder, not a database file")
    if not path.exists():
        if not create:
            raise error(f"no {what} at {shown}; run `vae sweep` first")
        check_folder(path.parent, f"{what} {shown}: the folder")
        return
    try:  # read-only: a check writes nothing
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as e:
        raise error(f"cannot use {what} {shown}: {path}: {first_line(e)}") from None


def _check_server(parsed, args: dict, what: str, shown: str, error) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    try:
        engine = create_engine(parsed, poolclass=NullPool, connect_args=args)
    except ModuleNotFoundError as e:
        raise error(f"cannot use {what} {shown}: {e}; install its driver (PostgreSQL: "
                    f"pip install 'vae-balance[postgres]')") from None
    try:
        with engine.connect():
            pass
    except Exception as e:  # refused, timed out, bad password, no such database
        raise error(f"cannot use {what} {shown}: {redact(first_line(e))}") from None
    finally:
        engine.dispose()
