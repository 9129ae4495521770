"""Where a study's MLflow artifacts go: one location for every host, never a worker's own disk.

    location = resolve_location("/shared/mlartifacts")     # file:///shared/mlartifacts
    check_location("postgresql://vae@db/mlflow", None)     # refused: one line naming --artifact-location
    experiment_location(uri, location, "balance")          # file:///shared/mlartifacts/balance

MLflow keeps artifacts where the experiment's `artifact_location` says, fixed when the experiment
is created. A tracking server started with `--artifacts-destination` proxies them (the runs'
`mlflow-artifacts:` URIs), so every worker writes to the server; a database tracking URI has no
server, and MLflow's default then is a folder relative to each worker's working directory, which
scatters one study's images and checkpoints over the hosts. So: SQLite (one host by nature) keeps
its artifacts beside the database file, as before; any other database needs a location the user
names (`--artifact-location`, env VAE_ARTIFACT_LOCATION: a shared folder or an object store URI
such as s3://bucket/prefix) or the sweep is refused before anything is written.
"""

from __future__ import annotations

import os
from pathlib import Path

from vae.redact import redact

ENV = "VAE_ARTIFACT_LOCATION"
OPTION = "--artifact-location"


def resolve_location(value: str | None) -> str | None:
    """The named location as a URI (a plain path made absolute: file:///...), or None."""
    value = value or os.environ.get(ENV) or None
    if value is None:
        return None
    if "://" in value or value.startswith(("file:", "mlflow-artifacts:")):
        return value.rstrip("/")
    return Path(value).expanduser().resolve().as_uri()


def needs_location(uri: str) -> bool:
    """A database tracking store other than SQLite: several hosts share it, and it keeps no artifacts."""
    from pipelines.common.stores import is_database, scheme

    return is_database(uri) and scheme(uri) != "sqlite"


# the Python package each artifact store's MLflow client needs (mlflow/store/artifact/*)
CLIENTS = {"s3": ("boto3", "boto3"), "r2": ("boto3", "boto3"), "b2": ("boto3", "boto3"),
           "gs": ("google.cloud.storage", "google-cloud-storage"), "wasbs": ("azure.storage.blob", "azure-storage-blob"),
           "abfss": ("azure.storage.filedatalake", "azure-storage-file-datalake"), "sftp": ("pysftp", "pysftp"),
           "hdfs": ("pyarrow", "pyarrow"), "viewfs": ("pyarrow", "pyarrow")}  # scheme: (module, pip package)
INTERNAL = ("runs", "models", "http", "https")  # MLflow's own URIs and plain web servers: no artifact root


def _schemes() -> list[str]:
    from mlflow.store.artifact.artifact_repository_registry import _artifact_repository_registry

    return sorted(k for k in _artifact_repository_registry._registry if k and k not in INTERNAL)


def check_usable(location: str, error: type[Exception], what: str = OPTION) -> None:
    """A named location MLflow can write to, checked before anything is created: its scheme is one
    of MLflow's artifact stores, that store's client package is installed, and it carries no
    credentials (MLflow would store the URI, password and all, with every run: they belong in the
    client's own configuration)."""
    from urllib.parse import urlparse

    parts = urlparse(location)
    if parts.password or (parts.username and parts.scheme not in ("sftp", "ftp")):
        raise error(f"{what} {redact(location)}: carries credentials, which MLflow would store in clear with every "
                    "run; give them to the store's client instead (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                    "~/.ssh/config, ...)")
    if parts.scheme not in _schemes():
        raise error(f"{what} {redact(location)}: MLflow has no artifact store for {parts.scheme!r}:// "
                    f"(it has {', '.join(s + '://' for s in _schemes())} and plain paths)")
    module, package = CLIENTS.get(parts.scheme, (None, None))
    if module and not _installed(module):
        raise error(f"{what} {redact(location)}: needs the {package} package for {parts.scheme}:// "
                    f"(pip install {package}), which is not installed")


def _installed(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


def check_location(uri: str, location: str | None, error: type[Exception]) -> None:
    """Refuse (one line) a shared database tracking store without a named artifact location, and a
    named location MLflow cannot use (check_usable); check that a named local folder can be written."""
    if location is None and needs_location(uri):
        raise error(f"tracking store {redact(uri)} keeps no artifacts: each host would write its images and "
                    f"checkpoints to its own ./mlruns/artifacts; name one location every host reaches with "
                    f"{OPTION} PATH_OR_URI (env {ENV}; a shared folder or s3://BUCKET/PREFIX), or track through "
                    "an MLflow server (--tracking-uri http://HOST:5000, started with --artifacts-destination)")
    if location is not None:
        check_usable(location, error)
    if location is not None and location.startswith("file:"):
        from vae.paths import check_folder

        check_folder(Path(_file_path(location)), OPTION)


def _file_path(uri: str) -> str:
    from urllib.parse import unquote, urlparse

    return unquote(urlparse(uri).path)


def experiment_location(uri: str, location: str | None, study: str, default_root: Path) -> str | None:
    """The artifact_location of a new experiment: `location`/study where named; beside a SQLite
    store (`default_root`, mlruns/artifacts) otherwise; None (MLflow's choice: the tracking
    server's proxied store) for a server."""
    from pipelines.common.stores import is_database

    if location is not None:
        return f"{location}/{study}"
    if is_database(uri):
        return (default_root / study).resolve().as_uri()
    return None


def shared(uri: str, location: str | None) -> bool:
    """Whether the artifacts reach other hosts: a tracking server, or a location the user named.
    (A SQLite store's artifacts are on this host, beside the run folders.)"""
    from pipelines.common.stores import scheme

    return location is not None or scheme(uri) in ("http", "https", "databricks")
