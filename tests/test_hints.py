"""Hints name a command that works as the user started: vae on PATH, the venv's script, or make."""

import os
import sys
from pathlib import Path

import pytest

from pipelines.common import hints


@pytest.fixture
def venv(tmp_path, monkeypatch):
    """An interpreter in tmp/.venv/bin with its vae script; the current folder is tmp."""
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "vae").write_text("#!/bin/sh\n")
    (bin_dir / "vae").chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAKELEVEL", raising=False)
    return bin_dir


def test_vae_on_path_is_named_plainly(venv, monkeypatch):
    monkeypatch.setenv("PATH", f"{venv}{os.pathsep}/usr/bin")
    assert hints.report_hint("quick") == "vae report --study quick"


def test_without_vae_on_path_the_script_relative_to_here(venv, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", "/usr/bin")
    assert hints.report_hint("quick") == ".venv/bin/vae report --study quick"
    other = tmp_path / "elsewhere"  # a vae of another installation on PATH is not ours either
    other.mkdir()
    (other / "vae").write_text("#!/bin/sh\n")
    (other / "vae").chmod(0o755)
    monkeypatch.setenv("PATH", str(other))
    assert hints.report_hint("quick") == ".venv/bin/vae report --study quick"
    monkeypatch.chdir(other)  # not below the current folder: the absolute path
    assert hints.report_hint("quick") == f"{Path(venv / 'vae').as_posix()} report --study quick"


def test_under_make_the_make_target(venv, monkeypatch):
    monkeypatch.setenv("MAKELEVEL", "1")
    assert hints.report_hint("quick") == "make report STUDY=quick"
    assert hints.status_hint("quick") == "make status STUDY=quick"


def test_the_sweep_messages_use_it(venv, monkeypatch):
    from pipelines.engine.sweep import already_complete, exit_status

    monkeypatch.setenv("MAKELEVEL", "1")
    p = {"complete": 4, "pruned": 0, "diverged": 0, "errors": 0, "done": True, "running": 0, "left": 0,
         "total": 4, "started": 4, "unfinished": []}
    assert exit_status("quick", p)[1].endswith("`make report STUDY=quick` builds the table")
    assert already_complete("quick", p).endswith("see `make report STUDY=quick`")
    failed = {**p, "errors": 1, "unfinished": [3]}
    assert "`make status STUDY=quick` says why" in exit_status("quick", failed)[1]
