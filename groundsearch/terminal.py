"""A passage wrapped for the terminal with its highlight emphasised, and not a character of it changed.

The text is wrapped first, as plain text, and only then are the highlight's characters styled, so ANSI codes
never count towards a line's width and never split a word. textwrap only ever turns ASCII whitespace into
spaces or drops it at line ends; every other character comes out in order, which is how each printed
character is traced back to its offset in the stored text.
"""

from __future__ import annotations

import textwrap

import typer

from retriever.hit import Span

# What textwrap treats as whitespace (its `_whitespace`): anything else it leaves exactly where it was.
_WRAP_WHITESPACE = frozenset("\t\n\x0b\x0c\r ")


def wrap_highlighted(text: str, span: Span | None, width: int, indent: str = "    ") -> str:
    """`textwrap.fill(text, ...)`, with `text[span.start:span.end]` bold and underlined where colour is on.

    typer.echo strips the styles when the output is not a terminal, which leaves exactly the plain fill.
    """
    lines = textwrap.wrap(text, width=width, initial_indent=indent, subsequent_indent=indent)
    if span is None or span.end <= span.start:
        return "\n".join(lines)
    # Offsets, in the stored text, of its characters that survive wrapping, in order.
    kept = [i for i, ch in enumerate(text) if ch not in _WRAP_WHITESPACE]
    out: list[str] = []
    at = 0
    for line in lines:
        body = line[len(indent) :]
        inside: list[bool] = []
        for ch in body:
            if ch in _WRAP_WHITESPACE:
                inside.append(False)  # settled below, from its neighbours
                continue
            if at >= len(kept) or text[kept[at]] != ch:
                return "\n".join(lines)  # not the text we were given: show it plain rather than mis-styled
            inside.append(span.start <= kept[at] < span.end)
            at += 1
        _join_gaps(body, inside)
        out.append(indent + _styled(body, inside))
    return "\n".join(out)


def _join_gaps(body: str, inside: list[bool]) -> None:
    """Spaces between two emphasised characters of a line are emphasised too, so the underline is unbroken."""
    last = None
    for i, ch in enumerate(body):
        if ch in _WRAP_WHITESPACE:
            continue
        if last is not None and inside[i] and inside[last]:
            for j in range(last + 1, i):
                inside[j] = True
        last = i


def _styled(body: str, inside: list[bool]) -> str:
    pieces: list[str] = []
    start = 0
    for i in range(1, len(body) + 1):
        if i == len(body) or inside[i] != inside[start]:
            run = body[start:i]
            pieces.append(typer.style(run, bold=True, underline=True) if inside[start] else run)
            start = i
    return "".join(pieces)
