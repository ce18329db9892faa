"""Who said what in a generation: the rows both stores keep for attributed statements, the speakers merged across
the archive at the end of a build, and the speaker filter of queries.

Each store keeps two tables in the generation:
- `statements` (doc_row, n, speaker, kind, start, stop, text, cue, mention): the statements of each article as
  `rag.ingest.attribution` found them, `speaker` being the full name that article gives (NULL when none);
- `speakers` (name, canonical, key): each speaker name to the name it is merged under across the archive,
  written when the build finishes (`canonical_speakers`), so a query needs no merging.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any, Iterable, Sequence

from ..ingest.attribution import Statement, extract_statements
from ..ingest.formats import Article
from ..ingest.speakers import merge_speakers, speaker_key
from ..records import AttributedStatement

# What a store's statement query returns, in this order (see `statement_from_row`).
STATEMENT_COLUMNS = ("doc_id", "title", "source", "metadata", "n", "name", "speaker", "kind", "start", "stop",
                     "text", "cue")


def statement_columns(doc_row: int, statements: Sequence[Statement]) -> list[tuple[Any, ...]]:
    """The `statements` rows of one document."""
    return [(doc_row, n, s.speaker, s.kind, s.start, s.end, s.text, s.cue, s.mention)
            for n, s in enumerate(statements)]


def timed_statements(article: Article, sentences: Iterable[tuple[int, int]], timer: list[float]
                     ) -> tuple[Statement, ...]:
    """Who said what in one article, its sentence spans passed in; the time taken is added to `timer[0]`."""
    t0 = time.perf_counter()
    found = extract_statements(article.source_text, article.document.spans, list(sentences))
    timer[0] += time.perf_counter() - t0
    return found


def statement_of(row: Sequence[Any]) -> Statement:
    """A Statement back from (speaker, kind, start, stop, text, cue, mention)."""
    speaker, kind, start, stop, text, cue, mention = row
    return Statement(speaker, kind, start, stop, text, cue, mention)


def shifted(statements: Iterable[Statement], shift: int) -> tuple[Statement, ...]:
    """Statements moved by `shift` characters (an unchanged article that sits elsewhere in its file now)."""
    return tuple(Statement(s.speaker, s.kind, s.start + shift, s.end + shift, s.text, s.cue, s.mention)
                 for s in statements)


def canonical_speakers(counts: Iterable[tuple[str, int]]) -> list[tuple[str, str, str]]:
    """(name, canonical, key) for every speaker name, from each name's number of statements in the generation."""
    counted = Counter({name: n for name, n in counts if name})
    merged = merge_speakers(counted.elements())
    return [(name, merged[name], speaker_key(merged[name])) for name in sorted(counted)]


def statement_from_row(row: Sequence[Any]) -> AttributedStatement:
    doc_id, title, source, metadata, n, name, speaker, kind, start, stop, text, cue = row
    return AttributedStatement(speaker if speaker is not None else name, name, kind, text, doc_id, title, source,
                               start, stop, n, cue, json.loads(metadata))


def matching_speakers(query: str, names: Iterable[str]) -> list[str]:
    """The merged speaker names a user's `query` means: the same name (titles, case and a leading "the"
    aside), else those ending with its words ("Lavrov" -> "Sergey Lavrov"), else those containing them."""
    key = speaker_key(query)
    if not key:
        return []
    keyed = {name: speaker_key(name) for name in names}
    same = [n for n, k in keyed.items() if k == key]
    if same:
        return same
    words = key.split()
    ending = [n for n, k in keyed.items() if k.split()[-len(words):] == words]
    if ending:
        return ending
    return [n for n, k in keyed.items() if f" {key} " in f" {k} "]


# --- the queries both stores run, in their dialect: `stop` is the end column's name, the tables `{docs}`, `{statements}`, `{speakers}` for the store to fill in.

def _where(filtered: tuple[str, list[Any]]) -> tuple[str, list[Any]]:
    where, args = filtered
    return (f" WHERE {where}" if where else " WHERE TRUE"), list(args)


def statements_sql(filtered: tuple[str, list[Any]], speakers: list[str] | None, names: tuple[str, list[Any]],
                   stop: str) -> tuple[str, list[Any]]:
    """The statement query (`STATEMENT_COLUMNS`) and its arguments: `filtered` is `document_filter`'s condition on
    the documents, `names` the dialect's test of the merged name against `speakers` with its arguments."""
    where, args = _where(filtered)
    if speakers is not None:
        where += f" AND sp.canonical {names[0]}"
        args += names[1]
    return ("SELECT d.doc_id, d.title, d.source, d.metadata, s.n, s.speaker, sp.canonical, s.kind, s.start, "
            f"s.{stop}, s.text, s.cue FROM {{statements}} s JOIN {{docs}} d ON d.row = s.doc_row "
            f"LEFT JOIN {{speakers}} sp ON sp.name = s.speaker{where} "
            "ORDER BY d.date IS NULL, d.date, d.row, s.n"), args


def speakers_sql(filtered: tuple[str, list[Any]]) -> tuple[str, list[Any]]:
    where, args = _where(filtered)
    return ("SELECT sp.canonical, count(*), count(DISTINCT s.doc_row) FROM {statements} s "
            "JOIN {speakers} sp ON sp.name = s.speaker JOIN {docs} d ON d.row = s.doc_row"
            f"{where} GROUP BY sp.canonical"), args


def document_statements_sql(mark_rows: str, stop: str) -> str:
    return (f"SELECT doc_row, speaker, kind, start, {stop}, text, cue, mention FROM {{statements}} "
            f"WHERE doc_row {mark_rows} ORDER BY doc_row, n")


def by_document(rows: Iterable[Sequence[Any]]) -> dict[int, list[Statement]]:
    out: dict[int, list[Statement]] = {}
    for r in rows:
        out.setdefault(r[0], []).append(statement_of(r[1:]))
    return out


SPEAKER_COUNTS_SQL = "SELECT speaker, count(*) FROM {statements} WHERE speaker IS NOT NULL GROUP BY speaker"
