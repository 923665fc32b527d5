"""What changed between two bundles, e.g. of two monthly dumps (`groundsearch diff OLD NEW`): articles and
passages added, removed, changed, by content hash.

Articles are matched by source id (a MediaWiki page id, a JSONL or BEIR id), which a rename keeps: an article
is changed when its title or the sequence of its passages (section and text SHA-256, in order) differs.
Passages are compared as a multiset of the store's text SHA-256: a passage of NEW is unchanged when OLD holds
one with the same text, wherever it sits; the rest are added (in NEW) or removed (from OLD). A passage whose
text is unchanged but whose article or section was renamed is unchanged here, though `build --reuse` embeds it
again (its title and section are part of what the model reads).

Only the two stores are read, once each and without the texts: 32 bytes per passage and one entry per article
are held, so two English Wikipedias (21 M passages, 6.8 M articles) compare in a few GB of memory.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retriever.bundle import STORE_NAME, read_manifest
from retriever.store import PassageStore

DEFAULT_LIMIT = 10
# A SHA-256 as four big-endian words: sorting these sorts the digests byte by byte, and numpy's unique and
# intersect work on such records where they do not on raw bytes.
_DIGEST = np.dtype([("a", ">u8"), ("b", ">u8"), ("c", ">u8"), ("d", ">u8")])


@dataclass(frozen=True)
class Group:
    """How many articles fall in one group, and the titles of the first `limit` of them in bundle order."""

    count: int
    titles: tuple[str, ...]


@dataclass(frozen=True)
class BundleDiff:
    old: str
    new: str
    old_articles: int
    new_articles: int
    articles_added: Group
    articles_removed: Group
    articles_changed: Group  # a renamed article's title reads "Old → New"
    articles_unchanged: int
    old_passages: int
    new_passages: int
    passages_added: int
    passages_removed: int
    passages_unchanged: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": self.old,
            "new": self.new,
            "articles": {
                "old": self.old_articles,
                "new": self.new_articles,
                "added": asdict(self.articles_added),
                "removed": asdict(self.articles_removed),
                "changed": asdict(self.articles_changed),
                "unchanged": self.articles_unchanged,
            },
            "passages": {
                "old": self.old_passages,
                "new": self.new_passages,
                "added": self.passages_added,
                "removed": self.passages_removed,
                "unchanged": self.passages_unchanged,
            },
        }


@dataclass(frozen=True)
class _Contents:
    """One store, reduced to what a diff compares: each article's title and digest, every passage's sha256."""

    articles: dict[tuple[str, int], tuple[str, bytes]]  # (source id, occurrence) -> (title, digest), in order
    passages: np.ndarray  # _DIGEST records, one per passage


def diff_bundles(old: str | os.PathLike[str], new: str | os.PathLike[str], limit: int = DEFAULT_LIMIT) -> BundleDiff:
    """Compare two bundles (any two: nothing requires one to be built from the other)."""
    paths = Path(old), Path(new)
    for path in paths:
        read_manifest(path)  # a path that is not a bundle, or a damaged one, fails here with its one-line error
    before, after = (_contents(PassageStore(path / STORE_NAME)) for path in paths)
    added = [key for key in after.articles if key not in before.articles]
    removed = [key for key in before.articles if key not in after.articles]
    changed = [key for key in after.articles if key in before.articles and after.articles[key] != before.articles[key]]
    unchanged = _unchanged_passages(before.passages, after.passages)

    def renamed(key: tuple[str, int]) -> str:
        was, now = before.articles[key][0], after.articles[key][0]
        return now if was == now else f"{was} → {now}"

    return BundleDiff(
        old=str(paths[0]),
        new=str(paths[1]),
        old_articles=len(before.articles),
        new_articles=len(after.articles),
        articles_added=Group(len(added), tuple(after.articles[k][0] for k in added[:limit])),
        articles_removed=Group(len(removed), tuple(before.articles[k][0] for k in removed[:limit])),
        articles_changed=Group(len(changed), tuple(renamed(k) for k in changed[:limit])),
        articles_unchanged=len(after.articles) - len(added) - len(changed),
        old_passages=len(before.passages),
        new_passages=len(after.passages),
        passages_added=len(after.passages) - unchanged,
        passages_removed=len(before.passages) - unchanged,
        passages_unchanged=unchanged,
    )


def _contents(store: PassageStore) -> _Contents:
    articles: dict[tuple[str, int], tuple[str, bytes]] = {}
    seen: dict[str, int] = {}
    hashes = bytearray()
    for source_id, title, digest in _documents(store.iter_contents(), hashes):
        occurrence = seen.get(source_id, 0)  # two corpus files may reuse an id: keep both, in order
        seen[source_id] = occurrence + 1
        articles[(source_id, occurrence)] = (title, digest)
    return _Contents(articles, np.frombuffer(bytes(hashes), dtype=_DIGEST))


def _documents(rows: Iterable[tuple[int, str, str, str, str]], hashes: bytearray) -> Iterable[tuple[str, str, bytes]]:
    """(source id, title, digest) per document, from rows in passage order; every passage's sha256 is appended
    to `hashes` on the way."""
    current: int | None = None
    source_id = title = ""
    digest = hashlib.sha256()
    for document, source, name, section, sha256 in rows:
        if document != current:
            if current is not None:
                yield source_id, title, digest.digest()
            current, source_id, title = document, source, name
            digest = hashlib.sha256()  # the title is compared beside the digest, not hashed into it
        digest.update(f"{section}\0{sha256}\n".encode())
        hashes += bytes.fromhex(sha256)
    if current is not None:
        yield source_id, title, digest.digest()


def _unchanged_passages(before: np.ndarray, after: np.ndarray) -> int:
    """How many passages the two multisets of digests share (a digest held twice on both sides counts twice)."""
    old, old_counts = np.unique(before, return_counts=True)
    new, new_counts = np.unique(after, return_counts=True)
    _, at_old, at_new = np.intersect1d(old, new, assume_unique=True, return_indices=True)
    return int(np.minimum(old_counts[at_old], new_counts[at_new]).sum())


__all__ = ["DEFAULT_LIMIT", "BundleDiff", "Group", "diff_bundles"]
