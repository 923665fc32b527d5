"""Navigation pages, told from their templates, categories and title: disambiguation pages and list-only pages.

Both are indexed and flagged (`Document.kind`, stored as `documents.kind`, returned as `Hit.page_kind`),
not skipped. Their entries point to other articles with a few words of gloss ("Ada (food), traditional Kerala
delicacy, ..."), so a QA tool should know a hit is a menu rather than a statement. But some facts live only
there: measured on the shipped sample, skipping them lost two of 24 random questions whose answer only a
navigation page held ("Regna Darnell" in "List of anthropologists", the Austin in Australia in "Austin
(disambiguation)"). Flagging keeps recall and still lets a caller drop or demote such hits.

- A disambiguation page carries a disambiguation template ({{Disambiguation}}, {{Dab}}, {{Hndis}},
  {{Geodis}}, any "... disambiguation" template, and the usual template of a few other large Wikipedias) or a
  "... disambiguation pages" category. A hatnote such as {{Dablink}} or {{Other uses}} does not count.
- A list-only page names itself a list (a title "List of ..."/"Lists of ...", a "Lists of ..." category, or a
  set-index template such as {{Set index article}}, {{Surname}}, {{Dynamic list}}) *and* is made of short items:
  `*`/`#` items hold at least 80% of the characters of its content lines (tables and templates aside) and the
  median item is under 80 characters of wikitext. "List of anthropologists" (names only) is flagged; "List of
  Atlas Shrugged characters" (paragraphs about each character) and "List of courts in England and Wales" (half
  its text paragraphs about the courts) are prose and are not.

Pure functions over the raw wikitext (no parse), run in the cleaning workers.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable

DISAMBIGUATION = "disambiguation"
LIST_ONLY = "list"

DISAMBIGUATION_TEMPLATES: frozenset[str] = frozenset(
    {
        "disambiguation", "disambig", "disamb", "dab", "disambiguation page", "disambiguation cleanup",
        "hndis", "hndab", "geodis", "numberdis", "letter-numbercombdisambig", "mil-unit-dis",
        # The same template on a few other large Wikipedias (de, fr, es, it, nl, pl, ru, bg, ja, zh).
        "begriffsklärung", "homonymie", "desambiguación", "disambigua", "doorverwijspagina", "ujednoznacznienie",
        "неоднозначность", "многозначность", "пояснение", "曖昧さ回避", "消歧义", "消歧義", "disambig-cleanup",
    }
)  # fmt: skip
# Set-index and list templates: the page is a list of like things (its items may still be prose).
LIST_TEMPLATES: frozenset[str] = frozenset(
    {
        "set index article", "sia", "set index", "surname", "given name", "dynamic list", "ship index",
        "shipindex", "sport index", "mountain index", "lake index", "river index", "road index",
        "plant common name", "chemistry index", "molecular formula index", "list of lists",
    }
)  # fmt: skip
LIST_TITLE_PREFIXES: tuple[str, ...] = ("list of ", "lists of ")
# "Mostly short items": the share of content characters in list items, and the longest median item.
LIST_ITEM_SHARE = 0.8
SHORT_ITEM_CHARS = 80

_TEMPLATE_NAME = re.compile(r"\{\{\s*([^{}|\n]+?)\s*(?:\||\}\})")
_LINK_TARGET = re.compile(r"\[\[\s*([^\[\]|\n]+?)\s*(?:\||\]\])")
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
# Lines that are markup, not content: templates, tables, headings, tags, magic words, a lone link (category, file).
_NON_CONTENT = re.compile(r"\s*(?:\{\{|\}\}|\{\||\||!|=|<|__|\[\[[^\]]*\]\]\s*$)")


def page_kind(title: str, wikitext: str, namespaces: Iterable[str] = ()) -> str | None:
    """`DISAMBIGUATION`, `LIST_ONLY`, or None for a page to index.

    `namespaces` are the wiki's localised namespace names (from its siteinfo), so that a localised category
    prefix is recognised too.
    """
    wikitext = _COMMENT.sub("", wikitext)
    templates = {_normalise(m.group(1)).removeprefix("template:") for m in _TEMPLATE_NAME.finditer(wikitext)}
    categories = _categories(wikitext, {"category", *(_normalise(n) for n in namespaces)})
    if any(t in DISAMBIGUATION_TEMPLATES or t.endswith(" disambiguation") for t in templates) or any(
        c.endswith("disambiguation pages") for c in categories
    ):
        return DISAMBIGUATION
    is_list = (
        _normalise(title).startswith(LIST_TITLE_PREFIXES)
        or any(t in LIST_TEMPLATES for t in templates)
        or any(c.startswith("lists of ") or c.endswith("set index articles") for c in categories)
    )
    return LIST_ONLY if is_list and _short_items_only(wikitext) else None


def _short_items_only(wikitext: str) -> bool:
    """Whether the content lines are mostly list items, and the items short (names, not paragraphs)."""
    content = [line.strip() for line in wikitext.split("\n") if line.strip() and not _NON_CONTENT.match(line)]
    items = [line for line in content if line.startswith(("*", "#"))]
    if not items or sum(map(len, items)) < LIST_ITEM_SHARE * sum(map(len, content)):
        return False
    return statistics.median(len(item) for item in items) < SHORT_ITEM_CHARS


def _categories(wikitext: str, prefixes: set[str]) -> set[str]:
    found: set[str] = set()
    for match in _LINK_TARGET.finditer(wikitext):
        prefix, colon, name = match.group(1).partition(":")
        if colon and _normalise(prefix) in prefixes:
            found.add(_normalise(name))
    return found


def _normalise(name: str) -> str:
    return " ".join(name.replace("_", " ").split()).casefold()
