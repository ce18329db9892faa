"""The first stage: every sentence of the retrieved passages scored against the question (embedding cosine of
precomputed sentence vectors, the share of the question's weighted terms present, a reward for holding the
kind of answer asked for). With the reader off, `select` picks what to quote from these scores alone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..common.text import content_terms, words
from ..index.store import Snapshot
from ..records import Hit
from .question import expected_type, type_match

# How a sentence's first-stage evidence mixes its meaning match (cosine) and the share of the question's
# weighted terms it contains. With the reader off, the abstention threshold applies to this score.
DENSE_WEIGHT = 0.5
LEXICAL_WEIGHT = 0.5
# First-stage ranking also rewards a sentence that holds something of the kind the question asks for (a
# number for "how many", a name for "who", ...) that the question itself does not already contain.
TYPE_WEIGHT = 0.15
# A name in the question (a capitalised word past its first) that the archive never mentions is strong
# evidence that it cannot answer; each such name lowers every sentence's score by this share of the penalty.
UNKNOWN_NAME_PENALTY = 0.15
_NAME = re.compile(r"(?<=\w[\s,;:(])[\s\"“‘'(]*([A-Z][\w’'-]+)")
# Without the reader, runners-up join the best sentence when their rank is at least this share of the best.
RUNNER_UP = 0.75

@dataclass(frozen=True)
class Candidate:
    """A sentence of a retrieved passage, scored against the question."""

    hit: Hit
    start: int  # absolute offsets in the source text
    end: int
    quote: str
    score: float  # first-stage evidence
    dense: float
    lexical: float
    rank: float  # first-stage evidence plus the answer-type reward; orders the candidates for the reader
    typed: float  # 1.0 when it holds an answer of the kind the question asks for (see type_match)
    strict: bool  # the question's kind is unmistakable (a number, a date, a place)
    confidence: float | None = None  # the reader's calibrated probability that it answers the question
    span: tuple[int, int] | None = None  # the answer inside the sentence, as offsets in the source text
    previous: str = ""  # the sentence before it in its passage (context for the reader)


def unknown_names(gen: Snapshot, question: str) -> float:
    """Share of the question's names (capitalised words after its first word) absent from the whole archive."""
    names = {t for m in _NAME.finditer(question) for t in content_terms(m.group(1))}
    if not names:
        return 0.0
    return len(names - gen.known(sorted(names))) / len(names)


def _sentences(gen: Snapshot, hits: Sequence[Hit]) -> tuple[list[int], list[tuple[Hit, int, int, str]]]:
    """Sentence rows and (passage, start, end, previous sentence) of every sentence inside the passages, each
    once."""
    seen: set[tuple[str, int]] = set()
    rows: list[int] = []
    meta: list[tuple[Hit, int, int, str]] = []
    within = gen.sentences_in([(h.chunk.doc_id, h.chunk.start, h.chunk.end) for h in hits])
    for hit, sentences in zip(hits, within):
        previous = ""
        chunk = hit.chunk
        for row, start, end in sentences:
            if (chunk.doc_id, start) not in seen:
                seen.add((chunk.doc_id, start))
                rows.append(row)
                meta.append((hit, start, end, previous))
            previous = chunk.text[start - chunk.start:end - chunk.start]
    return rows, meta


def score_sentences(gen: Snapshot, question: str, query_vector: np.ndarray, hits: Sequence[Hit]
                    ) -> list[Candidate]:
    """Every sentence inside the passages with its first-stage score, best first."""
    rows, meta = _sentences(gen, hits)
    if not rows:
        return []
    terms = content_terms(question)
    idf = gen.idf(terms)
    total = sum(idf.values()) or 1.0
    penalty = UNKNOWN_NAME_PENALTY * unknown_names(gen, question)
    dense = gen.sentence_vectors(rows) @ query_vector
    kind, head = expected_type(question)
    out = []
    for (hit, start, end, previous), cos in zip(meta, dense):
        quote = hit.chunk.text[start - hit.chunk.start:end - hit.chunk.start]
        present = set(content_terms(quote))
        lexical = sum(w for t, w in idf.items() if t in present) / total if idf else 0.0
        score = DENSE_WEIGHT * float(cos) + LEXICAL_WEIGHT * lexical - penalty
        typed = type_match(quote, question, kind, head)
        out.append(Candidate(hit, start, end, quote, score, float(cos), lexical, score + TYPE_WEIGHT * typed,
                             typed, kind in ("number", "date", "place"), previous=previous))
    out.sort(key=lambda s: (-s.rank, s.hit.rank, s.start))
    return out


def _words(text: str) -> set[str]:
    return set(words(text))


def select(scored: Sequence[Candidate], max_sentences: int, threshold: float) -> list[Candidate]:
    """Without the reader: the best sentence, plus up to `max_sentences - 1` close runners-up that add new
    words; when none of them holds the kind of answer the question asks for, the best sentence that does
    joins them."""
    if not scored:
        return []
    best = scored[0]
    chosen = [best]
    floor = best.rank * RUNNER_UP
    for cand in scored[1:]:
        if len(chosen) >= max_sentences or cand.rank < floor:
            break
        if cand.score < threshold:
            continue
        words = _words(cand.quote)
        if any(len(words & _words(c.quote)) / max(1, min(len(words), len(_words(c.quote)))) > 0.6 for c in chosen):
            continue
        chosen.append(cand)
    if best.strict and not any(c.typed == 1.0 for c in chosen):
        # the closest sentences are on topic but hold no answer of the asked kind: add the best that does
        typed = next((c for c in scored if c.typed == 1.0 and c.score >= threshold), None)
        if typed is not None:
            chosen = chosen[: max_sentences - 1] + [typed]
    return chosen
