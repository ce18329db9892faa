"""What every file format produces: an `Article` (a document and the source text its offsets index), text
made safe to index, and the main text of an HTML page (trafilatura)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..records import Document

_SURROGATE = re.compile("[\ud800-\udfff]")  # a lone surrogate from a JSON escape: not a character


@dataclass(frozen=True)
class Article:
    """A document together with the source text its offsets index."""

    document: Document
    source_text: str
    position: float = 1.0  # share of its file read once this article is produced (for progress bars)


def valid_text(text: str) -> tuple[str, int]:
    """`text` with each lone surrogate replaced by U+FFFD (same length, so offsets hold), and how many."""
    return _SURROGATE.subn("\ufffd", text)


def extract_html(html: str) -> tuple[str, dict[str, str]]:
    """Main text and metadata of an HTML page, via trafilatura."""
    import trafilatura

    result = trafilatura.bare_extraction(html, with_metadata=True, include_comments=False)
    if result is None:
        return "", {}
    get = (lambda k: getattr(result, k, None)) if not isinstance(result, dict) else result.get
    meta = {}
    for key, field in (("title", "title"), ("author", "author"), ("date", "date"),
                       ("publisher", "sitename"), ("url", "url"), ("language", "language")):
        value = get(field)
        if value and str(value).strip():
            meta[key] = str(value).strip()
    return get("text") or "", meta
