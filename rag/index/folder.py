"""The folder store: index generations as folders of plain data files, with `CURRENT` naming the live one.

    index/
      CURRENT            name of the live generation, replaced atomically after a build completes
      gen-<time>-<id>/   manifest.json, chunks.sqlite, chunk_vectors.f32, sentence_vectors.f32,
                         vectors.faiss, bm25/
      build.lock         held by the one build that may run
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import sqlite3
import threading
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from ..common.files import atomic_write_text, fsync_path, sha256_file
from ..errors import IndexCorrupt, IndexLocked, IndexWriteFailed, RagError
from ..ingest.attribution import Statement
from ..records import Chunk
from ..version import __version__
from .folder_files import (BM25_DIR, CHUNK_VECTORS, CURRENT, DB, FAISS_FILE, LOCK, MANIFEST, MARK, SENTENCE_VECTORS,
                           check_files, check_index_folder, data_files, is_generation, live_generation, map_vectors,
                           pointer_problem, read_manifest)
from . import folder_statements
from .lexical import Lexical
from .manifest import REBUILD, Manifest, check_encoder
from .store import Batch, DocRow, Snapshot, Store, Writer, chunk_rows, doc_columns, doc_from_row, document_filter
from .vectors import VectorStore

if TYPE_CHECKING:
    from ..settings import Settings

SCHEMA = """
CREATE TABLE docs (row INTEGER PRIMARY KEY, doc_id TEXT NOT NULL UNIQUE, title TEXT NOT NULL,
  source TEXT NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL, spans TEXT NOT NULL,
  metadata TEXT NOT NULL, date TEXT, hash TEXT NOT NULL, chunk_lo INTEGER NOT NULL, chunk_hi INTEGER NOT NULL,
  sent_lo INTEGER NOT NULL, sent_hi INTEGER NOT NULL);
CREATE TABLE chunks (row INTEGER PRIMARY KEY, chunk_id TEXT NOT NULL, doc_row INTEGER NOT NULL,
  start INTEGER NOT NULL, end INTEGER NOT NULL, text TEXT NOT NULL);
CREATE TABLE sentences (row INTEGER PRIMARY KEY, doc_row INTEGER NOT NULL, start INTEGER NOT NULL,
  end INTEGER NOT NULL);
"""
INDEXES = """
CREATE INDEX docs_date ON docs(date);
CREATE INDEX sentences_doc ON sentences(doc_row, start);
"""


class FolderSnapshot(Snapshot):
    """One verified, read-only folder generation: metadata, vectors, FAISS and BM25."""

    def __init__(self, gen: Path, manifest: Manifest, nprobe: int = 48, ef_search: int = 128) -> None:
        self.path = gen
        self.name = gen.name
        self.manifest = manifest
        counts = manifest.counts
        dim = manifest.dimension
        self.chunk_matrix = map_vectors(gen / CHUNK_VECTORS, counts.chunks, dim)
        self.sentence_matrix = map_vectors(gen / SENTENCE_VECTORS, counts.sentences, dim)
        self._local = threading.local()
        n_chunks = self._db().execute("SELECT count(*) FROM chunks").fetchone()[0]
        n_docs = self._db().execute("SELECT count(*) FROM docs").fetchone()[0]
        if (n_chunks, n_docs) != (counts.chunks, counts.documents):
            raise IndexCorrupt(f"Index in {gen} holds {n_chunks} chunks and {n_docs} documents, the manifest says "
                               f"{counts.chunks} and {counts.documents}. {REBUILD}")
        self.vectors = VectorStore.load(gen / FAISS_FILE, nprobe, ef_search)
        if self.vectors.size != n_chunks or self.vectors.dimension != dim:
            raise IndexCorrupt(f"Vector index in {gen} holds {self.vectors.size} vectors of dimension "
                               f"{self.vectors.dimension}; the metadata has {n_chunks} chunks of dimension {dim}. "
                               f"{REBUILD}")
        self.bm25 = Lexical.load(gen / BM25_DIR)

    @classmethod
    def open(cls, gen: Path, model_id: str | None = None, nprobe: int = 48, ef_search: int = 128,
             backend: str | None = None) -> "FolderSnapshot":
        """Verify a generation (manifest, model and backend, checksums, counts) and open it."""
        manifest = read_manifest(gen)
        check_encoder(str(gen.parent), manifest, model_id, backend, f"rag index build --index {gen.parent}")
        check_files(gen, manifest)
        try:
            return cls(gen, manifest, nprobe, ef_search)
        except sqlite3.DatabaseError as exc:
            raise IndexCorrupt(f"Index metadata in {gen / DB} cannot be read ({exc}). {REBUILD}") from None
        except (ValueError, KeyError, TypeError, AttributeError, OSError) as exc:  # BM25 files bm25s cannot read
            raise IndexCorrupt(f"Index files in {gen} cannot be read ({type(exc).__name__}: {exc}). "
                               f"{REBUILD}") from None

    @property
    def where(self) -> str:
        return str(self.path)

    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            uri = f"file:{(self.path / DB).as_posix()}?mode=ro&immutable=1"
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._local.conn = conn
        return conn

    @property
    def model(self) -> str:
        return self.manifest.model

    def documents(self) -> Iterator[DocRow]:
        for r in self._db().execute("SELECT * FROM docs ORDER BY row"):
            yield doc_from_row(r)

    def document(self, doc_id: str) -> DocRow | None:
        r = self._db().execute("SELECT * FROM docs WHERE doc_id = ?", (doc_id,)).fetchone()
        return doc_from_row(r) if r else None

    def doc_at(self, row: int) -> DocRow:
        return doc_from_row(self._db().execute("SELECT * FROM docs WHERE row = ?", (row,)).fetchone())

    def chunks(self, rows: list[int]) -> dict[int, tuple[Chunk, int]]:
        if not rows:
            return {}
        marks = ",".join("?" * len(rows))
        out = {}
        for row, chunk_id, doc_row, start, end, text in self._db().execute(
            f"SELECT row, chunk_id, doc_row, start, end, text FROM chunks WHERE row IN ({marks})", rows,
        ):
            out[row] = (Chunk(chunk_id, chunk_id.rsplit("#", 1)[0], start, end, text), doc_row)
        return out

    def chunk_texts(self) -> Iterator[tuple[int, str]]:
        yield from self._db().execute("SELECT row, text FROM chunks ORDER BY row")

    def sentences_within(self, doc_row: int, start: int, end: int) -> list[tuple[int, int, int]]:
        return list(self._db().execute(
            "SELECT row, start, end FROM sentences WHERE doc_row = ? AND start >= ? AND end <= ? ORDER BY start",
            (doc_row, start, end),
        ))

    def chunk_vectors(self, lo: int, hi: int) -> np.ndarray:
        return np.asarray(self.chunk_matrix[lo:hi])

    def sentence_vectors(self, rows: np.ndarray | list[int] | slice) -> np.ndarray:
        return np.asarray(self.sentence_matrix[rows if isinstance(rows, slice) else np.asarray(rows, dtype=np.int64)])

    def allowed_rows(self, doc_ids: list[str] | None, since: str | None, until: str | None) -> np.ndarray | None:
        if not doc_ids and not since and not until:
            return None
        ids = list(doc_ids or [])
        where, args = document_filter(doc_ids, since, until, "?", f"doc_id IN ({','.join('?' * len(ids))})", ids)
        return chunk_rows(self._db().execute(f"SELECT chunk_lo, chunk_hi FROM docs WHERE {where}", args))

    def dense(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = self.vectors.search(vector[None, :], k, allowed)
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep].astype(np.int64)

    def lexical(self, query: str, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        return self.bm25.search(query, k, allowed)

    def known(self, terms: list[str]) -> set[str]:
        return self.bm25.known(terms)

    def idf(self, terms: list[str]) -> dict[str, float]:
        return self.bm25.idf(terms)

    def document_statements(self, doc_rows: list[int]) -> dict[int, list[Statement]]:
        return folder_statements.document_statements(self._db(), self.manifest, doc_rows)

    def statement_rows(self, speakers: list[str] | None, doc_ids: list[str] | None, since: str | None,
                       until: str | None) -> list[tuple]:
        return folder_statements.statement_rows(self._db(), self.manifest, speakers, doc_ids, since, until)

    def speaker_rows(self, doc_ids: list[str] | None, since: str | None, until: str | None
                     ) -> list[tuple[str, int, int]]:
        return folder_statements.speaker_rows(self._db(), self.manifest, doc_ids, since, until)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def open_live(root: Path, model_id: str | None = None, nprobe: int = 48, ef_search: int = 128,
              backend: str | None = None) -> FolderSnapshot:
    """The verified live generation of the folder `root`; refuses one built with another model than
    `model_id` or another embedding backend than `backend`."""
    return FolderSnapshot.open(live_generation(root), model_id, nprobe, ef_search, backend)


class _VectorFile:
    """A raw float32 matrix written by row, in any order."""

    def __init__(self, path: Path, dim: int) -> None:
        self.path = path
        self.dim = dim
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)

    def write(self, row: int, vectors: np.ndarray) -> None:
        if len(vectors):
            os.pwrite(self.fd, np.ascontiguousarray(vectors, dtype="<f4").tobytes(), row * self.dim * 4)

    def close(self, rows: int) -> None:
        os.ftruncate(self.fd, rows * self.dim * 4)
        os.fsync(self.fd)
        os.close(self.fd)


def _write_failed(gen: Path, exc: BaseException) -> IndexWriteFailed:
    if isinstance(exc, OSError):
        detail = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    else:
        detail = str(exc)
    return IndexWriteFailed(f"Could not write the new index in {gen} ({detail}). Free some disk space or fix the "
                            "folder's permissions, then run: rag index build. The live index is unchanged.")


@contextmanager
def _writing(gen: Path) -> Iterator[None]:
    """OS and SQLite errors while writing a generation become IndexWriteFailed."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        raise _write_failed(gen, exc) from None


class FolderWriter(Writer):
    """Writes a generation folder beside the live one; `publish` swaps `CURRENT`."""

    def __init__(self, root: Path, name: str, settings: "Settings", dimension: int) -> None:
        self.root, self.name, self.settings, self.dim = root, name, settings, dimension
        self.gen = root / name
        self._open = False
        try:
            with _writing(self.gen):
                self.gen.mkdir()
                (self.gen / MARK).write_text(f"rag-news {__version__}\n", encoding="utf-8")
                self.db = sqlite3.connect(self.gen / DB)
                self.db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + SCHEMA
                                      + folder_statements.SCHEMA)
                self.chunk_file = _VectorFile(self.gen / CHUNK_VECTORS, dimension)
                self.sent_file = _VectorFile(self.gen / SENTENCE_VECTORS, dimension)
        except BaseException:
            if hasattr(self, "db"):
                self.db.close()
            shutil.rmtree(self.gen, ignore_errors=True)
            raise
        self._open = True

    def add(self, batch: Batch) -> None:
        with _writing(self.gen):
            c = s = 0
            for item in batch.documents:
                d = item.doc
                self.db.execute("INSERT INTO docs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", doc_columns(d))
                self.db.executemany("INSERT INTO chunks VALUES (?,?,?,?,?,?)", [
                    (d.chunks[0] + i, ch.chunk_id, d.row, ch.start, ch.end, ch.text) for i, ch in enumerate(item.chunks)])
                self.db.executemany("INSERT INTO sentences VALUES (?,?,?,?)", [
                    (d.sentences[0] + i, d.row, a, b) for i, (a, b) in enumerate(item.sentences)])
                self.chunk_file.write(d.chunks[0], batch.chunk_vectors[c:c + len(item.chunks)])
                self.sent_file.write(d.sentences[0], batch.sentence_vectors[s:s + len(item.sentences)])
                folder_statements.write(self.db, item)
                c += len(item.chunks)
                s += len(item.sentences)

    def _close_files(self, manifest: Manifest | None) -> None:
        if self._open:
            self._open = False
            counts = manifest.counts if manifest else None
            self.db.close()
            self.chunk_file.close(counts.chunks if counts else 0)
            self.sent_file.close(counts.sentences if counts else 0)

    def finish(self, manifest: Manifest) -> Manifest:
        gen, st = self.gen, self.settings.store
        with _writing(gen):
            self.db.executescript(INDEXES)
            manifest = folder_statements.finish(self.db, manifest)
            self.db.commit()
            self._close_files(manifest)
            n = manifest.counts.chunks
            vectors = np.memmap(gen / CHUNK_VECTORS, dtype=np.float32, mode="r", shape=(n, self.dim)) if n else \
                np.zeros((0, self.dim), dtype=np.float32)
            VectorStore.build(vectors, st.type, st.nlist, st.hnsw_m).save(gen / FAISS_FILE)
            del vectors
            texts = sqlite3.connect(gen / DB)
            Lexical.build(text for (text,) in texts.execute("SELECT text FROM chunks ORDER BY row")).save(gen / BM25_DIR)
            texts.close()
            for path in data_files(gen):
                fsync_path(path)
            files = {p.relative_to(gen).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
                     for p in data_files(gen)}
            manifest = replace(manifest, files=files)
            atomic_write_text(gen / MANIFEST, manifest.to_json())
            fsync_path(gen)
        return manifest

    def verify(self) -> FolderSnapshot:
        try:
            check = FolderSnapshot.open(self.gen)
        except RagError as exc:
            raise IndexWriteFailed(f"The new index in {self.gen} did not read back as written "
                                   f"({exc.__class__.__name__}), so it was not swapped in. Check the free disk space, "
                                   "then run: rag index build. The live index is unchanged.") from None
        return check

    def publish(self) -> None:
        with _writing(self.gen):
            atomic_write_text(self.root / CURRENT, self.name + "\n")

    def abort(self) -> None:
        """Remove the generation, unless `CURRENT` already names it (the swap happened)."""
        try:
            self._close_files(None)
        except OSError:
            pass
        try:
            live = (self.root / CURRENT).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            live = ""
        if live != self.name:
            shutil.rmtree(self.gen, ignore_errors=True)


_POINTER_TMP = re.compile(rf"\.{CURRENT}\.\d+\.tmp")  # what atomic_write_text leaves when killed


class FolderStore(Store):
    """Generations in an index folder (`paths.index`)."""

    backend = "folder"
    verified = "every checksum matches"

    def __init__(self, settings: "Settings") -> None:
        self.root = Path(settings.paths.index)
        self.settings = settings

    @classmethod
    def from_settings(cls, settings: "Settings") -> "FolderStore":
        return cls(settings)

    @staticmethod
    def key(settings: "Settings") -> tuple:
        return ("folder", str(Path(settings.paths.index).resolve()))

    @staticmethod
    def excluded(settings: "Settings") -> list[Path]:
        return [Path(settings.paths.index)]  # an index folder inside the corpus is not read as articles

    @property
    def where(self) -> str:
        return str(self.root)

    def location(self, name: str) -> str:
        return str(self.root / name)

    @property
    def rebuild(self) -> str:
        return f"rag index build --index {self.root}"

    def live_name(self) -> str:
        return live_generation(self.root).name

    def live_manifest(self) -> tuple[str, Manifest]:
        gen = live_generation(self.root)
        return gen.name, read_manifest(gen)

    def open_live(self, model_id: str | None = None, backend: str | None = None) -> FolderSnapshot:
        s = self.settings.store
        return open_live(self.root, model_id, s.nprobe, s.ef_search, backend)

    def check_live(self) -> None:
        gen = live_generation(self.root)
        check_files(gen, read_manifest(gen), checksums=False)

    def verify_live(self) -> None:
        gen = live_generation(self.root)
        check_files(gen, read_manifest(gen))

    def check_writable(self) -> None:
        check_index_folder(self.root)
        pointer = self.root / CURRENT
        if pointer.is_symlink() or pointer.exists() and not pointer.is_file():
            raise IndexCorrupt(pointer_problem(pointer))

    def build_lock(self) -> AbstractContextManager[None]:
        return build_lock(self.root)

    def writer(self, name: str, settings: "Settings", dimension: int) -> FolderWriter:
        return FolderWriter(self.root, name, settings, dimension)

    def clean(self, keep: set[str]) -> None:
        """Remove the generations and temporary files that earlier builds left, except `keep`; nothing else."""
        for path in self.root.iterdir():
            if path.name not in keep and is_generation(path):
                shutil.rmtree(path, ignore_errors=True)
            elif _POINTER_TMP.fullmatch(path.name) and path.is_file() and not path.is_symlink():
                path.unlink(missing_ok=True)


@contextmanager
def build_lock(root: Path) -> Iterator[None]:
    """Hold the index folder's build lock; IndexLocked at once if another build holds it."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise IndexLocked(f"Index {root} is locked: a build is already running (pid {holder}). "
                              "Wait for it to finish; queries keep using the live index meanwhile.") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock; a killed process releases it too
