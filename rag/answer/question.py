"""What a question asks for: the kind of answer, and its parts when it asks two things at once."""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+")
_NUMBER_WORDS = ("one two three four five six seven eight nine ten eleven twelve dozen dozens twenty thirty forty "
                 "fifty hundred hundreds thousand thousands million millions billion billions trillion half "
                 "quarter third thirds percent").split()
NUMBER = re.compile(r"\d|\b(?:" + "|".join(_NUMBER_WORDS) + r")\b", re.I)
_MONTHS = ("january february march april may june july august september october november december "
           "monday tuesday wednesday thursday friday saturday sunday").split()
DATE = re.compile(r"\b(?:" + "|".join(_MONTHS) + r")\b|\b(?:1[5-9]|20)\d{2}\b|\b(?:yesterday|today|"
                  r"tomorrow|ago|last (?:week|month|year)|next (?:week|month|year)|earlier this \w+)\b", re.I)
CAPS = re.compile(r"[A-Z][\w’'.-]*(?:\s+(?:of|the|for|and|de|al)?\s*[A-Z][\w’'.-]*)*")
PLACE = re.compile(r"\b(?:in|at|near|from|to|outside|inside)\s+(?:the\s+)?([A-Z][\w’'-]*(?:\s+[A-Z][\w’'-]*)*)")
_NOT_NOUNS = {"is", "are", "was", "were", "do", "does", "did", "has", "have", "had", "can", "could", "will",
              "would", "should", "the", "a", "an", "of", "kind", "sort", "type"}
_WH = r"(?:(?:on|in|at|to|for|by|from|with|since|until|after|before)\s+)?(?:what|which|who|whom|whose|where|when|why|how)"
# ", and where would it be deployed?" / "; what share ...": a second question joined to the first
_SECOND = re.compile(rf"(?:,\s*|;\s*|\s+)(?:and|but|as well as)\s+(?={_WH}\b)|;\s*(?={_WH}\b)", re.I)
_RESPECTIVELY = re.compile(r",?\s*respectively,?\s*", re.I)


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
        return 1.0 if any(new(m.group()) for m in NUMBER.finditer(sentence)) else 0.0
    if kind == "date":
        return 1.0 if any(new(m.group()) for m in DATE.finditer(sentence)) else 0.0
    if kind == "place":
        return 1.0 if any(new(m.group(1)) for m in PLACE.finditer(sentence)) else 0.0
    names = [m.group() for m in CAPS.finditer(sentence) if m.start() > 0 or " " in m.group()]
    names = [n for n in names if new(n)]
    if head and any(head.rstrip("s") in n.lower() for n in names):
        return 1.0
    return 0.5 if head and names else 1.0 if names else 0.0


def parts(question: str) -> list[str]:
    """The questions a question asks: itself, or its two (or more) parts when it joins separate questions
    ("How many ..., and where ...?") or asks about two things "respectively"."""
    text = question.strip()
    found = [p.strip(" ,;?") for p in _SECOND.split(text)]
    found = [p for p in found if len(_WORD.findall(p)) >= 2]
    if len(found) > 1:
        return [p[0].upper() + p[1:] + "?" for p in found]
    match = _RESPECTIVELY.search(text)
    if match:
        head, tail = text[:match.start()].strip(), text[match.end():].strip(" ?")
        pieces = re.split(r",?\s+and\s+", tail)
        if len(pieces) == 2 and all(len(_WORD.findall(p)) >= 2 for p in pieces):
            return [f"{head} {p}?" for p in pieces]
    return [text]


_BACK_REFERENCE = re.compile(r"\b(?:it|its|they|them|their|those|these|he|she|his|her|him)\b", re.I)


def reading_questions(question_parts: list[str]) -> list[str]:
    """The question each part is read as: a later part that refers back with a pronoun ("where would it be
    deployed?") is read together with the first part, which names what it refers to."""
    first = question_parts[0]
    return [part if i == 0 or not _BACK_REFERENCE.search(part) else f"{part} {first}"
            for i, part in enumerate(question_parts)]
