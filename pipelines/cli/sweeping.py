"""`vae sweep` and `vae status`: run a study (pipelines/usecases/sweep.py), and see where it stands."""

from __future__ import annotations

import sys
from dataclasses import replace

import click

from pipelines.cli.options import artifact_option, storage_option, study_option, tracking_option
from vae.redact import redact


@click.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path())
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a spec field, e.g. --set epochs=5 --set search.beta=[0.1,0.01] (repeatable).")
@click.option("--n-trials", type=int, default=None, help="Trials for a sampler spec (a grid runs each point once).")
@click.option("--workers", type=int, default=1, show_default=True, help="Worker processes sharing the study.")
@storage_option()
@tracking_option()
@artifact_option()
@click.option("--gpus", default=None, metavar="0,1,...",
              help="GPUs the workers share out, worker i on GPU i mod G (its CUDA_VISIBLE_DEVICES) "
                   "[default: every GPU visible here; none on a CPU host].")
@click.option("--threads", type=int, default=None, help="torch CPU threads per worker [default: chosen from the usable cores and the load on them, and printed].")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="A trial bar (running configuration, best so far, sweep ETA) above the epoch bar; plain lines when piped.")
@click.option("--child", is_flag=True, hidden=True,
              help="A worker of --workers N: its parent prints how the study ended.")
def sweep(spec_path, overrides, n_trials, workers, storage, tracking_uri, artifact_location, gpus, threads, progress,
          child):
    """Run (or resume) the Optuna study of a sweep spec; every trial is an MLflow run."""
    from pipelines.engine.gpus import gpu_plan, parse
    from pipelines.usecases.sweep import sweep as run

    if n_trials is not None and not 1 <= n_trials <= 1_000_000:
        raise click.BadParameter(f"must be between 1 and 1,000,000, got {n_trials:,}", param_hint="--n-trials")
    if workers < 1:
        raise click.BadParameter("must be >= 1", param_hint="--workers")
    spec = _sweep_spec(spec_path, overrides, n_trials, threads, storage, child)
    several = workers > 1 or gpus is not None  # --gpus with one worker: a child process, so that it sees its GPU only
    argv = [spec_path, *[a for o in overrides for a in ("--set", o)]]
    argv += [a for k, v in (("--n-trials", n_trials), ("--storage", storage), ("--tracking-uri", tracking_uri),
                            ("--artifact-location", artifact_location)) if v is not None for a in (k, str(v))]
    out = run(spec, storage, tracking_uri, workers=workers, argv=argv, several=several, child=child,
              gpus=([] if child else gpu_plan(workers, parse(gpus))) if several else [],  # [] on a CPU host
              progress=progress, threads=threads, artifact_location=artifact_location, log=click.echo)
    for text in out.lines():  # how the study ended, then its answer
        click.echo(redact(text))
    if several or out.ran:
        sys.exit(out.code)


def _sweep_spec(spec_path, overrides, n_trials, threads, storage, child):
    """The spec of `vae sweep`, checked, with one note per thing the user should know first."""
    from pipelines.common.spec_file import load_spec
    from pipelines.engine.accept import check_objective

    spec = load_spec(spec_path, overrides, n_trials)  # --n-trials counts before the spec is checked
    if threads is not None:  # one rule (TrainConfig's), and every worker gets it
        spec = spec.model_copy(update={"train": replace(spec.train, threads=threads).validate()})
    notes = [check_objective(spec, storage)]  # before anything is created
    if n_trials is not None and spec.sampler == "grid":
        notes.append(f"note: a grid runs each of its {spec.total} points once; --n-trials {n_trials} is ignored")
    size = spec.space_size() if spec.sampler != "grid" else None
    if size is not None and spec.n_trials > size:
        notes.append(f"note: the search space has {size} point(s), fewer than n_trials {spec.n_trials}: sampler "
                     f"'{spec.sampler}' proposes points again, and each proposal trains a model; sampler: grid runs "
                     "each point once")
    for note in notes if not child else []:
        if note:
            click.echo(note, err=True)
    return spec


def _print_status(study: str, storage: str | None) -> dict:
    from pipelines.usecases.status import study_status
    from vae.collapse import COLLAPSE_KL_NATS

    info = study_status(study, storage)
    n_collapsed = sum(r["collapsed"] for r in info["trials"])
    click.echo(f"{study}: {info['complete']} complete / {info['pruned']} pruned / {info['diverged']} diverged / "
               f"{info['errors']} failed by errors / "
               + (f"{info['gave_up']} given up (their attempts killed their workers) / " if info["gave_up"] else "")
               + f"{info['running']} running / {info['waiting']} waiting; "
               f"{info['left']} of {info['total']} left"
               + (f"; {n_collapsed} complete with posterior collapse (AU = 0 or KL < {COLLAPSE_KL_NATS} nats)"
                  if n_collapsed else ""))
    return info


@click.command()
@study_option(False, "Study name (the spec's `study`) [default: one line per study].")
@storage_option()
@click.option("--trials/--no-trials", default=True, show_default=True, help="List every trial (with --study).")
def status(study, storage, trials):
    """A study's progress from the Optuna storage: complete / running / failed / left."""
    from rich.console import Console
    from rich.table import Table

    from pipelines.common.spec import check_study_name
    from pipelines.common.studies import study_names

    if study is None:
        names = study_names(storage)
        for name in names:
            _print_status(name, storage)
        from pipelines.common.hints import status_hint

        click.echo(f"`{status_hint('NAME')}` lists a study's trials" if names else "no studies yet; run `vae sweep`")
        return
    info = _print_status(check_study_name(study), storage)
    if trials and info["trials"]:
        table = Table("trial", "state", "z_dim", "beta", "seed", "loss", "epochs", "value", "note")
        for r in info["trials"]:
            table.add_row(str(r["trial"]), r["state"], str(r["z_dim"]), _beta_cell(r["beta"], r["loss"]),
                          str(r["seed"]), r["loss"], str(r["epochs"]), f"{r['value']:.5g}" if r["value"] is not None else "",
                          "posterior collapse" if r["collapsed"] else redact(r["note"]))
        Console(width=None if sys.stdout.isatty() else 200).print(table)


def _beta_cell(beta, loss) -> str:
    """A status row's beta: its value; none for sigma-vae; "all (conditional)" for a trial that
    trains one beta-conditional model for every beta of the spec."""
    if beta is not None:
        return f"{beta:g}"
    return "" if loss == "sigma-vae" else "all (conditional)"
