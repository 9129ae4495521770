"""`vae train` and `vae evaluate`: one VAE, trained or measured again from its run folder."""

from __future__ import annotations

from pathlib import Path

import click

from pipelines.cli.options import (
    FloatList,
    config_from_options,
    resumed_options,
    train_option,
    train_options,
)
from vae.config import TrainConfig
from vae.redact import redact


@click.command()
@train_options
def train(**options):
    """Train one VAE; write checkpoint, metrics.json, recon.png and samples.png to --out."""
    source = click.get_current_context().get_parameter_source("beta")
    if options.get("betas") and source is click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("give --beta (one model) or --betas (one conditional model for several), not both")
    cfg = config_from_options(resumed_options(options) if options["resume"] else options)
    from vae.errors import MeasurementFailed
    from vae.train import train as run_training

    if cfg.resume and not (Path(cfg.run_dir) / "checkpoint.pt").exists():  # README: said, not refused
        click.echo(f"note: no checkpoint in {cfg.run_dir}: starting from epoch 1", err=True)
    try:
        history = run_training(cfg)
    except MeasurementFailed as e:  # not bad input (exit 2): the model trained and is saved, the line says where
        click.echo(f"error: {redact(' '.join(str(e).split()))}", err=True)
        click.get_current_context().exit(1)
    final = history[-1]
    if cfg.conditional:  # one line per beta, as an ordinary run at that beta would print
        from vae.conditional import split

        for beta, values in split(final, cfg.betas)[1].items():
            _summary(cfg.at(beta), {**values, "epoch": final["epoch"]}, f"{cfg.run_dir} β={beta:g}")
        return
    _summary(cfg, final)


def _summary(cfg: TrainConfig, final: dict, where: str | None = None) -> None:
    from vae.collapse import COLLAPSE_KL_NATS, collapsed

    au = final.get("diag/active_units")
    click.echo(f"{where or cfg.run_dir}: epoch {final['epoch']}  test R-loss {final['test/r_loss']:.4g}  "
               f"KLD-loss {final['test/kld_loss']:.4g}  loss {final['test/loss']:.4g}"
               + (f"  AU {au:.0f}/{cfg.z_dim}" if au is not None else "")
               + (f"  NLL {final['diag/nll_bpd']:.4g} bits/dim" if final.get("diag/nll_bpd") is not None else "")
               + (f"  FID {final['diag/fid']:.4g}" if final.get("diag/fid") is not None else "")
               + f"  (per image; x{cfg.batch_size} for the original README's per-batch units)")
    if collapsed(au, final["test/kl"]):
        click.echo(f"warning: posterior collapse (AU {'?' if au is None else int(au)}, KL {final['test/kl']:.3g} nats "
                   f"per image; collapsed when AU = 0 or KL < {COLLAPSE_KL_NATS}): the decoder ignores z and "
                   "every reconstruction is the mean image; "
                   + ("at this beta of the conditional model (a smaller beta of its range, more epochs or a wider "
                      "--beta-range may help)" if where else "lower --beta, train longer or use --kl-warmup-epochs"))


@click.command()
@click.argument("run_dir", type=click.Path())
@click.option("--data-dir", default=None, help="Override the data folder recorded in the run.")
@train_option("device")
@train_option("iw_samples")
@click.option("--fid-samples", type=int, default=None, help="Prior samples for FID (0: off) [default: the run's setting].")
@click.option("--betas", type=FloatList(), default=None,
              help="A β-conditional run: measure at these betas (inside its training range) instead of its own.")
def evaluate(run_dir, data_dir, device, iw_samples, fid_samples, betas):
    """Validation and test losses, diagnostics and image grids of a saved run (seeded: same numbers every time)."""
    from pipelines.report.evaluation import lines
    from vae.evaluate import evaluate_run

    result = evaluate_run(run_dir, data_dir=data_dir, device=device, iw_samples=iw_samples, fid_samples=fid_samples,
                          betas=betas)
    for line in lines(result, run_dir):
        click.echo(line)
