"""A trial's checkpoint in the study's artifact store, so that a retry resumes on any host.

    store = CheckpointStore(tracker, every="auto", keep=2, epochs=20)   # the spec's checkpoint_every, keep_checkpoints
    store.fetch(chain_runs, folder)           # a retry: the latest checkpoint of its chain, into its run folder
    store.after_epoch(run_id, folder, epoch)  # every k epochs: checkpoints/epoch-0007.pt in the trial's run

The run folder (pipelines/engine/trial.py run_folder) is on the worker's disk: a retry on the same host
resumes from it, one on another host used to start from epoch 1. Here each trial uploads its
checkpoint (model, optimiser, epoch, history: vae/checkpoint.py) to its own MLflow run under
`checkpoints/`, and a retry looks through the runs of its chain's earlier trials for the latest
epoch, downloads it, checks it loads (weights_only, as every checkpoint does) and puts it in its
run folder, where `vae.train`'s own resume takes over. This is Optuna's pytorch_checkpoint.py
pattern with MLflow's artifact store as the shared storage: the tracking server's proxied
artifacts (`mlflow server --artifacts-destination`) or the `--artifact-location` of a shared
tracking database (pipelines/tracking/artifacts.py).

Cadence (`checkpoint_every` in the spec): N uploads every N epochs (0: never); `auto` uploads
after every epoch as long as the uploads cost under UPLOAD_BUDGET of the trial's wall time on
this worker (each measured: metric `time/checkpoint_upload_s`), else as often as that budget
allows; `auto` uploads nothing where the artifacts stay on this host anyway (a SQLite store), as
the run folder beside them serves the same host. The last epoch is always uploaded (a kill during
the end-of-training measurements then costs no training on another host). Retention
(`keep_checkpoints`): each trial keeps only its latest few uploads; older ones are deleted, and
all of them once the trial is complete (`discard`: its model is then the run's checkpoint.pt). An
upload that fails is one note and training goes on; a checkpoint whose upload was cut short is
skipped by the fetch (it does not load), which takes the one before.

Why not a library: MLflow has no checkpoint-resume API for plain runs (its `log_model` is for
finished models), and Optuna's example keeps checkpoints on a shared file system.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from pathlib import Path

from pipelines.common.faults import fault
from vae.progress import say
from vae.redact import redact

PREFIX = "checkpoints"
UPLOAD_BUDGET = 0.05  # of a trial's wall time on this worker, for `checkpoint_every: auto`
METRIC = "time/checkpoint_upload_s"
NAME = re.compile(r"epoch-(\d+)\.pt$")


def artifact_name(epoch: int) -> str:
    return f"epoch-{epoch:04d}.pt"


class CheckpointStore:
    def __init__(self, tracker, every: int | str, keep: int, epochs: int):
        """every: upload every this many epochs (0: never; "auto": see the module docstring); keep:
        the latest uploads a running trial keeps; epochs: the trial's last epoch (always uploaded)."""
        from pipelines.tracking.artifacts import shared

        self.tracker, self.every, self.keep = tracker, every, keep
        if self.every == "auto" and not shared(tracker.uri, tracker.artifacts):
            self.every = 0  # the artifacts are on this host: the run folder beside them is as good
        self.last_epochs = epochs
        self._uploaded: list[int] = []
        self._spent = 0.0      # seconds of uploads in this trial, on this worker
        self._last_cost = 0.0
        self._start = time.perf_counter()
        self._warned = False
        self._repo = None  # the run's artifact repository, for deletions

    # --- uploads ------------------------------------------------------------------------------
    def _due(self, epoch: int) -> bool:
        if self.every == 0:
            return False
        if epoch == self.last_epochs:
            return True
        if self.every != "auto":
            return epoch % self.every == 0
        elapsed = time.perf_counter() - self._start
        return self._spent + self._last_cost <= UPLOAD_BUDGET * elapsed

    def after_epoch(self, run_id: str, folder: Path, epoch: int) -> None:
        """After epoch `epoch`'s checkpoint is on disk in `folder` (vae.train's `saved` hook: the last
        epoch's before its end-of-training measurements)."""
        if not self._due(epoch) or not (folder / "checkpoint.pt").exists():
            return
        t0 = time.perf_counter()
        try:
            self._upload(run_id, folder, epoch)
        except Exception as e:  # the store is down or full: training goes on, the run folder still holds it
            self._note(f"could not upload the checkpoint of epoch {epoch} ({type(e).__name__}: "
                       f"{redact(str(e)).splitlines()[0][:200] if str(e) else ''}); a retry on another host "
                       "resumes from an earlier one")
            return
        self._last_cost = time.perf_counter() - t0
        self._spent += self._last_cost
        fault("uploaded")
        try:
            from mlflow.entities import Metric

            self.tracker.client.log_batch(run_id, metrics=[Metric(METRIC, self._last_cost, int(time.time() * 1000),
                                                                  epoch)])
            self._retire(run_id)
        except Exception as e:
            self._note(f"could not delete old checkpoints ({type(e).__name__}); they stay in the run")

    def _upload(self, run_id: str, folder: Path, epoch: int) -> None:
        # under its epoch's name, from a copy: the next epoch replaces checkpoint.pt while this one is read
        with tempfile.TemporaryDirectory(prefix="vae-upload-") as tmp:
            staged = Path(tmp) / artifact_name(epoch)
            shutil.copyfile(folder / "checkpoint.pt", staged)
            self.tracker.client.log_artifact(run_id, str(staged), PREFIX)
        if epoch in self._uploaded:  # the last epoch again, measured: the same artifact, replaced
            self._uploaded.remove(epoch)
        self._uploaded.append(epoch)

    def _retire(self, run_id: str) -> None:
        """Keep the latest `keep` uploads of this run; delete the rest."""
        old, self._uploaded = self._uploaded[:-self.keep], self._uploaded[-self.keep:]
        if not old:
            return
        if self._repo is None:  # once per trial: the run's artifact location does not move
            self._repo = _repository(self.tracker, run_id)
        for epoch in old:
            self._repo.delete_artifacts(f"{PREFIX}/{artifact_name(epoch)}")

    def _note(self, line: str) -> None:
        if not self._warned:
            say(f"note: {line}")
            self._warned = True

    # --- the fetch of a retry -----------------------------------------------------------------
    def fetch(self, run_ids: list[str], folder: Path, have: int) -> tuple[str, int] | None:
        """Put the latest loadable checkpoint uploaded by any of `run_ids` (the earlier trials of
        this configuration) in `folder`, unless it is no later than epoch `have`, the folder's
        own; return (run id, epoch) of the one fetched, or None."""
        from vae.checkpoint import load_checkpoint

        candidates = []
        for run_id in run_ids:
            try:
                listed = self.tracker.client.list_artifacts(run_id, PREFIX)
            except Exception:  # a run deleted, a store unreachable: the others may still serve
                continue
            for a in listed:
                m = NAME.search(a.path)
                if m and int(m.group(1)) > have:
                    candidates.append((int(m.group(1)), run_id, a.path))
        for epoch, run_id, path in sorted(candidates, reverse=True):
            with tempfile.TemporaryDirectory(prefix="vae-fetch-") as tmp:
                try:
                    local = Path(self.tracker.client.download_artifacts(run_id, path, tmp))
                    blob = load_checkpoint(local)  # a cut-short upload does not load: the one before
                except Exception:
                    continue
                if int(blob.get("epoch", -1)) != epoch:
                    continue
                folder.mkdir(parents=True, exist_ok=True)
                shutil.move(str(local), folder / "checkpoint.pt.fetched")
                (folder / "checkpoint.pt.fetched").replace(folder / "checkpoint.pt")
            return run_id, epoch
        return None


def _repository(tracker, run_id: str):
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    return get_artifact_repository(tracker.client.get_run(run_id).info.artifact_uri, tracking_uri=tracker.uri)


def discard(tracker, run_id: str) -> None:
    """Delete a complete trial's per-epoch uploads: its model is the run's checkpoint.pt, uploaded
    with its folder, and only a retry needed them. A failure leaves them (one note)."""
    try:
        if tracker.client.list_artifacts(run_id, PREFIX):
            _repository(tracker, run_id).delete_artifacts(PREFIX)
    except Exception as e:
        say(f"note: the per-epoch checkpoints of run {run_id} stay in it ({type(e).__name__})")
