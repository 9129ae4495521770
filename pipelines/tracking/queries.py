"""MLflow calls that belong to no one trial's run: a study's runs as one frame, tags in one batch.

    runs = runs_frame(tracker, experiment_id)          # pandas, one row per run (mlflow.search_runs)
    set_tags(tracker, run_id, {"best.z_dim": 16})      # one request

Everything else in pipelines/ that reads or writes MLflow goes through the Tracker
(pipelines/tracking/runs.py) or these functions: MLflow is imported only inside this package.
"""

from __future__ import annotations


def runs_frame(tracker, experiment_id: str, max_results: int = 50_000):
    """Every run of an experiment as mlflow.search_runs' frame (params.*, metrics.*, tags.*)."""
    import mlflow

    mlflow.set_tracking_uri(tracker.uri)
    return mlflow.search_runs([experiment_id], max_results=max_results)


def set_tags(tracker, run_id: str, tags: dict) -> None:
    """Set a run's tags in one request; values become strings."""
    from mlflow.entities import RunTag

    tracker.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
