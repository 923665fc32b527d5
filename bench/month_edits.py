"""Make "next month's dump" of a MediaWiki export: a share of its articles edited the way a month of Wikipedia
edits them, a few sentences changed in a few sections, each such article given a new revision.

Used by bench/refresh.py. Per edited article (chosen with a seeded generator): one to three sections, and in
each one to two sentences of prose (a line that starts with a letter, bold or italics, not a template, table,
list or heading), each edit one of: a clause added to the sentence, a new sentence after it, the sentence
removed (where its line keeps at least two others). These are the small text edits that make most of a month's
changes to existing articles; what they do to passages comes from the real splitter, so an edit that moves a
passage boundary re-embeds the passages it moves, as it would in a real refresh.
"""

from __future__ import annotations

import bz2
import random
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

_HEADING = re.compile(r"^(=+)[^=].*\1\s*$", re.MULTILINE)
_PROSE = re.compile(r"^(?:[A-Za-z0-9\"]|'')")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_CLAUSES = (", according to later sources", ", as several accounts note", ", though this is disputed")
_SENTENCES = (
    "Later sources give a different account of this.",
    "The figure was revised in a later survey.",
    "This was confirmed in a subsequent study.",
)


@dataclass(frozen=True)
class Edits:
    """What was changed: the edited articles' titles and the number of sentence edits made."""

    titles: tuple[str, ...]
    sentences: int
    articles: int  # articles in the dump (namespace 0, not redirects)


def edit_dump(source: Path, out: Path, share: float, seed: int = 0) -> Edits:
    """Write to `out` (bz2 when it ends in .bz2) `source` with `share` of its articles edited."""
    raw = bz2.decompress(source.read_bytes()) if source.suffix == ".bz2" else source.read_bytes()
    root = ET.fromstring(raw)
    ns = root.tag[1:].partition("}")[0]
    ET.register_namespace("", ns)

    def q(tag: str) -> str:
        return f"{{{ns}}}{tag}"

    articles = [p for p in root.findall(q("page")) if p.findtext(q("ns")) == "0" and p.find(q("redirect")) is None]
    rng = random.Random(seed)
    chosen = rng.sample(articles, max(1, round(share * len(articles))))
    titles, count = [], 0
    for page in chosen:
        revision = page.find(q("revision"))
        assert revision is not None
        text = revision.find(q("text"))
        if text is None or not text.text:
            continue
        text.text, made = edit_text(text.text, rng)
        if made:
            count += made
            titles.append(page.findtext(q("title")) or "")
            _new_revision(revision, ns)
    data = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    out.write_bytes(bz2.compress(data) if out.suffix == ".bz2" else data)
    return Edits(tuple(titles), count, len(articles))


def edit_text(wikitext: str, rng: random.Random) -> tuple[str, int]:
    """`wikitext` with a few sentences of one to three of its sections edited; and how many sentences."""
    starts = [0, *(m.start() for m in _HEADING.finditer(wikitext)), len(wikitext)]
    sections = [(a, b) for a, b in zip(starts[:-1], starts[1:], strict=True) if _prose_lines(wikitext, a, b)]
    if not sections:
        return wikitext, 0
    made = 0
    # Back to front, so that an edit does not move the offsets of the sections still to edit.
    for lo, hi in sorted(rng.sample(sections, min(len(sections), rng.randint(1, 3))), reverse=True):
        for _ in range(rng.randint(1, 2)):
            lines = _prose_lines(wikitext, lo, hi)
            line_lo, line_hi = rng.choice(lines)
            line = wikitext[line_lo:line_hi]
            changed = _edit_line(line, rng)
            wikitext = wikitext[:line_lo] + changed + wikitext[line_hi:]
            hi += len(changed) - len(line)
            made += 1
    return wikitext, made


def _prose_lines(text: str, lo: int, hi: int) -> list[tuple[int, int]]:
    """(start, end) of each line of prose in text[lo:hi] that holds a sentence end."""
    found, at = [], lo
    for line in text[lo:hi].split("\n"):
        if _PROSE.match(line) and _SENTENCE_END.search(line):
            found.append((at, at + len(line)))
        at += len(line) + 1
    return found


def _edit_line(line: str, rng: random.Random) -> str:
    sentences = _SENTENCE_END.split(line)
    i = rng.randrange(len(sentences))
    kind = rng.choice(("clause", "sentence", "remove") if len(sentences) >= 3 else ("clause", "sentence"))
    if kind == "remove":
        del sentences[i]
    elif kind == "sentence":
        sentences.insert(i + 1, rng.choice(_SENTENCES))
    else:
        sentence = sentences[i]
        end = len(sentence.rstrip()) - 1 if sentence.rstrip()[-1:] in ".!?" else len(sentence.rstrip())
        sentences[i] = sentence[:end] + rng.choice(_CLAUSES) + sentence[end:]
    return " ".join(sentences)


def _new_revision(revision: ET.Element, ns: str) -> None:
    """A later revision id and a timestamp a month on, as the next dump would carry (stored, never embedded)."""
    rid = revision.find(f"{{{ns}}}id")
    if rid is not None and rid.text and rid.text.isdigit():
        rid.text = str(int(rid.text) + 1_000_000)
    stamp = revision.find(f"{{{ns}}}timestamp")
    if stamp is not None and stamp.text:
        when = datetime.fromisoformat(stamp.text.replace("Z", "+00:00")) + timedelta(days=30)
        stamp.text = when.strftime("%Y-%m-%dT%H:%M:%SZ")
