"""The life of one trial, in one place: claim -> resume -> train -> measure -> finish, or interrupt.

    life = TrialLife(lease, worker)    # a trial this process claimed (pipelines/engine/lease.py claim)
    state = life.run()                 # COMPLETE | PRUNED | FAIL | LOST (another worker took it over)

    claimed ──start──▶ resumed ──train──▶ trained ──measure──▶ measured ──finish──▶ COMPLETE
       │                  │                  │                                 ├─▶ PRUNED (pruner, per epoch)
       │                  │                  │                                 └─▶ FAIL   (diverged / error)
       └──────────────────┴──────────────────┴── Ctrl-C, SIGTERM ─▶ FAIL "interrupted": resumes next start
                                                 the worker dies   ─▶ recovery fails it "died" and enqueues
                                                                      a retry, at most max_retries times

Each step calls one collaborator with what it needs: the Optuna lease (claim, heartbeat, the result:
pipelines/engine/lease.py), the run folder on this worker's disk (pipelines/engine/run_folders.py),
the checkpoint store in the study's artifact store, for a retry on any host
(pipelines/tracking/checkpoints.py), and the trial's MLflow run (pipelines/tracking/runs.py).
`vae.train` itself knows nothing of them: it reports through `callback(epoch, metrics, model)` and
`saved(epoch, metrics)`, the checkpoint of each epoch on disk.

Written here, not Optuna's: Optuna's `study.optimize` owns a trial only inside its objective and
would run a retry last; a trial's life here starts at a claim that takes retries first and ends
when its MLflow run is finished too (pipelines/engine/recovery.py finishes it if the worker dies).
"""

from __future__ import annotations

import math
import os
import shutil
import traceback
from dataclasses import replace
from pathlib import Path

from pipelines.common.faults import fault
from pipelines.common.signals import CTRL_C
from pipelines.common.spec import Spec
from pipelines.common.trials import RUN_ID, chains, params_of, root
from pipelines.engine.gpus import TAG as GPU_TAG
from pipelines.engine.gpus import assigned
from pipelines.engine.lease import Lease
from pipelines.engine.points import record
from pipelines.engine.recovery import log_result
from pipelines.engine.run_folders import run_folder
from pipelines.engine.worker import Worker
from pipelines.tracking.checkpoints import CheckpointStore
from vae.config import applying, default, identity, names
from vae.errors import VAEError, first_line
from vae.progress import say
from vae.redact import redact


class TrialLife:
    """One claimed trial from its parameters to its stored result (see the module docstring)."""

    def __init__(self, lease: Lease, worker: Worker):
        self.lease, self.w, self.spec = lease, worker, worker.spec
        self.trial = lease.trial
        self.reported: set[int] = set()

    def run(self) -> str:
        """The whole life; returns the trial's final state (or LOST)."""
        import optuna

        from vae.errors import MeasurementFailed, TrainingDiverged

        self.start()
        try:
            history = self.train(self.resume())
        except optuna.TrialPruned as e:
            self.lease.prune(str(e))  # "pruned after epoch N"
        except TrainingDiverged as e:
            self.lease.fail("diverged", str(e))
        except MeasurementFailed as e:
            self.measure_failed(e)
            self.finish(e.history)
        except VAEError as e:  # bad settings: every trial would fail alike, so the sweep stops
            self.lease.fail("error", str(e))
            log_result(self.w.tracker, self.lease.frozen, self.spec.study)
            raise
        except Exception as e:
            if CTRL_C.is_set():  # Ctrl-C inside a database call surfaces as its error ("interrupted")
                raise KeyboardInterrupt from None
            self.crashed(e)
        else:
            self.finish(history)
        fault("result")
        log_result(self.w.tracker, self.lease.frozen, self.spec.study)  # lost: its run says how the other saw it
        return "LOST" if self.lease.lost else self.lease.state

    # --- claimed -> started: parameters, settings, the MLflow run -----------------------------
    def start(self) -> None:
        from vae.runtime import applied, pick_device

        params = suggest(self.trial, self.spec, self.lease.study)
        self.folder = run_folder(self.spec.study, root(self.lease.frozen))
        self.cfg = replace(self.spec.trial_config(params), out=str(self.folder), resume=True,
                           progress=self.w.progress, threads=self.w.threads or self.spec.train.threads or self.w.pick())
        self.data = data_of(self.w.data, self.cfg)
        device = pick_device(self.cfg.device)
        tracker = self.w.tracker
        self.run_id = tracker.start_trial(self.w.experiment_id, self.w.parent, self.spec.study, self.trial.number,
                                          applied(self.cfg, self.data), str(device), self.cfg.training)
        self.trial.set_user_attr(RUN_ID, self.run_id)
        gpu = assigned(str(device))
        if gpu is not None:  # one worker per GPU (pipelines/engine/gpus.py): which one ran this trial
            tracker.set_tags(self.run_id, {GPU_TAG: gpu})
            say(f"trial {self.trial.number}: GPU {gpu} (pid {os.getpid()})")
        tracker.log_first_images(self.run_id, self.cfg, self.data.test)  # step 0: the untrained model
        self.checkpoints = CheckpointStore(tracker, self.spec.checkpoint_every, self.spec.keep_checkpoints,
                                           self.cfg.epochs)
        if self.w.bar is not None:
            self.w.bar.epoch(self.trial.number, 0)

    # --- started -> resumed: what an earlier attempt of this configuration trained ----------------
    def resume(self) -> list[dict]:
        """The epochs an earlier attempt trained (its run folder here, or its uploaded checkpoint),
        replayed to Optuna and MLflow; [] for a first attempt."""
        done, measured = resumable(self.folder, self.cfg)
        fetched = self.checkpoints.fetch(self.earlier_runs(), self.folder, len(done))  # another host's, or later
        if fetched is not None:
            done, measured = resumable(self.folder, self.cfg)
            self.w.tracker.set_tags(self.run_id, {"vae.checkpoint_from": f"run {fetched[0]}, epoch {fetched[1]}"})
        if done:  # a retry: its run shows the epochs it resumes from, and says so
            say(resuming(self.trial.number, root(self.lease.frozen), done, measured, self.cfg.epochs))
            for resumed in (self.run_id, *self.w.tracker.beta_runs(self.run_id).values()):  # a conditional model's rows
                # the replayed epochs have metrics but no model here: their grids are the earlier attempt's
                self.w.tracker.set_tags(resumed, {
                    "vae.resumed_from_epoch": len(done), "vae.images_missing":
                    f"epochs 1-{len(done)}: trained by an earlier attempt of this configuration, whose run (KILLED "
                    "or FAILED) holds their grids"})
        for metrics in done:
            self.on_epoch(metrics["epoch"], metrics)
        return done

    def earlier_runs(self) -> list[str]:
        """The MLflow runs of the earlier trials of this configuration (its chain), newest first."""
        frozen = self.lease.frozen
        if "retry_history" not in frozen.system_attrs:
            return []
        chain = chains(self.lease.study.get_trials(deepcopy=False)).get(root(frozen), [])
        return [t.user_attrs[RUN_ID] for t in reversed(chain) if t.number < frozen.number and RUN_ID in t.user_attrs]

    # --- resumed -> trained -> measured: vae.train, reporting each epoch ------------------------
    def train(self, done: list[dict]) -> list[dict]:
        from vae.train import train

        return train(self.cfg, callback=self.on_epoch, data=self.data, saved=self.on_saved)

    def on_epoch(self, epoch: int, metrics: dict, model=None) -> None:
        """After each epoch (the last once measured; a replayed one without a model): MLflow, the
        bar, images, and the objective to Optuna, which may prune."""
        if model is not None:
            fault("epoch", z_dim=self.cfg.z_dim, beta=self.cfg.beta)
            if epoch == self.cfg.epochs:
                fault("measured")  # the end-of-training measurements done, the result not yet stored
        self.w.tracker.log_epoch(self.run_id, metrics, epoch)
        if model is not None and metrics.get("time/epoch_s") and (note := self.w.timed(metrics["time/epoch_s"])):
            say(note)
        if self.w.bar is not None and model is not None:
            self.w.bar.epoch(self.trial.number, epoch)
        if model is not None and (epoch % self.spec.images_every == 0 or epoch == self.cfg.epochs):
            self.w.tracker.log_images(self.run_id, model, self.data.test, epoch)
        self.report(epoch, metrics)

    def on_saved(self, epoch: int, metrics: dict) -> None:
        """An epoch's checkpoint on disk: uploaded every k epochs; the last epoch's before minutes of
        end-of-training measurements: Optuna and the bar hear of it now (a Ctrl-C while measuring
        leaves the trial at its true epoch), and a pruner decides before they are paid for."""
        if epoch == self.cfg.epochs and self.w.bar is not None:
            self.w.bar.epoch(self.trial.number, epoch)
        if epoch == self.cfg.epochs:
            self.report(epoch, metrics)
        self.checkpoints.after_epoch(self.run_id, self.folder, epoch)

    def report(self, epoch: int, metrics: dict) -> None:
        import optuna

        value = metrics.get(self.spec.metric)
        if value is None or not math.isfinite(value) or epoch in self.reported:
            return  # Optuna takes one value per step: a resumed run's last epoch comes again once measured
        self.reported.add(epoch)
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch}")

    # --- measured -> finished -------------------------------------------------------------------
    def finish(self, history: list[dict]) -> None:
        """The result reaches Optuna first; the MLflow uploads follow (run(): log_result)."""
        final = history[-1]
        value = final.get(self.spec.metric)
        if value is None or not math.isfinite(value):
            self.lease.fail("error", f"objective {self.spec.metric!r} missing or not finite")
        else:
            self.lease.complete(value, **{k: v for k, v in final.items() if k.startswith(("test/", "diag/"))})

    def measure_failed(self, e) -> None:
        """The model trained and its objective (val/) is measured: the trial keeps its result, without
        the end-of-training diagnostics; the run says why, and the folder (checkpoint, traceback.txt)
        is uploaded."""
        try:
            self.w.tracker.set_tags(self.run_id, {"vae.measure_error": redact(str(e))[:5000]})
        except Exception:
            pass
        say(f"trial {self.trial.number}: the end-of-training measurements failed ({type(e.cause).__name__}: "
            f"{first_line(e.cause)[:300]}); its result stands without them, its checkpoint and traceback.txt "
            "are in its MLflow run")

    def crashed(self, e: Exception) -> None:
        """A bug or out-of-memory in one trial: its traceback goes to its MLflow run, the sweep goes on."""
        try:
            self.w.tracker.log_text(self.run_id, redact(traceback.format_exc()), "traceback.txt")
        except Exception:
            pass
        self.lease.fail("error", f"{type(e).__name__}: {str(e)[:500]}")


# --- helpers of the steps above --------------------------------------------------------------
def suggest(trial, spec: Spec, study) -> dict:
    """The trial's configuration, recorded in Optuna: a grid's point as pipelines/engine/points.py
    records it, a sampler's drawn from the spec's search."""
    from pipelines.common.spec import Range

    s = spec.search
    if spec.sampler == "grid":
        params = record(trial, params_of(study._storage.get_trial(trial._trial_id)), study)
    else:
        params = {}
        for name in ("z_dim", "beta"):
            space = getattr(s, name)
            if isinstance(space, Range) and name == "z_dim":
                params[name] = trial.suggest_int(name, int(space.low), int(space.high), log=space.log)
            elif isinstance(space, Range):
                params[name] = trial.suggest_float(name, space.low, space.high, log=space.log)
            else:
                params[name] = _categorical(trial, name, space)
        params["seed"] = _categorical(trial, "seed", s.seed)
    if "loss" not in params and spec.train.loss != "beta":
        params["loss"] = spec.train.loss  # the spec's one loss, named only where it is not the default
    return params


def _categorical(trial, name, choices):
    if len(choices) == 1:  # a constant: a fixed attribute, not a parameter (importance 0, noise)
        trial.set_user_attr(name, choices[0])
        return choices[0]
    return trial.suggest_categorical(name, choices)


def data_of(cache: dict, cfg):
    """One copy in memory per distinct subset: the seed picks the subset only when there is a limit."""
    from vae.data import load_dataset

    key = (cfg.dataset, cfg.data_dir, cfg.limit, cfg.seed if cfg.limit else None)
    if key not in cache:
        cache[key] = load_dataset(cfg.dataset, cfg.data_dir, cfg.limit, cfg.seed)
    return cache[key]


def resumable(folder: Path, cfg) -> tuple[list[dict], bool]:
    """(the epochs already trained in `folder` by an earlier trial of this configuration, whether its
    end-of-training measurements are done too), or ([], False) after clearing a folder whose
    checkpoint was made with other settings."""
    from vae.checkpoint import load_checkpoint
    from vae.errors import CheckpointError

    if not (folder / "checkpoint.pt").exists():
        return [], False
    try:
        blob = load_checkpoint(folder)
        saved = {**{k: default(k) for k in names()}, **blob["config"]}  # a setting it predates: its default
        same = identity(applying(saved)) == identity(applying(cfg.to_dict()))
    except (CheckpointError, KeyError):
        same = False
    if not same:
        shutil.rmtree(folder, ignore_errors=True)
        return [], False
    return blob["history"], bool(blob.get("measured", True))


def resuming(number: int, first: int, done: list[dict], measured: bool, epochs: int) -> str:
    """What a retry takes over from the earlier attempt `first` of its configuration, in one line."""
    earlier = f"an earlier attempt of this configuration (trial {first})"
    if len(done) >= epochs and measured:
        return (f"trial {number}: its {epochs} epochs and end-of-training measurements were done by {earlier}; "
                "storing its result")
    if len(done) >= epochs:
        return f"trial {number}: its {epochs} epochs were trained by {earlier}; its end-of-training measurements run now"
    return f"trial {number}: resumes at epoch {len(done) + 1} of {epochs}, from the checkpoint of {earlier}"
