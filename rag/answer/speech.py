"""Who said what, in answers: questions about what someone said ("What did Lavrov say about Zelensky?") and
questions about who said something ("Who described the plans as dead?"), the speaker of each quoted sentence,
and statements as citations for the exporters.

The statements are the index's (`Snapshot.statements`): a sentence is "by" a speaker when it overlaps one of
their statements in the same article."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from ..common.text import content_terms
from ..index.statements import matching_speakers, statement_from_row
from ..index.store import Snapshot
from ..records import Answer, AttributedStatement, Citation
from .first_stage import Candidate

_SAY = (r"say|said|saying|tell|told|think|thought|claim|claimed|write|wrote|written|describe|described|comment|"
        r"commented|argue|argued|warn|warned|suggest|suggested|mean|meant")
SAID_QUESTION = re.compile(
    rf"^\s*(?:what|how)\s+(?:exactly\s+)?(?:did|does|do|has|have|had|was|is)\s+(?P<who>.+?)\s+(?:{_SAY})\b"
    r"(?:\s+(?:about|on|of|regarding|concerning|over|to)\s+(?P<topic>.+?))?\s*[?.!]*\s*$", re.IGNORECASE)
_WHO_VERBS = (r"said|says|described|describes|called|calls|warned|warns|claimed|claims|argued|argues|accused|"
              r"stated|suggested|insisted|denied|dismissed|predicted|rejected|urged|criticised|criticized|praised|"
              r"compared|likened|told|noted|added|announced|promised|vowed|threatened|questioned|blamed|"
              r"branded|labelled|labeled|dubbed|hailed|condemned|slammed|proposed")
WHO_QUESTION = re.compile(rf"^\s*who\s+(?:has\s+|had\s+|have\s+)?(?:{_WHO_VERBS})\b(?P<rest>.*)$",
                          re.IGNORECASE | re.DOTALL)
# A who-question the reader does not trust any sentence for is answered by a statement with a speaker that holds
# this share of the question's words (after its verb), among the sentences the reader gives at least FLOOR.
WHO_SHARE = 0.6
WHO_FLOOR = 0.1


@dataclass(frozen=True)
class SpeakerPlan:
    """A question about what someone said: the merged speaker names it means, their statements (passing the
    question's filters) and the topic asked about (None: anything they said)."""

    names: tuple[str, ...]
    statements: tuple[AttributedStatement, ...]
    topic: str | None

    @property
    def doc_ids(self) -> list[str]:
        return list(dict.fromkeys(s.doc_id for s in self.statements))


def speaker_plan(gen: Snapshot, question: str, doc_ids: list[str] | None = None, since: str | None = None,
                 until: str | None = None) -> SpeakerPlan | None:
    """The plan for a "What did X say (about Y)?" question whose X is a speaker of the archive, else None."""
    m = SAID_QUESTION.match(question)
    if not m:
        return None
    who = re.sub(r"(?:’s|'s)$", "", m.group("who").strip(" ,"))
    names = matching_speakers(who, [name for name, _n, _a in gen.speaker_rows(None, None, None)])
    if not names:
        return None
    found = [statement_from_row(r) for r in gen.statement_rows(names, doc_ids, since, until)]
    return SpeakerPlan(tuple(names), tuple(found), m.group("topic")) if found else None


def who_answer(gen: Snapshot, question: str, judged: Sequence[Candidate]) -> Candidate | None:
    """For "Who described the plans as dead?": the sentence the reader judged that is a statement with a
    speaker and holds most of the question's words ("plans", "dead"), if one holds enough of them."""
    m = WHO_QUESTION.match(question)
    terms = set(content_terms(m.group("rest"))) if m else set()
    if not terms:
        return None
    said = statements_of(gen, judged)
    best, share = None, 0.0
    for c in judged:
        st = speaker_of(c, said, terms)
        if st is None or (c.confidence or 0.0) < WHO_FLOOR:
            continue
        got = len(terms & set(content_terms(st.text))) / len(terms)
        if got > share:
            best, share = c, got
    return best if share >= WHO_SHARE else None


def _overlaps(c: Candidate, s: AttributedStatement) -> int:
    if c.hit.chunk.doc_id != s.doc_id:
        return 0
    return max(0, min(c.end, s.end) - max(c.start, s.start))


def speaker_first(candidates: Sequence[Candidate], plan: SpeakerPlan) -> list[Candidate]:
    """The candidates with the speaker's sentences first (each group in its own order)."""
    mine = [c for c in candidates if any(_overlaps(c, s) for s in plan.statements)]
    return mine + [c for c in candidates if c not in mine]


def by_speaker(candidates: Sequence[Candidate], plan: SpeakerPlan) -> Candidate | None:
    """The first of `candidates` that is one of the speaker's statements and on the topic asked about (it shares
    a word with the topic): a statement on something else is not what they said about it, and is not quoted as
    if it were (the reader alone decides then, as for any question)."""
    topic = set(content_terms(plan.topic)) if plan.topic else set()
    for c in candidates:
        if any(_overlaps(c, s) for s in plan.statements) and (not topic or topic & set(content_terms(c.quote))):
            return c
    return None


def statements_of(gen: Snapshot, candidates: Sequence[Candidate]) -> list[AttributedStatement]:
    """The statements of the candidates' articles (one query)."""
    ids = list(dict.fromkeys(c.hit.chunk.doc_id for c in candidates))
    return gen.statements(None, ids, None, None) if ids else []


def speaker_of(c: Candidate, said: Sequence[AttributedStatement], terms: set[str] | None = None
               ) -> AttributedStatement | None:
    """The statement with a speaker inside the candidate sentence that the answer is about: the one holding the
    reader's answer span, then most of `terms` (the question's words), then overlapping the sentence most."""
    best, key = None, (0, 0, 0)
    for s in said:
        overlap = _overlaps(c, s)
        if not s.speaker or overlap <= 0:
            continue
        holds = int(c.span is not None and s.start <= c.span[0] and c.span[1] <= s.end)
        k = (holds, len(terms & set(content_terms(s.text))) if terms else 0, overlap)
        if k > key:
            best, key = s, k
    return best


def statements_answer(selected: Sequence[AttributedStatement], title: str = "Selected statements") -> Answer:
    """Statements as an `Answer` whose citations are the statements (exact spans, numbered in order): what the
    exporters take."""
    citations, lines = [], []
    for n, s in enumerate(selected, 1):
        citations.append(Citation(n, s.doc_id, f"{s.doc_id}#statement-{s.n}", s.title, s.source, s.start, s.end,
                                  s.text, s.metadata))
        lines.append(f"{s.speaker or 'Unattributed'} ({s.kind.replace('_', ' ')}): “{s.text}” [{n}]")
    return Answer(question=title, text="\n".join(lines), abstained=not citations, citations=tuple(citations),
                  passages=(), mode="statements")
