"""Wikitext to plain prose plus section spans, with mwparserfromhell.

Passages are cut from `Document.text` and quoted verbatim to users, so the text must read as the rendered
article does, minus everything that is not prose: templates (infoboxes, citation and navigation boxes; a few
that only wrap visible text or a quantity, like {{lang}} and {{convert}}, keep it), `<ref>` footnotes, files
and categories, tables, comments, magic words. Formulas (`<math>`, `<chem>`, `<ce>`) keep their source, the
TeX between the tags, so that "Albedo can then be given as:" is followed by the formula rather than nothing:
inline ones stay in the sentence, display ones (`display="block"`, or alone on a `:` line) on a line of their
own; whitespace runs become one space, and doubled brackets or quotes get a space between them (`}}` -> `} }`,
the same TeX) so that no wiki markup appears in the text. Tables are dropped whole: their cells joined without
markup read as word salad and would make passages nobody can quote. Headings become section boundaries; a
heading's own line is kept in `text` (so the text reads like the article) but lies outside every section span,
so a passage never starts with a bare heading.

This module is pure (no I/O) and picklable, because it runs in worker processes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import mwparserfromhell
from mwparserfromhell.nodes import (
    Argument,
    Comment,
    ExternalLink,
    Heading,
    HTMLEntity,
    Node,
    Tag,
    Template,
    Text,
    Wikilink,
)
from mwparserfromhell.wikicode import Wikicode

from index_build.documents import Section

# Sections that are lists of citations or links, not prose; compared case-insensitively. Their subsections go too.
DROPPED_SECTIONS: frozenset[str] = frozenset(
    {
        "references", "external links", "see also", "further reading", "notes", "sources", "bibliography",
        # Common English variants of the same lists.
        "footnotes", "citations", "works cited", "notes and references", "references and notes",
        "explanatory notes",
        # The same lists on a few other large Wikipedias (de, fr, es, ru, bg).
        "einzelnachweise", "weblinks", "siehe auch", "literatur", "anmerkungen",
        "références", "notes et références", "liens externes", "voir aussi", "bibliographie", "articles connexes",
        "referencias", "enlaces externos", "véase también", "bibliografía", "notas",
        "примечания", "ссылки", "см. также", "литература", "источники",
        "източници", "външни препратки", "вижте също", "бележки",
    }
)  # fmt: skip

# Tags whose content is not prose (footnotes, formulas, galleries, maps, ...): dropped with their content.
DROPPED_TAGS: frozenset[str] = frozenset(
    {
        "ref", "references", "gallery", "timeline", "imagemap", "score", "graph",
        "mapframe", "maplink", "templatestyles", "templatedata", "hiero", "inputbox", "categorytree",
        "indicator", "includeonly", "section", "table",
    }
)  # fmt: skip
# Formula tags: their source (TeX, or mhchem for chemistry) is kept as the formula's text.
FORMULA_TAGS: frozenset[str] = frozenset({"math", "chem", "ce"})
# Tags whose content is shown literally rather than parsed.
LITERAL_TAGS: frozenset[str] = frozenset({"nowiki", "pre", "syntaxhighlight", "source"})
# HTML tags that start a new line when rendered.
BLOCK_TAGS: frozenset[str] = frozenset(
    {"div", "p", "blockquote", "center", "poem", "ul", "ol", "li", "dl", "h1", "h2", "h3", "h4", "h5", "h6"}
)

# Namespace names and aliases valid on every wiki (lower case); a wiki's own localised names come from its
# siteinfo and are passed in. A link whose target starts with one of these is not a link to an article.
NAMESPACE_PREFIXES: frozenset[str] = frozenset(
    {
        "media", "special", "talk", "user", "user talk", "wikipedia", "wikipedia talk", "wp", "project",
        "file", "file talk", "image", "image talk", "mediawiki", "mediawiki talk", "template", "template talk",
        "help", "help talk", "category", "category talk", "portal", "portal talk", "draft", "draft talk",
        "module", "module talk", "book", "book talk", "timedtext", "timedtext talk", "gadget",
        "gadget definition", "topic", "education program", "user blog",
    }
)  # fmt: skip
# Interwiki prefixes to sister projects; with language codes, links to other wikis, never shown inline.
INTERWIKI_PREFIXES: frozenset[str] = frozenset(
    {
        "w", "wikipedia", "wikt", "wiktionary", "s", "wikisource", "q", "wikiquote", "b", "wikibooks",
        "n", "wikinews", "v", "wikiversity", "voy", "wikivoyage", "species", "wikispecies", "d", "wikidata",
        "c", "commons", "m", "meta", "metawikimedia", "mw", "mediawikiwiki", "f", "wikifunctions", "phab",
        "foundation", "wmf", "outreach", "incubator", "doi", "iarchive",
    }
)  # fmt: skip
_LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]+)*\Z")

# Templates whose last positional argument is the visible text (the rest only style or tag it).
KEPT_TEMPLATES: frozenset[str] = frozenset(
    {"lang", "nowrap", "nobr", "small", "smaller", "big", "larger", "sic", "transl", "transliteration",
     "not a typo", "nobold", "noitalic", "smallcaps", "keypress", "mvar", "var", "math"}
)  # fmt: skip
# {{convert|10|km}} -> "10 km", {{convert|10|to|20|km}} -> "10 to 20 km": numbers answer questions.
_CONVERT_TEMPLATES = frozenset({"convert", "cvt"})
_RANGE_WORDS = frozenset({"to", "-", "–", "and", "or", "by", "x", "×", "+", "&", "and(-)", "to(-)"})

_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)  # unclosed, it runs to the end, as in MediaWiki
_REF = re.compile(r"<ref\b[^>]*?/\s*>|<ref\b[^>]*>.*?</ref\s*>", re.DOTALL | re.IGNORECASE)
_MAGIC_WORD = re.compile(r"__([^\W_]+)__")
_SPACES = re.compile(r"[ \t\u00a0\u2002-\u200a\u202f\u3000]+")
_SPACE_BEFORE_PUNCT = re.compile(r" +([,.;:!?)\]])")
_SPACE_AFTER_OPEN = re.compile(r"([(\[]) +")
_EMPTY_PARENS = re.compile(r"\(\s*[,;:]*\s*\)")
_PAREN_LEADING_PUNCT = re.compile(r"\(\s*[,;]\s*")
_LEFTOVER_MARKUP = re.compile(r"\{\{|\}\}|\[\[|\]\]|\{\||\|\}|'{2,}|<!--|-->")
_LEFTOVER_REF = re.compile(r"<ref\b[^>]*/>|<ref\b[^>]*>.*?(?:</ref>|$)", re.IGNORECASE)
# Private-use characters around a formula's number: tidying leaves them alone, and article text hardly ever
# holds them (one that does, with a number past the page's formulas, is left as it is).
_FORMULA_OPEN, _FORMULA_CLOSE = "\ue000", "\ue001"
_PLACEHOLDER = re.compile(f"{_FORMULA_OPEN}(\\d+){_FORMULA_CLOSE}")
_DOUBLED = re.compile(r"([{}\[\]'])(?=\1)")  # "}}", "[[", "''": read as wiki markup, so spaced apart in TeX
_LEADING_PUNCT = re.compile(r"^\s*[,;:](?:\s+|$)")  # what a removed template at a line's start leaves
_TABLE_LINE = re.compile(r"\s*(?:\{\||\|\}|\|-|\|\+)")
_WORD = re.compile(r"\w")


def wikitext_to_text(wikitext: str, namespaces: Iterable[str] = ()) -> tuple[str, tuple[Section, ...]]:
    """Render `wikitext` as plain text and the spans of its non-empty sections (lead first, named "").

    `namespaces` adds a wiki's localised namespace names (from its siteinfo) to the built-in prefixes, so that
    `[[Категория:...]]` is recognised on the Bulgarian Wikipedia. Returns ("", ()) when nothing is left.
    """
    renderer = _Renderer(frozenset(n.casefold() for n in namespaces))
    # Comments and footnotes go before parsing: they are a third of an English article's wikitext, dense in
    # citation templates, and building their nodes was half the parse time. Bold and italic quotes are left
    # as text (and removed by `tidy`): the parser gives up on a whole link that holds an unbalanced one.
    wikitext = _REF.sub("", _COMMENT.sub("", wikitext))
    code = mwparserfromhell.parse(wikitext, skip_style_tags=True)
    return _assemble(renderer.sections(code))


def _assemble(sections: list[tuple[int, str, str]]) -> tuple[str, tuple[Section, ...]]:
    """Join (level, name, body) triples into one text; each body gets a span, each heading a line outside it.

    A heading is written only above a non-empty body, but the headings of empty parent sections are kept
    above their first non-empty subsection, so "History" still introduces "Early life".
    """
    parts: list[str] = []
    spans: list[Section] = []
    length = 0
    pending: list[tuple[int, str]] = []  # headings not yet written: the chain of enclosing sections

    def write(piece: str) -> None:
        nonlocal length
        if parts:
            sep = "\n\n" if not parts[-1].endswith("\n") else ""
            parts.append(sep)
            length += len(sep)
        parts.append(piece)
        length += len(piece)

    for level, name, body in sections:
        if name:
            while pending and pending[-1][0] >= level:
                pending.pop()
            pending.append((level, name))
        if not body:
            continue
        for _, heading in pending:
            write(heading + "\n")
        pending.clear()
        write(body)
        spans.append(Section(name, length - len(body), length))
    return "".join(parts), tuple(spans)


class _Renderer:
    """Walks a parsed page; holds the wiki's namespace names so link targets can be classified."""

    def __init__(self, namespaces: frozenset[str]) -> None:
        self.namespaces = namespaces
        # Formulas stand in the rendered text as placeholders while it is tidied, which would otherwise
        # rewrite TeX as prose ("\\Big[ [H^+ ]" -> "\\Big[[H^+]"); `restore` puts them back.
        self.formulas: list[str] = []

    def sections(self, code: Wikicode) -> list[tuple[int, str, str]]:
        """Split the top-level nodes at headings into (level, name, tidied body), dropping reference lists."""
        out: list[tuple[int, str, str]] = []
        level, name, buf = 0, "", []  # the lead section
        skip_below: int | None = None  # level of a dropped heading while inside it (and its subsections)
        for node in code.nodes:
            if not isinstance(node, Heading):
                if skip_below is None:
                    buf.append(self.node(node))
                continue
            title = self.restore(_tidy_line(self.render(node.title)))
            if not title or (skip_below is not None and node.level > skip_below):
                continue  # an empty heading does not split; a dropped section's subsections stay dropped
            if skip_below is None:
                out.append((level, name, self.restore(tidy(buf))))
            level, name, buf = node.level, title, []
            skip_below = node.level if title.casefold() in DROPPED_SECTIONS else None
        if skip_below is None:
            out.append((level, name, self.restore(tidy(buf))))
        return out

    def render(self, code: Wikicode | None) -> str:
        """Plain text of a fragment (a link label, a heading, a tag's content)."""
        if code is None:
            return ""
        return "".join(self.node(n) for n in code.nodes)

    def node(self, node: Node) -> str:
        """Plain text of one node."""
        if isinstance(node, Text):
            return node.value
        if isinstance(node, Wikilink):
            return self.wikilink(node)
        if isinstance(node, Tag):
            return self.tag(node)
        if isinstance(node, Template):
            return self.template(node)
        if isinstance(node, ExternalLink):
            if not node.brackets:
                return str(node.url)
            return self.render(node.title) if node.title is not None else ""
        if isinstance(node, HTMLEntity):
            return node.normalize()
        if isinstance(node, Heading):  # only nested in a tag; top-level ones split sections
            return "\n" + self.render(node.title) + "\n"
        if isinstance(node, (Comment, Argument)):
            return ""
        return ""

    def wikilink(self, link: Wikilink) -> str:
        """The label of an article link; nothing for files, categories, interwiki and language links."""
        target = str(link.title).strip()
        visible = target.startswith(":")  # [[:Category:X]] is a link to X shown inline
        target = target.lstrip(":").strip()
        prefix, colon, rest = target.partition(":")
        namespaced = bool(colon) and self.is_prefix(prefix)
        if namespaced and not visible:
            return ""
        if link.text is not None:
            label = self.render(link.text)
            if label.strip():
                return label
        if namespaced:
            return rest.strip()
        return self.render(link.title).lstrip(":").strip()

    def is_prefix(self, prefix: str) -> bool:
        """Whether `prefix` (the part before a colon) names a namespace, a sister project or a language."""
        key = " ".join(prefix.replace("_", " ").split()).casefold()
        return (
            key in NAMESPACE_PREFIXES
            or key in INTERWIKI_PREFIXES
            or key in self.namespaces
            or _LANGUAGE_CODE.match(prefix.strip()) is not None
        )

    def tag(self, tag: Tag) -> str:
        """Bold, italic and most HTML tags keep their content; footnotes, tables and media go."""
        name = str(tag.tag).strip().lower()
        if name in FORMULA_TAGS:
            return self.formula(tag)
        if name in DROPPED_TAGS:
            return "\n" if name == "table" else ""
        if tag.wiki_markup is not None and name in ("li", "dt", "dd", "hr"):
            return "\n" if name == "hr" else ""  # list markers: the item text follows as a sibling node
        if name in ("br", "hr"):
            return "\n"
        if tag.self_closing or tag.contents is None:
            return ""
        if name in LITERAL_TAGS:
            text = str(tag.contents)
        else:
            text = self.render(tag.contents)
        return f"\n{text}\n" if name in BLOCK_TAGS else text

    def formula(self, tag: Tag) -> str:
        """A formula's placeholder (a display formula's on a line of its own); "" for an empty formula."""
        source = "" if tag.self_closing or tag.contents is None else str(tag.contents)
        tex = _DOUBLED.sub(r"\1 ", " ".join(source.split()))
        if not tex:
            return ""
        self.formulas.append(tex)
        placeholder = f"{_FORMULA_OPEN}{len(self.formulas) - 1}{_FORMULA_CLOSE}"
        display = tag.has("display") and str(tag.get("display").value).strip().strip("\"'").lower() == "block"
        return f"\n{placeholder}\n" if display else placeholder

    def restore(self, text: str) -> str:
        """`text` with each formula placeholder replaced by its formula."""
        if _FORMULA_OPEN not in text:
            return text
        count = len(self.formulas)
        return _PLACEHOLDER.sub(lambda m: self.formulas[n] if (n := int(m.group(1))) < count else m.group(0), text)

    def template(self, template: Template) -> str:
        """Templates are dropped, except a few that only wrap visible text or quantities."""
        name = " ".join(str(template.name).replace("_", " ").split()).casefold()
        name = name.removeprefix("template:").strip()
        positional = [p for p in template.params if not p.showkey]
        if name in KEPT_TEMPLATES and positional:
            return self.render(positional[-1].value).strip()
        if name in _CONVERT_TEMPLATES and len(positional) >= 2:
            values = [self.render(p.value).strip() for p in positional[:4]]
            if len(values) >= 4 and values[1].casefold() in _RANGE_WORDS:
                return " ".join(values[:4])
            return f"{values[0]} {values[1]}"
        return ""


def tidy(pieces: list[str]) -> str:
    """Normalise whitespace of a rendered section body: trimmed lines, one blank line between paragraphs.

    Also removes what dropped markup leaves behind (" ." before a removed footnote, "( ; )" around a removed
    pronunciation template) and, as a last resort, markup mwparserfromhell could not parse (an unclosed
    `'''`, a stray `}}`).
    """
    raw = _MAGIC_WORD.sub(lambda m: "" if m.group(1).isupper() else m.group(0), "".join(pieces))
    lines: list[str] = []
    for line in raw.split("\n"):
        if _TABLE_LINE.match(line):
            continue
        line = _tidy_line(line)
        if not _WORD.search(line):
            line = ""
        if line or (lines and lines[-1]):
            lines.append(line)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def _tidy_line(line: str) -> str:
    """One line with single spaces, no leftover markup, no space before punctuation."""
    line = _LEFTOVER_REF.sub("", line)
    line = _LEFTOVER_MARKUP.sub("", line)
    line = _EMPTY_PARENS.sub("", line)
    line = _PAREN_LEADING_PUNCT.sub("(", line)
    line = _SPACES.sub(" ", line)
    line = _SPACE_BEFORE_PUNCT.sub(r"\1", line)
    line = _SPACE_AFTER_OPEN.sub(r"\1", line)
    return _LEADING_PUNCT.sub("", line).strip()
