"""What every store can hold, checked once when the corpus is read (the same for both stores): an article whose
id, title or text holds a NUL character, or whose id is over MAX_ID_BYTES of UTF-8, is skipped with a warning naming its
file and line, and the rest of the corpus is indexed."""

from __future__ import annotations

from ..records import Document

MAX_ID_BYTES = 2600  # under PostgreSQL's 2,704-byte limit for an indexed value, with room for its headers


def record_problem(doc: Document, text: str) -> str | None:
    """Why the article `doc` (its source text `text`) cannot be stored, with the fix; None when it can."""
    if "\x00" in doc.doc_id or "\x00" in doc.title or "\x00" in text[doc.start:doc.end]:
        return ("holds a NUL character (\\u0000), which a database cannot store; skipped. Remove the NUL "
                "characters from it")
    size = len(doc.doc_id.encode("utf-8", "replace"))
    if size > MAX_ID_BYTES:
        return (f"its id is {size:,} bytes long (UTF-8), over the limit of {MAX_ID_BYTES:,}; skipped. Give it a "
                "shorter id")
    return None


def line_of(text: str, offset: int) -> int:
    """The 1-based line of `offset` in `text`."""
    return text.count("\n", 0, max(0, offset)) + 1
