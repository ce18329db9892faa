"""Who said what in the folder store: the `statements` and `speakers` tables of `chunks.sqlite`
(`rag.index.statements` describes them)."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import Any

from ..ingest.attribution import Statement
from .manifest import Manifest
from .store import StoredDocument, document_filter
from .statements import (SPEAKER_COUNTS_SQL, by_document, canonical_speakers, document_statements_sql,
                         speakers_sql, statement_columns, statements_sql)

SCHEMA = """
CREATE TABLE statements (doc_row INTEGER NOT NULL, n INTEGER NOT NULL, speaker TEXT, kind TEXT NOT NULL,
  start INTEGER NOT NULL, end INTEGER NOT NULL, text TEXT NOT NULL, cue TEXT NOT NULL, mention TEXT NOT NULL,
  PRIMARY KEY (doc_row, n));
CREATE TABLE speakers (name TEXT PRIMARY KEY, canonical TEXT NOT NULL, key TEXT NOT NULL);
"""
INDEXES = """
CREATE INDEX statements_speaker ON statements(speaker);
CREATE INDEX speakers_canonical ON speakers(canonical);
"""
_TABLES = {"docs": "docs", "statements": "statements", "speakers": "speakers"}


def _marks(values: list[Any]) -> str:
    return f"IN ({','.join('?' * len(values))})"


def write(db: sqlite3.Connection, item: StoredDocument) -> None:
    db.executemany("INSERT INTO statements VALUES (?,?,?,?,?,?,?,?,?)",
                   statement_columns(item.doc.row, item.statements))


def finish(db: sqlite3.Connection, manifest: Manifest) -> Manifest:
    """Speakers merged across the archive; the manifest with their number."""
    merged = canonical_speakers(db.execute(SPEAKER_COUNTS_SQL.format(**_TABLES)))
    db.executemany("INSERT INTO speakers VALUES (?,?,?)", merged)
    db.executescript(INDEXES)
    return replace(manifest, counts=replace(manifest.counts, speakers=len({c for _n, c, _k in merged})))


def _stored(manifest: Manifest) -> bool:
    return bool(manifest.attribution)  # a generation from before statements were stored has no tables


def document_statements(db: sqlite3.Connection, manifest: Manifest, doc_rows: list[int]
                        ) -> dict[int, list[Statement]]:
    if not doc_rows or not _stored(manifest):
        return {}
    return by_document(db.execute(document_statements_sql(_marks(doc_rows), "end").format(**_TABLES), doc_rows))


def statement_rows(db: sqlite3.Connection, manifest: Manifest, speakers: list[str] | None,
                   doc_ids: list[str] | None, since: str | None, until: str | None) -> list[tuple]:
    if not _stored(manifest):
        return []
    ids, names = list(doc_ids or []), list(speakers or [])
    filtered = document_filter(doc_ids, since, until, "?", f"doc_id {_marks(ids)}", ids)
    query, args = statements_sql(filtered, speakers, (_marks(names), names), "end")
    return db.execute(query.format(**_TABLES), args).fetchall()


def speaker_rows(db: sqlite3.Connection, manifest: Manifest, doc_ids: list[str] | None, since: str | None,
                 until: str | None) -> list[tuple[str, int, int]]:
    if not _stored(manifest):
        return []
    ids = list(doc_ids or [])
    query, args = speakers_sql(document_filter(doc_ids, since, until, "?", f"doc_id {_marks(ids)}", ids))
    return db.execute(query.format(**_TABLES), args).fetchall()
