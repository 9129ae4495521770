"""A tiny digits grid sweep with its own Optuna and MLflow stores, for the sweep tests."""

import sys
from collections import Counter

import pytest

from pipelines.common.spec_file import load_spec
from pipelines.usecases.sweep import sweep as run_sweep

SPEC = """study: {study}
dataset: digits
data_dir: {data}
limit: 200
width: 8
epochs: {epochs}
batch_size: 32
iw_samples: 2
device: cpu
search:
  z_dim: [2, 4]
  beta: [0.1, 0.01]
images_every: 1
heartbeat_interval: 1
grace_period: 5
"""


@pytest.fixture
def env(tmp_path):
    class Env:
        storage = f"sqlite:///{tmp_path}/optuna.db"
        tracking = f"sqlite:///{tmp_path}/mlflow.db"

        def spec(self, study="t", epochs=2, extra=""):
            path = tmp_path / f"{study}.yaml"
            path.write_text(SPEC.format(study=study, data=tmp_path / "data", epochs=epochs) + extra)
            return path

        def sweep(self, path, *args):
            out = run_sweep(load_spec(path, args), self.storage, self.tracking, progress=False)
            out.summary.verdict = out.verdict  # the study's answer, as `vae sweep` states it
            return out.summary

        def trials(self, study="t"):
            import optuna

            return optuna.load_study(study_name=study, storage=self.storage).get_trials()

        def runs(self, study="t"):
            import mlflow

            mlflow.set_tracking_uri(self.tracking)
            return mlflow.search_runs(experiment_names=[study])

        def cli(self, *args):
            return [sys.executable, "-m", "pipelines.cli", "sweep", *map(str, args), "--storage", self.storage,
                    "--tracking-uri", self.tracking, "--no-progress"]

    return Env()


def points(trials, state="COMPLETE"):
    return Counter((t.params["z_dim"], t.params["beta"]) for t in trials if t.state.name == state)


GRID = {(2, 0.1), (2, 0.01), (4, 0.1), (4, 0.01)}


