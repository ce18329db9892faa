"""References: one per distinct quoted span of the answers, with a unique key, and their CSL-JSON items (what
the reference exports write and the citation styles render)."""

from __future__ import annotations

import datetime
import hashlib
import re
from dataclasses import dataclass
from typing import Any, Sequence

from ..common.dates import iso_date_parts
from ..common.text import slug
from ..records import Answer, Citation


def _authors(raw: str) -> list[tuple[str, str]]:
    """(family, given) per author; `given` is "" for a one-word name such as an agency."""
    names = []
    for part in re.split(r"\s*;\s*|\s+and\s+", raw.strip()):
        part = " ".join(part.split())
        if "," in part:
            family, given = (s.strip() for s in part.split(",", 1))
        else:
            *first, family = part.split() or [""]
            given = " ".join(first)
        if family:
            names.append((family, given))
    return names


@dataclass(frozen=True)
class _Ref:
    key: str
    citation: Citation
    questions: tuple[str, ...]

    def field(self, name: str) -> str:
        return str(self.citation.metadata.get(name) or "").strip()

    @property
    def web_only(self) -> bool:
        """A page known only by its URL, with no publisher: a web page rather than a news article."""
        return bool(self.field("url")) and not self.field("publisher")

    @property
    def date(self) -> list[int] | None:
        return iso_date_parts(self.field("date"))

    def note(self) -> str:
        c = self.citation
        parts = [f"Quote: “{c.quote}”", f"Source: {c.source}, characters {c.start}–{c.end}",
                 f"doc_id: {c.doc_id}", f"chunk_id: {c.chunk_id}"]
        parts += [f"Question: {q}" for q in self.questions]
        if self.field("date") and self.date is None:
            parts.append(f"Date: {self.field('date')}")
        return " | ".join(parts)


def _slug(doc_id: str) -> str:
    return slug(doc_id, 60, keep="_") or "doc-" + hashlib.sha1(doc_id.encode()).hexdigest()[:8]


def _references(answers: Sequence[Answer]) -> list[_Ref]:
    """One reference per distinct quoted span of the non-abstained answers, with unique keys."""
    spans: dict[tuple[str, int, int], tuple[Citation, list[str]]] = {}
    for answer in answers:
        if answer.abstained:
            continue
        for c in answer.citations:
            _, questions = spans.setdefault((c.doc_id, c.start, c.end), (c, []))
            if answer.question not in questions:
                questions.append(answer.question)
    slugs: dict[str, str] = {}
    for doc_id in sorted({doc for doc, _, _ in spans}):  # sorted: collisions resolve the same way
        base = candidate = _slug(doc_id)
        n = 2
        while candidate in slugs.values():
            candidate, n = f"{base}-{n}", n + 1
        slugs[doc_id] = candidate
    counts: dict[str, int] = {}
    refs = []
    for (doc_id, _, _), (c, questions) in spans.items():
        counts[doc_id] = counts.get(doc_id, 0) + 1
        refs.append(_Ref(f"{slugs[doc_id]}-q{counts[doc_id]}", c, tuple(questions)))
    return refs



def csl_items(refs: list[_Ref], accessed: datetime.date) -> list[dict[str, Any]]:
    """CSL-JSON items, one per reference (`styles` renders them in a citation style)."""
    items = []
    for ref in refs:
        url, publisher = ref.field("url"), ref.field("publisher")
        item: dict[str, Any] = {"id": ref.key,
                                "type": "webpage" if ref.web_only else "article-newspaper"}
        if ref.citation.title.strip():
            item["title"] = ref.citation.title
        if authors := _authors(ref.field("author")):
            item["author"] = [{"family": f, "given": g} if g else {"literal": f} for f, g in authors]
        if publisher:
            item["container-title"] = item["publisher"] = publisher
        if date := ref.date:
            item["issued"] = {"date-parts": [date]}
        if url:
            item["URL"] = url
            item["accessed"] = {"date-parts": [[accessed.year, accessed.month, accessed.day]]}
        if language := ref.field("language"):
            item["language"] = language
        item["note"] = ref.note()
        items.append(item)
    return items
