"""Files and folders written whole or not at all: a kill at any moment leaves the old or the new.

    atomic_write_text(run / "metrics.json", text)
    atomic_write(run / "recon.png", lambda tmp: save_image(grid, tmp, format="png"))
    replace_folder(staging, Path("reports/quick"))   # the old report swapped out as a whole

Each file is written to a hidden temporary name beside it (`.NAME.tmpPID`) and renamed into
place (rename is atomic on one file system). A folder is built beside the one it replaces and
exchanged with it in one step (Linux renameat2 RENAME_EXCHANGE); elsewhere the old folder is
moved aside first and `restore_folder` puts it back if a kill came between the two renames.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path

AT_FDCWD, RENAME_EXCHANGE = -100, 2


FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
TORCH_SHORT_WRITE = ("unexpected pos", "file write failed", "PytorchStreamWriter failed writing")
"""torch.save on a full disk raises RuntimeError with one of these, not OSError (inline_container.cc)."""


def disk_full(e: BaseException, path: Path, written: int | None = None):
    """The DiskFull (vae/errors.py) that `e` stands for when writing `path`, or None: ENOSPC/EDQUOT,
    or torch's short-write RuntimeError where the disk there is (nearly) full."""
    from vae.errors import DiskFull

    path = Path(path)
    folder = next((p for p in (path.parent, *path.parents) if p.exists()), Path("."))
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    chain, seen = e, set()
    while chain is not None and id(chain) not in seen:  # a library may wrap it (MLflow's downloads do)
        seen.add(id(chain))
        if isinstance(chain, OSError) and chain.errno in FULL:
            return DiskFull(path, free, written)
        chain = chain.__cause__ or chain.__context__
    if isinstance(e, RuntimeError) and any(m in str(e) for m in TORCH_SHORT_WRITE) and free < (1 << 20):
        return DiskFull(path, free, written)
    return None


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """`write(tmp)` writes the file at `tmp`; it is renamed to `path` only when complete. A full disk
    is DiskFull (one line: the path, the bytes written before it filled, the bytes free), with the
    partial file removed and the earlier file at `path` untouched."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        written = tmp.stat().st_size if tmp.exists() else None
        tmp.unlink(missing_ok=True)
        full = disk_full(e, path, written) if isinstance(e, Exception) else None
        if full is not None:
            raise full from None
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def staging_folder(out: Path) -> Path:
    """An empty hidden folder beside `out` to build its replacement in (stale ones removed)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    restore_folder(out)
    for stale in out.parent.glob(f".{out.name}.new*"):  # left by a process killed while building
        shutil.rmtree(stale, ignore_errors=True)
    new = out.with_name(f".{out.name}.new{os.getpid()}")
    new.mkdir()
    return new


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step; False where the system cannot (then nothing moved)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0


def replace_folder(new: Path, out: Path) -> Path:
    """Put the finished folder `new` at `out`, replacing what was there as a whole."""
    new, out = Path(new), Path(out)
    if not out.exists():
        os.replace(new, out)
    elif _exchange(new, out):
        shutil.rmtree(new, ignore_errors=True)  # now the old folder
    else:
        old = out.with_name(f".{out.name}.old{os.getpid()}")
        os.replace(out, old)
        os.replace(new, out)
        shutil.rmtree(old, ignore_errors=True)
    return out


def restore_folder(out: Path) -> None:
    """Undo a replace_folder cut short between its two renames (no `out`, its old copy aside)."""
    out = Path(out)
    old = sorted(out.parent.glob(f".{out.name}.old*"), key=lambda p: p.stat().st_mtime)
    if not out.exists() and old:
        os.replace(old[-1], out)
    for stale in out.parent.glob(f".{out.name}.old*"):
        shutil.rmtree(stale, ignore_errors=True)
