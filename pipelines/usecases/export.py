"""`vae export`: the chosen model of a study (or any complete trial) to a folder to take away.

    vae export --study quick chosen                     # the study's verdict (`vae report` sets it)
    vae export --study quick --trial 3 chosen           # any complete trial
    vae export --study cond --trial 1 --beta 0.02 chosen   # a β-conditional trial at one beta

`export` reads the Optuna study (verdict, trial state, MLflow run id) and downloads the trial's
checkpoint.pt and config.json from its MLflow run (pipelines/tracking/models.py; its run folder is
gone once they are uploaded) into OUT/, with export.json and README.md (vae/export.py: what each
holds, `vae.load_model`). Nothing is written unless all succeeds: OUT is built under a temporary
name and renamed at the end. Both stores are opened read-only.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

from pipelines.common.stores import absolute_uri
from pipelines.common.trials import chains
from pipelines.tracking.models import (
    FILES,
    QUIET,
    ExportError,
    artifact_size,
    fetch_files,
    row_run,
    trial_run,
)
from vae.errors import first_line
from vae.export import EXPORT_INFO, check_beta
from vae.redact import redact

VERDICT = "verdict"  # the study's user attr: {"z_dim", "beta" (None: σ-VAE), "trial", "rule", ...}


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


def export(study: str, out: str | Path, trial: int | None = None, beta: float | None = None,
           storage: str | None = None, tracking_uri: str | None = None) -> dict:
    """Write the chosen model of `study` (or its trial `trial`) to the folder `out`; return export.json's dict."""
    from pipelines.common.spec import check_study_name
    from pipelines.common.studies import load_existing
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
    t, verdict = choose(load_existing(check_study_name(study), storage, ExportError), trial)
    tracker = Tracker(tracking_uri, create=False)  # reads a store, never creates one
    run_id = trial_run(tracker, study, t)
    try:
        run = tracker.run(run_id)
    except Exception as e:
        raise ExportError(f"cannot read trial {t.number}'s MLflow run {run_id} in {redact(tracker.uri)}: "
                          f"{redact(first_line(e))[:200]}") from None
    existing = next(p for p in (out.parent, *out.parents) if p.exists())
    tmp = existing / f".{out.name}.export-{os.getpid()}"
    tmp.mkdir()
    try:
        _fetch(tracker, run_id, run.info.run_name, t.number, tmp, existing, out)
        cfg = TrainConfig.from_dict(load_checkpoint(tmp)["config"])
        beta = _beta(cfg, beta, verdict, t.number)
        row = row_run(tracker, run_id, beta)
        shown = tracker.run(row) if row else run  # the run its numbers come from
        metrics = shown.data.metrics if row else {}
        info = {"study": study, "trial": t.number, "run_id": shown.info.run_id, "run_name": shown.info.run_name,
                "training_run_id": run_id, "tracking_uri": redact(absolute_uri(tracker.uri)),
                "z_dim": cfg.z_dim, "loss": cfg.loss, "beta": beta, "conditional": cfg.conditional,
                "betas": cfg.betas, "dataset": cfg.dataset, "epochs": cfg.epochs,
                "test/r_loss": metrics.get("test/r_loss"), "test/kld_loss": metrics.get("test/kld_loss"),
                "chosen_by": "verdict" if verdict and trial is None else "--trial",
                "model": (verdict or {}).get("model") if verdict and trial is None else None,
                "rule": (verdict or {}).get("rule"), "exported": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        (tmp / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n")
        model = load_model(tmp)  # the folder loads as it will for the user: the checkpoint fits its model
        # the folder's absolute path: the snippet runs from any folder, as the MLflow one does by its absolute URI
        (tmp / "README.md").write_text(readme(info, model, str(Path(out).resolve())))
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out)  # an empty OUT is replaced; one filled meanwhile fails, leaving it alone
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def _fetch(tracker, run_id: str, run_name: str, number: int, tmp: Path, existing: Path, out: Path) -> None:
    """The run's model files into `tmp`; a failure blames the disk where it is full, else the run."""
    from vae.atomic import disk_full
    from vae.errors import DiskFull

    try:
        fetch_files(tracker, run_id, tmp)
    except Exception as e:
        shutil.rmtree(tmp, ignore_errors=True)  # the partial copy: what is free without it
        name = next((n for n in FILES if not (tmp / n).exists()), FILES[0])
        full = disk_full(e, out / name)
        size, free = artifact_size(tracker, run_id, name), shutil.disk_usage(existing).free
        if full is None and size is not None and free < size:  # MLflow's error does not say why
            full = DiskFull(out / name, free, size)
        if full is not None:  # this disk, not the run: the copy did not fit
            raise full from None
        raise ExportError(f"trial {number}'s MLflow run {run_name} has no {name} to export "
                          f"({redact(first_line(e))[:200]})") from None


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
    digits = cfg.dataset == "digits"
    prepare = ([("from sklearn.datasets import load_digits", ""),
                ("x = vae.pixels.digits_input(load_digits().images[:16])", "0-16 -> round(x·255/16)/255, as training")]
               if digits else [("x = model.to_input(images)", "uint8 pixels (N, C, H, W), (N, H, W, C) or PIL -> [0, 1]")])
    lines = [("import torch", ""), ("import vae", ""),
             (f"model = vae.load_model({out!r})", "eval mode; model.config: its settings"), *prepare,
             ("with torch.no_grad():", "inference: no autograd graph"),
             ("    recon = model.decode(model.encode(x)[0])", "reconstructions from the posterior mean"),
             ("    samples = model.sample(16)", "16 images from the prior"),
             ("pixels = model.to_uint8(recon)", "back to uint8, the scale of the input")]
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

Use it (with vae-balance installed; its input: floats (N, {c}, {h}, {w}) in [0, 1], pixels / 255):

```python
{code}
```

{_mlflow_way(info, digits, (c, h, w))}Files: `checkpoint.pt` (as the MLflow run logged it: state dicts and config, loads with
`torch.load(weights_only=True)`), `config.json` (the run's settings), `export.json` (this page's facts).
"""


def _mlflow_way(info: dict, digits: bool, shape: tuple[int, int, int]) -> str:
    """The same model from MLflow's Model Registry (where the verdict registered it), by its store's
    absolute URI: from any folder, without vae-balance, its input prepared with torch alone."""
    model = info.get("model")
    if not model:
        return ""
    c, h, w = shape
    prepare = ("from sklearn.datasets import load_digits\n"
               "x = (torch.tensor(load_digits().images[:16]) * 255 / 16).round().div(255).float().unsqueeze(1)"
               "  # as training\n" if digits else
               f"x = torch.as_tensor(images).float().div(255)  # images: your uint8 pixels, shape (N, {c}, {h}, {w})\n")
    return f"""Or from MLflow's Model Registry, without vae-balance (images in, reconstructions out):

```python
import mlflow
import torch
mlflow.set_tracking_uri({info['tracking_uri']!r})
model = mlflow.pytorch.load_model({model!r})
{prepare}with torch.no_grad():
    recon = model(x)
```

"""
