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
    from pipelines.engine.stores import is_database, scheme

    return is_database(uri) and scheme(uri) != "sqlite"


def check_location(uri: str, location: str | None, error: type[Exception]) -> None:
    """Refuse (one line) a shared database tracking store without a named artifact location;
    check that a named local folder can be written."""
    if location is None and needs_location(uri):
        raise error(f"tracking store {redact(uri)} keeps no artifacts: each host would write its images and "
                    f"checkpoints to its own ./mlruns/artifacts; name one location every host reaches with "
                    f"{OPTION} PATH_OR_URI (env {ENV}; a shared folder or s3://BUCKET/PREFIX), or track through "
                    "an MLflow server (--tracking-uri http://HOST:5000, started with --artifacts-destination)")
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
    from pipelines.engine.stores import is_database

    if location is not None:
        return f"{location}/{study}"
    if is_database(uri):
        return (default_root / study).resolve().as_uri()
    return None


def shared(uri: str, location: str | None) -> bool:
    """Whether the artifacts reach other hosts: a tracking server, or a location the user named.
    (A SQLite store's artifacts are on this host, beside the run folders.)"""
    from pipelines.engine.stores import scheme

    return location is not None or scheme(uri) in ("http", "https", "databricks")
