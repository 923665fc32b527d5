"""Faults of the machine rather than of the input: a build that cannot write, or no longer finds, one of its files.

A full disk (ENOSPC), a file size limit (EFBIG), permissions (EACCES), a read-only filesystem (EROFS) or a file
deleted under the build (ENOENT) each stop the build with one line naming the stage and the file, and leave the
staging directory as it is, so that the same command resumes once the cause is gone. The translation happens
where the file is written (`stage_io`), because only there is it known which file and which stage it was.

SQLite and tantivy report such faults in their own terms (`disk I/O error`, a Rust `Os { code: 27 }`); they are
recognised here too, and nothing else is: a programming error must keep its traceback.
"""

from __future__ import annotations

import errno
import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from retriever.errors import GroundsearchError

# SQLite's result codes for a file it cannot write or open; other codes (a bad statement...) are bugs.
_SQLITE_IO_CODES = ("SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM")
# How tantivy's ValueError quotes a std::io::Error: its Debug form, or its Display form.
_RUST_OS_ERROR = re.compile(r"Os \{ code: (\d+)|\(os error (\d+)\)")


class BuildError(GroundsearchError):
    """A build cannot start or continue: the output is taken, or an unfinished build used other options."""


class BuildIOError(BuildError):
    """A file of the build cannot be written or read (disk full, size limit, permissions, vanished)."""


def _remedy(code: int | None, action: str) -> str:
    if code in (errno.ENOSPC, errno.EDQUOT):
        return "free some space on that disk"
    if code == errno.EFBIG:
        return "raise the file size limit (ulimit -f) or free space"
    if code in (errno.EACCES, errno.EPERM):
        return f"make it {'readable' if action == 'read' else 'writable'}"
    if code == errno.EROFS:
        return "make that filesystem writable"
    if code == errno.ENOENT:
        return "it was deleted during the build: put it back if it is a corpus file (a build file is redone)"
    return "free space or fix permissions"


def io_error(stage: str, path: Path | str, exc: OSError | sqlite3.Error, action: str = "write") -> BuildIOError:
    """The one-line `BuildIOError` for `exc`, met while `stage` was writing (or reading) `path`."""
    if isinstance(exc, OSError):
        code = exc.errno
        reason = exc.strerror or str(exc)
        name = errno.errorcode.get(code, "") if code is not None else ""
        # A read names the very file, and so does a file that vanished; a failed write names a temporary
        # sibling of `path`, and the final name says more.
        if exc.filename and (action == "read" or code == errno.ENOENT):
            path, action = exc.filename, "find" if code == errno.ENOENT else action
    else:
        code, reason, name = None, str(exc), getattr(exc, "sqlite_errorname", "")
    why = f"{reason} ({name})" if name else reason
    return BuildIOError(
        f"{stage}: cannot {action} {path}: {why}; {_remedy(code, action)} and run the same command again to resume"
    )


def is_sqlite_io(exc: sqlite3.Error) -> bool:
    """Whether SQLite failed to write or open its file (disk full, I/O error, read-only), not on a statement."""
    return str(getattr(exc, "sqlite_errorname", "")).startswith(_SQLITE_IO_CODES)


def rust_os_error(exc: Exception) -> OSError | None:
    """The OSError a Rust library's exception message quotes (`Os { code: 28, ... }`), or None."""
    found = _RUST_OS_ERROR.search(str(exc))
    if found is None:
        return None
    code = int(found.group(1) or found.group(2))
    return OSError(code, os.strerror(code))


@contextmanager
def stage_io(stage: str, path: Path | str, action: str = "write") -> Iterator[None]:
    """Turn an I/O fault raised inside into a `BuildIOError` naming `stage` and `path`."""
    try:
        yield
    except BuildIOError:
        raise
    except OSError as exc:
        raise io_error(stage, path, exc, action) from exc
    except sqlite3.Error as exc:
        if not is_sqlite_io(exc):
            raise
        raise io_error(stage, path, exc, action) from exc


__all__ = ["BuildError", "BuildIOError", "io_error", "is_sqlite_io", "rust_os_error", "stage_io"]
