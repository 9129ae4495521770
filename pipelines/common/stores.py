"""The stores a sweep uses (the Optuna storage, an MLflow tracking store): what a database URL
names, whether it can be used, and which kind of store it holds; all checked before anything is created.

    check_database("sqlite:///mlruns/optuna.db", "Optuna storage", StorageError)

Left to themselves, the libraries find a bad URL late and loudly: MLflow creates an empty SQLite
file on the way, or retries a refused PostgreSQL connection for about two minutes and then prints
a long traceback. Here an unknown scheme, a missing driver, a corrupt SQLite file or a server that
does not answer within CONNECT_TIMEOUT_S is one line, and nothing has been written yet.

Which kind of store a database is, read before either library opens it:

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


def check_database(url: str, what: str, error: type[Exception], create: bool = True) -> None:
    """Raise `error` (one line, password hidden) unless `url` is a database we can use; with
    create=False a SQLite file must exist already (read-only commands create nothing). A store of
    the other kind (an MLflow database given as the Optuna storage, or the reverse) is refused,
    read only (`check_kind` below)."""
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

OPTUNA_TABLES = {"studies", "trials", "version_info"}
MLFLOW_TABLES = {"experiments", "runs", "registered_models", "metrics"}
NAMES = {"optuna": "an Optuna storage", "mlflow": "an MLflow tracking store"}
FLAGS = {"optuna": "--storage (or VAE_STORAGE)", "mlflow": "--tracking-uri (or MLFLOW_TRACKING_URI)"}
DEFAULTS = {"optuna": "sqlite:///mlruns/optuna.db", "mlflow": "sqlite:///mlruns/mlflow.db"}


def tables(url: str) -> set[str] | None:
    """The table names of a database URL, read only; None when it cannot be read (missing file,
    server down: the caller's own check says so) or is not a database."""
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


def absolute_uri(uri: str) -> str:
    """A SQLite URI with an absolute path (sqlite:////home/u/project/mlruns/mlflow.db): what a snippet
    needs to work from any folder; other URIs as they are."""
    path = sqlite_path(uri)
    return f"sqlite:///{path.resolve()}" if path is not None else uri
