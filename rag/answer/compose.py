"""Extractive answers: the sentences the reader trusts, quoted and attributed, each with an exact-span
citation; or an abstention with the sentences closest to answering. No language model.

With the reader on (the default), the best first-stage sentences are read by the trained reader, which decides
whether each one answers the question, where the answer is inside it, and how sure it is; the answer leads with
the sentence it trusts most and abstains when it trusts none enough."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

from ..index.store import Snapshot
from ..records import Citation, Hit
from .citations import check_quote, cite
from .first_stage import Candidate
from .reader import Reader

ABSTAIN_TEXT = ("The archive does not answer this question: no passage is close enough to it. "
                "The closest passages are listed below.")
# With the reader: on-topic sentences exist, but none answers clearly enough to quote as the answer.
UNSURE_TEXT = ("The archive does not clearly answer this question: no sentence answers it surely enough to quote. "
               "The sentences closest to answering it are listed below for you to check; they are not citations.")
# With the reader, when it is unsure but its best sentence comes this close, the answer leads with that sentence
# as a possible answer, clearly marked and not cited (`Answer.possible`); below it, only the list is shown.
POSSIBLE_FLOOR = 0.2
POSSIBLE_LEAD = "Possible answer, not confirmed"
# What the CLI, the Markdown export and the app call that list.
CLOSEST_HEADING = "Closest sentences (not citations: none answers clearly enough)"

# With the reader, a sentence from another article joins the best one when the reader trusts it nearly as much.
SECOND_SOURCE = 0.85
# When the reader abstains, up to this many sentences it judged closest to answering are shown (not cited),
# those it gives at least this confidence: below it, a sentence is off the question's topic.
CLOSEST = 3
CLOSEST_FLOOR = 0.1

# A quote whose speaker is only a pronoun ("He added that ...", "“...,” she said"): the sentence before it that
# names someone joins the quote.
_SPEECH = (r"(?:said|says|told|added|urged|warned|noted|stated|argued|claimed|accused|explained|insisted|stressed|"
           r"wrote|continued|asserted|suggested|believes|believed|thinks|thought|called|described|replied|recalled|"
           r"announced|admitted|acknowledged|emphasized|emphasised|reiterated|declared|remarked)")
_PRONOUN_SPEAKER = re.compile(rf"^[\"“‘'\s]*(?:He|She|They)\b|\b(?:he|she|they)\s+{_SPEECH}\b")
_NOT_NAMES = r"(?!(?:He|She|They|It|We|I|You|This|That|The)\b)"
_NAMED_SPEAKER = re.compile(rf"\b{_NOT_NAMES}[A-Z][\w’'-]+(?:\s+[A-Z][\w’'-]+)*\s+{_SPEECH}\b|"
                            # "..., said Lavrov." names its speaker; "he said Russia has ..." does not
                            rf"\b(?:said|says|added|wrote)\s+(?:[a-z]+\s+){{0,4}}{_NOT_NAMES}[A-Z][\w’'-]+"
                            rf"(?:\s+[A-Z][\w’'-]+)*\s*(?:[,.;:!?]|$)|"
                            rf"\baccording to\s+(?:[a-z]+\s+){{0,4}}{_NOT_NAMES}[A-Z][\w’'-]+")
_PROPER = re.compile(r"(?<!^)(?<![.!?]\s)\b[A-Z][a-z’'-]+")


@dataclass(frozen=True)
class Decision:
    """What to quote, or why not."""

    chosen: tuple[Candidate, ...]
    abstained: bool
    confidence: float | None
    unanswered_parts: tuple[str, ...] = ()


def read(reader: Reader, question: str, candidates: Sequence[Candidate], limit: int) -> list[Candidate]:
    """The first `limit` candidates as the reader judges them, the one it trusts most first."""
    top = list(candidates[:limit])
    readings = reader.read(question, [c.quote for c in top], [(c.hit.title, c.previous) for c in top],
                           [c.score for c in top])
    judged = [replace(c, confidence=r.confidence,
                      span=(c.start + r.span[0], c.start + r.span[1]) if r.span else None)
              for c, r in zip(top, readings)]
    judged.sort(key=lambda c: (-(c.confidence or 0.0), -c.rank))
    return judged


def decide(judged_parts: Sequence[tuple[str, Sequence[Candidate]]], threshold: float,
           max_sentences: int) -> Decision:
    """With the reader: for each part of the question, the sentence the reader trusts most, if it trusts it
    enough; for a one-part question, a second article's sentence when the reader trusts it nearly as much."""
    chosen: list[Candidate] = []
    missing: list[str] = []
    best_confidence = max((c[0].confidence or 0.0 for _, c in judged_parts if c), default=None)
    for part, judged in judged_parts:
        if not judged or (judged[0].confidence or 0.0) < threshold:
            missing.append(part)
            continue
        if all((judged[0].hit.chunk.doc_id, judged[0].start) != (c.hit.chunk.doc_id, c.start) for c in chosen):
            chosen.append(judged[0])
    if len(judged_parts) == 1 and chosen:
        best = chosen[0]
        for cand in judged_parts[0][1][1:]:
            if len(chosen) >= max_sentences or (cand.confidence or 0.0) < max(threshold, SECOND_SOURCE
                                                                                * (best.confidence or 0.0)):
                break
            if cand.hit.chunk.doc_id != best.hit.chunk.doc_id:
                chosen.append(cand)
                break
    chosen = chosen[:max_sentences]
    return Decision(tuple(chosen), not chosen, best_confidence,
                    tuple(missing) if chosen and len(judged_parts) > 1 else ())


def closest(judged_parts: Sequence[tuple[str, Sequence[Candidate]]], limit: int = CLOSEST,
            floor: float = CLOSEST_FLOOR) -> list[Candidate]:
    """The sentences the reader trusts most over every part of the question, each once, best first: what an
    abstention shows for the user to check."""
    seen: set[tuple[str, int]] = set()
    out: list[Candidate] = []
    for c in sorted((c for _, judged in judged_parts for c in judged), key=lambda c: -(c.confidence or 0.0)):
        key = (c.hit.chunk.doc_id, c.start)
        if (c.confidence or 0.0) < floor or len(out) >= limit:
            break
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def possible_answer(best: Candidate, threshold: float) -> str:
    """The text of an answer that leads with the sentence the reader trusts most when it does not trust it
    enough to state it: marked as possible, with its confidence, for the user to check (not a citation)."""
    return (f"{POSSIBLE_LEAD} (confidence {best.confidence or 0.0:.0%}, under the {threshold:.0%} needed to "
            f"state it; check this quote): {attribution(best.hit)} “{best.quote}” (1). The archive does not "
            "clearly answer this question; the sentences closest to answering it are listed below, not as "
            "citations.")


def closest_citations(chosen: Sequence[Candidate]) -> list[Citation]:
    """Exact spans of the closest sentences, numbered in order (checked like citations, shown as none); no answer
    span, since none of them was trusted to hold the answer."""
    out = []
    for n, c in enumerate(chosen, 1):
        check_quote(c.hit, c.start, c.end, c.quote, f"The closest sentence {n}")
        out.append(cite(n, c.hit, c.start, c.end, None, c.confidence))
    return out


def short_title(title: str, limit: int = 90) -> str:
    if len(title) <= limit:
        return title
    return title[:limit].rsplit(" ", 1)[0].rstrip(",;:–- ") + "…"


def with_speaker(gen: Snapshot, cand: Candidate) -> tuple[int, int]:
    """The quote's span, widened to take in the sentence before it (in the same passage) that names the
    speaker, when the quote names its speaker only by a pronoun."""
    if not _PRONOUN_SPEAKER.search(cand.quote) or _NAMED_SPEAKER.search(cand.quote):
        return cand.start, cand.end
    chunk = cand.hit.chunk
    (sentences,) = gen.sentences_in([(chunk.doc_id, chunk.start, cand.start)])
    before = [(s, e) for _row, s, e in sentences][-2:]
    texts = [chunk.text[s - chunk.start:e - chunk.start] for s, e in before]
    for pattern in (_NAMED_SPEAKER, _PROPER):  # a sentence naming a speaker, else one naming anybody
        for (s, _e), text in zip(reversed(before), reversed(texts)):
            if pattern.search(text):
                return s, cand.end
    return cand.start, cand.end


def attribution(hit: Hit) -> str:
    """Who reports it: the publisher (when known), the article's title and its date (when known)."""
    publisher, date = hit.metadata.get("publisher"), hit.metadata.get("date")
    title = f"“{short_title(hit.title)}”" + (f" ({date})" if date else "")
    return f"{publisher}, in {title}, reports:" if publisher else f"The article {title} reports:"


def speaker_attribution(hit: Hit, speaker: str, kind: str) -> str:
    """Who said it, and where: "Sergey Lavrov said, in “Title” (RT):"; "according to" keeps its own words."""
    publisher, date = hit.metadata.get("publisher"), hit.metadata.get("date")
    where = ", ".join(p for p in (publisher, date) if p)
    title = f"“{short_title(hit.title)}”" + (f" ({where})" if where else "")
    if kind == "according_to":
        return f"According to {speaker}, in {title}:"
    return f"{speaker} said, in {title}:"


def compose(chosen: Sequence[Candidate], gen: Snapshot | None = None,
            speakers: Mapping[int, tuple[str, str]] | None = None) -> tuple[str, list[Citation]]:
    """Attributed quotes with markers, and their citations (numbered in the order they appear). `speakers`:
    for the quotes (by index in `chosen`) that are someone's statement, (speaker, kind); the others are what the
    article reports."""
    citations: list[Citation] = []
    parts_: list[str] = []
    previous_doc = None
    for n, c in enumerate(chosen, 1):
        check_quote(c.hit, c.start, c.end, c.quote, f"The sentence judged for citation [{n}]")  # judged = cited
        start, end = with_speaker(gen, c) if gen is not None else (c.start, c.end)
        citation = cite(n, c.hit, start, end, c.span, c.confidence)
        citations.append(citation)
        said = (speakers or {}).get(n - 1)
        lead = (speaker_attribution(c.hit, *said) if said else
                "It adds:" if c.hit.chunk.doc_id == previous_doc else attribution(c.hit))
        parts_.append(f"{lead} “{citation.quote}” [{n}]")
        previous_doc = c.hit.chunk.doc_id
    return " ".join(parts_), citations
