"""Tell a corpus' format from its content, since names lie (`dump.xml` that is bz2, `corpus.json` that is JSONL)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from index_build.documents import CorpusError
from index_build.readers.common import compression_of, read_head

FORMATS: tuple[str, ...] = ("mediawiki", "jsonl", "parquet", "beir", "squad")

PARQUET_MAGIC = b"PAR1"
# A SQuAD file is one JSON object, often on one line longer than the head: recognised by its keys.
_SQUAD_DATA = re.compile(r'"data"\s*:\s*\[')
_SQUAD_PARAGRAPHS = re.compile(r'"paragraphs"\s*:\s*\[')
_BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)


def text_encoding(head: bytes) -> tuple[str, int]:
    """The encoding a text file's first bytes imply, and the length of its byte-order mark.

    UTF-16/32 without a BOM is recognised by the NUL bytes around a leading `<` or `{`; anything else is
    taken as ASCII-compatible (UTF-8, or whatever an XML declaration names, which the XML parser reads).
    """
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding, len(bom)
    if head[:4] in (b"<\x00\x00\x00", b"{\x00\x00\x00"):
        return "utf-32-le", 0
    if head[:4] in (b"\x00\x00\x00<", b"\x00\x00\x00{"):
        return "utf-32-be", 0
    if head[:2] in (b"<\x00", b"{\x00"):
        return "utf-16-le", 0
    if head[:2] in (b"\x00<", b"\x00{"):
        return "utf-16-be", 0
    return "utf-8", 0


def _unknown(path: Path, why: str) -> CorpusError:
    return CorpusError(
        f"cannot tell the format of {path}: {why}; the formats are {', '.join(FORMATS)} "
        "(MediaWiki XML export, .xml or .xml.bz2; JSONL; Parquet; BEIR corpus.jsonl; SQuAD JSON): "
        "name one with --format"
    )


def check_file(path: Path) -> None:
    """Raise `CorpusError` unless `path` is an existing, readable regular file."""
    if not path.exists():
        raise CorpusError(f"corpus file not found: {path}")
    if path.is_dir():
        hint = " (pass the corpus.jsonl inside it)" if (path / "corpus.jsonl").is_file() else ""
        raise CorpusError(f"{path} is a directory, not a corpus file{hint}")
    if not os.access(path, os.R_OK):
        raise CorpusError(f"cannot read {path}: permission denied")


def detect_format(path: str | os.PathLike[str]) -> str:
    """One of `FORMATS`, from the file's first bytes (decompressed if bz2 or gzip); `CorpusError` if none fits.

    `PAR1` is Parquet; `<` (after any byte-order mark and whitespace) is MediaWiki XML; `{` is SQuAD when the
    head shows a `"data"` list with `"paragraphs"`, else JSON lines, BEIR when the first record has an `_id` key.
    """
    path = Path(path)
    check_file(path)
    head = read_head(path)
    if not head:
        raise _unknown(path, "it is empty")
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if compression_of(head) is not None:
        raise _unknown(path, "it is compressed twice")
    encoding, bom = text_encoding(head)
    try:
        text = head[bom:].decode(encoding, errors="ignore").lstrip()
    except LookupError:  # pragma: no cover - every encoding above is built in
        text = ""
    if text.startswith("<"):
        if "<mediawiki" in text:
            return "mediawiki"
        raise _unknown(path, "it is XML but has no <mediawiki> root element")
    if text.startswith("{"):
        return _json_flavour(text)
    raise _unknown(path, "its content matches none of them")


def _json_flavour(text: str) -> str:
    """SQuAD, BEIR when the first record has `_id`, else JSONL (also when the first line is too long or broken
    to parse: the JSONL reader then reports it with its line number).

    SQuAD is told apart by a first line that is not a complete record on its own (one huge line, or JSON
    spread over lines) or one that is a `{"data": ...}` object, and a head showing `"data": [` and
    `"paragraphs": [`; a JSONL record that merely mentions those words inside its text is a complete line.
    """
    first = text.split("\n", 1)[0]
    try:
        record = json.loads(first)
    except ValueError:
        record = None
    squad_shaped = record is None or (isinstance(record, dict) and "data" in record)
    if squad_shaped and _SQUAD_DATA.search(text) and _SQUAD_PARAGRAPHS.search(text):
        return "squad"
    if record is None:
        return "jsonl"
    return "beir" if isinstance(record, dict) and "_id" in record else "jsonl"
