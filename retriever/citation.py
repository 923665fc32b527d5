"""A hit as a citation: plain text, BibTeX or MediaWiki's {{cite web}}, from the hit's own fields only.

Nothing is made up: no author, publisher or access date the index does not hold. The date a citation gives is
the revision's timestamp, when the quoted text was saved, since the text is from a dump, not the live page.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from retriever.hit import Hit

STYLES = ("plain", "bibtex", "mediawiki")

# LaTeX's special characters, as BibTeX field text must spell them.
_LATEX = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
# What would end a template parameter or start a link or a template inside {{cite web}}.
_WIKI = {"|": "{{!}}", "{": "&#123;", "}": "&#125;", "[": "&#91;", "]": "&#93;"}


def cite(hit: Hit, style: str = "plain") -> str:
    """`hit` cited in `style`: "plain" (one line), "bibtex" (an @misc entry) or "mediawiki" ({{cite web}})."""
    if style == "plain":
        return plain(hit)
    if style == "bibtex":
        return bibtex(hit)
    if style == "mediawiki":
        return mediawiki(hit)
    raise ValueError(f"unknown citation style {style!r}; the styles are {', '.join(STYLES)}")


def plain(hit: Hit) -> str:
    """One line a QA tool can print under an answer: where the passage is, and how to check it."""
    where = f"{hit.title}, {hit.section}" if hit.section else hit.title
    return (
        f"{where}. {hit.permalink or '(no URL)'} "
        f"(passage {hit.passage_id}, characters {hit.start}-{hit.end}, sha256 {hit.sha256[:16]})"
    )


def note(hit: Hit) -> str:
    """Where in the article the passage lies: revision, section, character offsets and passage id."""
    parts = [f"revision {hit.revision}"] if hit.revision else []
    if hit.section:
        parts.append(f"section “{hit.section}”")
    parts.append(f"characters {hit.start}-{hit.end} (passage {hit.passage_id}, sha256 {hit.sha256[:16]})")
    return ", ".join(parts)


def revision_date(timestamp: str | None) -> str | None:
    """`2021-03-09` from the revision's timestamp (`2021-03-09T12:34:56Z`); None when it holds no such date."""
    match = re.match(r"\d{4}-\d{2}-\d{2}", timestamp or "")
    return match.group(0) if match else None


def bibtex(hit: Hit) -> str:
    """An `@misc` entry: title, url (the permalink), note (revision, section, offsets), urldate (the revision's)."""
    fields = [("title", "{" + _latex(hit.title) + "}")]  # doubled braces keep the title's capitals
    if hit.permalink:
        fields.append(("url", hit.permalink))  # verbatim: biblatex and the url package read it as is
    fields.append(("note", _latex(note(hit))))
    date = revision_date(hit.timestamp)
    if date:
        fields.append(("urldate", date))
    body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
    return f"@misc{{{_key(hit)},\n{body}\n}}"


def mediawiki(hit: Hit) -> str:
    """A `{{cite web}}` template: title, url (the permalink), website (its host), date (the revision's), at."""
    fields = [("title", hit.title)]
    if hit.permalink:
        fields.append(("url", hit.permalink))
        host = urlsplit(hit.permalink).netloc
        if host:
            fields.append(("website", host))
    date = revision_date(hit.timestamp)
    if date:
        fields.append(("date", date))
    fields.append(("at", note(hit)))
    # A URL is left as it is but for "|", which would end the parameter; percent-encoded it is the same URL.
    values = " ".join(
        f"|{name}={value.replace('|', '%7C') if name == 'url' else _wiki(value)}" for name, value in fields
    )
    return f"{{{{cite web {values}}}}}"


def _key(hit: Hit) -> str:
    """`Hotel_Charlottetown:1234567`: the title in ASCII letters and digits, and the revision (else the passage)."""
    words = re.findall(r"[A-Za-z0-9]+", hit.title)
    return ("_".join(words)[:60] or "passage") + (f":{hit.revision}" if hit.revision else f":p{hit.passage_id}")


def _latex(text: str) -> str:
    return "".join(_LATEX.get(c, c) for c in text)


def _wiki(text: str) -> str:
    return "".join(_WIKI.get(c, c) for c in text)
