"""Folders we are about to write into, checked before anything is written.

A run folder (`--out`), a report folder or the data folder that names a file, lies below a file
or sits where we may not write is bad input: one line naming the option, not an OSError from deep
inside torch.save after minutes of work or a half-written folder.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from vae.errors import ConfigError


def check_folder(path: str | Path, what: str, write: bool = True) -> Path:
    """`path` as a Path if it is a folder, or can be created as one, and (`write`) is writable
    there; raises ConfigError naming `what` (e.g. "--out") otherwise. Creates nothing."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path} is a file, not a folder")
    existing = next(p for p in (path, *path.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():
        raise ConfigError(f"{what} {path} lies below {existing}, which is a file, not a folder")
    if write:
        try:  # a real write, not os.access: root, read-only mounts and ACLs all answer truthfully
            with tempfile.TemporaryFile(dir=existing):
                pass
        except OSError as e:
            raise ConfigError(f"{what} {path}: cannot write in {existing} ({e.strerror or e})") from None
    return path


def check_run_folder(path: Path, what: str = "--out") -> Path:
    """A run writes only into a new or empty folder, or into a run folder it made before (the one
    with its `checkpoint.pt`: a rerun or `--resume`), so it never overwrites a file of yours that happens to
    share a name it writes (config.json, metrics.json, recon.png, ...); raises ConfigError otherwise."""
    if path.is_dir() and not (path / "checkpoint.pt").is_file():
        entries = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
        if entries:
            shown = ", ".join(entries[:4]) + (f" and {len(entries) - 4} more" if len(entries) > 4 else "")
            raise ConfigError(f"{what} {path} holds files a run did not write ({shown}); a run writes into a new "
                              "or empty folder, or its own run folder: pass a new one, or move those away")
    return path
