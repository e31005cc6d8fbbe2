"""Writing outputs without ever losing a user's data.

Files are written to a temporary sibling and renamed into place (atomic on POSIX), and a
dataset folder is assembled in a temporary folder and renamed as a whole; existing data is
never overwritten.

``mkstemp``/``mkdtemp`` create private (0600/0700) entries; before they are renamed into
place they get the modes an ordinary ``open``/``mkdir`` would give them (0666/0777 minus the
process umask, so 0644/0755 with the usual umask 022), so that outputs are readable by the
group like any other file the user writes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no read-only query elsewhere: set and restore at once
    os.umask(mask)
    return mask


def default_mode(directory: bool = False) -> int:
    """Mode bits of a new file (0666) or folder (0777) under the current umask."""
    return (0o777 if directory else 0o666) & ~current_umask()


class OutputExistsError(FileExistsError):
    """The output location already holds data that would be overwritten."""


def check_output_dir(path: str | Path) -> Path:
    """Refuse an output folder that exists and is not empty (or is a file)."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise OutputExistsError(
            f"output folder {str(path)!r} already exists and is not empty; refusing to overwrite "
            "existing data. Choose a new folder or remove it first."
        )
    return path


@contextlib.contextmanager
def atomic_output_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``path`` only if the block succeeds."""
    path = check_output_dir(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        os.chmod(tmp, default_mode(directory=True))
        yield tmp
        check_output_dir(path)  # nobody wrote there meanwhile
        if path.exists():
            path.rmdir()  # empty, checked above
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_write_path(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary file path that is renamed to ``path`` when the block succeeds."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{str(path)!r} already exists; refusing to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, default_mode())
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
