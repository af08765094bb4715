"""Files that appear whole or not at all, for the drop folders (the feeds' NewsML-G2 drop
folder and the partner push's drop-folder partners).

A file is written to a dot-named temporary file in the same directory (``.<name>.<random>.tmp``,
which pickup scripts skip as a hidden file), fsynced, renamed into place, and the directory
fsynced, so a reader never sees a partial file and a written file survives a power loss.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(directory: Path) -> None:
    """Create ``directory``, fsyncing the parent of every directory created."""
    missing = []
    for path in [directory, *directory.parents]:
        if path.exists():
            break
        missing.append(path)
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        fsync_dir(path.parent)


def write_atomically(path: Path, data: bytes, *, create_dirs: bool = True) -> bool:
    """Put ``data`` at ``path`` whole (temp file, fsync, rename, fsync dir); False when already there.

    With ``create_dirs=False`` a missing directory is an error (FileNotFoundError) rather than
    created. Raises OSError for what the filesystem refuses; no temporary file is left then.
    """
    if path.is_file() and path.read_bytes() == data:
        return False
    if create_dirs:
        make_dirs(path.parent)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return True


def remove_temp_files(root: Path, *, recursive: bool = True) -> list[Path]:
    """Remove the temporary files a crash mid-write left in ``root``; returns them."""
    found = list((root.rglob if recursive else root.glob)(f".*{TEMP_SUFFIX}"))
    for temp in found:
        temp.unlink(missing_ok=True)
    return found
