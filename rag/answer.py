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
# weighted terms it contains. The abstention threshold applies to this score.
DENSE_WEIGHT = 0.5
LEXICAL_WEIGHT = 0.5
# Ranking also rewards a sentence that holds something of the kind the question asks for (a number for
# "how many", a name for "who", ...) that the question itself does not already contain.
TYPE_WEIGHT = 0.15
# A name in the question (a capitalised word past its first) that the archive never mentions is strong
# evidence that it cannot answer; each such name lowers every sentence's score by this share of the penalty.
UNKNOWN_NAME_PENALTY = 0.15
_NAME = re.compile(r"(?<=\w[\s,;:(])[\s\"“‘'(]*([A-Z][\w’'-]+)")
# Runners-up join the best sentence when their rank is at least this share of the best one's.
RUNNER_UP = 0.75

_NUMBER_WORDS = ("one two three four five six seven eight nine ten eleven twelve dozen dozens twenty thirty forty "
                 "fifty hundred hundreds thousand thousands million millions billion billions trillion half "
                 "quarter third percent").split()
_NUMBER = re.compile(r"\d|\b(?:" + "|".join(_NUMBER_WORDS) + r")\b", re.I)
_MONTHS = ("january february march april may june july august september october november december "
           "monday tuesday wednesday thursday friday saturday sunday").split()
_DATE = re.compile(r"\b(?:" + "|".join(_MONTHS) + r")\b|\b(?:1[5-9]|20)\d{2}\b|\b(?:yesterday|today|"
                   r"tomorrow|ago|last (?:week|month|year)|next (?:week|month|year)|earlier this \w+)\b", re.I)
_CAPS = re.compile(r"[A-Z][\w’'.-]*(?:\s+(?:of|the|for|and|de|al)?\s*[A-Z][\w’'.-]*)*")
_PLACE = re.compile(r"\b(?:in|at|near|from|to|outside|inside)\s+(?:the\s+)?([A-Z][\w’'-]*(?:\s+[A-Z][\w’'-]*)*)")
_NOT_NOUNS = {"is", "are", "was", "were", "do", "does", "did", "has", "have", "had", "can", "could", "will",
              "would", "should", "the", "a", "an", "of", "kind", "sort", "type"}


@dataclass(frozen=True)
class Scored:
    hit: Hit
    start: int  # absolute offsets in the source text
    end: int
    quote: str
    score: float
    dense: float
    lexical: float
    rank: float  # score plus the answer-type reward; orders the candidates
    typed: float  # 1.0 when it holds an answer of the kind the question asks for (see type_match)
    strict: bool  # the question's kind is unmistakable (a number, a date, a place)


class SpanError(AssertionError):
    """A citation whose quote is not the exact span it claims to be."""


def check_citation(citation: Citation, hit: Hit) -> None:
    """Assert `source_text[start:end] == quote` through the passage, which is itself a verbatim slice."""
    chunk = hit.chunk
    inner = chunk.text[citation.start - chunk.start:citation.end - chunk.start]
    if not (chunk.start <= citation.start < citation.end <= chunk.end) or inner != citation.quote:
        raise SpanError(f"citation [{citation.n}] of {citation.doc_id} is not an exact span of its source")


def expected_type(question: str) -> tuple[str | None, str | None]:
    """(kind of answer the question asks for, its head noun for "which X" / "what X" questions)."""
    q = question.lower()
    if re.search(r"\bhow (?:many|much|long|old|large|big|far)\b|\bwhat (?:number|share|percentage|proportion|"
                 r"amount|portion|fraction)\b", q):
        return "number", None
    if re.search(r"\bwhen\b|\bwhat (?:year|date|day|month|time)\b|\bin which (?:year|month)\b", q):
        return "date", None
    if re.search(r"\bwhere\b", q):
        return "place", None
    if re.search(r"\bwho(?:m|se)?\b", q):
        return "name", None
    match = re.search(r"\b(?:which|what)\s+([a-z]+)", q)
    if match and match.group(1) not in _NOT_NOUNS:
        return "name", match.group(1)
    return None, None


def type_match(sentence: str, question: str, kind: str | None, head: str | None) -> float:
    """1.0 when the sentence holds an answer of the expected kind that the question lacks (0.5 for a plain
    name when a "which X" question's X is not part of it), else 0."""
    if kind is None:
        return 0.0
    asked = {w.lower() for w in _WORD.findall(question)}

    def new(span: str) -> bool:
        return any(w.lower() not in asked for w in _WORD.findall(span))

    if kind == "number":
        return 1.0 if any(new(m.group()) for m in _NUMBER.finditer(sentence)) else 0.0
    if kind == "date":
        return 1.0 if any(new(m.group()) for m in _DATE.finditer(sentence)) else 0.0
    if kind == "place":
        return 1.0 if any(new(m.group(1)) for m in _PLACE.finditer(sentence)) else 0.0
    names = [m.group() for m in _CAPS.finditer(sentence) if m.start() > 0 or " " in m.group()]
    names = [n for n in names if new(n)]
    if head and any(head.rstrip("s") in n.lower() for n in names):
        return 1.0
    return 0.5 if head and names else 1.0 if names else 0.0


def unknown_names(gen: Generation, question: str) -> float:
    """Share of the question's names (capitalised words after its first word) absent from the whole archive."""
    names = {t for m in _NAME.finditer(question) for t in gen.lexical.terms(m.group(1))}
    if not names:
        return 0.0
    return len(names - gen.lexical.known(sorted(names))) / len(names)


def score_sentences(gen: Generation, question: str, query_vector: np.ndarray, hits: list[Hit]) -> list[Scored]:
    """Every sentence inside the passages, scored against the question."""
    terms = gen.lexical.terms(question)
    idf = gen.lexical.idf(terms)
    total = sum(idf.values()) or 1.0
    penalty = UNKNOWN_NAME_PENALTY * unknown_names(gen, question)
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
    kind, head = expected_type(question)
    out = []
    for (hit, start, end), cos in zip(meta, dense):
        quote = hit.chunk.text[start - hit.chunk.start:end - hit.chunk.start]
        present = set(gen.lexical.terms(quote))
        lexical = sum(w for t, w in idf.items() if t in present) / total if idf else 0.0
        score = DENSE_WEIGHT * float(cos) + LEXICAL_WEIGHT * lexical - penalty
        typed = type_match(quote, question, kind, head)
        rank = score + TYPE_WEIGHT * typed
        out.append(Scored(hit, start, end, quote, score, float(cos), lexical, rank, typed,
                          kind in ("number", "date", "place")))
    out.sort(key=lambda s: (-s.rank, s.hit.rank, s.start))
    return out


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def select(scored: list[Scored], max_sentences: int, threshold: float) -> list[Scored]:
    """The best sentence, plus up to `max_sentences - 1` close runners-up that add new words; when none of
    them holds the kind of answer the question asks for, the best sentence that does joins them."""
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
