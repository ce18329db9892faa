"""Small typed records passed between the stages of the pipeline."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

# Metadata keys an article may carry; anything unknown stays out of citations.
METADATA_KEYS = ("publisher", "url", "date", "author", "language", "category")


@dataclass(frozen=True)
class Document:
    """One article. `start`/`end` delimit it in its source text; `spans` are the parts that get indexed
    (related-link blocks and similar are left out), all as offsets into the same source text."""

    doc_id: str
    title: str
    source: str
    start: int
    end: int
    spans: tuple[tuple[int, int], ...]
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def chars(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Chunk:
    """A token-limited passage of one article; `text == source_text[start:end]`."""

    chunk_id: str
    doc_id: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Hit:
    """A retrieved passage with its article's identity and its scores."""

    rank: int
    chunk: Chunk
    title: str
    source: str
    score: float
    dense: float | None = None
    lexical: float | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "doc_id": self.chunk.doc_id,
            "chunk_id": self.chunk.chunk_id,
            "title": self.title,
            "source": self.source,
            "start": self.chunk.start,
            "end": self.chunk.end,
            "text": self.chunk.text,
            "score": round(self.score, 6),
            "dense": None if self.dense is None else round(self.dense, 6),
            "lexical": None if self.lexical is None else round(self.lexical, 6),
            **{k: v for k, v in self.metadata.items() if k in METADATA_KEYS},
        }


@dataclass(frozen=True)
class Citation:
    """A verbatim span of a source: `source_text[start:end] == quote`."""

    n: int
    doc_id: str
    chunk_id: str
    title: str
    source: str
    start: int
    end: int
    quote: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    answer_span: tuple[int, int] | None = None  # the answer inside the quote, as offsets in the source text
    confidence: float | None = None  # the reader's calibrated probability that the quote answers the question

    @property
    def answer_text(self) -> str | None:
        if self.answer_span is None:
            return None
        s, e = self.answer_span
        return self.quote[s - self.start:e - self.start]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        metadata = data.pop("metadata")
        data.update({k: v for k, v in metadata.items() if k in METADATA_KEYS})
        span = data.pop("answer_span")
        data["answer_span"] = None if span is None else {"start": span[0], "end": span[1],
                                                         "text": self.answer_text}
        if self.confidence is not None:
            data["confidence"] = round(self.confidence, 4)
        return data


@dataclass(frozen=True)
class Answer:
    """An answer with its citations and the passages it was drawn from."""

    question: str
    text: str
    abstained: bool
    citations: tuple[Citation, ...]
    passages: tuple[Hit, ...]
    timings: Mapping[str, float] = field(default_factory=dict)
    mode: str = "extractive"
    notices: tuple[str, ...] = ()
    id: str | None = None
    evidence: float | None = None  # score of the best supporting sentence; compared with the abstain threshold
    confidence: float | None = None  # the reader's calibrated probability for the best sentence (reader on)
    readings: Mapping[str, float] = field(default_factory=dict)  # chunk_id -> best confidence of its sentences
    # With the reader, when it abstains: the sentences it judged closest to answering, as exact spans for the
    # user to check. Not citations: none was trusted enough to quote as the answer.
    closest: tuple[Citation, ...] = ()
    # With the reader, when it abstains but its best sentence comes close: the text leads with `closest[0]` as a
    # possible answer, marked as such, for the user to check. Still abstained: nothing is asserted or cited.
    possible: bool = False
    # In a conversation: the standalone question this turn was answered as (equal to `question` when it
    # stands alone); None when asked with no conversation.
    standalone: str | None = None

    @property
    def shown(self) -> tuple[Citation, ...]:
        """The spans the user was shown as the answer, which a follow-up can point back to: the citations, or
        for a possible answer the sentence it leads with (not a citation: never exported as a reference); none
        for an abstention that shows only a list."""
        if self.possible:
            return self.closest[:1]
        return () if self.abstained else self.citations

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.id is not None:
            data["id"] = self.id
        data.update(
            question=self.question,
            **({} if self.standalone is None else {"standalone": self.standalone}),
            answer=self.text,
            abstained=self.abstained,
            possible_answer=self.possible,
            evidence=None if self.evidence is None else round(self.evidence, 4),
            confidence=None if self.confidence is None else round(self.confidence, 4),
            mode=self.mode,
            notices=list(self.notices),
            citations=[c.to_dict() for c in self.citations],
            closest=[c.to_dict() for c in self.closest],
            passages=[h.to_dict() | ({"confidence": round(self.readings[h.chunk.chunk_id], 4)}
                                     if h.chunk.chunk_id in self.readings else {}) for h in self.passages],
            timings={k: round(v, 3) for k, v in self.timings.items()},
        )
        return data


@dataclass(frozen=True)
class AttributedStatement:
    """A statement an article attributes to someone (who said what): `source_text[start:end] == text`.
    `speaker` is the speaker's name merged across the archive ("Sergey Lavrov" for "Lavrov" and "Russian Foreign
    Minister Sergey Lavrov"), `name` the full name this article gives; both None when the article names no
    one ("critics say"). `kind`: "direct" (quoted words), "indirect" ("X said that ...") or "according_to"."""

    speaker: str | None
    name: str | None
    kind: str
    text: str
    doc_id: str
    title: str
    source: str
    start: int
    end: int
    n: int = 0  # its place among the article's statements
    cue: str = ""  # the reporting verb or phrase
    metadata: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"speaker": self.speaker, "kind": self.kind, "statement": self.text, "doc_id": self.doc_id,
                "source": self.source, "start": self.start, "end": self.end, "title": self.title,
                "name": self.name, "cue": self.cue,
                **{k: v for k, v in self.metadata.items() if k in METADATA_KEYS}}


@dataclass(frozen=True)
class Speaker:
    """A speaker of the archive: the merged name, how many statements and in how many articles."""

    name: str
    statements: int
    articles: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
