"""Citations are built and checked here, and nowhere else: a quote is always `source_text[start:end]`, taken
through the retrieved passage (itself a verbatim slice of the source), and checked before it leaves."""

from __future__ import annotations

from typing import Mapping

from .errors import SpanError
from .records import Citation, Hit


def check_citation(citation: Citation, hit: Hit) -> None:
    """SpanError unless `citation.quote` is exactly the source text at its offsets, inside the passage, and its
    answer span (if any) lies inside the quote."""
    chunk = citation_chunk = hit.chunk
    inner = chunk.text[citation.start - chunk.start:citation.end - chunk.start]
    if not (citation_chunk.start <= citation.start < citation.end <= citation_chunk.end) or inner != citation.quote:
        raise SpanError(f"Citation [{citation.n}] of {citation.doc_id} is not an exact span of its source; "
                        "the answer was withheld. Please report this with the question.")
    if citation.answer_span is not None:
        s, e = citation.answer_span
        if not (citation.start <= s < e <= citation.end):
            raise SpanError(f"The answer span of citation [{citation.n}] lies outside its quote; "
                            "the answer was withheld. Please report this with the question.")


def cite(n: int, hit: Hit, start: int, end: int, answer_span: tuple[int, int] | None = None,
         confidence: float | None = None, metadata: Mapping[str, str] | None = None) -> Citation:
    """Citation `[n]` of the source span [start, end) inside passage `hit`, checked."""
    chunk = hit.chunk
    quote = chunk.text[start - chunk.start:end - chunk.start]
    citation = Citation(n, chunk.doc_id, chunk.chunk_id, hit.title, hit.source, start, end, quote,
                        dict(hit.metadata if metadata is None else metadata), answer_span, confidence)
    check_citation(citation, hit)
    return citation
