"""Who said what in the PostgreSQL store: the `statements` and `speakers` tables of each generation schema
(`rag.index.statements` describes them). No SQL is built from user input: values are bound parameters, the
identifiers are the store's own, quoted by psycopg."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import psycopg
from psycopg import sql

from ..ingest.attribution import Statement
from .manifest import Manifest
from .postgres_integrity import speaker_digest, statement_digest
from .statements import (SPEAKER_COUNTS_SQL, by_document, canonical_speakers, document_statements_sql, speakers_sql,
                         statement_columns, statements_sql)
from .store import Batch, document_filter

# `snapshot` below is a `rag.index.postgres.PostgresSnapshot` (not imported: that module imports this one).

_TABLES = """
CREATE TABLE {statements} (doc_row integer NOT NULL, n integer NOT NULL, speaker text, kind text NOT NULL,
  start integer NOT NULL, stop integer NOT NULL, text text NOT NULL, cue text NOT NULL, mention text NOT NULL,
  digest bytea NOT NULL);
CREATE TABLE {speakers} (name text NOT NULL, canonical text NOT NULL, key text NOT NULL);
"""
_INDEXES = """
ALTER TABLE {statements} ADD PRIMARY KEY (doc_row, n);
CREATE INDEX ON {statements} (speaker);
ALTER TABLE {speakers} ADD PRIMARY KEY (name);
CREATE INDEX ON {speakers} (canonical);
ANALYZE {statements};
ANALYZE {speakers};
"""


def _names(schema: str) -> dict[str, sql.Identifier]:
    return {t: sql.Identifier(schema, t) for t in ("docs", "statements", "speakers")}


def _q(schema: str, query: str) -> sql.Composed:
    return sql.SQL(query).format(**_names(schema))  # type: ignore[arg-type]


def create_tables(conn: psycopg.Connection, schema: str) -> None:
    conn.execute(_q(schema, _TABLES))


def write(cur: psycopg.Cursor, schema: str, batch: Batch, digests: list[bytes]) -> None:
    """The batch's statements; each row's digest joins `digests` (what `rag index verify` checks)."""
    with cur.copy(_q(schema, "COPY {statements} FROM STDIN")) as copy:
        for item in batch.documents:
            for row in statement_columns(item.doc.row, item.statements):
                digests.append(statement_digest(*row))
                copy.write_row((*row, digests[-1]))


def finish(conn: psycopg.Connection, schema: str, manifest: Manifest, digests: list[bytes]) -> Manifest:
    """Speakers merged across the archive (each row's digest joins `digests`), the tables' keys; the manifest
    with the number of speakers."""
    merged = canonical_speakers(conn.execute(_q(schema, SPEAKER_COUNTS_SQL)).fetchall())
    with conn.cursor() as cur, cur.copy(_q(schema, "COPY {speakers} FROM STDIN")) as copy:
        for row in merged:
            copy.write_row(row)
            digests.append(speaker_digest(*row))
    conn.execute(_q(schema, _INDEXES))
    return replace(manifest, counts=replace(manifest.counts, speakers=len({c for _n, c, _k in merged})))


def _rows(snapshot: Any, query: str, args: list[Any] | tuple = ()) -> list[tuple]:
    if not snapshot.manifest.attribution:  # a generation from before statements were stored has no tables
        return []
    with snapshot._read() as conn:
        return conn.execute(_q(snapshot.schema, query), args).fetchall()


def document_statements(snapshot: Any, doc_rows: list[int]) -> dict[int, list[Statement]]:
    if not doc_rows:
        return {}
    return by_document(_rows(snapshot, document_statements_sql("= ANY(%s)", "stop"), ([int(r) for r in doc_rows],)))


def statement_rows(snapshot: Any, speakers: list[str] | None, doc_ids: list[str] | None,
                   since: str | None, until: str | None) -> list[tuple]:
    filtered = document_filter(doc_ids, since, until, "%s", "doc_id = ANY(%s)", [list(doc_ids or [])])
    query, args = statements_sql(filtered, speakers, ("= ANY(%s)", [list(speakers or [])]), "stop")
    return _rows(snapshot, query, args)


def speaker_rows(snapshot: Any, doc_ids: list[str] | None, since: str | None, until: str | None
                 ) -> list[tuple[str, int, int]]:
    filtered = document_filter(doc_ids, since, until, "%s", "doc_id = ANY(%s)", [list(doc_ids or [])])
    query, args = speakers_sql(filtered)
    return _rows(snapshot, query, args)
