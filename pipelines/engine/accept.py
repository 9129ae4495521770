"""Is a sweep accepted? Every check, cheapest first, before anything is written.

    check_inputs(spec, storage, tracking_uri, data_cache)   # raises one line (VAEError), or returns

Order: the stores' kinds (read only), the run folder root, the device, the Optuna storage and the
tracking store (each reached, none created), where a shared tracking database keeps its artifacts
(pipelines/tracking/artifacts.py), and only then the data, whose first decode writes
the decoded-data cache. A rejected command used to leave that cache behind (data was decoded
first); now nothing is written (no cache, no store, no study) until every check has passed.
"""

from __future__ import annotations

import os
from pathlib import Path


def check_inputs(spec, storage: str | None, tracking_uri: str | None, data_cache: dict,
                 artifact_location: str | None = None) -> None:
    """`data_cache`: the sweep's decoded data (pipelines/engine/trial.py data_of), filled last;
    `artifact_location`: --artifact-location (pipelines/tracking/artifacts.py)."""
    from dataclasses import replace

    from pipelines.common.stores import check_database, is_database, scheme
    from pipelines.common.studies import StorageError, storage_url
    from pipelines.engine.run_folders import RUNS_DIR_ENV
    from pipelines.tracking.artifacts import check_location, resolve_location
    from pipelines.tracking.runs import Tracker, TrackingError, resolve_uri
    from vae.paths import check_folder
    from vae.runtime import pick_device

    url, uri = storage_url(storage), resolve_uri(tracking_uri)
    check_distinct(url, uri, StorageError)
    check_folder(Path(os.environ.get(RUNS_DIR_ENV, "runs")), RUNS_DIR_ENV if os.environ.get(RUNS_DIR_ENV) else "runs folder")
    first = spec.train
    pick_device(first.device)
    check_database(url, "Optuna storage", StorageError)
    if is_database(uri):
        check_database(uri, "tracking store", TrackingError)  # creates nothing: Tracker makes it later
    elif scheme(uri) not in ("", "file", "databricks"):  # a server (one request, no file here) or unknown
        Tracker(uri).check()
    check_location(uri, resolve_location(artifact_location), TrackingError)  # a shared database: one artifact store
    from pipelines.engine.trial import data_of

    data_of(data_cache, replace(first, seed=spec.search.seed[0]))


def check_distinct(storage: str, tracking_uri: str, error: type[Exception]) -> None:
    """Each store is of its own kind, and one database cannot be both: their alembic version
    tables collide. Cheap, read only: a sweep checks this first."""
    from pipelines.common.stores import DEFAULTS, check_kind, is_database, sqlite_path
    from pipelines.tracking.runs import TrackingError
    from vae.redact import redact

    check_kind(storage, "optuna", error)
    check_kind(tracking_uri, "mlflow", TrackingError)
    if not (is_database(storage) and is_database(tracking_uri)):
        return
    a, b = sqlite_path(storage), sqlite_path(tracking_uri)
    same = (a is not None and b is not None and a.resolve() == b.resolve()) or storage == tracking_uri
    if same:
        raise error(f"--storage and --tracking-uri name the same database {redact(storage)}: Optuna and MLflow "
                    f"each need their own (defaults {DEFAULTS['optuna']} and {DEFAULTS['mlflow']})")


def stores_note(storage: str | None, tracking_uri: str | None) -> str | None:
    """A shared Optuna storage (a database server) with a tracking store on this host (SQLite, a
    folder): the study is shared, its runs and checkpoints are not. A note, not a refusal: one host
    with a database server is a fine set-up (README, "Scaling out")."""
    from pipelines.common.stores import is_database, scheme
    from pipelines.common.studies import storage_url
    from pipelines.tracking.runs import resolve_uri
    from vae.redact import redact

    url, uri = storage_url(storage), resolve_uri(tracking_uri)
    if not (is_database(url) and scheme(url) != "sqlite") or scheme(uri) not in ("sqlite", "", "file"):
        return None
    return (f"note: the Optuna storage {redact(url)} is shared, but the tracking store {redact(uri)} is on this host: "
            "workers on other hosts would keep their runs and checkpoints in stores of their own, so a trial retried "
            "elsewhere starts again from epoch 1 and no report sees every run; for several hosts track to a server "
            "(--tracking-uri http://HOST:5000) or a shared database with --artifact-location")


def check_objective(spec, storage: str | None) -> str | None:
    """A new study whose objective cannot compare its betas is refused (SpecError: one line, exit
    2, nothing created); an existing one resumes, and the returned warning says what that means."""
    from pipelines.common.spec import SpecError
    from pipelines.common.studies import study_exists

    why = spec.beta_bias()
    if why is None:
        return None
    if not study_exists(storage, spec.study):
        raise SpecError(why)
    return (f"warning: study {spec.study!r} was started with metric {spec.metric!r}, which cannot compare its "
            "betas: Optuna's best trial follows it, but the verdict uses its own beta-free rule (README, "
            "'The verdict')")
