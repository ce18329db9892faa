"""Integrity of a PostgreSQL generation, the way the folder store has it with its file checksums.

Every stored row has a digest: the first 16 bytes of the sha256 of its columns (joined by U+001F) followed by
its binary columns (a vector in pgvector's binary form, BM25 postings). The writer computes them in Python as
it writes; the same digest is computed by the server from the stored columns with the SQL expressions below.
- chunks, sentences and statements keep their row's digest in a `digest` column: serving recomputes it for each chunk it
  returns (a few rows a question) and refuses one whose text, offsets or vector changed; a build re-embeds an
  article any of whose rows no longer match instead of carrying it forward.
- the manifest keeps, per table (docs, chunks, sentences, terms; statements and speakers: who said what), the
  sha256 of the sorted row digests and the row count: `rag index verify` recomputes every row's digest from
  what is stored and compares, so a change made outside the store to any text, vector, sentence, document, BM25
  row or attributed statement is found, as is a deleted row.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any, Iterable

import numpy as np

SEP = "\x1f"
TABLES = ("docs", "chunks", "sentences", "terms", "statements", "speakers")


def _digest(fields: Iterable[Any], blob: bytes = b"") -> bytes:
    text = SEP.join("" if f is None else str(f) for f in fields)
    return hashlib.sha256(text.encode("utf-8") + blob).digest()[:16]


def vector_bytes(vector: np.ndarray) -> bytes:
    """pgvector's binary form of a vector (what vector_send returns)."""
    values = np.asarray(vector, dtype=">f4").ravel()
    return struct.pack(">HH", len(values), 0) + values.tobytes()


def doc_digest(columns: tuple) -> bytes:
    return _digest(columns)


def chunk_digest(row: int, chunk_id: str, doc_row: int, start: int, stop: int, text: str,
                 vector: np.ndarray) -> bytes:
    return _digest((row, chunk_id, doc_row, start, stop, text), vector_bytes(vector))


def sentence_digest(row: int, doc_row: int, start: int, stop: int, vector: np.ndarray) -> bytes:
    return _digest((row, doc_row, start, stop), vector_bytes(vector))


def term_digest(term: str, df: int, rows: bytes, scores: bytes) -> bytes:
    return _digest((term, df), rows + scores)


def statement_digest(doc_row: int, n: int, speaker: str | None, kind: str, start: int, stop: int, text: str,
                     cue: str, mention: str) -> bytes:
    return _digest((doc_row, n, speaker, kind, start, stop, text, cue, mention))


def speaker_digest(name: str, canonical: str, key: str) -> bytes:
    return _digest((name, canonical, key))


def aggregate(digests: list[bytes]) -> dict[str, Any]:
    """What the manifest keeps of one table: its row count and the sha256 of its sorted row digests."""
    return {"rows": len(digests), "sha256": hashlib.sha256(b"".join(sorted(digests))).hexdigest()}


def _concat(*cols: str) -> str:
    return f"convert_to(concat_ws(chr(31), {', '.join(cols)}), 'UTF8')"


# The same digests, computed by the server from the stored columns (`c.`, `s.` ... are the tables' aliases).
_DOC_COLUMNS = ("row", "doc_id", "title", "source", "start", "stop", "spans", "metadata", "coalesce(date, '')",
                "hash", "chunk_lo", "chunk_hi", "sent_lo", "sent_hi")
ROW_SQL = {
    "docs": f"substr(sha256({_concat(*_DOC_COLUMNS)}), 1, 16)",
    "chunks": f"substr(sha256({_concat('row', 'chunk_id', 'doc_row', 'start', 'stop', 'text')} "
              "|| vector_send(embedding)), 1, 16)",
    "sentences": f"substr(sha256({_concat('row', 'doc_row', 'start', 'stop')} || vector_send(embedding)), 1, 16)",
    "terms": f"substr(sha256({_concat('term', 'df')} || rows || scores), 1, 16)",
    "statements": "substr(sha256(" + _concat("doc_row", "n", "coalesce(speaker, '')", "kind", "start", "stop", "text",
                                             "cue", "mention") + "), 1, 16)",
    "speakers": f"substr(sha256({_concat('name', 'canonical', 'key')}), 1, 16)",
}


def check_sql(table: str) -> str:
    """(rows, sha256 of the sorted recomputed digests, rows whose stored digest differs) of one table."""
    stored = "digest" if table in ("chunks", "sentences", "statements") else "NULL::bytea"
    return (f"SELECT count(*), encode(sha256(coalesce(string_agg(d, ''::bytea ORDER BY d), ''::bytea)), 'hex'), "
            f"count(*) FILTER (WHERE stored IS NOT NULL AND stored <> d) "
            f"FROM (SELECT {ROW_SQL[table]} AS d, {stored} AS stored FROM {{{table}}}) AS t")


# Documents of a list (by id) any of whose chunk, sentence or statement rows no longer match their digest, or
# that lost or gained chunks or sentences: a build reads them again rather than carry them.
DAMAGED_SQL = (
    "SELECT d.doc_id FROM {docs} d WHERE d.doc_id = ANY(%s) AND ("
    " (SELECT count(*) FILTER (WHERE c.digest = " + ROW_SQL["chunks"] + ")"
    "  FROM {chunks} c WHERE c.row >= d.chunk_lo AND c.row < d.chunk_hi) <> d.chunk_hi - d.chunk_lo"
    " OR (SELECT count(*) FILTER (WHERE s.digest = " + ROW_SQL["sentences"] + ")"
    "  FROM {sentences} s WHERE s.row >= d.sent_lo AND s.row < d.sent_hi) <> d.sent_hi - d.sent_lo"
    " OR (SELECT count(*) FROM {sentences} s WHERE s.doc_row = d.row) <> d.sent_hi - d.sent_lo"
    " OR EXISTS (SELECT 1 FROM {statements} st WHERE st.doc_row = d.row AND st.digest <> "
    + ROW_SQL["statements"] + "))")
