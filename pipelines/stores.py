"""Which kind of store a database is, read before either library opens it.

    store_kind("sqlite:///mlruns/mlflow.db")   # "mlflow"
    check_kind("sqlite:///mlruns/mlflow.db", "optuna", StorageError)   # refused: one line, exit 2

Optuna and MLflow both keep their schema with alembic, and both create (or migrate) their tables
in whatever database they are given: a swapped --storage / --tracking-uri used to leave a dozen
Optuna tables inside the MLflow database (or MLflow's inside Optuna's) before failing with a
message about schema versions. A store is recognised by its tables, read without writing
(SQLite opened with mode=ro; a server through a read-only inspect), and the wrong kind is refused
before anything touches it. A database with neither kind's tables (new, or shared with other
applications on a server) is left to the caller.
"""

from __future__ import annotations

from contextlib import closing

from vae.redact import redact

OPTUNA_TABLES = {"studies", "trials", "version_info"}
MLFLOW_TABLES = {"experiments", "runs", "registered_models", "metrics"}
NAMES = {"optuna": "an Optuna storage", "mlflow": "an MLflow tracking store"}
FLAGS = {"optuna": "--storage (or VAE_STORAGE)", "mlflow": "--tracking-uri (or MLFLOW_TRACKING_URI)"}
DEFAULTS = {"optuna": "sqlite:///mlruns/optuna.db", "mlflow": "sqlite:///mlruns/mlflow.db"}


def tables(url: str) -> set[str] | None:
    """The table names of a database URL, read only; None when it cannot be read (missing file,
    server down: the caller's own check says so) or is not a database."""
    from pipelines.database import is_database, sqlite_path

    if not is_database(url):
        return None
    path = sqlite_path(url)
    if url.lower().startswith("sqlite"):
        return _sqlite_tables(path) if path is not None else None
    return _server_tables(url)


def _sqlite_tables(path) -> set[str] | None:
    import sqlite3

    if not path.is_file():
        return None
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error:
        return None


def _server_tables(url: str) -> set[str] | None:
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.pool import NullPool

    from pipelines.database import connect_args

    try:
        engine = create_engine(url, poolclass=NullPool, connect_args=connect_args(url))
    except Exception:
        return None
    try:
        return set(inspect(engine).get_table_names())  # reads the catalogue only
    except Exception:
        return None
    finally:
        engine.dispose()


def store_kind(url: str) -> str | None:
    """"optuna", "mlflow", or None (neither kind's tables, or unreadable)."""
    found = tables(url)
    if not found:
        return None
    if OPTUNA_TABLES <= found:
        return "optuna"
    if {"experiments", "runs"} <= found and found & MLFLOW_TABLES:
        return "mlflow"
    return None


def check_kind(url: str, want: str, error: type[Exception]) -> None:
    """Raise `error` (one line) when `url` is the other kind of store than `want`."""
    found = store_kind(url)
    if found is None or found == want:
        return
    shown = redact(url)
    raise error(f"{shown} is {NAMES[found]}, not {NAMES[want]}: pass it as {FLAGS[found].split()[0]}; "
                f"{FLAGS[want]} wants {NAMES[want]} (default {DEFAULTS[want]}); nothing was written")


def check_storage(storage: str | None) -> None:
    """The Optuna storage a read-only command may write its verdict to is not an MLflow store."""
    from pipelines.study import StorageError, storage_url

    check_kind(storage_url(storage), "optuna", StorageError)


def check_distinct(storage: str, tracking_uri: str, error: type[Exception]) -> None:
    """Each store is of its own kind, and one database cannot be both: their alembic version
    tables collide. Cheap, read only: a sweep checks this first."""
    from pipelines.database import is_database, sqlite_path
    from pipelines.tracking import TrackingError

    check_kind(storage, "optuna", error)
    check_kind(tracking_uri, "mlflow", TrackingError)
    if not (is_database(storage) and is_database(tracking_uri)):
        return
    a, b = sqlite_path(storage), sqlite_path(tracking_uri)
    same = (a is not None and b is not None and a.resolve() == b.resolve()) or storage == tracking_uri
    if same:
        raise error(f"--storage and --tracking-uri name the same database {redact(storage)}: Optuna and MLflow "
                    f"each need their own (defaults {DEFAULTS['optuna']} and {DEFAULTS['mlflow']})")
