"""What every reader shares: the counters it fills in, opening a possibly compressed file, one-line errors."""

from __future__ import annotations

import bz2
import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from index_build.documents import CorpusError

BZ2_MAGIC = b"BZh"
GZIP_MAGIC = b"\x1f\x8b"
SKIP_HINT = "fix it, or use --skip-errors to skip and count such records"


@dataclass
class CorpusStats:
    """Counters of one pass over a corpus, updated while it is iterated, final when iteration ends.

    Every page or record read lands in exactly one counter, so their sum is the number read; the build
    reports them so that a user can see why a corpus gave fewer articles than it holds.
    """

    documents: int = 0
    redirects_skipped: int = 0
    other_namespace_skipped: int = 0
    empty_skipped: int = 0
    errors_skipped: int = 0
    # Navigation pages (MediaWiki only; see index_build.readers.page_kinds): indexed and flagged, so they are
    # among `documents` too and not in `total` twice. Absent from checkpoints and manifests written before they
    # were told apart: they read as 0.
    disambiguation_flagged: int = 0
    list_flagged: int = 0

    @property
    def total(self) -> int:
        """Pages or records read, whatever happened to them."""
        return (
            self.documents
            + self.redirects_skipped
            + self.other_namespace_skipped
            + self.empty_skipped
            + self.errors_skipped
        )


def one_line(message: object, limit: int = 300) -> str:
    """A message squeezed onto one line and cut to `limit` characters, for errors built from parser output."""
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def compression_of(head: bytes) -> str | None:
    """The compression, "bz2" or "gzip", told from a file's first bytes whatever its name says; else None."""
    if head.startswith(BZ2_MAGIC) and len(head) > 3 and head[3:4].isdigit():
        return "bz2"
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    return None


def open_binary(path: Path) -> BinaryIO:
    """Open `path` for reading bytes, decompressing bz2 or gzip on the fly, with errors as `CorpusError`.

    Compression is told from the magic bytes, so a `.xml.bz2` renamed to `.xml` still reads.
    """
    try:
        raw = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
        kind = compression_of(raw.read(4))
        raw.seek(0)
        if kind is None:
            return raw
        raw.close()
        return bz2.open(path, "rb") if kind == "bz2" else gzip.open(path, "rb")  # type: ignore[return-value]
    except FileNotFoundError:
        raise CorpusError(f"corpus file not found: {path}") from None
    except IsADirectoryError:
        raise CorpusError(f"{path} is a directory, not a corpus file") from None
    except PermissionError:
        raise CorpusError(f"cannot read {path}: permission denied") from None
    except OSError as exc:
        raise CorpusError(f"cannot read {path}: {one_line(exc.strerror or exc)}") from None


def read_head(path: Path, size: int = 65536) -> bytes:
    """Up to `size` decompressed bytes from the start of `path`, for format detection.

    A compressed file too short to give them (a truncated download) gives what it has; one that gives nothing
    is a `CorpusError`.
    """
    with open_binary(path) as fh:
        chunks: list[bytes] = []
        got = 0
        try:
            while got < size:
                chunk = fh.read(size - got)
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
        except (EOFError, OSError) as exc:
            if not got:  # not one block decompresses: nothing to detect a format from
                raise CorpusError(f"{path} is truncated or corrupt: {one_line(exc, 160)}") from None
        return b"".join(chunks)
