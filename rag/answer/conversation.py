"""A conversation: typed turns (what was typed, the standalone question it was resolved to, the cited answer),
saved to and reopened from JSON, and the resolution of a follow-up into a standalone question.

The rules that resolve a follow-up, `resolve` and `added_words_ok`, live in `rag.answer.resolution`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from ..common.controls import json_safe
from ..errors import RagError
from ..records import Answer, Chunk, Citation, Hit, METADATA_KEYS

FORMAT = "rag-conversation"
FORMAT_VERSION = 1


class ConversationError(RagError):
    """A saved conversation cannot be read."""


@dataclass(frozen=True)
class Turn:
    """One exchange: the question as typed, the standalone question it was answered as, and the answer."""

    question: str
    standalone: str
    answer: Answer

    @property
    def depends(self) -> bool:
        return self.standalone != self.question

    def to_dict(self) -> dict[str, Any]:
        return {"question": self.question, "standalone": self.standalone, "answer": self.answer.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Turn":
        question = data["question"]
        return cls(question=question, standalone=data.get("standalone") or question,
                   answer=answer_from_dict(data["answer"]))


@dataclass(frozen=True)
class Conversation:
    """The turns so far, oldest first. Immutable: `add` returns a new conversation."""

    turns: tuple[Turn, ...] = ()

    def add(self, turn: Turn) -> "Conversation":
        return Conversation(self.turns + (turn,))

    def then(self, answer: Answer) -> "Conversation":
        """The conversation with `answer` (from `ask(..., conversation=self)`) as its next turn."""
        return self.add(Turn(answer.question, answer.standalone or answer.question, answer))

    @property
    def last(self) -> Turn | None:
        return self.turns[-1] if self.turns else None

    @property
    def answers(self) -> list[Answer]:
        """The answers in order: what `rag.export_answers` takes to export the whole conversation."""
        return [t.answer for t in self.turns]

    def __len__(self) -> int:
        return len(self.turns)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": FORMAT_VERSION, "turns": [t.to_dict() for t in self.turns]}

    def to_json(self) -> str:
        """The conversation as JSON text (answers with their citations and passages), for `from_json`."""
        return json_safe(json.dumps(self.to_dict(), indent=2, ensure_ascii=False)) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> "Conversation":
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("turns"), list):
            raise ConversationError("This is not a saved conversation (no \"format\": \"rag-conversation\" with a "
                                    "list of turns). Open a file saved by rag chat or the app.")
        if data.get("version") != FORMAT_VERSION:
            raise ConversationError(f"Saved conversation version {data.get('version')!r} is not supported "
                                    f"(this version reads {FORMAT_VERSION}). Save it again with this version.")
        try:
            return cls(tuple(Turn.from_dict(t) for t in data["turns"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConversationError(f"A turn of the saved conversation is incomplete or malformed ({exc!r}). "
                                    "Open a file saved by rag chat or the app.") from None

    @classmethod
    def from_json(cls, text: str) -> "Conversation":
        """The conversation saved by `to_json`; ConversationError when the text is not one."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ConversationError(f"The saved conversation is not valid JSON ({exc}). "
                                    "Open a file saved by rag chat or the app.") from None
        return cls.from_dict(data)


@dataclass(frozen=True)
class Resolution:
    """What a typed question was resolved to. `depends`: it refers to earlier turns (`kind` says how);
    `standalone`: the question to answer (the typed one when it stands alone); `unresolved`: a short request to
    name who or what is meant, when a reference has nothing in the conversation to point at; `boost_doc_ids`:
    the articles the last answer cited, for retrieval to favour (a boost, never a filter)."""

    question: str
    standalone: str
    depends: bool = False
    kind: str | None = None
    unresolved: str | None = None
    boost_doc_ids: tuple[str, ...] = ()


def _metadata(data: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(data[k]) for k in METADATA_KEYS if data.get(k) is not None}


def citation_from_dict(data: Mapping[str, Any]) -> Citation:
    """The citation written by `Citation.to_dict`."""
    span = data.get("answer_span")
    return Citation(n=int(data["n"]), doc_id=data["doc_id"], chunk_id=data["chunk_id"], title=data["title"],
                    source=data["source"], start=int(data["start"]), end=int(data["end"]), quote=data["quote"],
                    metadata=_metadata(data),
                    answer_span=None if span is None else (int(span["start"]), int(span["end"])),
                    confidence=data.get("confidence"))


def hit_from_dict(data: Mapping[str, Any]) -> Hit:
    """The passage written by `Hit.to_dict`."""
    chunk = Chunk(chunk_id=data["chunk_id"], doc_id=data["doc_id"], start=int(data["start"]),
                  end=int(data["end"]), text=data["text"])
    return Hit(rank=int(data["rank"]), chunk=chunk, title=data["title"], source=data["source"],
               score=float(data["score"]), dense=data.get("dense"), lexical=data.get("lexical"),
               metadata=_metadata(data))


def answer_from_dict(data: Mapping[str, Any]) -> Answer:
    """The answer written by `Answer.to_dict` (the JSON export of one answer); scores come back as rounded there."""
    passages = data.get("passages") or []
    return Answer(question=data["question"], text=data["answer"], abstained=bool(data["abstained"]),
                  citations=tuple(citation_from_dict(c) for c in data.get("citations") or []),
                  passages=tuple(hit_from_dict(h) for h in passages),
                  timings=dict(data.get("timings") or {}), mode=data.get("mode", "extractive"),
                  notices=tuple(data.get("notices") or ()), id=data.get("id"), evidence=data.get("evidence"),
                  confidence=data.get("confidence"),
                  readings={h["chunk_id"]: h["confidence"] for h in passages if h.get("confidence") is not None},
                  closest=tuple(citation_from_dict(c) for c in data.get("closest") or []),
                  possible=bool(data.get("possible_answer", False)), standalone=data.get("standalone"))
