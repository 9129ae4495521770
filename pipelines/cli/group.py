"""The `vae` group: the one error boundary (one line, exit 2) and the help page, an example per command."""

from __future__ import annotations

import sys

import click

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
