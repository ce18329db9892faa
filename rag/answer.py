"""Extractive answers: the sentences of the retrieved passages that best answer the question, quoted and
attributed, each with an exact-span citation. No language model."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .index import Generation
from .records import Citation, Hit

ABSTAIN_TEXT = ("The archive does not answer this question: no passage is close enough to it. "
                "The closest passages are listed below.")
_WORD = re.compile(r"\w+")

# How a sentence's evidence score mixes its meaning match (cosine) and the share of the question's
# weighted terms it contains. The abstention threshold applies to the same score.
DENSE_WEIGHT = 0.6
LEXICAL_WEIGHT = 0.4


@dataclass(frozen=True)
class Scored:
    hit: Hit
    start: int  # absolute offsets in the source text
    end: int
    quote: str
    score: float
    dense: float
    lexical: float


class SpanError(AssertionError):
    """A citation whose quote is not the exact span it claims to be."""


def check_citation(citation: Citation, hit: Hit) -> None:
    """Assert `source_text[start:end] == quote` through the passage, which is itself a verbatim slice."""
    chunk = hit.chunk
    inner = chunk.text[citation.start - chunk.start:citation.end - chunk.start]
    if not (chunk.start <= citation.start < citation.end <= chunk.end) or inner != citation.quote:
        raise SpanError(f"citation [{citation.n}] of {citation.doc_id} is not an exact span of its source")


def score_sentences(gen: Generation, question: str, query_vector: np.ndarray, hits: list[Hit]) -> list[Scored]:
    """Every sentence inside the passages, scored against the question."""
    terms = gen.lexical.terms(question)
    idf = gen.lexical.idf(terms)
    total = sum(idf.values()) or 1.0
    seen: set[tuple[str, int]] = set()
    rows: list[int] = []
    meta: list[tuple[Hit, int, int]] = []
    for hit in hits:
        doc = gen.document(hit.chunk.doc_id)
        if doc is None:
            continue
        for row, start, end in gen.sentences_within(doc.row, hit.chunk.start, hit.chunk.end):
            if (hit.chunk.doc_id, start) in seen:
                continue
            seen.add((hit.chunk.doc_id, start))
            rows.append(row)
            meta.append((hit, start, end))
    if not rows:
        return []
    dense = np.asarray(gen.sentence_vectors[np.asarray(rows)]) @ query_vector
    out = []
    for (hit, start, end), cos in zip(meta, dense):
        quote = hit.chunk.text[start - hit.chunk.start:end - hit.chunk.start]
        present = set(gen.lexical.terms(quote))
        lexical = sum(w for t, w in idf.items() if t in present) / total if idf else 0.0
        score = DENSE_WEIGHT * float(cos) + LEXICAL_WEIGHT * lexical
        out.append(Scored(hit, start, end, quote, score, float(cos), lexical))
    out.sort(key=lambda s: (-s.score, s.hit.rank, s.start))
    return out


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def select(scored: list[Scored], max_sentences: int, threshold: float) -> list[Scored]:
    """The best sentence, plus up to `max_sentences - 1` close runners-up that add new words."""
    if not scored:
        return []
    best = scored[0]
    chosen = [best]
    floor = max(threshold, best.score * 0.9)
    for cand in scored[1:]:
        if len(chosen) >= max_sentences or cand.score < floor:
            break
        words = _words(cand.quote)
        if any(len(words & _words(c.quote)) / max(1, min(len(words), len(_words(c.quote)))) > 0.6 for c in chosen):
            continue
        chosen.append(cand)
    return chosen


def short_title(title: str, limit: int = 90) -> str:
    if len(title) <= limit:
        return title
    return title[:limit].rsplit(" ", 1)[0].rstrip(",;:–- ") + "…"


def compose(chosen: list[Scored]) -> tuple[str, list[Citation]]:
    """Attributed quotes with markers, and their citations (numbered in the order they appear)."""
    citations: list[Citation] = []
    parts: list[str] = []
    previous_doc = None
    for n, s in enumerate(chosen, 1):
        chunk = s.hit.chunk
        citation = Citation(n, chunk.doc_id, chunk.chunk_id, s.hit.title, s.hit.source, s.start, s.end, s.quote,
                            dict(s.hit.metadata))
        check_citation(citation, s.hit)
        citations.append(citation)
        if chunk.doc_id == previous_doc:
            lead = "It adds:"
        else:
            publisher = s.hit.metadata.get("publisher")
            lead = f"{publisher}, in “{short_title(s.hit.title)}”, reports:" if publisher else \
                f"The article “{short_title(s.hit.title)}” reports:"
        parts.append(f"{lead} “{s.quote}” [{n}]")
        previous_doc = chunk.doc_id
    return " ".join(parts), citations
