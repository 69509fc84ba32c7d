"""Opening the host's SQLite files: private on POSIX, and a damaged file is one clear
sentence with its path instead of a traceback (or, for an emptied file, a silent
fresh start that would hide the loss of every conversation)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path


class DamagedDatabase(RuntimeError):
    """A database file the host cannot use; ``str()`` is the sentence to show."""


def check_not_emptied(path: Path, what: str) -> None:
    """Refuse a 0-byte file: SQLite would treat it as a new, empty database."""
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_size == 0:
            raise DamagedDatabase(
                f"The {what} {path} is empty (0 bytes): it was truncated or damaged. "
                "Restore it from a backup, or move it aside to start with an empty one.")


@contextlib.contextmanager
def damaged_as_error(path: Path, what: str) -> Iterator[None]:
    """Turn SQLite's 'not a database' / 'malformed' errors into :class:`DamagedDatabase`
    (a locked or unreadable file stays an OperationalError: that is not damage)."""
    try:
        yield
    except sqlite3.OperationalError:
        raise
    except sqlite3.DatabaseError as exc:
        raise DamagedDatabase(
            f"The {what} {path} is damaged ({exc}). Restore it from a backup, or move it "
            "aside to start with an empty one.") from None


def make_private(path: Path) -> None:
    """0600 for a database and its -wal/-shm files (SQLite gives files it creates later
    the main file's mode). No-op off POSIX."""
    if os.name != "posix":
        return
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            os.chmod(p, 0o600)


def make_private_tree(root: Path) -> None:
    """0700 for ``root`` and the directories in it, 0600 for its files (POSIX): the data
    dir holds transcripts and customer records."""
    if os.name != "posix" or not root.is_dir():
        return
    with contextlib.suppress(PermissionError):
        os.chmod(root, 0o700)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(dirpath, name), 0o700)
        for name in filenames:
            p = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                if not os.path.islink(p):
                    os.chmod(p, 0o600)
