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

from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Iterator

import psycopg
from psycopg import sql

from ..common.secrets import mask_secrets
from ..errors import (IndexCorrupt, IndexLocked, IndexMismatch, IndexMissing, IndexWriteFailed, RagError,
                      SettingsError, StoreUnavailable)
from . import postgres_statements
from .lexical import Lexical
from .manifest import REBUILD, Manifest, check_encoder
from .postgres_conn import Pool, compose, lock_key, schema_of
from .postgres_faults import connect_problem as _connect_problem
from .postgres_faults import write_problem
from .postgres_integrity import TABLES, aggregate, check_sql, chunk_digest, doc_digest, sentence_digest, term_digest
from .postgres_registry import check_namespace, foreign_tables, refuse_foreign, registered, setup
from .postgres_snapshot import PostgresSnapshot
from .store import Batch, Store, Writer, doc_columns

if TYPE_CHECKING:
    from ..settings import Settings

STORE_FORMAT = "1"



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


class PostgresWriter(Writer):
    """Writes one generation schema; `publish` switches the live row."""

    def __init__(self, store: "PostgresStore", conn: psycopg.Connection, name: str, settings: "Settings",
                 dimension: int) -> None:
        self.store, self.conn, self.name, self.settings, self.dim = store, conn, name, settings, dimension
        self.schema = schema_of(store.namespace, name)
        self._t = {t: sql.Identifier(self.schema, t) for t in ("docs", "chunks", "sentences", "terms")}
        self.manifest: Manifest | None = None
        self.digests: dict[str, list[bytes]] = {table: [] for table in TABLES}
        with self._writing():
            with conn.transaction():
                conn.execute(compose("CREATE SCHEMA {}", sql.Identifier(self.schema)))
                conn.execute(sql.SQL(_TABLES).format(dim=sql.Literal(dimension), **self._t))
                postgres_statements.create_tables(conn, self.schema)
                conn.execute(compose("INSERT INTO {} (name, schema, state) VALUES (%s, %s, 'building')",
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
            with cur.copy(compose("COPY {docs} FROM STDIN", **t)) as copy:
                for item in batch.documents:
                    copy.write_row(doc_columns(item.doc))
                    self.digests["docs"].append(doc_digest(doc_columns(item.doc)))
            with cur.copy(compose("COPY {chunks} FROM STDIN WITH (FORMAT BINARY)", **t)) as copy:
                copy.set_types(["int4", "text", "int4", "int4", "int4", "text", "vector", "bytea"])
                c = 0
                for item in batch.documents:
                    for i, ch in enumerate(item.chunks):
                        row = (item.doc.chunks[0] + i, ch.chunk_id, item.doc.row, ch.start, ch.end, ch.text,
                               batch.chunk_vectors[c])
                        self.digests["chunks"].append(chunk_digest(*row))
                        copy.write_row((*row, self.digests["chunks"][-1]))
                        c += 1
            with cur.copy(compose("COPY {sentences} FROM STDIN WITH (FORMAT BINARY)", **t)) as copy:
                copy.set_types(["int4", "int4", "int4", "int4", "vector", "bytea"])
                s = 0
                for item in batch.documents:
                    for i, (a, b) in enumerate(item.sentences):
                        srow = (item.doc.sentences[0] + i, item.doc.row, a, b, batch.sentence_vectors[s])
                        self.digests["sentences"].append(sentence_digest(*srow))
                        copy.write_row((*srow, self.digests["sentences"][-1]))
                        s += 1
            postgres_statements.write(cur, self.schema, batch, self.digests["statements"])

    def finish(self, manifest: Manifest) -> Manifest:
        t, conn, st = self._t, self.conn, self.settings.store
        texts = (text for _row, text in self._texts())
        bm25 = Lexical.build(texts)
        with self._writing(), conn.transaction():
            with conn.cursor() as cur, cur.copy(compose("COPY {terms} FROM STDIN WITH (FORMAT BINARY)", **t)) as copy:
                copy.set_types(["text", "int4", "bytea", "bytea"])
                for term, rows, scores in bm25.postings():  # little-endian int32 rows and float32 scores
                    posting = (term, len(rows), rows.astype("<i4").tobytes(), scores.astype("<f4").tobytes())
                    self.digests["terms"].append(term_digest(*posting))
                    copy.write_row(posting)
            conn.execute(sql.SQL(_INDEXES).format(**t))
            conn.execute("SET LOCAL maintenance_work_mem = '1GB'")
            if st.type == "hnsw":
                conn.execute(compose("CREATE INDEX ON {chunks} USING hnsw (embedding vector_ip_ops) WITH (m = {m})",
                                  m=sql.Literal(min(100, st.hnsw_m)), **t))
            elif st.type == "ivf":
                lists = st.nlist or max(1, min(32768, int(2 * manifest.counts.chunks ** 0.5)))
                conn.execute(compose("CREATE INDEX ON {chunks} USING ivfflat (embedding vector_ip_ops) "
                                  "WITH (lists = {lists})", lists=sql.Literal(lists), **t))
            for table in ("docs", "chunks", "sentences", "terms"):
                conn.execute(compose("ANALYZE {}", t[table]))
            manifest = postgres_statements.finish(conn, self.schema, manifest, self.digests["speakers"])
            manifest = replace(manifest, store={**manifest.store, "schema": self.schema, "digests": {
                table: aggregate(found) for table, found in self.digests.items()}})
            conn.execute(compose("UPDATE {} SET state = 'ready', manifest = %s WHERE name = %s",
                              self.store.table("generations")), (manifest.to_json(), self.name))
        self.manifest = manifest
        return manifest

    def _texts(self) -> Iterator[tuple[int, str]]:
        with self._writing(), self.conn.transaction(), self.conn.cursor(name="texts") as cur:
            cur.itersize = 2000
            cur.execute(compose("SELECT row, text FROM {chunks} ORDER BY row", **self._t))
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
            self.conn.execute(compose("UPDATE {} SET state = 'retired' WHERE state = 'live'", gens))
            self.conn.execute(compose("UPDATE {} SET state = 'live' WHERE name = %s", gens), (self.name,))
            self.conn.execute(compose("INSERT INTO {} (id, name) VALUES (1, %s) ON CONFLICT (id) DO UPDATE SET "
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
        self.pool = Pool(url)
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
            return conn.execute(compose(query, g=self.table("generations"), l=self.table("live"),
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
            conn.execute(compose("CREATE SCHEMA IF NOT EXISTS {}", sql.Identifier(self.namespace)))
            conn.execute(compose("CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, value text NOT NULL)",
                              self.table("info")))
            conn.execute(compose("INSERT INTO {} VALUES ('format', %s) ON CONFLICT (key) DO NOTHING",
                              self.table("info")), (STORE_FORMAT,))
            conn.execute(compose("CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, schema text NOT NULL UNIQUE, "
                              "state text NOT NULL, manifest text, created timestamptz NOT NULL DEFAULT now())",
                              self.table("generations")))
            conn.execute(compose("CREATE TABLE IF NOT EXISTS {} (id integer PRIMARY KEY CHECK (id = 1), "
                              "name text NOT NULL REFERENCES {} (name))", self.table("live"),
                              self.table("generations")))

        pool = Pool(self.url, register=False)  # the vector type may not exist yet
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
            (got,), = conn.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(self.namespace),)).fetchall()
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
            conn.execute(compose("DROP SCHEMA IF EXISTS {} CASCADE", sql.Identifier(schema)))
            conn.execute(compose("DELETE FROM {} WHERE name = %s", self.table("generations")), (name,))

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
