"""A full disk: one line naming the path and the bytes free, exit 2, never a traceback, never the
wrong thing blamed; an earlier checkpoint or report intact. On a real 2 MiB tmpfs where this
machine lets us mount one (root), else on a simulated short write."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines.cli import cli


@pytest.fixture
def full_disk(tmp_path):
    """A 2 MiB tmpfs mounted at tmp/full (unmounted afterwards); skipped where mounting is not allowed."""
    mount = tmp_path / "full"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()[:100]}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(mount: Path, leave: int) -> None:
    free = shutil.disk_usage(mount).free
    (mount / "filler").write_bytes(b"\0" * max(0, free - leave))


def train_args(epochs=2):
    return [sys.executable, "-m", "pipelines.cli", "train", "--dataset", "digits", "--limit", "200", "--z-dim", "4",
            "--width", "8", "--epochs", str(epochs), "--iw-samples", "0", "--no-progress", "--device", "cpu"]


TRAIN = train_args()


def run(args, cwd, **env):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), **env})


def test_train_on_a_full_disk_says_so_in_one_line_and_leaves_no_half_file(full_disk, tmp_path):
    fill(full_disk, 20_000)
    done = run([*TRAIN, "--data-dir", str(tmp_path / "data"), "--out", str(full_disk / "run")], tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert lines[0].startswith(f"error: no space left to write {full_disk}/run/checkpoint.pt: ") and " free there" in lines[0]
    assert not (full_disk / "run").exists()  # no empty run folder, no partial checkpoint


def test_an_earlier_checkpoint_stays_intact_when_the_next_one_does_not_fit(full_disk, tmp_path):
    out = full_disk / "run"
    first = run([*train_args(1), "--data-dir", str(tmp_path / "data"), "--out", str(out)], tmp_path)
    assert first.returncode == 0, first.stderr
    before = (out / "checkpoint.pt").read_bytes()
    fill(full_disk, 20_000)
    again = run([*TRAIN, "--data-dir", str(tmp_path / "data"), "--out", str(out), "--resume"], tmp_path)
    assert again.returncode == 2 and "no space left to write" in again.stderr, again.stderr
    assert (out / "checkpoint.pt").read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_a_sweep_fails_the_trial_with_the_reason_and_export_blames_the_disk(full_disk, tmp_path, env):
    from pipelines.usecases.status import study_status

    path = env.spec(epochs=1)
    path.write_text(path.read_text().replace("z_dim: [2, 4]", "z_dim: [4]").replace("beta: [0.1, 0.01]", "beta: [0.1]"))
    fill(full_disk, 20_000)
    done = subprocess.run(env.cli(path), capture_output=True, text=True, timeout=600,
                          env={**os.environ, "VAE_RUNS_DIR": str(full_disk / "runs")})
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: no space left to write {full_disk}/runs/")
    (trial,) = study_status("t", env.storage)["trials"]
    assert trial["state"] == "FAIL" and "no space left to write" in trial["note"]
    # with room to train, the model exists; exporting it to the full disk blames the disk, not the run
    (full_disk / "filler").unlink()
    shutil.rmtree(full_disk / "runs", ignore_errors=True)
    assert env.sweep(path).complete == 1
    fill(full_disk, 20_000)
    result = CliRunner().invoke(cli, ["export", "--study", "t", str(full_disk / "chosen"), "--storage", env.storage,
                                      "--tracking-uri", env.tracking, "--trial", "1"])
    assert result.exit_code == 2, result.output
    assert f"no space left to write {full_disk}/chosen/checkpoint.pt" in result.output
    assert "has no checkpoint.pt" not in result.output and not (full_disk / "chosen").exists()


def test_torchs_short_write_on_a_full_disk_is_disk_full(tmp_path, monkeypatch):
    """Where no tmpfs can be mounted: torch.save's RuntimeError on a full disk, and ENOSPC."""
    import errno

    from vae.atomic import atomic_write
    from vae.errors import DiskFull

    (tmp_path / "old").write_text("earlier")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(100, 99, 1))

    def short(tmp):
        tmp.write_bytes(b"x" * 500)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1601664 vs 1601556")

    with pytest.raises(DiskFull, match=r"no space left to write .*old: 500 bytes needed at least, 1 bytes free"):
        atomic_write(tmp_path / "old", short)
    assert (tmp_path / "old").read_text() == "earlier" and sorted(os.listdir(tmp_path)) == ["old"]

    def enospc(tmp):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFull):
        atomic_write(tmp_path / "old", enospc)
    with pytest.raises(RuntimeError, match="unrelated"):  # another RuntimeError is not a full disk
        atomic_write(tmp_path / "old", lambda tmp: (_ for _ in ()).throw(RuntimeError("unrelated")))
