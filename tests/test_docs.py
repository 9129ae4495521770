"""The documentation: the site builds with no broken link or missing page, and what it shows of the
`vae` command exists (every command and option documented somewhere, every one shown real)."""

import re
import subprocess
import sys
from pathlib import Path

from pipelines.cli import cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = {p.name: p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))}
ALL = (ROOT / "README.md").read_text() + "\n".join(PAGES.values())


def test_the_site_builds_strict(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(tmp_path / "site")], capture_output=True, text=True, cwd=ROOT,
                          env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "verdict" / "index.html").exists()


def test_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    assert {name for name in PAGES if f": {name}" not in nav} == set()


def test_every_command_and_option_is_documented():
    for name, command in cli.commands.items():
        assert f"vae {name}" in ALL, name
        for param in command.params:
            if getattr(param, "hidden", False):
                continue
            for opt in param.opts:
                if opt.startswith("--") and opt != "--help":
                    assert f"`{opt}" in ALL or f"{opt} " in ALL, f"vae {name} {opt}"


def test_every_command_line_shown_exists():
    """`vae NAME --option` in any page names a command that exists and an option it has."""
    wrong = []
    for line in re.findall(r"\bvae ([a-z]+)((?: [^\n`|]*)?)", ALL):
        name, rest = line
        command = cli.commands.get(name)
        if command is None:  # "the vae command", "vae optuna": prose, unless an option follows
            if re.match(r" --[a-z]", rest):
                wrong.append(f"vae {name}")
            continue
        options = {o for p in command.params for o in (*p.opts, *getattr(p, "secondary_opts", []))} | {"--help"}
        for opt in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", rest):
            if opt not in options:
                wrong.append(f"vae {name} {opt}")
    assert sorted(set(wrong)) == []
