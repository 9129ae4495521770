"""The Tracker's calls that belong to no one trial's lifecycle: find a study, read runs, tag them.

    runs = tracker.runs_frame(experiment_id)            # pandas, one row per run (mlflow.search_runs)
    tracker.set_tags(run_id, {"best.z_dim": 16})        # one request
    tracker.metric_history(run_id, "val/elbo_bpd")      # [(step, value), ...] in step order

`Tracker` (pipelines/tracking/runs.py) inherits these; the engine and the report call them instead of
reaching into MlflowClient, so MLflow is imported only inside this package (tests/test_layout.py).
Each is a thin wrapper with a name that says what the caller wants: MLflow's client does the work.
"""

from __future__ import annotations

from pathlib import Path

PARENT = "tags.`vae.role` = 'parent'"  # a study's sweep run (Tracker.parent_run creates it)


class Queries:
    client = None  # an MlflowClient, set by Tracker.__init__
    uri: str

    # --- finding ---------------------------------------------------------------------------
    def experiment_id(self, study: str) -> str | None:
        """The MLflow experiment of a study; None when there is none."""
        exp = self.client.get_experiment_by_name(study)
        return None if exp is None else exp.experiment_id

    def study_names(self) -> list[str]:
        """Every experiment but MLflow's own Default: the studies this store holds."""
        return [e.name for e in self.client.search_experiments() if e.name != "Default"]

    def parent(self, experiment_id: str):
        """The study's sweep run (an MLflow Run: .info.run_id, .data.tags), or None before the first sweep."""
        runs = self.client.search_runs([experiment_id], PARENT, max_results=1, order_by=["attributes.start_time ASC"])
        return runs[0] if runs else None

    def run(self, run_id: str):
        """One run (MLflow's Run: .info, .data.params, .data.metrics, .data.tags)."""
        return self.client.get_run(run_id)

    def runs(self, experiment_id: str, where: str = "", max_results: int = 50_000) -> list:
        """The experiment's runs matching an MLflow filter string (all of them without one)."""
        return self.client.search_runs([experiment_id], where, max_results=max_results)

    def runs_frame(self, experiment_id: str, max_results: int = 50_000):
        """Every run of an experiment as mlflow.search_runs' frame (params.*, metrics.*, tags.*)."""
        import mlflow

        mlflow.set_tracking_uri(self.uri)
        return mlflow.search_runs([experiment_id], max_results=max_results)

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """(step, value) of every logged value of a metric, in step order; [] when it was never logged."""
        return sorted((m.step, m.value) for m in self.client.get_metric_history(run_id, key))

    def download(self, run_id: str, name: str, folder: str | Path) -> Path | None:
        """One artifact of a run, copied into `folder`; None when the run has no such artifact (a run
        from before it existed, or a failed upload): callers leave it out."""
        try:
            return Path(self.client.download_artifacts(run_id, name, str(folder)))
        except Exception:
            return None

    # --- writing ---------------------------------------------------------------------------
    def set_tags(self, run_id: str, tags: dict) -> None:
        """Set a run's tags in one request; values become strings."""
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def delete_tag(self, run_id: str, key: str) -> None:
        self.client.delete_tag(run_id, key)

    def log_text(self, run_id: str, text: str, name: str) -> None:
        """A text file as an artifact of the run (`name`: its path inside the run's artifacts)."""
        self.client.log_text(run_id, text, name)

    def log_folder(self, run_id: str, folder: str | Path, under: str) -> None:
        """A folder's files as the run's artifacts under `under/`."""
        self.client.log_artifacts(run_id, str(folder), under)
