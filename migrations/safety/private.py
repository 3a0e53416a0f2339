"""Personal data at rest is owner-only: files 0600, folders 0700, whatever the operator's umask.

The state store and everything trustfold keeps beside it (initial passwords, upload-session URLs, throttle
windows, sandbox state) hold pupils' names or secrets. The CLI sets a 077 umask for the whole process, so
files made by SQLite and libraries are private too; these helpers make the same promise when trustfold is used
as a library, and tighten what an older version (or a copy) left looser. They only ever remove bits.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import stat
from pathlib import Path

OWNER_ONLY_UMASK = 0o077
FILE_MODE = 0o600
DIR_MODE = 0o700
# What trustfold keeps beside the state store (and their .tmp while being replaced): Migration API job keys
# and queue SAS, upload-session URLs, throttle windows, the per-run folder (initial passwords, DNS change
# requests). The state folder may be one the operator shares with other things: only these are swept.
STATE_ARTEFACTS = (
    "bulk-secrets-*",
    "upload-sessions-*",
    "write-window-*",
    "sharepoint-window-*",
    "runs",
)


def owner_only_umask() -> int:
    """Make every file and folder this process creates owner-only; returns the previous umask."""
    return os.umask(OWNER_ONLY_UMASK)


def tighten(path: Path) -> None:
    """Drop group and other permission bits from PATH (never adds any); a read-only mount is left alone."""
    try:
        mode = stat.S_IMODE(os.lstat(path).st_mode)
    except FileNotFoundError:
        return
    if os.path.islink(path) or not mode & 0o077:
        return
    # A read-only file system or someone else's file: reading still works, and we never widen anything.
    with contextlib.suppress(OSError):
        os.chmod(path, mode & ~0o077)


def tighten_tree(root: Path) -> None:
    """Tighten ROOT and everything under it (a trustfold-owned folder such as .trustfold/)."""
    tighten(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            tighten(Path(dirpath) / name)


def tighten_state_folder(folder: Path) -> None:
    """The state folder and every trustfold artefact in it owner-only again (a copy, an older version or an
    operator's chmod may have loosened them): called on every open of the store."""
    tighten(folder)
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in STATE_ARTEFACTS):
            tighten_tree(folder / name) if name == "runs" else tighten(folder / name)


def private_dir(path: Path) -> Path:
    """Create PATH (and missing parents) owner-only; an existing folder trustfold made is tightened."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    for p in missing:
        # mkdir's mode is masked by the umask and parents get the default: set each folder we made exactly.
        os.chmod(p, DIR_MODE)
    tighten(path)
    return path


def create_private_file(path: Path) -> None:
    """Create an empty owner-only file at PATH if none exists (SQLite then gives -wal/-shm the same mode)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, stat.S_IMODE(os.fstat(fd).st_mode) & ~0o077)
    finally:
        os.close(fd)


def write_private_text(path: Path, text: str) -> None:
    """Write TEXT to PATH owner-only, replacing it atomically (readers never see half a file)."""
    private_dir(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)
    os.replace(tmp, path)
