"""The PostgreSQL store: generations in a PostgreSQL database with pgvector, served to many processes and
machines. With its helpers postgres_registry (what it owns), postgres_integrity (row digests) and postgres_faults
(messages), the only modules that import psycopg.

    <namespace>.info          key/value: the schema format this version reads and writes
    <namespace>.generations   name, schema, state (building, ready, live, retired), manifest (JSON)
    <namespace>.live          one row: the name of the live generation
    <namespace>_<generation>  one schema per generation: docs, chunks (with their vectors), sentences (with
                              theirs), terms (BM25 postings: chunk rows and bm25s's precomputed scores)

A build writes a new generation schema, builds its vector and lexical indexes, verifies it, and switches the
live row in one transaction; a killed build leaves the old generation live and complete, and the next build
drops what it left. Readers resolve the live row once per snapshot and read only that generation's schema, so a
query never mixes two. One build at a time: a session-level advisory lock.

BM25 uses bm25s's own scores, computed at build time and kept as postings, so both stores rank alike.
"""

from __future__ import annotations

import hashlib
import struct
import threading
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import psycopg
from psycopg import sql
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format
from psycopg.types import TypeInfo

from ..common.secrets import mask_secrets
from ..common.text import content_terms
from ..errors import (
    GenerationGone,
    IndexCorrupt,
    IndexLocked,
    IndexMismatch,
    IndexMissing,
    IndexWriteFailed,
    RagError,
    SettingsError,
    StoreUnavailable,
)
from ..ingest.attribution import Statement
from ..records import Chunk
from . import postgres_statements
from .lexical import Lexical, top_k
from .manifest import REBUILD, Manifest, check_encoder
from .postgres_faults import connect_problem as _connect_problem
from .postgres_faults import write_problem
from .postgres_integrity import (DAMAGED_SQL, ROW_SQL, aggregate, check_sql, chunk_digest, doc_digest,
                                 sentence_digest, term_digest)
from .postgres_registry import check_namespace, foreign_tables, live_schema_missing, refuse_foreign, registered, setup
from .store import Batch, DocRow, Snapshot, Store, Writer, chunk_rows, doc_columns, doc_from_row, document_filter

if TYPE_CHECKING:
    from ..settings import Settings

STORE_FORMAT = "1"


# ------------------------------------------------------------------------------------- the vector type

class _VectorDumper(Dumper):
    """numpy float vectors in pgvector's binary form: dimension, unused, then big-endian float32s."""

    format = Format.BINARY

    def dump(self, obj: np.ndarray) -> bytes:
        values = np.asarray(obj, dtype=">f4").ravel()
        return struct.pack(">HH", len(values), 0) + values.tobytes()


class _VectorLoader(Loader):
    format = Format.BINARY

    def load(self, data: Any) -> np.ndarray:
        return np.frombuffer(bytes(data), dtype=">f4", offset=4).astype(np.float32)


def _register_vector(conn: psycopg.Connection) -> None:
    info = TypeInfo.fetch(conn, "vector")
    if info is None:
        raise StoreUnavailable(
            f"The database {mask_secrets(conn.info.dsn)} has no pgvector extension. Install pgvector on the server "
            "(https://github.com/pgvector/pgvector) and run `CREATE EXTENSION vector;` in that database as its "
            "owner, or let `rag index build` create it.")
    info.register(conn)  # COPY ... set_types() finds it by name
    dumper = type("VectorDumper", (_VectorDumper,), {"oid": info.oid})
    conn.adapters.register_dumper(np.ndarray, dumper)
    conn.adapters.register_loader(info.oid, _VectorLoader)


# ------------------------------------------------------------------------------------- connections

class _Pool:
    """Idle connections kept for reuse; each thread takes its own while it works."""

    def __init__(self, url: str, register: bool = True) -> None:
        self.url = url
        self.register = register
        self._idle: list[psycopg.Connection] = []
        self._lock = threading.Lock()

    def open(self) -> psycopg.Connection:
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise _connect_problem(self.url, exc) from None
        if self.register:
            try:
                _register_vector(conn)
            except BaseException as exc:
                conn.close()
                if isinstance(exc, psycopg.Error):  # a statement_timeout, a server going away
                    raise _connect_problem(self.url, exc) from None
                raise
        return conn

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is not None:
            conn.__dict__["_rag_reused"] = True
        if conn is None or conn.closed:
            conn = self.open()
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.close()
        else:
            with self._lock:
                self._idle.append(conn)

    def run(self, fn: Callable[[psycopg.Connection], Any]) -> Any:
        """fn(connection); once more on a new connection when a pooled one turns out dead (the server restarted
        since it was last used: the other idle ones died with it and are dropped too)."""
        for attempt in range(2):
            with self.connection() as conn:
                try:
                    return fn(conn)
                except psycopg.OperationalError:
                    if attempt or not conn.__dict__.get("_rag_reused") or not conn.broken:
                        raise
            self.close()
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _lock_key(namespace: str) -> int:
    """A stable signed 64-bit advisory-lock key for builds of this namespace."""
    return int.from_bytes(hashlib.sha256(f"rag-build:{namespace}".encode()).digest()[:8], "big", signed=True)


def _schema_of(namespace: str, name: str) -> str:
    return f"{namespace}_{name.lower().replace('-', '_')}"


# ------------------------------------------------------------------------------------- reading

class PostgresSnapshot(Snapshot):
    """One generation of the PostgreSQL store, read-only."""

    def __init__(self, store: "PostgresStore", name: str, schema: str, manifest: Manifest) -> None:
        self.store, self.name, self.schema, self.manifest = store, name, schema, manifest
        self._pool = store.pool
        s = store.settings.store
        self.kind, self.nprobe, self.ef_search = manifest.store.get("type", "flat"), s.nprobe, s.ef_search
        self._t = {t: sql.Identifier(schema, t) for t in ("docs", "chunks", "sentences", "terms")}

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

# ------------------------------------------------------------------------------------- writing

_TABLES = """
CREATE TABLE {docs} (row integer NOT NULL, doc_id text NOT NULL, title text NOT NULL, source text NOT NULL,
  start integer NOT NULL, stop integer NOT NULL, spans text NOT NULL, metadata text NOT NULL, date text,
  hash text NOT NULL, chunk_lo integer NOT NULL, chunk_hi integer NOT NULL, sent_lo integer NOT NULL,
  sent_hi integer NOT NULL);
CREATE TABLE {chunks} (row integer NOT NULL, chunk_id text NOT NULL, doc_row integer NOT NULL,
  start integer NOT NULL, stop integer NOT NULL, text text NOT NULL, embedding vector({dim}) NOT NULL,
  digest bytea NOT NULL);
CREATE TABLE {sentences} (row integer NOT NULL, doc_row integer NOT NULL, start integer NOT NULL,
  stop integer NOT NULL, embedding vector({dim}) NOT NULL, digest bytea NOT NULL);
CREATE TABLE {terms} (term text NOT NULL, df integer NOT NULL, rows bytea NOT NULL, scores bytea NOT NULL);
"""
_INDEXES = """
ALTER TABLE {docs} ADD PRIMARY KEY (row);
CREATE UNIQUE INDEX ON {docs} (doc_id);
CREATE INDEX ON {docs} (date);
ALTER TABLE {chunks} ADD PRIMARY KEY (row);
ALTER TABLE {sentences} ADD PRIMARY KEY (row);
CREATE INDEX ON {sentences} (doc_row, start);
ALTER TABLE {terms} ADD PRIMARY KEY (term);
"""


def _sql(text: str, *args: Any, **names: Any) -> sql.Composed:
    """A statement with identifiers or literals of our own put in by psycopg's quoting (never user input)."""
    return sql.SQL(text).format(*args, **names)


class PostgresWriter(Writer):
    """Writes one generation schema; `publish` switches the live row."""

    def __init__(self, store: "PostgresStore", conn: psycopg.Connection, name: str, settings: "Settings",
                 dimension: int) -> None:
        self.store, self.conn, self.name, self.settings, self.dim = store, conn, name, settings, dimension
        self.schema = _schema_of(store.namespace, name)
        self._t = {t: sql.Identifier(self.schema, t) for t in ("docs", "chunks", "sentences", "terms")}
        self.manifest: Manifest | None = None
        self.digests: dict[str, list[bytes]] = {"docs": [], "chunks": [], "sentences": [], "terms": []}
        with self._writing():
            with conn.transaction():
                conn.execute(_sql("CREATE SCHEMA {}", sql.Identifier(self.schema)))
                conn.execute(sql.SQL(_TABLES).format(dim=sql.Literal(dimension), **self._t))
                postgres_statements.create_tables(conn, self.schema)
                conn.execute(_sql("INSERT INTO {} (name, schema, state) VALUES (%s, %s, 'building')",
                                  store.table("generations")), (name, self.schema))

    @contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            raise write_problem(self.name, self.store.url, exc) from None

    def add(self, batch: Batch) -> None:
        t = self._t
        with self._writing(), self.conn.transaction(), self.conn.cursor() as cur:
            with cur.copy(_sql("COPY {docs} FROM STDIN", **t)) as copy:
                for item in batch.documents:
                    copy.write_row(doc_columns(item.doc))
                    self.digests["docs"].append(doc_digest(doc_columns(item.doc)))
            with cur.copy(_sql("COPY {chunks} FROM STDIN WITH (FORMAT BINARY)", **t)) as copy:
                copy.set_types(["int4", "text", "int4", "int4", "int4", "text", "vector", "bytea"])
                c = 0
                for item in batch.documents:
                    for i, ch in enumerate(item.chunks):
                        row = (item.doc.chunks[0] + i, ch.chunk_id, item.doc.row, ch.start, ch.end, ch.text,
                               batch.chunk_vectors[c])
                        self.digests["chunks"].append(chunk_digest(*row))
                        copy.write_row((*row, self.digests["chunks"][-1]))
                        c += 1
            with cur.copy(_sql("COPY {sentences} FROM STDIN WITH (FORMAT BINARY)", **t)) as copy:
                copy.set_types(["int4", "int4", "int4", "int4", "vector", "bytea"])
                s = 0
                for item in batch.documents:
                    for i, (a, b) in enumerate(item.sentences):
                        srow = (item.doc.sentences[0] + i, item.doc.row, a, b, batch.sentence_vectors[s])
                        self.digests["sentences"].append(sentence_digest(*srow))
                        copy.write_row((*srow, self.digests["sentences"][-1]))
                        s += 1
            postgres_statements.write(cur, self.schema, batch)

    def finish(self, manifest: Manifest) -> Manifest:
        t, conn, st = self._t, self.conn, self.settings.store
        texts = (text for _row, text in self._texts())
        bm25 = Lexical.build(texts)
        with self._writing(), conn.transaction():
            with conn.cursor() as cur, cur.copy(_sql("COPY {terms} FROM STDIN WITH (FORMAT BINARY)", **t)) as copy:
                copy.set_types(["text", "int4", "bytea", "bytea"])
                for term, rows, scores in bm25.postings():  # little-endian int32 rows and float32 scores
                    posting = (term, len(rows), rows.astype("<i4").tobytes(), scores.astype("<f4").tobytes())
                    self.digests["terms"].append(term_digest(*posting))
                    copy.write_row(posting)
            conn.execute(sql.SQL(_INDEXES).format(**t))
            conn.execute("SET LOCAL maintenance_work_mem = '1GB'")
            if st.type == "hnsw":
                conn.execute(_sql("CREATE INDEX ON {chunks} USING hnsw (embedding vector_ip_ops) WITH (m = {m})",
                                  m=sql.Literal(min(100, st.hnsw_m)), **t))
            elif st.type == "ivf":
                lists = st.nlist or max(1, min(32768, int(2 * manifest.counts.chunks ** 0.5)))
                conn.execute(_sql("CREATE INDEX ON {chunks} USING ivfflat (embedding vector_ip_ops) "
                                  "WITH (lists = {lists})", lists=sql.Literal(lists), **t))
            for table in ("docs", "chunks", "sentences", "terms"):
                conn.execute(_sql("ANALYZE {}", t[table]))
            manifest = postgres_statements.finish(conn, self.schema, manifest)
            manifest = replace(manifest, store={**manifest.store, "schema": self.schema, "digests": {
                table: aggregate(found) for table, found in self.digests.items()}})
            conn.execute(_sql("UPDATE {} SET state = 'ready', manifest = %s WHERE name = %s",
                              self.store.table("generations")), (manifest.to_json(), self.name))
        self.manifest = manifest
        return manifest

    def _texts(self) -> Iterator[tuple[int, str]]:
        with self._writing(), self.conn.transaction(), self.conn.cursor(name="texts") as cur:
            cur.itersize = 2000
            cur.execute(_sql("SELECT row, text FROM {chunks} ORDER BY row", **self._t))
            yield from cur

    def verify(self) -> PostgresSnapshot:
        assert self.manifest is not None, "finish() first"
        snapshot = PostgresSnapshot(self.store, self.name, self.schema, self.manifest)
        try:
            snapshot.check()
        except RagError as exc:
            raise IndexWriteFailed(f"The new generation {self.name} did not read back as written ({exc}); it was not "
                                   "made live. Run: rag index build. The live index is unchanged.") from None
        return snapshot

    def publish(self) -> None:
        with self._writing(), self.conn.transaction():
            gens, live = self.store.table("generations"), self.store.table("live")
            self.conn.execute(_sql("UPDATE {} SET state = 'retired' WHERE state = 'live'", gens))
            self.conn.execute(_sql("UPDATE {} SET state = 'live' WHERE name = %s", gens), (self.name,))
            self.conn.execute(_sql("INSERT INTO {} (id, name) VALUES (1, %s) ON CONFLICT (id) DO UPDATE SET "
                                   "name = EXCLUDED.name", live), (self.name,))
        self.published = True

    def abort(self) -> None:
        if getattr(self, "published", False):
            return
        try:
            if self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                self.conn.rollback()
            self.store.drop(self.conn, self.name, self.schema)
        except psycopg.Error:
            pass  # the next build removes what is left


# ------------------------------------------------------------------------------------- the store

class PostgresStore(Store):
    """Generations in a PostgreSQL database with pgvector (`store.url`, schemas prefixed `store.namespace`)."""

    backend = "postgres"
    verified = "counts, rows, vector dimensions and article hashes agree with the manifest"

    def __init__(self, url: str, namespace: str, settings: "Settings") -> None:
        self.url, self.namespace, self.settings = url, namespace, settings
        self.pool = _Pool(url)
        self._build_conn: psycopg.Connection | None = None

    @classmethod
    def from_settings(cls, settings: "Settings") -> "PostgresStore":
        s = settings.store
        if not s.url:
            raise SettingsError("store.backend is 'postgres' but no database is named. Set store.url in rag.toml "
                                "or RAG_STORE_URL, e.g. postgresql://rag@127.0.0.1:5432/news")
        check_namespace(s.namespace)
        return cls(s.url, s.namespace, settings)

    @staticmethod
    def key(settings: "Settings") -> tuple:
        return ("postgres", settings.store.url, settings.store.namespace)

    @property
    def where(self) -> str:
        return f"{mask_secrets(self.url)} (namespace {self.namespace})"

    def table(self, name: str) -> sql.Identifier:
        return sql.Identifier(self.namespace, name)

    def _meta(self, conn: psycopg.Connection, query: str, args: tuple = ()) -> list[tuple]:
        try:
            return conn.execute(_sql(query, g=self.table("generations"), l=self.table("live"),
                                     i=self.table("info")), args).fetchall()
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
            foreign = foreign_tables(conn, self.namespace)
            if foreign:
                raise refuse_foreign(self.where, self.namespace, foreign) from None
            raise IndexMissing(f"No index yet in {self.where}. Build one with: rag index build") from None
        except (psycopg.errors.UndefinedColumn, psycopg.errors.DataError, psycopg.errors.DatatypeMismatch):
            raise refuse_foreign(self.where, self.namespace, foreign_tables(conn, self.namespace) or ["info"]) \
                from None

    def _check_format(self, conn: psycopg.Connection) -> None:
        found = self._meta(conn, "SELECT value FROM {i} WHERE key = 'format'")
        version = found[0][0] if found else None
        if version != STORE_FORMAT and foreign_tables(conn, self.namespace):
            raise refuse_foreign(self.where, self.namespace, foreign_tables(conn, self.namespace) or [])
        if version != STORE_FORMAT:
            raise IndexMismatch(f"The PostgreSQL store at {self.where} has schema format {version!r}; this version "
                                f"reads format {STORE_FORMAT}. Use another store.namespace, or drop the schemas "
                                f"{self.namespace}* and rebuild with: rag index build --full")

    def _live(self, conn: psycopg.Connection) -> tuple[str, str, Manifest]:
        self._check_format(conn)
        found = self._meta(conn, "SELECT g.name, g.schema, g.manifest FROM {l} JOIN {g} g USING (name)")
        if not found:
            raise IndexMissing(f"No index yet in {self.where}. Build one with: rag index build")
        name, schema, manifest = found[0]
        if manifest is None:
            raise IndexCorrupt(f"Generation {name} in {self.where} has no manifest. {REBUILD}")
        return name, schema, Manifest.parse(manifest, f"{self.where} generation {name}")

    def _use(self, fn: Callable[[psycopg.Connection], Any]) -> Any:
        try:
            return self.pool.run(fn)
        except psycopg.OperationalError as exc:
            raise _connect_problem(self.url, exc) from None

    def live_name(self) -> str:
        return self._use(lambda conn: self._live(conn)[0])

    def live_manifest(self) -> tuple[str, Manifest]:
        name, _schema, manifest = self._use(self._live)
        return name, manifest

    def open_live(self, model_id: str | None = None, backend: str | None = None) -> PostgresSnapshot:
        name, schema, manifest = self._use(self._live)
        check_encoder(self.where, manifest, model_id, backend, self.rebuild)
        if "digests" not in manifest.store:
            raise IndexMismatch(f"Generation {name} in {self.where} was built by an earlier version, without the row "
                                f"digests that guard its text and vectors. {REBUILD}")
        snapshot = PostgresSnapshot(self, name, schema, manifest)
        snapshot.check()
        return snapshot

    def verify_live(self) -> None:
        snapshot = self.open_live()
        (bad_docs, bad_dims), = snapshot._rows(
            "SELECT (SELECT count(*) FROM {chunks} c LEFT JOIN {docs} d ON d.row = c.doc_row WHERE d.row IS NULL),"
            " (SELECT count(*) FROM {chunks} WHERE vector_dims(embedding) <> %s)", (snapshot.manifest.dimension,))
        if bad_docs or bad_dims:
            raise IndexCorrupt(f"Index {snapshot.where} has {bad_docs} chunks without their document and {bad_dims} "
                               f"vectors of the wrong dimension. {REBUILD}")
        recorded = snapshot.manifest.documents
        for doc_id, digest, lo, hi in snapshot._rows("SELECT doc_id, hash, chunk_lo, chunk_hi FROM {docs}"):
            if recorded.get(doc_id) != {"hash": digest, "chunks": [lo, hi]}:
                raise IndexCorrupt(f"Article {doc_id!r} in {snapshot.where} does not match the manifest's record of "
                                   f"it (content hash or chunk rows). {REBUILD}")
        for table, expected in snapshot.manifest.store["digests"].items():
            (rows, found, stale), = snapshot._rows(check_sql(table))
            if (rows, found) != (expected["rows"], expected["sha256"]) or stale:
                raise IndexCorrupt(f"The {table} of {snapshot.where} were changed outside rag ({rows} rows, "
                                   f"{expected['rows']} written; their digests do not match what the build wrote). "
                                   f"{REBUILD}")

    def check_writable(self) -> None:
        def create() -> None:
            conn.execute(_sql("CREATE SCHEMA IF NOT EXISTS {}", sql.Identifier(self.namespace)))
            conn.execute(_sql("CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, value text NOT NULL)",
                              self.table("info")))
            conn.execute(_sql("INSERT INTO {} VALUES ('format', %s) ON CONFLICT (key) DO NOTHING",
                              self.table("info")), (STORE_FORMAT,))
            conn.execute(_sql("CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, schema text NOT NULL UNIQUE, "
                              "state text NOT NULL, manifest text, created timestamptz NOT NULL DEFAULT now())",
                              self.table("generations")))
            conn.execute(_sql("CREATE TABLE IF NOT EXISTS {} (id integer PRIMARY KEY CHECK (id = 1), "
                              "name text NOT NULL REFERENCES {} (name))", self.table("live"),
                              self.table("generations")))

        pool = _Pool(self.url, register=False)  # the vector type may not exist yet
        try:
            with pool.connection() as conn:
                try:
                    setup(conn, self.url, self.namespace, self.where, create)
                    self._check_format(conn)
                except psycopg.OperationalError as exc:
                    raise _connect_problem(self.url, exc) from None
                except psycopg.Error as exc:
                    raise StoreUnavailable(mask_secrets(
                        f"Cannot prepare {self.where} for a build: {type(exc).__name__}: "
                        f"{str(exc).strip().splitlines()[0]}. Check that store.url's user may create schemas in "
                        "that database (GRANT CREATE ON DATABASE), or choose another store.namespace.",
                        self.url)) from None
        finally:
            pool.close()

    @contextmanager
    def build_lock(self) -> Iterator[None]:
        conn = self.pool.open()
        try:
            (got,), = conn.execute("SELECT pg_try_advisory_lock(%s)", (_lock_key(self.namespace),)).fetchall()
            if not got:
                raise IndexLocked(f"Index {self.where} is locked: a build is already running against this database. "
                                  "Wait for it to finish; queries keep using the live index meanwhile.")
            self._build_conn = conn
            yield
        finally:
            self._build_conn = None
            conn.close()  # ends the session, which releases the lock; a killed process releases it too

    def writer(self, name: str, settings: "Settings", dimension: int) -> PostgresWriter:
        assert self._build_conn is not None, "hold the build lock"
        return PostgresWriter(self, self._build_conn, name, settings, dimension)

    def drop(self, conn: psycopg.Connection, name: str, schema: str) -> None:
        with conn.transaction():
            conn.execute(_sql("DROP SCHEMA IF EXISTS {} CASCADE", sql.Identifier(schema)))
            conn.execute(_sql("DELETE FROM {} WHERE name = %s", self.table("generations")), (name,))

    def clean(self, keep: set[str]) -> None:
        """Drop the generations the registry lists, except `keep` and the live one: only those (a generation
        schema is created in the transaction that registers it, so a killed build leaves nothing unlisted)."""
        conn = self._build_conn
        assert conn is not None, "hold the build lock"
        try:
            live = self._meta(conn, "SELECT name FROM {l}")
            keep = keep | {n for (n,) in live}
            for name, schema in registered(self._meta(conn, "SELECT name, schema FROM {g}"), self.namespace):
                if name not in keep:
                    self.drop(conn, name, schema)
        except psycopg.OperationalError as exc:
            raise _connect_problem(self.url, exc) from None
        except psycopg.Error as exc:
            raise StoreUnavailable(mask_secrets(
                f"Could not remove an old generation from {self.where} ({type(exc).__name__}: "
                f"{str(exc).strip().splitlines()[0]}); the next build tries again. Check that store.url's user owns "
                "the namespace's schemas.", self.url)) from None

    def close(self) -> None:
        self.pool.close()

