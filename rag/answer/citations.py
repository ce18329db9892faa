"""Citations are built and checked here, and nowhere else: a quote is always `source_text[start:end]`, taken
through the retrieved passage (itself a verbatim slice of the source), and checked before it leaves. Every
failed check is a `SpanError`, so a caller (a `--batch` run) can report it for one question and go on."""

from __future__ import annotations

from typing import Mapping

from ..errors import SpanError
from ..records import Citation, Hit

_WITHHELD = "the answer was withheld. Please report this with the question."


def exact_span(text: str, start: int, end: int, quote: str, offset: int = 0) -> bool:
    """`quote` is exactly the non-empty span [start, end) of `text`, whose first character sits at `offset`
    (0 for a whole source text, a passage's start for a passage)."""
    lo, hi = start - offset, end - offset
    return 0 <= lo < hi <= len(text) and text[lo:hi] == quote


def quote_in_passage(citation: Citation, hit: Hit) -> bool:
    """`citation` quotes the passage `hit` word for word at its own offsets, inside the passage (its answer
    span is not looked at: the UI uses this to show a quote in place)."""
    chunk = hit.chunk
    return citation.doc_id == chunk.doc_id and chunk.start <= citation.start and citation.end <= chunk.end \
        and exact_span(chunk.text, citation.start, citation.end, citation.quote, chunk.start)


def span_problem(citation: Citation, hit: Hit) -> str | None:
    """Why `citation` is not an exact span of the passage `hit` (its quote the passage's text at its offsets,
    inside the passage; its answer span, if any, inside the quote); None when it is."""
    if not quote_in_passage(citation, hit):
        which = f"Citation [{citation.n}]" if citation.n > 0 else "A citation"  # 0: not numbered yet
        return f"{which} of {citation.doc_id} is not an exact span of its source; {_WITHHELD}"
    if citation.answer_span is not None:
        s, e = citation.answer_span
        if not (citation.start <= s < e <= citation.end):
            return f"The answer span of citation [{citation.n}] lies outside its quote; {_WITHHELD}"
    return None


def check_citation(citation: Citation, hit: Hit) -> None:
    """SpanError unless `citation.quote` is exactly the source text at its offsets, inside the passage, and its
    answer span (if any) lies inside the quote."""
    problem = span_problem(citation, hit)
    if problem is not None:
        raise SpanError(problem)


def check_quote(hit: Hit, start: int, end: int, quote: str, what: str) -> None:
    """SpanError unless `quote`, which `what` names, is the text of passage `hit` at [start, end)."""
    chunk = hit.chunk
    if not exact_span(chunk.text, start, end, quote, chunk.start):
        raise SpanError(f"{what} of {chunk.doc_id} is not the source text at its offsets; {_WITHHELD}")


def cite(n: int, hit: Hit, start: int, end: int, answer_span: tuple[int, int] | None = None,
         confidence: float | None = None, metadata: Mapping[str, str] | None = None) -> Citation:
    """Citation `[n]` of the source span [start, end) inside passage `hit`, checked (`n` 0: numbered later)."""
    chunk = hit.chunk
    quote = chunk.text[start - chunk.start:end - chunk.start]
    citation = Citation(n, chunk.doc_id, chunk.chunk_id, hit.title, hit.source, start, end, quote,
                        dict(hit.metadata if metadata is None else metadata), answer_span, confidence)
    check_citation(citation, hit)
    return citation
