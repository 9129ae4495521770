"""The `vae` command line.

    vae train --dataset digits --z-dim 16 --beta 0.05 --epochs 3
    vae evaluate runs/digits-z16-b0.05
    vae sweep sweeps/quick.yaml
    vae report --study quick
    vae export --study quick chosen
    vae status --study quick
    vae ui

torch, optuna and mlflow are imported inside the commands, so `vae --help` answers at once.
Errors a user can fix print one line and exit with code 2.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import replace
from pathlib import Path

import click

from vae.config import TrainConfig, declared, default, names
from vae.errors import VAEError
from vae.redact import redact

# one per command, shown under it in `vae --help`
EXAMPLES = {
    "train": "vae train --dataset digits --z-dim 16 --beta 0.001 --epochs 30 --batch-size 32",
    "evaluate": "vae evaluate runs/digits-z16-b0.001",
    "sweep": "vae sweep sweeps/quick.yaml --set 'search.seed=[0,1]'    (grows the study: a second seed)",
    "status": "vae status --study quick    (without --study: every study)",
    "report": "vae report --study quick --out reports/quick",
    "export": "vae export --study quick chosen    (or --trial 3; a conditional trial: --beta 0.01)",
    "ui": "vae ui --study quick",
}


class Group(click.Group):
    """The one error boundary: every VAEError (and a file-system error, such as a full disk) becomes
    one line on stderr, passwords hidden, and exit code 2; no tracebacks for bad input."""

    def list_commands(self, ctx):
        return list(self.commands)

    def format_commands(self, ctx, formatter):
        # \b: click keeps the lines as they are (no rewrapping, no "..." truncation)
        rows = [(name, f"\b\n{cmd.get_short_help_str(limit=1000)}\ne.g. {EXAMPLES.get(name, '')}")
                for name, cmd in self.commands.items() if not cmd.hidden]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def main(self, *args, **kwargs):
        """Click's own usage errors (an unknown option, --port -5) also become one line and exit 2,
        instead of the usage text above an "Error:" line."""
        from pipelines.common.signals import watch_sigterm

        kwargs.pop("standalone_mode", None)
        watch_sigterm()
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as e:
            hint = f" (`{e.ctx.command_path} --help` lists the options)" if e.ctx else ""
            click.echo(f"error: {redact(e.format_message())}{hint}", err=True)
            sys.exit(2)
        except click.ClickException as e:
            click.echo(f"error: {redact(e.format_message())}", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (VAEError, OSError) as e:
            message = str(e) if isinstance(e, VAEError) else f"{e.strerror or type(e).__name__}: {e.filename or e}"
            click.echo("error: " + " ".join(redact(message).split()), err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            _interrupted(ctx)
        except Exception:
            from pipelines.common.signals import CTRL_C

            if CTRL_C.is_set():  # Ctrl-C inside a database call surfaces as the library's own error
                _interrupted(ctx)
            raise


def _interrupted(ctx) -> None:
    """Ctrl-C: "interrupted", exit 130; SIGTERM (pipelines/common/signals.py): "terminated (SIGTERM)", 143."""
    from pipelines.common.signals import EXIT_CODE, TERMINATED

    if TERMINATED.is_set():
        click.echo("terminated (SIGTERM)", err=True)
        ctx.exit(EXIT_CODE)
    click.echo("interrupted", err=True)
    ctx.exit(130)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="vae-balance")
def cli():
    """vae-balance: sweep VAE z-dim x beta, track every trial in MLflow, report the balance."""


class FloatList(click.ParamType):
    """`0.1,0.01,0.001` -> [0.1, 0.01, 0.001]."""
    name = "X,Y,..."

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        try:
            return [float(v) for v in str(value).split(",") if v.strip()]
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of numbers", param, ctx)


def default_text(name: str) -> str:
    """A setting's default as `vae train --help` shows it: its declared `shown` words, else its value."""
    meta = declared(name).metadata
    if meta["shown"] is not None:
        return meta["shown"]
    value = default(name)
    if isinstance(value, bool):
        return f"--{name.replace('_', '-')}" if value else f"--no-{name.replace('_', '-')}"
    return str(value)


def train_option(name: str):
    """The `vae train` option of one setting, from its declaration (vae/config.py): type, default, help."""
    f = declared(name)
    flag, hint = f"--{name.replace('_', '-')}", str(f.type)
    value = None if f.default is dataclasses.MISSING else f.default  # a factory (data_dir): resolved in TrainConfig
    kwargs = {"default": value, "help": f"{f.metadata['help']} [default: {default_text(name)}]"}
    if hint.startswith("bool"):
        return click.option(f"{flag}/--no-{flag[2:]}", **kwargs)
    if f.metadata["choices"]:
        kwargs["type"] = click.Choice(f.metadata["choices"])
    elif hint.startswith("list[float]"):
        kwargs["type"] = FloatList()
    elif hint.startswith(("int", "float")):
        kwargs["type"] = {"int": int, "float": float}[hint.split(" ")[0]]
    return click.option(flag, **kwargs)


def train_options(f):
    """One option per TrainConfig setting, generated from its declaration."""
    for name in reversed(names()):
        f = train_option(name)(f)
    return f


def config_from_options(options: dict) -> TrainConfig:
    values = dict(options)
    if values.get("data_dir") is None:  # its default comes from the environment (TrainConfig)
        values.pop("data_dir", None)
    return TrainConfig(**values).validate()


def resumed_options(options: dict) -> dict:
    """`vae train --resume`: each setting that defines the run (vae/config.py IDENTITY roles) and that
    the command line leaves at its default reads as the run folder recorded it (config.json), so that
    a run resumes as it was started, also after a default has changed since; an option given on the
    command line still overrides it (and `train` refuses a model setting that differs from the
    checkpoint's). A setting its config.json predates reads as version 1 had it (legacy_defaults)."""
    import json

    from vae.config import IDENTITY, legacy_defaults

    out = Path(TrainConfig(**{k: v for k, v in options.items() if k != "data_dir" or v is not None}).run_dir)
    try:
        recorded = {**legacy_defaults(1), **json.loads((out / "config.json").read_text())}
    except (OSError, ValueError):  # no run there yet (train says so), or not ours: train decides
        return options
    source = click.get_current_context().get_parameter_source
    return {**options, **{k: recorded[k] for k in names(IDENTITY)
                          if k in recorded and source(k) is click.core.ParameterSource.DEFAULT}}


@cli.command()
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


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("--data-dir", default=None, help="Override the data folder recorded in the run.")
@click.option("--device", default="auto", show_default=True, help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps.")
@click.option("--iw-samples", type=int, default=100, show_default=True, help="K for the importance-weighted NLL bound.")
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


@cli.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path())
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a spec field, e.g. --set epochs=5 --set search.beta=[0.1,0.01] (repeatable).")
@click.option("--n-trials", type=int, default=None, help="Trials for a sampler spec (a grid runs each point once).")
@click.option("--workers", type=int, default=1, show_default=True, help="Worker processes sharing the study.")
@click.option("--storage", default=None, help="Optuna storage URL [env VAE_STORAGE; default sqlite:///mlruns/optuna.db].")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI [env MLFLOW_TRACKING_URI; default sqlite:///mlruns/mlflow.db].")
@click.option("--artifact-location", default=None, metavar="PATH|URI",
              help="Where a new study's MLflow artifacts go: one location every host reaches (a shared folder, "
                   "s3://...); needed with a database tracking URI other than SQLite [env VAE_ARTIFACT_LOCATION].")
@click.option("--gpus", default=None, metavar="0,1,...",
              help="GPUs the workers share out, worker i on GPU i mod G (its CUDA_VISIBLE_DEVICES) "
                   "[default: every GPU visible here; none on a CPU host].")
@click.option("--threads", type=int, default=None, help="torch CPU threads per worker [default: cores / workers].")
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
    from pipelines.common.spec import load_spec
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


@cli.command()
@click.option("--study", default=None, help="Study name (the spec's `study`) [default: one line per study].")
@click.option("--storage", default=None, help="Optuna storage URL [env VAE_STORAGE; default sqlite:///mlruns/optuna.db].")
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


@cli.command()
@click.option("--study", default=None, help="Print the link to this study's runs table.")
@click.option("--tracking-uri", default=None, help="[env MLFLOW_TRACKING_URI; default sqlite:///mlruns/mlflow.db]")
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address (loopback: only this machine).")
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True, help="Port of the UI.")
def ui(study, tracking_uri, host, port):
    """Serve the MLflow UI on the sweep's tracking store; print the study's runs page once it answers."""
    from pipelines.tracking.runs import Tracker, resolve_uri
    from pipelines.tracking.ui import runs_url, serve

    uri = resolve_uri(tracking_uri)
    if uri.startswith("http"):
        raise click.UsageError(f"{redact(uri)} is a tracking server already: open it in a browser")
    tracker = Tracker(uri)
    tracker.check()
    # an unknown study is refused (one line, exit 2) before a server starts, as `vae report` does
    url, what = runs_url(tracker, study, host, port), f"runs of {study}" if study else "every study"
    sys.exit(serve(uri, host, port, on_ready=lambda: click.echo(f"{what}: {url}  (Ctrl-C stops the server)")))


def _beta_cell(beta, loss) -> str:
    """A status row's beta: its value; none for sigma-vae; "all (conditional)" for a trial that
    trains one beta-conditional model for every beta of the spec."""
    if beta is not None:
        return f"{beta:g}"
    return "" if loss == "sigma-vae" else "all (conditional)"


@cli.command()
@click.option("--study", required=True, help="Study name (the spec's `study`).")
@click.option("--out", type=click.Path(), default=None, help="Report folder [default: reports/<study>].")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "csv"]), default="table", show_default=True,
              help="table: print it and write every file; markdown/csv: print only that to stdout.")
@click.option("--compare", "other", default=None, metavar="STUDY",
              help="A second study to set beside it (e.g. its β-conditional sweep): the gap at every shared "
                   "(z-dim, β), the compute of each, the conditional curve with both studies' points.")
@click.option("--tracking-uri", default=None, help="[env MLFLOW_TRACKING_URI; default sqlite:///mlruns/mlflow.db]")
@click.option("--storage", default=None,
              help="The study's Optuna storage, where the verdict is stored too [env VAE_STORAGE; default sqlite:///mlruns/optuna.db].")
def report(study, out, fmt, other, tracking_uri, storage):
    """The verdict, the balance table, figures and an HTML report from a study's MLflow runs."""
    from pipelines.common.spec import check_study_name
    from pipelines.common.studies import check_storage
    from pipelines.report.data import build
    from pipelines.report.fetch import load_runs
    from pipelines.report.folder import check_report_folder
    from pipelines.report.page import to_markdown, write_report
    from pipelines.report.tables import KEY, display_frame, groups, terminal, to_csv
    from pipelines.report.verdict import lines, row_index
    from pipelines.tracking.runs import Tracker
    from pipelines.usecases.publish import compute_verdict, publish
    from vae.paths import check_folder

    study = check_study_name(study)  # reports/.. would be this folder
    if other is not None:
        other = check_study_name(other)
    out = (f"reports/{study}" + (f"-vs-{other}" if other else "")) if out is None else out
    if fmt == "table":  # the only format that writes files: check where, before the table is printed
        out = check_report_folder(check_folder(out, "--out"))
    tracker = Tracker(tracking_uri, create=False)  # reads a store, never creates one
    check_storage(storage)  # an MLflow database given as --storage: refused before anything is written
    experiment_id, runs = load_runs(study, tracker)
    rep = build(study, runs)
    rep, v = compute_verdict(study, tracker, storage, rep)
    other_rep = comparison = None
    if other is not None:
        from pipelines.report.compare import compare

        other_rep = build(other, load_runs(other, tracker)[1])
        comparison = compare(rep, other_rep, tracker)
    if fmt == "csv":
        click.echo(redact(to_csv(rep)), nl=False)
        return
    if fmt == "markdown":
        click.echo(redact(to_markdown(rep, comparison, v)), nl=False)
        return
    from rich.console import Console

    publish(v, tracker, storage, experiment_id)  # the model registered; the verdict on the parent run and in Optuna
    console = Console(width=None if sys.stdout.isatty() else 200)  # piped output keeps whole numbers
    for line in lines(v):  # the answer first; whole lines (a terminal wraps them, a file keeps them)
        console.print(redact(line), markup=False, highlight=False, soft_wrap=True)
    frame = display_frame(rep)
    table = terminal(frame, groups(frame)[KEY],
                     f"{study}: final values per image; losses on the test split, the rest on its evaluation "
                     f"subset; more columns in report.md and table.csv", highlight=row_index(rep.table, v))
    console.print(table)
    for r in rep.failures.itertuples():
        console.print(f"not in the table: trial {r.trial} ({r.run}) {r.state}: {redact(r.reason)}", markup=False)
    if comparison is not None:
        from pipelines.report.compare import summary
        from pipelines.report.tables import comparison as comparison_frames

        frames = comparison_frames(comparison)
        for title, frame in frames.items():
            ab = f" (A = {study}, B = {other}, Δ = (B − A) / A)" if title == "Gaps" else ""
            console.print(terminal(frame, list(frame.columns), f"{other} against {study}: {title.lower()}{ab}"))
        for line in summary(comparison):
            console.print(line, markup=False)
    files = write_report(rep, tracker, experiment_id, out, other_rep, comparison, v)
    click.echo(f"wrote {files['html']} (and report.md, table.csv, verdict.json, figures); logged to the study's "
               "parent run, with the verdict")


@cli.command()
@click.argument("out", metavar="OUT", type=click.Path())
@click.option("--study", required=True, help="Study name (the spec's `study`).")
@click.option("--trial", type=int, default=None,
              help="This trial (its number) [default: the study's verdict, set by `vae report`].")
@click.option("--beta", type=float, default=None,
              help="A β-conditional trial: the beta to export it at (inside its range) [default: the verdict's].")
@click.option("--storage", default=None, help="Optuna storage URL [env VAE_STORAGE; default sqlite:///mlruns/optuna.db].")
@click.option("--tracking-uri", default=None, help="[env MLFLOW_TRACKING_URI; default sqlite:///mlruns/mlflow.db]")
def export(out, study, trial, beta, storage, tracking_uri):
    """Write the chosen model to the folder OUT: checkpoint, config and a README; `vae.load_model(OUT)` loads it."""
    from pipelines.usecases.export import export as write_export

    info = write_export(study, out, trial=trial, beta=beta, storage=storage, tracking_uri=tracking_uri)
    balance = (f"β-conditional at β {info['beta']:g}" if info["conditional"] else
               "σ-VAE" if info["beta"] is None else f"β {info['beta']:g}")
    numbers = ("; test R-loss {:.4g}, KLD-loss {:.4g}".format(info["test/r_loss"], info["test/kld_loss"])
               if info["test/r_loss"] is not None else "")
    click.echo(f"wrote {out}: study {study}, trial {info['trial']} (z-dim {info['z_dim']}, {balance}, run "
               f"{info['run_name']}){numbers}; load it with vae.load_model({str(out)!r})")


def main():
    cli(prog_name="vae")


if __name__ == "__main__":
    sys.exit(main())

