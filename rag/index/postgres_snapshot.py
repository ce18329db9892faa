"""The PostgreSQL store's reading side: one live generation's schema, read-only (documents, chunks with their
digests checked, sentences, dense and lexical top-k with filters, statements)."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import psycopg
from psycopg import sql

from ..common.secrets import mask_secrets
from ..common.text import content_terms
from ..errors import GenerationGone, IndexCorrupt, RagError
from ..ingest.attribution import Statement
from ..records import Chunk
from . import postgres_statements
from .lexical import top_k
from .manifest import REBUILD, Manifest
from .postgres_faults import connect_problem as _connect_problem
from .postgres_integrity import DAMAGED_SQL, ROW_SQL, TABLES
from .postgres_registry import live_schema_missing
from .store import DocRow, Snapshot, chunk_rows, doc_from_row, document_filter

if TYPE_CHECKING:
    from .postgres import PostgresStore

STORE_FORMAT = "1"



# ------------------------------------------------------------------------------------- reading

class PostgresSnapshot(Snapshot):
    """One generation of the PostgreSQL store, read-only."""

    def __init__(self, store: "PostgresStore", name: str, schema: str, manifest: Manifest) -> None:
        self.store, self.name, self.schema, self.manifest = store, name, schema, manifest
        self._pool = store.pool
        s = store.settings.store
        self.kind, self.nprobe, self.ef_search = manifest.store.get("type", "flat"), s.nprobe, s.ef_search
        self._t = {t: sql.Identifier(schema, t) for t in TABLES}

    @property
    def where(self) -> str:
        return f"{mask_secrets(self.store.url)} (schema {self.schema})"

    def _q(self, query: str) -> sql.Composed:
        return sql.SQL(query).format(**self._t)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
            raise self._gone() from None
        except psycopg.OperationalError as exc:
            raise _connect_problem(self.store.url, exc) from None

    def _gone(self) -> RagError:
        """A newer build removed this generation, or its schema was dropped by hand while it is still live."""
        try:
            live = self.store.live_name()
        except RagError:
            live = None
        if live == self.name:
            return live_schema_missing(self.store.where, self.name, self.schema)
        return GenerationGone(f"Generation {self.name} was removed by a newer build; reopen the index.")

    @contextmanager
    def _read(self) -> Iterator[psycopg.Connection]:
        with self._pool.connection() as conn, self._errors():
            yield conn

    def _call(self, fn: Callable[[psycopg.Connection], Any]) -> Any:
        with self._errors():
            return self._pool.run(fn)

    def _rows(self, query: str, args: tuple | list = ()) -> list[tuple]:
        return self._call(lambda conn: conn.execute(self._q(query), args, binary=True).fetchall())

    def check(self) -> None:
        """Counts and row numbering agree with the manifest; IndexCorrupt when not."""
        (docs, chunks, sents, top, dims), = self._rows(
            "SELECT (SELECT count(*) FROM {docs}), (SELECT count(*) FROM {chunks}), (SELECT count(*) FROM {sentences}),"
            " (SELECT coalesce(max(row) + 1, 0) FROM {chunks}), (SELECT vector_dims(embedding) FROM {chunks} LIMIT 1)")
        c = self.manifest.counts
        if (docs, chunks, sents, top) != (c.documents, c.chunks, c.sentences, c.chunks) or \
                chunks and dims != self.manifest.dimension:
            raise IndexCorrupt(f"Index {self.where} holds {docs} documents, {chunks} chunks and {sents} sentences "
                               f"(dimension {dims}); its manifest says {c.documents}, {c.chunks} and {c.sentences} "
                               f"(dimension {self.manifest.dimension}). {REBUILD}")

    def documents(self) -> Iterator[DocRow]:
        for r in self._rows("SELECT * FROM {docs} ORDER BY row"):
            yield doc_from_row(r)

    def document(self, doc_id: str) -> DocRow | None:
        rows = self._rows("SELECT * FROM {docs} WHERE doc_id = %s", (doc_id,))
        return doc_from_row(rows[0]) if rows else None

    def documents_named(self, doc_ids: list[str]) -> dict[str, DocRow]:
        """As Snapshot's; an article whose stored rows no longer match their digests comes back with the hash
        'damaged', so that a build embeds it again instead of carrying what was changed."""
        if not doc_ids:
            return {}
        ids = list(dict.fromkeys(doc_ids))
        found = {doc.document.doc_id: doc for doc in map(doc_from_row, self._rows(
            "SELECT * FROM {docs} WHERE doc_id = ANY(%s)", (ids,)))}
        for (doc_id,) in self._rows(DAMAGED_SQL, (ids,)):
            found[doc_id] = replace(found[doc_id], hash="damaged")
        return found

    def doc_at(self, row: int) -> DocRow:
        return doc_from_row(self._rows("SELECT * FROM {docs} WHERE row = %s", (row,))[0])

    def docs_at(self, rows: list[int]) -> dict[int, DocRow]:
        if not rows:
            return {}
        return {r[0]: doc_from_row(r) for r in self._rows("SELECT * FROM {docs} WHERE row = ANY(%s)",
                                                           ([int(r) for r in set(rows)],))}

    def sentences_in(self, spans: list[tuple[str, int, int]]) -> list[list[tuple[int, int, int]]]:
        out: list[list[tuple[int, int, int]]] = [[] for _ in spans]
        if not spans:
            return out
        for i, row, start, stop in self._rows(
                "SELECT q.i, s.row, s.start, s.stop FROM unnest(%s::text[], %s::int[], %s::bigint[]) "
                "WITH ORDINALITY AS q(doc_id, lo, hi, i) JOIN {docs} d ON d.doc_id = q.doc_id "
                "JOIN {sentences} s ON s.doc_row = d.row AND s.start >= q.lo AND s.stop <= q.hi "
                "ORDER BY q.i, s.start",
                ([d for d, _s, _e in spans], [s for _d, s, _e in spans], [min(e, 2**62) for _d, _s, e in spans])):
            out[i - 1].append((row, start, stop))
        return out

    def chunks(self, rows: list[int]) -> dict[int, tuple[Chunk, int]]:
        if not rows:
            return {}
        out = {}
        for row, chunk_id, doc_row, start, stop, text, intact in self._rows(
                "SELECT row, chunk_id, doc_row, start, stop, text, digest = " + ROW_SQL["chunks"] + " FROM {chunks} "
                "WHERE row = ANY(%s)", ([int(r) for r in rows],)):
            if not intact:  # never cite or carry text that differs from what was built
                raise IndexCorrupt(f"Chunk {chunk_id!r} in {self.where} was changed outside rag (its text, offsets "
                                   f"or vector no longer match the digest written with it). {REBUILD}")
            out[row] = (Chunk(chunk_id, chunk_id.rsplit("#", 1)[0], start, stop, text), doc_row)
        return out

    def chunk_texts(self) -> Iterator[tuple[int, str]]:
        with self._read() as conn, conn.transaction(), conn.cursor(name="texts") as cur:
            cur.itersize = 2000
            cur.execute(self._q("SELECT row, text FROM {chunks} ORDER BY row"))
            yield from cur

    def sentences_within(self, doc_row: int, start: int, end: int) -> list[tuple[int, int, int]]:
        return [tuple(r) for r in self._rows(
            "SELECT row, start, stop FROM {sentences} WHERE doc_row = %s AND start >= %s AND stop <= %s "
            "ORDER BY start", (doc_row, start, min(end, 2**62)))]

    def _matrix(self, pairs: list[tuple[int, np.ndarray]], order: list[int]) -> np.ndarray:
        found = dict(pairs)
        dim = self.manifest.dimension
        return np.stack([found[r] for r in order]) if order else np.zeros((0, dim), dtype=np.float32)

    def chunk_vectors(self, lo: int, hi: int) -> np.ndarray:
        pairs = self._rows("SELECT row, embedding FROM {chunks} WHERE row >= %s AND row < %s", (lo, hi))
        return self._matrix(pairs, list(range(lo, hi)))

    def sentence_vectors(self, rows: np.ndarray | list[int] | slice) -> np.ndarray:
        if isinstance(rows, slice):
            lo, hi = rows.start or 0, rows.stop
            pairs = self._rows("SELECT row, embedding FROM {sentences} WHERE row >= %s AND row < %s", (lo, hi))
            return self._matrix(pairs, list(range(lo, hi)))
        order = [int(r) for r in np.asarray(rows).ravel()]
        pairs = self._rows("SELECT row, embedding FROM {sentences} WHERE row = ANY(%s)", (sorted(set(order)),))
        return self._matrix(pairs, order)

    def allowed_rows(self, doc_ids: list[str] | None, since: str | None, until: str | None) -> np.ndarray | None:
        if not doc_ids and not since and not until:
            return None
        where, args = document_filter(doc_ids, since, until, "%s", "doc_id = ANY(%s)", [list(doc_ids or [])])
        return chunk_rows(self._rows("SELECT chunk_lo, chunk_hi FROM {docs} WHERE " + where, args))

    def dense(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        k = max(1, min(k, self.size))
        query = "SELECT row, (embedding <#> %s) AS d FROM {chunks}"
        args: list[Any] = [np.asarray(vector, dtype=np.float32)]
        if allowed is not None:
            query += " WHERE row = ANY(%s)"
            args.append([int(r) for r in allowed])
        query += " ORDER BY d LIMIT %s"
        args.append(k)

        def search(conn: psycopg.Connection) -> list[tuple]:
            if self.kind != "flat" and allowed is not None:
                with conn.transaction():  # exact: an approximate index with a filter would drop rows it keeps
                    conn.execute("SET LOCAL enable_indexscan = off")
                    return conn.execute(self._q(query), args, binary=True).fetchall()
            self._tune(conn, k)
            return conn.execute(self._q(query), args, binary=True).fetchall()

        rows = self._call(search)
        ids = np.asarray([r for r, _ in rows], dtype=np.int64)
        return np.asarray([-d for _, d in rows], dtype=np.float32), ids

    def _tune(self, conn: psycopg.Connection, k: int) -> None:
        """Set the approximate index's search width on this connection (once per value: a round trip saved)."""
        if self.kind == "hnsw":
            name, value = "hnsw.ef_search", min(1000, max(self.ef_search, k))
        elif self.kind == "ivf":
            name, value = "ivfflat.probes", self.nprobe
        else:
            return
        tuned: dict[str, int] = conn.__dict__.setdefault("_rag_tuned", {})
        if tuned.get(name) != value:
            conn.execute(sql.SQL("SET {} = {}").format(sql.Identifier(*name.split(".")), sql.Literal(value)))
            tuned[name] = value

    def _postings(self, terms: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        if not terms:
            return {}
        return {t: (np.frombuffer(r, dtype="<i4").astype(np.int64), np.frombuffer(s, dtype="<f4").astype(np.float32))
                for t, r, s in self._rows("SELECT term, rows, scores FROM {terms} WHERE term = ANY(%s)",
                                          (sorted(set(terms)),))}

    def lexical(self, query: str, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        terms = content_terms(query)
        postings = self._postings(terms)
        if not postings:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        scores = np.zeros(self.size, dtype=np.float32)
        for term in terms:  # a term asked twice counts twice, as in bm25s
            if term in postings:
                rows, values = postings[term]
                np.add.at(scores, rows, values)
        return top_k(scores, k, allowed)

    def _df(self, terms: list[str]) -> dict[str, int]:
        if not terms:
            return {}
        return dict(self._rows("SELECT term, df FROM {terms} WHERE term = ANY(%s)", (sorted(set(terms)),)))

    def known(self, terms: list[str]) -> set[str]:
        return set(self._df(terms))

    def idf(self, terms: list[str]) -> dict[str, float]:
        n = max(1, self.size)
        rows = self._df(terms)
        return {t: float(np.log(1 + (n - rows.get(t, 0) + 0.5) / (rows.get(t, 0) + 0.5))) for t in terms}


    def document_statements(self, doc_rows: list[int]) -> dict[int, list[Statement]]:
        return postgres_statements.document_statements(self, doc_rows)

    def statement_rows(self, speakers: list[str] | None, doc_ids: list[str] | None, since: str | None,
                       until: str | None) -> list[tuple]:
        return postgres_statements.statement_rows(self, speakers, doc_ids, since, until)

    def speaker_rows(self, doc_ids: list[str] | None, since: str | None, until: str | None
                     ) -> list[tuple[str, int, int]]:
        return postgres_statements.speaker_rows(self, doc_ids, since, until)
