"""`vae report`, `vae export` and `vae ui`: a study's answer, its model to take away, its runs in MLflow."""

from __future__ import annotations

import sys

import click

from pipelines.cli.options import storage_option, study_option, tracking_option
from vae.redact import redact


@click.command()
@study_option(False, "Print the link to this study's runs table.")
@tracking_option()
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
    from pipelines.tracking.ui import HINT

    lines = [f"{what}: {url}  (Ctrl-C stops the server)"] + ([HINT] if study else [])
    sys.exit(serve(uri, host, port, on_ready=lambda: click.echo("\n".join(lines))))


@click.command()
@study_option()
@click.option("--out", type=click.Path(), default=None, help="Report folder [default: reports/<study>; with --compare, reports/<study>-vs-<other>].")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "csv"]), default="table", show_default=True,
              help="table: print it and write every file; markdown/csv: print only that to stdout.")
@click.option("--compare", "other", default=None, metavar="STUDY",
              help="A second study to set beside it (e.g. its β-conditional sweep): the gap at every shared "
                   "(z-dim, β), the compute of each, the conditional curve with both studies' points.")
@tracking_option()
@storage_option("The study's Optuna storage, where the verdict is stored too")
def report(study, out, fmt, other, tracking_uri, storage):
    """The verdict, the balance table, figures and an HTML report from a study's MLflow runs."""
    from pipelines.common.spec import check_study_name
    from pipelines.common.studies import check_storage
    from pipelines.report.folder import check_report_folder
    from pipelines.report.page import to_markdown
    from pipelines.report.tables import to_csv
    from pipelines.tracking.runs import Tracker
    from pipelines.usecases.report import study_report
    from vae.paths import check_folder

    study = check_study_name(study)  # reports/.. would be this folder
    if other is not None:
        other = check_study_name(other)
    out = (f"reports/{study}" + (f"-vs-{other}" if other else "")) if out is None else out
    if fmt == "table":  # the only format that writes files: check where, before the table is printed
        out = check_report_folder(check_folder(out, "--out"))
    tracker = Tracker(tracking_uri, create=False)  # reads a store, never creates one
    check_storage(storage)  # an MLflow database given as --storage: refused before anything is written
    r = study_report(study, tracker, storage, other)
    if fmt == "csv":
        click.echo(redact(to_csv(r.rep)), nl=False)
        return
    if fmt == "markdown":
        click.echo(redact(to_markdown(r.rep, r.comparison, r.verdict)), nl=False)
        return
    r.publish(storage)
    _print_report(r, other)
    files = r.write(out)
    click.echo(f"wrote {files['html']} (and report.md, table.csv, verdict.json, figures); logged to the study's "
               "parent run, with the verdict")


def _print_report(r, other: str | None) -> None:
    """The verdict first, then the key table, what is not in it, and the comparison."""
    from rich.console import Console

    from pipelines.report.tables import KEY, display_frame, groups, seeds_note, terminal
    from pipelines.report.verdict import lines, row_index

    console = Console(width=None if sys.stdout.isatty() else 200)  # piped output keeps whole numbers
    for line in lines(r.verdict):  # the answer first; whole lines (a terminal wraps them, a file keeps them)
        console.print(redact(line), markup=False, highlight=False, soft_wrap=True)
    frame = display_frame(r.rep)
    console.print(terminal(frame, groups(frame)[KEY],
                           f"{r.study}: final values per image; losses on the test split, the rest on its evaluation "
                           f"subset; more columns in report.md and table.csv"
                           + (f"; {seeds}" if (seeds := seeds_note(r.rep)) else ""),
                           highlight=row_index(r.rep.table, r.verdict)))
    for f in r.rep.failures.itertuples():
        console.print(f"not in the table: trial {f.trial} ({f.run}) {f.state}: {redact(f.reason)}", markup=False)
    if r.comparison is not None:
        from pipelines.report.compare import summary
        from pipelines.report.tables import comparison as comparison_frames

        for title, frame in comparison_frames(r.comparison).items():
            ab = f" (A = {r.study}, B = {other}, Δ = (B − A) / A)" if title == "Gaps" else ""
            console.print(terminal(frame, list(frame.columns), f"{other} against {r.study}: {title.lower()}{ab}"))
        for line in summary(r.comparison):
            console.print(line, markup=False)


@click.command()
@click.argument("out", metavar="OUT", type=click.Path())
@study_option()
@click.option("--trial", type=int, default=None,
              help="This trial (its number) [default: the study's verdict, set by `vae sweep` once the study is finished, and by `vae report`].")
@click.option("--beta", type=float, default=None,
              help="A β-conditional trial: the beta to export it at (inside its range) [default: the verdict's].")
@storage_option()
@tracking_option()
def export(out, study, trial, beta, storage, tracking_uri):
    """Write the chosen model to the folder OUT: checkpoint, config and a README; `vae.load_model(OUT)` loads it."""
    from pathlib import Path

    from pipelines.usecases.export import export as write_export

    info = write_export(study, out, trial=trial, beta=beta, storage=storage, tracking_uri=tracking_uri)
    balance = (f"β-conditional at β {info['beta']:g}" if info["conditional"] else
               "σ-VAE" if info["beta"] is None else f"β {info['beta']:g}")
    numbers = ("; test R-loss {:.4g}, KLD-loss {:.4g}".format(info["test/r_loss"], info["test/kld_loss"])
               if info["test/r_loss"] is not None else "")
    click.echo(f"wrote {out}: study {study}, trial {info['trial']} (z-dim {info['z_dim']}, {balance}, run "
               f"{info['run_name']}){numbers}; load it with vae.load_model({str(Path(out).resolve())!r})")
