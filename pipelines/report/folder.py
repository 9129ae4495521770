"""The report folder a report owns: it replaces only files it wrote itself, never a user's.

    out = check_report_folder(Path("reports/quick"))   # before anything is computed: exit 2 if not ours
    write_owned(out, lambda new: write_files(new))     # built beside it, checked again, swapped in whole

Every report leaves a manifest in its folder, `.vae-report.json`: the path and SHA-256 of every
file it wrote. A folder may be replaced only when everything in it (hidden names, images, `grids/`
included) is a file that manifest lists, unchanged since: a file the user added, renamed or
edited there, or a folder with no manifest at all (photos, a project, a home folder, a report of a
version before manifests), is refused with one line naming what is not the report's, and nothing
is touched. An empty or new folder is always fine. The check runs again just before the swap, so a
file added while the report was being computed is never deleted either.

Why not the library: shutil and tempfile replace or remove folders but know nothing of who wrote
what in them; a manifest of hashes is the smallest record that tells a report's file from a user's
file of the same name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from vae.atomic import atomic_write_text, replace_folder, staging_folder
from vae.errors import ConfigError

MANIFEST = ".vae-report.json"


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _entries(folder: Path) -> list[Path]:
    """Everything below `folder` (files, links, folders, hidden ones too), relative, never
    following a link."""
    out = []
    for top, dirs, files in os.walk(folder, followlinks=False):
        out += [(Path(top) / name).relative_to(folder) for name in dirs + files]
    return sorted(out)


def foreign(out: Path) -> list[str]:
    """What in `out` no report wrote, as relative paths ([] for nothing): files missing from the
    manifest or changed since, links, and folders holding no report file."""
    out = Path(out)
    if not out.is_dir():
        return []
    entries = _entries(out)
    if not entries:
        return []
    try:
        listed = json.loads((out / MANIFEST).read_text())["files"]
        if not isinstance(listed, dict):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError):
        listed = {}
    own_dirs = {str(parent) for name in listed for parent in Path(name).parents if str(parent) != "."}
    bad = []
    for rel in entries:
        path, name = out / rel, str(rel)
        if name == MANIFEST and listed:
            continue
        if path.is_symlink():
            bad.append(name)
        elif path.is_dir():
            if name not in own_dirs:
                bad.append(name + "/")
        elif name not in listed or _digest(path) != listed[name]:
            bad.append(name)
    # a folder that is not the report's is named once, not with everything inside it
    return [b for b in bad if not any(b != o and o.endswith("/") and b.startswith(o) for o in bad)]


def check_report_folder(out: Path) -> Path:
    """`out` if a report may write there (new, empty, or a report's own, unchanged); ConfigError
    (one line, exit 2) naming what is not the report's otherwise. Reads only."""
    out = Path(out)
    bad = foreign(out)
    if bad:
        shown = ", ".join(bad[:4]) + (f", and {len(bad) - 4} more" if len(bad) > 4 else "")
        raise ConfigError(f"--out {out} holds files a report did not write ({shown}); a report replaces only "
                          "its own files: pass a new or empty folder, or move those away")
    return out


def write_owned(out: Path, write: Callable[[Path], dict[str, Path]]) -> dict[str, Path]:
    """`write(new)` fills a fresh folder beside `out` and returns its files; the manifest is added
    and the folder swapped in for `out` as a whole (vae/atomic.py), after checking `out` again.
    Returns the files at their place in `out`."""
    from pipelines.common.faults import fault

    out = Path(out)
    new = staging_folder(out)
    try:
        files = write(new)
        written = {str(p.relative_to(new)): _digest(p) for p in sorted(new.rglob("*")) if p.is_file()}
        atomic_write_text(new / MANIFEST, json.dumps({"written_by": "vae report", "files": written}, indent=1) + "\n")
        fault("report-written")  # every file written, the old report not yet replaced (tests)
        check_report_folder(out)  # a file put there meanwhile is the user's: refused, nothing replaced
        replace_folder(new, out)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    if new.exists():  # the previous report, swapped out, could not be removed whole (an immutable file)
        import sys

        left = next((p for p in sorted(new.rglob("*")) if p.is_file()), new)
        print(f"warning: the new report is in {out}, but the previous one could not be removed entirely: "
              f"{new} is left (e.g. {left.name} cannot be deleted); remove it by hand", file=sys.stderr)
    return {key: out / path.relative_to(new) for key, path in files.items()}
