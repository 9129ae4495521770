"""The chosen model to take away: `vae export`, and the same model in MLflow's Model Registry.

    vae export --study quick chosen                     # the study's verdict (`vae report` sets it)
    vae export --study quick --trial 3 chosen           # any complete trial
    vae export --study cond --trial 1 --beta 0.02 chosen   # a β-conditional trial at one beta

`export` reads the Optuna study (verdict, trial state, MLflow run id) and downloads the trial's
checkpoint.pt and config.json from its MLflow run (its run folder is gone once they are uploaded)
into OUT/, with export.json and README.md (vae/export.py: what each holds, `vae.load_model`).
Nothing is written unless all succeeds: OUT is built under a temporary name and renamed at the
end. Both stores are opened read-only. `log_chosen_model` logs the model as an MLflow model, a
wrapper `images (N, C, H, W) in [0, 1] -> reconstructions from the posterior mean` (deterministic,
as MLflow 3's default torch.export format needs), and registers it under the study's name.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

from pipelines.engine.trial import RUN_ID, chains
from pipelines.tracking import beta_runs
from vae.checkpoint import CHECKPOINT
from vae.errors import VAEError, first_line
from vae.export import EXPORT_INFO, check_beta
from vae.redact import redact

QUIET = ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no download bars between our lines
VERDICT = "verdict"  # the study's user attr: {"z_dim", "beta" (None: σ-VAE), "trial", "rule", ...}
FILES = (CHECKPOINT, "config.json")  # what a trial's MLflow run holds and the export copies


class ExportError(VAEError):
    """The study, trial, beta or folder named cannot be exported."""


def open_study(name: str, storage: str | None):
    """The Optuna study `name`, from a storage that must exist already (nothing is created)."""
    import optuna

    from pipelines.engine.stores import check_database, connect_args
    from pipelines.engine.study import StorageError, quiet_optuna, storage_url

    quiet_optuna()
    url = storage_url(storage)
    check_database(url, "Optuna storage", StorageError, create=False)
    try:
        store = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": connect_args(url)})
        return optuna.load_study(study_name=name, storage=store)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(store, include_best_trial=False)]
        raise ExportError(f"no study named {name!r} in {redact(url)} (studies: {', '.join(names) or 'none'})") from None
    except Exception as e:
        raise StorageError(f"cannot use Optuna storage {redact(url)}: {redact(first_line(e))[:300]}") from None


def choose(study, trial: int | None) -> tuple:
    """(the complete trial to export, the verdict if it chose that trial, else None)."""
    verdict = study.user_attrs.get(VERDICT)
    provisional = isinstance(verdict, dict) and verdict.get("provisional")
    chosen = None if provisional else _verdict_trial(verdict)  # a provisional verdict chooses nothing yet
    if trial is None:
        if not verdict:
            raise ExportError(f"study {study.study_name!r} has no verdict yet: run `vae report --study "
                              f"{study.study_name}` first, or pass --trial N")
        if provisional:
            raise ExportError(f"study {study.study_name!r} is not finished ({provisional}): its verdict is "
                              f"provisional; finish it with `vae sweep` and `vae report`, or pass --trial N")
        if chosen is None:
            raise ExportError(f"the verdict of study {study.study_name!r} names no trial: pass --trial N")
        trial = chosen
    trials = study.get_trials(deepcopy=False)
    found = [t for t in trials if t.number == trial]
    if not found:
        raise ExportError(f"study {study.study_name!r} has no trial {trial} (its trials: 0 to {len(trials) - 1})")
    t = found[0]
    if t.state.name != "COMPLETE":
        chain = next(c for c in chains(trials).values() if t in c)
        later = [c.number for c in chain if c.number > t.number and c.state.name == "COMPLETE"]
        raise ExportError(f"trial {trial} of study {study.study_name!r} is {t.state.name}, not COMPLETE: nothing to "
                          "export" + (f" (it ran again as trial {later[0]}: pass --trial {later[0]})" if later else ""))
    return t, (verdict if chosen == trial else None)


def _verdict_trial(verdict) -> int | None:
    try:  # the other developer's verdict: {"trial": 3, ...}; anything else names no trial
        return int(verdict["trial"])
    except (KeyError, TypeError, ValueError):
        return None


def trial_run(tracker, study: str, t) -> str:
    """The MLflow run holding trial t's checkpoint: its user attr, else the run tagged with its number
    (a conditional trial: its training run, not the rows of its betas)."""
    if t.user_attrs.get(RUN_ID):
        return t.user_attrs[RUN_ID]
    exp = tracker.client.get_experiment_by_name(study)
    runs = [] if exp is None else tracker.client.search_runs(
        [exp.experiment_id], f"tags.`vae.trial` = '{t.number}'", max_results=100)
    runs = [r for r in runs if beta_runs.TRAINED_BY not in r.data.tags
            and r.data.tags.get("vae.role") in ("trial", beta_runs.ROLE)]
    if not runs:
        raise ExportError(f"trial {t.number} of study {study!r} has no MLflow run in {redact(tracker.uri)} "
                          "(another tracking store? pass --tracking-uri)")
    return runs[0].info.run_id


def row_run(tracker, run_id: str, beta: float | None) -> str | None:
    """The run whose metrics are the model's: the trial's own, or a conditional trial's row of `beta`
    (None: a beta between its grid points, which the sweep did not measure)."""
    rows = tracker.beta_runs(run_id)
    if not rows:
        return run_id
    return next((r for b, r in rows.items() if math.isclose(b, beta, rel_tol=1e-9)), None)


def export(study: str, out: str | Path, trial: int | None = None, beta: float | None = None,
           storage: str | None = None, tracking_uri: str | None = None) -> dict:
    """Write the chosen model of `study` (or its trial `trial`) to the folder `out`; return export.json's dict."""
    from pipelines.spec import check_study_name
    from pipelines.tracking.runs import Tracker
    from vae.checkpoint import load_checkpoint
    from vae.config import TrainConfig
    from vae.export import load_model
    from vae.paths import check_folder

    os.environ.setdefault(*QUIET)
    if Path(out).is_symlink():  # a link to a folder, or a dangling one: where would the model land?
        raise ExportError(f"OUT {out} is a symbolic link: name a new folder (the link's target is left alone)")
    out = check_folder(out, "OUT")
    if out.is_dir() and any(out.iterdir()):
        raise ExportError(f"OUT {out} is a folder that is not empty: name a new one")
    t, verdict = choose(open_study(check_study_name(study), storage), trial)
    tracker = Tracker(tracking_uri, create=False)  # reads a store, never creates one
    run_id = trial_run(tracker, study, t)
    try:
        run = tracker.client.get_run(run_id)
    except Exception as e:
        raise ExportError(f"cannot read trial {t.number}'s MLflow run {run_id} in {redact(tracker.uri)}: "
                          f"{redact(first_line(e))[:200]}") from None
    existing = next(p for p in (out.parent, *out.parents) if p.exists())
    tmp = existing / f".{out.name}.export-{os.getpid()}"
    tmp.mkdir()
    try:
        for name in FILES:
            try:
                tracker.client.download_artifacts(run_id, name, str(tmp))
            except Exception as e:
                from vae.atomic import disk_full

                shutil.rmtree(tmp, ignore_errors=True)  # the partial copy: what is free without it
                full = disk_full(e, out / name) or _too_big(tracker, run_id, name, existing, out)
                if full is not None:  # this disk, not the run: the copy did not fit
                    raise full from None
                raise ExportError(f"trial {t.number}'s MLflow run {run.info.run_name} has no {name} to export "
                                  f"({redact(first_line(e))[:200]})") from None
        cfg = TrainConfig.from_dict(load_checkpoint(tmp)["config"])
        beta = _beta(cfg, beta, verdict, t.number)
        row = row_run(tracker, run_id, beta)
        shown = tracker.client.get_run(row) if row else run  # the run its numbers come from
        metrics = shown.data.metrics if row else {}
        info = {"study": study, "trial": t.number, "run_id": shown.info.run_id, "run_name": shown.info.run_name,
                "training_run_id": run_id, "tracking_uri": redact(tracker.uri),
                "z_dim": cfg.z_dim, "loss": cfg.loss, "beta": beta, "conditional": cfg.conditional,
                "betas": cfg.betas, "dataset": cfg.dataset, "epochs": cfg.epochs,
                "test/r_loss": metrics.get("test/r_loss"), "test/kld_loss": metrics.get("test/kld_loss"),
                "chosen_by": "verdict" if verdict and trial is None else "--trial",
                "rule": (verdict or {}).get("rule"), "exported": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        (tmp / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n")
        model = load_model(tmp)  # the folder loads as it will for the user: the checkpoint fits its model
        (tmp / "README.md").write_text(readme(info, model, str(out)))
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out)  # an empty OUT is replaced; one filled meanwhile fails, leaving it alone
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def _too_big(tracker, run_id: str, name: str, folder: Path, out: Path):
    """DiskFull where the artifact is larger than the space left at `folder` (MLflow's download
    error does not say why it failed), else None."""
    from vae.errors import DiskFull

    try:
        size = next((a.file_size for a in tracker.client.list_artifacts(run_id) if a.path == name), None)
        free = shutil.disk_usage(folder).free
    except Exception:
        return None
    return DiskFull(out / name, free, size) if size is not None and free < size else None


def _beta(cfg, beta: float | None, verdict: dict | None, number: int) -> float | None:
    """The beta to export at: --beta, else the verdict's; only a conditional model takes one."""
    if not cfg.conditional:
        if beta is not None:
            trained = "as a σ-VAE" if cfg.training == "sigma-vae" else f"at beta {cfg.beta:g}"
            raise ExportError(f"--beta is for a β-conditional trial; trial {number} was trained {trained}")
        return cfg.beta
    beta = beta if beta is not None else (verdict or {}).get("beta")
    if beta is None:
        raise ExportError(f"trial {number} is a β-conditional model (betas {', '.join(f'{b:g}' for b in cfg.betas)}): "
                          "pass --beta B")
    return check_beta(cfg, float(beta), f"trial {number}")


def readme(info: dict, model, out: str) -> str:
    """What the model is, its test numbers and how to use it, for the exported folder."""
    cfg, (c, h, w) = model.config, model.shape
    number = lambda v: "not measured in the sweep" if v is None else f"{v:.4g}"  # noqa: E731
    lines = [("import torch", ""), ("import vae", ""),
             (f"model = vae.load_model({out!r})", "eval mode; model.config: its settings"),
             ("with torch.no_grad():", "inference: no autograd graph"),
             ("    recon = model.decode(model.encode(x)[0])", "reconstructions from the posterior mean"),
             ("    samples = model.sample(16)", "16 images from the prior")]
    width = max(len(code) for code, _ in lines) + 2
    code = "\n".join(f"{c:<{width}}# {note}" if note else c for c, note in lines)
    if info["conditional"]:
        low, high = model.model.beta_range
        balance = (f"β = {info['beta']:g}, one point of a β-conditional model (YOTO) trained on β ∈ "
                   f"[{low:g}, {high:g}] for the betas {', '.join(f'{b:g}' for b in info['betas'])}")
    elif info["beta"] is None:
        balance = "σ-VAE (calibrated Gaussian decoder: no beta)"
    else:
        balance = f"β = {info['beta']:g} (loss = R-loss + β · KLD-loss)"
    why = (f"the study's verdict: {info['rule']}" if info["chosen_by"] == "verdict" and info["rule"]
           else "the study's verdict" if info["chosen_by"] == "verdict" else f"chosen by hand (`--trial {info['trial']}`)")
    return f"""# {info['study']}: trial {info['trial']}, z-dim {info['z_dim']}

A convolutional VAE trained by vae-balance: study `{info['study']}`, Optuna trial {info['trial']}, MLflow
run `{info['run_name']}` ({info['run_id']}); {why}.

| | |
|---|---|
| z-dim | {info['z_dim']} |
| balance | {balance} |
| dataset | {info['dataset']} ({c}×{h}×{w}), {'all images' if cfg.limit is None else f'limit {cfg.limit}'}, seed {cfg.seed} |
| epochs | {info['epochs']} (batch {cfg.batch_size}, width {cfg.width}) |
| test R-loss | {number(info['test/r_loss'])} (per image: squared error per pixel) |
| test KLD-loss | {number(info['test/kld_loss'])} (per image: KL nats per latent dimension) |

Use it (with vae-balance installed; x: a float tensor (N, {c}, {h}, {w}) in [0, 1]):

```python
{code}
```

Files: `checkpoint.pt` (as the MLflow run logged it: state dicts and config, loads with
`torch.load(weights_only=True)`), `config.json` (the run's settings), `export.json` (this page's facts).
"""


def _reconstruction(model):
    """What MLflow logs: images in [0, 1] -> reconstructions from the posterior mean (no sampling:
    what torch.export traces must be deterministic)."""
    import torch

    class Reconstruction(torch.nn.Module):
        def __init__(self, vae):
            super().__init__()
            self.vae = vae

        def forward(self, x):
            return self.vae.decode(self.vae.encode(x)[0])

    return Reconstruction(model).eval()


def log_chosen_model(tracker, study: str, verdict: dict, run_id: str) -> str | None:
    """Log the verdict's model as an MLflow model and register it under the study's name; return
    its registry URI (`models:/<study>/<version>`), or None after a one-line warning (nothing is lost:
    the runs and their checkpoints stay as they are).

    `run_id`: the chosen trial's run (a conditional trial's training run or its row of the verdict's
    beta). The model is a LoggedModel in the study's experiment, the output of that row's run, logged
    by `mlflow.pytorch.log_model` in the pt2 format (torch.export) with a signature and an input
    example; the version is tagged `z_dim`, `beta` (`σ-VAE` for none), `rule`, `trial`, `vae.run_id`.
    A second call for the same model and beta returns the version already registered (its `rule` tag
    updated), so `vae sweep` and `vae report` can both call it."""
    try:
        return _log_chosen_model(tracker, study, verdict, run_id)
    except Exception as e:
        print(f"warning: the chosen model was not logged to MLflow's Model Registry: {redact(first_line(e))[:300]}",
              file=sys.stderr)
        return None


def _log_chosen_model(tracker, study: str, verdict: dict, run_id: str) -> str:
    import tempfile

    import mlflow
    import torch
    from mlflow.entities import LoggedModelStatus
    from mlflow.exceptions import MlflowException
    from mlflow.models import infer_signature
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    from vae.export import load_model

    os.environ.setdefault(*QUIET)
    client = tracker.client
    training = client.get_run(run_id).data.tags.get(beta_runs.TRAINED_BY, run_id)  # a row: its model's run
    conditional = client.get_run(training).data.tags.get("vae.role") == beta_runs.ROLE
    beta = verdict.get("beta")
    row = row_run(tracker, training, beta) or training
    tags = {"z_dim": str(verdict["z_dim"]), "beta": "σ-VAE" if beta is None else f"{beta:g}",
            "rule": str(verdict.get("rule") or ""), "trial": str(verdict.get("trial")), "vae.run_id": training}
    for version in client.search_model_versions(f"name = '{study}'"):
        if version.tags.get("vae.run_id") == training and version.tags.get("beta") == tags["beta"]:
            if version.tags.get("rule") != tags["rule"]:
                client.set_model_version_tag(study, version.version, "rule", tags["rule"])
            return f"models:/{study}/{version.version}"
    with tempfile.TemporaryDirectory() as tmp:
        client.download_artifacts(training, CHECKPOINT, tmp)
        model = load_model(Path(tmp) / CHECKPOINT, beta=beta if conditional else None)
    wrapper = _reconstruction(model)
    # batch 2: a batch of 1 would be traced as a fixed size; random pixels: no data set to load here
    example = torch.rand(2, *model.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        signature = infer_signature(example.numpy(), wrapper(example).numpy())
    run = client.get_run(row)
    # ours, not log_model's: it would put the model in the Default experiment. No '.' in its name allowed
    logged = client.create_logged_model(run.info.experiment_id, name=run.info.run_name.replace(".", "_"),
                                        source_run_id=row, params=run.data.params, tags=tags, model_type="vae")
    # log_model writes, and a version's models:/ source is resolved, where the global URI points
    with _use_tracking_uri(tracker.uri):
        try:  # run_id: the model is that run's output; pip_requirements given: no inference subprocess
            mlflow.pytorch.log_model(wrapper, model_id=logged.model_id, run_id=row, signature=signature,
                                     input_example=example.numpy(), serialization_format="pt2",
                                     pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
        except Exception:
            client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)  # not left PENDING
            raise
        try:
            client.create_registered_model(study, description=f"The chosen model of the vae-balance study {study}.")
        except MlflowException as e:
            if e.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
        version = client.create_model_version(study, f"models:/{logged.model_id}", run_id=row, tags=tags,
                                              description=tags["rule"] or None, model_id=logged.model_id)
    return f"models:/{study}/{version.version}"
