"""Give mwxml the `<siteinfo>` it insists on: exports cut down or written by other tools often lack it.

The fix is on the byte stream, before the XML parser, so the parser still does all the parsing and still reads
the file's own encoding from its BOM or declaration.
"""

from __future__ import annotations

import io
from typing import BinaryIO

from index_build.readers.detect import text_encoding

_HEAD_LIMIT = 1 << 22  # bytes searched for <siteinfo> before giving up on inserting one


class _Prefixed(io.RawIOBase):
    """A byte stream that returns `head` first and then the rest of `stream`."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def with_siteinfo(stream: BinaryIO) -> BinaryIO:
    """`stream`, with an empty `<siteinfo/>` inserted after the `<mediawiki>` start tag when it has none.

    The insertion is encoded like the file (UTF-8 or any ASCII-compatible encoding, UTF-16, UTF-32), so the
    XML parser still reads the file's own encoding from its BOM or declaration.
    """
    head = b""
    while len(head) < _HEAD_LIMIT:
        chunk = stream.read(65536)
        head += chunk
        where = _siteinfo_insertion(head, at_end=not chunk)
        if where is not None:
            if where >= 0:
                encoding = text_encoding(head)[0].replace("utf-8", "ascii")
                head = head[:where] + "<siteinfo></siteinfo>".encode(encoding) + head[where:]
            break
        if not chunk:
            break
    return io.BufferedReader(_Prefixed(head, stream))  # type: ignore[return-value]


def _siteinfo_insertion(head: bytes, at_end: bool) -> int | None:
    """Where to insert `<siteinfo>` in `head`: a byte offset, -1 for nowhere (it has one, or no root), or None
    when more bytes are needed to tell."""
    encoding, bom = text_encoding(head)
    width = 4 if "32" in encoding else 2 if "16" in encoding else 1

    def find(token: str, start: int) -> int:
        needle = token.encode(encoding.replace("utf-8", "ascii"))
        at = head.find(needle, start)
        while at != -1 and (at - bom) % width:
            at = head.find(needle, at + 1)
        return at

    root = find("<mediawiki", bom)
    end = find(">", root) if root != -1 else -1
    if end == -1:
        return -1 if at_end else None
    if head[end - width : end] == "/".encode(encoding.replace("utf-8", "ascii")):
        return -1  # <mediawiki/>: an empty export
    after = end + width
    found = [(at, token) for token in ("<siteinfo", "<page", "<logitem") if (at := find(token, after)) != -1]
    if not found:
        return after if at_end else None
    return -1 if min(found)[1] == "<siteinfo" else after
