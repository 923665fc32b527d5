"""Prove that a bundle still is what its manifest says: after a copy, a download, or years on a disk.

Every file the manifest lists is checked against its recorded size and sha256, every passage's text against
its own sha256, the FAISS index's count and dimension, and the lexical index's count. `Retriever.open` checks
only what it can afford on every open (sizes, counts, the query encoder's hashes); this reads every byte.

Differences are collected, not raised, so that one run names everything that is wrong (the caller shows the
first few and the count).
"""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retriever.bundle import FAISS_NAME, STORE_NAME, Manifest, read_manifest, sha256_file
from retriever.errors import GroundsearchError

SHOWN_DIFFERENCES = 20


@dataclass
class VerifyReport:
    """What was checked (counts by kind) and every difference found, in the order found."""

    bundle: str
    checked: dict[str, int] = field(default_factory=dict)
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def count(self, kind: str, n: int = 1) -> None:
        self.checked[kind] = self.checked.get(kind, 0) + n

    def differ(self, message: str) -> None:
        self.differences.append(message)

    def summary(self) -> str:
        what = ", ".join(f"{n:,} {kind}" for kind, n in self.checked.items())
        if self.ok:
            return f"verified {self.bundle}: {what}; no differences"
        return f"{self.bundle}: {len(self.differences):,} difference(s) in {what}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle,
            "ok": self.ok,
            "checked": self.checked,
            "difference_count": len(self.differences),
            "differences": self.differences,
        }


def verify_bundle(bundle: str | Path, report: VerifyReport | None = None) -> tuple[VerifyReport, Manifest | None]:
    """Check every byte of `bundle` against its manifest. The manifest is returned for further checks (None when
    it is unreadable, which is then the one difference)."""
    path = Path(bundle)
    report = report or VerifyReport(str(path))
    try:
        manifest = read_manifest(path, check_files=False)  # sizes and hashes are checked below, each named
    except GroundsearchError as exc:
        report.differ(str(exc))
        return report, None
    _check_files(path, manifest, report)
    _check_passages(path / STORE_NAME, manifest, report)
    _check_faiss(path / FAISS_NAME, manifest, report)
    if manifest.lexical:
        _check_lexical(path / manifest.lexical["directory"], manifest, report)
    return report, manifest


def _check_files(path: Path, manifest: Manifest, report: VerifyReport) -> None:
    for info in manifest.files.values():
        file = path / info.name
        report.count("files")
        if not file.is_file():
            report.differ(f"{info.name}: missing")
            continue
        size = file.stat().st_size
        if size != info.size:
            report.differ(f"{info.name}: {size:,} bytes, the manifest says {info.size:,}")
            continue
        digest = sha256_file(file)
        if digest != info.sha256:
            report.differ(f"{info.name}: sha256 {digest[:16]}…, the manifest says {info.sha256[:16]}…")


def _check_passages(store: Path, manifest: Manifest, report: VerifyReport) -> None:
    expected_id = 0
    try:
        with closing(sqlite3.connect(f"file:{store}?mode=ro&immutable=1", uri=True)) as conn:
            for passage_id, text, recorded in conn.execute("SELECT id, text, sha256 FROM passages ORDER BY id"):
                report.count("passages")
                if passage_id != expected_id:
                    report.differ(f"passage ids jump from {expected_id - 1} to {passage_id}: the store lost passages")
                    expected_id = passage_id
                expected_id += 1
                digest = hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()
                if digest != recorded:
                    report.differ(f"passage {passage_id}: text sha256 {digest[:16]}…, stored {recorded[:16]}…")
    except sqlite3.DatabaseError as exc:
        report.differ(f"{STORE_NAME}: unreadable ({exc})")
        return
    if expected_id != manifest.passages:
        report.differ(f"{STORE_NAME}: holds {expected_id:,} passages, the manifest says {manifest.passages:,}")


def _check_faiss(file: Path, manifest: Manifest, report: VerifyReport) -> None:
    from retriever.faiss_io import read_faiss

    report.count("indexes")
    try:
        index = read_faiss(file)
    except GroundsearchError as exc:
        report.differ(str(exc))
        return
    if index.ntotal != manifest.passages or index.d != manifest.model.dimension:
        report.differ(
            f"{FAISS_NAME}: {index.ntotal:,} vectors of dimension {index.d}, the manifest says "
            f"{manifest.passages:,} of dimension {manifest.model.dimension}"
        )


def _check_lexical(directory: Path, manifest: Manifest, report: VerifyReport) -> None:
    from retriever.lexical import LexicalIndex

    report.count("indexes")
    try:
        count = len(LexicalIndex(directory))
    except (GroundsearchError, ValueError, OSError) as exc:
        report.differ(f"{directory.name}/: unreadable lexical index ({exc})")
        return
    if count != manifest.passages:
        report.differ(f"{directory.name}/: {count:,} passages, the manifest says {manifest.passages:,}")
