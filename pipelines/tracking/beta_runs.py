"""The MLflow runs of a beta-conditional trial (vae/conditional.py): rows, not a hidden level.

A conditional trial trains one model for every beta of the spec. Its MLflow run (role `training`,
named `z100-cond-t3`) holds the model: checkpoint, rd_curve.json, the mean losses. Beside it, at
the level of ordinary trials (children of the sweep's parent run), one run per beta (role `trial`,
named `z100-b0.01-cond-t3`, param `mode` = conditional, tag `vae.trained_by` = the training run's
id) gets that beta's metrics, images, summary and grids, so that the runs table, `search_runs` and
the report read it exactly like an independently trained trial. The training run's lifecycle
(pipelines/tracking/runs.py `finish_trial`) ends its beta runs with it: one owner.
"""

from __future__ import annotations

from vae.conditional import prefix, split

ROLE = "training"        # the conditional model's own run
TRAINED_BY = "vae.trained_by"
MODE = "mode"            # param of every per-beta run: "conditional" (ordinary trials: none, read as independent)


def create(client, experiment_id: str, run_id: str, tags: dict, params: dict, number: int) -> dict[float, str]:
    """One run per beta of trial `number`'s training run `run_id` (params as applied, beta set), named
    `z100-b0.01-cond-t3` (vae/config.py run_name); returns {beta: run id}."""
    from mlflow.entities import Param

    from vae.redact import redact

    runs = {}
    for beta in params["betas"]:
        at = {**params, "beta": beta, MODE: "conditional"}
        run = client.create_run(experiment_id, run_name=row_name(params, number, beta),
                                tags={**tags, TRAINED_BY: run_id})
        client.log_batch(run.info.run_id, params=[Param(k, redact(str(v))) for k, v in at.items()])
        runs[beta] = run.info.run_id
    return runs


def row_name(params: dict, number: int, beta: float) -> str:
    """The name of trial `number`'s row at `beta`: `z100-b0.01-cond-t3`."""
    from vae.config import run_name

    return run_name(params["z_dim"], "conditional", None, params["seed"], number, at=beta)


def runs_of(client, run_id: str) -> dict[float, str]:
    """{beta: run id} of a training run's beta runs ({} for an ordinary trial run)."""
    run = client.get_run(run_id)
    if run.data.tags.get("vae.role") != ROLE:
        return {}
    found = client.search_runs([run.info.experiment_id], f"tags.`{TRAINED_BY}` = '{run_id}'", max_results=1000)
    return {float(r.data.params["beta"]): r.info.run_id for r in found}


SHARED = ("data/",)  # the split sizes: every beta's row was measured on the same images


def per_beta(metrics: dict, betas) -> tuple[dict, dict[float, dict]]:
    """A conditional run's metrics -> (the training run's own, {beta: that beta's, unprefixed,
    with the split sizes})."""
    own, per = split(metrics, list(betas))
    shared = {k: v for k, v in own.items() if k.startswith(SHARED)}
    return own, {beta: {**values, **shared} for beta, values in per.items()}


def folder(run_dir, beta: float):
    """Where a conditional run's files of one beta live: run_dir/b0.01/."""
    return run_dir / prefix(beta)
