"""Article URLs from a title, built the way MediaWiki builds them, so that citations link to the live page."""

from __future__ import annotations

from urllib.parse import quote

# Characters MediaWiki's wfUrlencode leaves unescaped in a title (besides letters, digits and "-_.~").
_SAFE = ";@$!*(),/~:"


def prefix_from_siteinfo(base: str | None) -> str | None:
    """The article URL prefix from siteinfo's `<base>`, the main page's URL: drop its last path segment.

    `https://en.wikipedia.org/wiki/Main_Page` -> `https://en.wikipedia.org/wiki/`.
    """
    if not base or "/" not in base:
        return None
    return base[: base.rfind("/") + 1]


def normalise_prefix(base_url: str | None) -> str | None:
    """A user's `--base-url`: used as a prefix, with a "/" added unless it already ends in "/" or "="."""
    if not base_url:
        return None
    return base_url if base_url.endswith(("/", "=")) else base_url + "/"


def page_url(prefix: str, title: str) -> str:
    """`prefix` (as `normalise_prefix` gives it) + the title with spaces as underscores, percent-encoded as on
    Wikipedia: `Ender's Game` -> `Ender%27s_Game`."""
    return prefix + quote(title.strip().replace(" ", "_"), safe=_SAFE)
