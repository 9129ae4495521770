"""The README documents every command and option the CLI has."""

from pathlib import Path

from pipelines.cli import cli

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_command_and_option_is_documented():
    for name, command in cli.commands.items():
        assert f"vae {name}" in README, name
        for param in command.params:
            if getattr(param, "hidden", False):
                continue
            for opt in param.opts:
                if opt.startswith("--") and opt != "--help":
                    assert f"`{opt}" in README or f"{opt} " in README, f"vae {name} {opt}"


def test_readme_gives_the_test_command_ci_runs():
    assert "make test" in README
    assert "make test" in (Path(__file__).parent.parent / ".ci" / "run").read_text()
