"""The folder store: index generations as folders of plain data files, with `CURRENT` naming the live one.

    index/
      CURRENT            name of the live generation, replaced atomically after a build completes
      gen-<time>-<id>/   manifest.json, chunks.sqlite, chunk_vectors.f32, sentence_vectors.f32,
                         vectors.faiss, bm25/
      build.lock         held by the one build that may run
"""

from __future__ import annotations

import fcntl
import json
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

from . import __version__
from .errors import (IndexCorrupt, IndexFolderRefused, IndexLocked, IndexMismatch, IndexMissing, IndexWriteFailed,
                     RagError)
from .files import atomic_write_text, fsync_path, sha256_file
from .lexical import Lexical
from .manifest import FORMAT_VERSION, REBUILD, Manifest
from .records import Chunk, Document
from .store import Batch, DocRow, Snapshot, Store, Writer, chunk_rows, document_filter
from .vectors import VectorStore

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["BM25_DIR", "CURRENT", "FORMAT_VERSION", "FolderStore", "Generation", "LOCK", "MANIFEST", "MARK",
           "check_encoder", "check_files", "live_generation", "open_live", "read_manifest"]

CURRENT = "CURRENT"
MANIFEST = "manifest.json"
DB = "chunks.sqlite"
CHUNK_VECTORS = "chunk_vectors.f32"
SENTENCE_VECTORS = "sentence_vectors.f32"
FAISS_FILE = "vectors.faiss"
BM25_DIR = "bm25"
LOCK = "build.lock"
MARK = ".rag-generation"  # written first into every generation a build makes: clean-up removes only those

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


def data_files(gen: Path) -> Iterator[Path]:
    """Every data file of a generation except the manifest, sorted."""
    for path in sorted(gen.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            yield path


def is_generation(path: Path) -> bool:
    """Whether `path` is a generation folder a build of ours made (its mark or our manifest is in it)."""
    if not path.name.startswith("gen-") or path.is_symlink() or not path.is_dir():
        return False
    if (path / MARK).is_file():
        return True
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(manifest, dict) and "format_version" in manifest and "files" in manifest


def check_utf8_path(root: Path) -> None:
    """SQLite opens files by UTF-8 names: an index folder whose path is not UTF-8 cannot hold an index."""
    try:
        str(root).encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(root).decode("utf-8", "backslashreplace")
        raise IndexFolderRefused(f"Index folder {shown} has a name that is not UTF-8, which SQLite cannot open. "
                                 "Rename it or pass another folder with --index DIR.") from None


def check_index_folder(root: Path) -> None:
    """Refuse to build into a folder that holds anything but an index of ours (hidden files aside)."""
    check_utf8_path(root)
    if not root.exists() and not root.is_symlink():
        return
    if not root.is_dir():
        raise IndexFolderRefused(f"Index path {root} is not a folder. Pass a folder with --index DIR.")
    try:
        names = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise IndexFolderRefused(f"Index folder {root} cannot be read ({exc.strerror or exc}). "
                                 "Fix its permissions or pass another folder with --index DIR.") from None
    if not names or CURRENT in names or LOCK in names or any(is_generation(root / n) for n in names):
        return
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    raise IndexFolderRefused(
        f"Index folder {root} is not empty and holds no index ({shown}); nothing was written to it. "
        "Pass a new or empty folder with --index DIR (or set RAG_INDEX)."
    )


def live_generation(root: Path) -> Path:
    """The folder of the live generation; IndexMissing when none was ever completed."""
    check_utf8_path(root)
    pointer = root / CURRENT
    if not pointer.exists() and not pointer.is_symlink():
        raise IndexMissing(f"No index yet in {root}. Build one with: rag index build --index {root}")
    if pointer.is_symlink() or not pointer.is_file():
        raise IndexCorrupt(pointer_problem(pointer))
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        raise IndexCorrupt(f"{pointer} is not a generation name (not text). {REBUILD}") from None
    except OSError as exc:
        raise IndexCorrupt(f"{pointer} cannot be read ({exc.strerror or exc}). Fix its permissions, or "
                           f"{REBUILD[0].lower()}{REBUILD[1:]}") from None
    gen = root / name
    if not name.startswith("gen-") or "/" in name or not gen.is_dir():
        raise IndexCorrupt(f"{pointer} names generation {name!r}, which does not exist. {REBUILD}")
    return gen


def pointer_problem(pointer: Path) -> str:
    """The message for a `CURRENT` that is not a plain file, which no build can replace."""
    kind = "a link" if pointer.is_symlink() else "a folder" if pointer.is_dir() else "a special file"
    return (f"{pointer} is {kind}, not the file naming the live generation. Move it out of the way "
            f"(mv {pointer} {pointer}.old), then rebuild with: rag index build --index {pointer.parent}")


def read_manifest(gen: Path) -> Manifest:
    path = gen / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise IndexCorrupt(f"Index manifest {path} is missing. {REBUILD}") from None
    except UnicodeDecodeError as exc:
        raise IndexCorrupt(f"Index manifest {path} does not parse ({exc}). {REBUILD}") from None
    except OSError as exc:
        raise IndexCorrupt(f"Index manifest {path} cannot be read ({exc.strerror or exc}). {REBUILD}") from None
    return Manifest.parse(text, str(path))


def check_encoder(where: str, manifest: Manifest, model_id: str | None, backend: str | None,
                  rebuild: str = "rag index build") -> None:
    """IndexMismatch unless the index was built with this model and this backend (None: not checked);
    `rebuild` is the command that rebuilds it."""
    if model_id is not None and manifest.model != model_id:
        raise IndexMismatch(
            f"Index in {where} was built with model {manifest.model!r} but the settings use {model_id!r}. "
            f"Rebuild it with: {rebuild} (or set embedding.model back)."
        )
    if backend is not None and manifest.backend != backend:
        raise IndexMismatch(
            f"Index in {where} was built with embedding backend {manifest.backend!r} but the settings use "
            f"{backend!r}; its vectors would not match the questions'. Rebuild it with: {rebuild} "
            f"(or set embedding.backend = {manifest.backend!r})."
        )


def check_files(gen: Path, manifest: Manifest) -> None:
    """Every data file exists with the size and sha256 the manifest records, and no other file is there."""
    present = {p.relative_to(gen).as_posix() for p in data_files(gen)}
    for name, info in manifest.files.items():
        path = gen / name
        if name not in present:
            raise IndexCorrupt(f"Index file {path} is missing. {REBUILD}")
        size = path.stat().st_size
        if size != info.get("bytes"):
            raise IndexCorrupt(f"Index file {path} has {size} bytes, the manifest says {info.get('bytes')} "
                               f"(truncated or overwritten). {REBUILD}")
        try:
            digest = sha256_file(path)
        except OSError as exc:
            raise IndexCorrupt(f"Index file {path} cannot be read ({exc.strerror or exc}). {REBUILD}") from None
        if digest != info.get("sha256"):
            raise IndexCorrupt(f"Index file {path} does not match its checksum (corrupted). {REBUILD}")
    extra = present - set(manifest.files)
    if extra:
        raise IndexCorrupt(f"Index folder {gen} holds files its manifest does not list: "
                           f"{', '.join(sorted(extra))}. {REBUILD}")


def _vectors(path: Path, rows: int, dim: int) -> np.ndarray:
    if rows == 0:
        return np.zeros((0, dim), dtype=np.float32)
    expected = rows * dim * 4
    if path.stat().st_size != expected:
        raise IndexCorrupt(f"{path} holds {path.stat().st_size} bytes, {rows} vectors of {dim} need {expected}. "
                           f"{REBUILD}")
    return np.memmap(path, dtype=np.float32, mode="r", shape=(rows, dim))


def doc_from_row(r: sqlite3.Row | tuple) -> DocRow:
    """A DocRow from a `docs` row (both stores keep these columns in this order)."""
    row, doc_id, title, source, start, end, spans, metadata, date, hash_, clo, chi, slo, shi = r
    doc = Document(doc_id, title, source, start, end, tuple(tuple(s) for s in json.loads(spans)),
                   json.loads(metadata))
    return DocRow(row, doc, date, hash_, (clo, chi), (slo, shi))


def doc_columns(d: DocRow) -> tuple:
    """The `docs` row of a DocRow (the inverse of doc_from_row)."""
    doc = d.document
    return (d.row, doc.doc_id, doc.title, doc.source, doc.start, doc.end, json.dumps(doc.spans),
            json.dumps(dict(doc.metadata), ensure_ascii=False), d.date, d.hash, d.chunks[0], d.chunks[1],
            d.sentences[0], d.sentences[1])


class Generation(Snapshot):
    """One verified, read-only folder generation: metadata, vectors, FAISS and BM25."""

    def __init__(self, gen: Path, manifest: Manifest, nprobe: int = 48, ef_search: int = 128) -> None:
        self.path = gen
        self.name = gen.name
        self.manifest = manifest
        counts = manifest.counts
        dim = manifest.dimension
        self.chunk_matrix = _vectors(gen / CHUNK_VECTORS, counts.chunks, dim)
        self.sentence_matrix = _vectors(gen / SENTENCE_VECTORS, counts.sentences, dim)
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
             backend: str | None = None) -> "Generation":
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

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def open_live(root: Path, model_id: str | None = None, nprobe: int = 48, ef_search: int = 128,
              backend: str | None = None) -> Generation:
    """The verified live generation of the folder `root`; refuses one built with another model than
    `model_id` or another embedding backend than `backend`."""
    return Generation.open(live_generation(root), model_id, nprobe, ef_search, backend)


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
                self.db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + SCHEMA)
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

    def verify(self) -> Generation:
        try:
            check = Generation.open(self.gen)
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

    def __init__(self, settings: "Settings") -> None:
        self.root = Path(settings.paths.index)
        self.settings = settings

    @property
    def where(self) -> str:
        return str(self.root)

    @property
    def rebuild(self) -> str:
        return f"rag index build --index {self.root}"

    def live_name(self) -> str:
        return live_generation(self.root).name

    def live_manifest(self) -> tuple[str, Manifest]:
        gen = live_generation(self.root)
        return gen.name, read_manifest(gen)

    def open_live(self, model_id: str | None = None, backend: str | None = None) -> Generation:
        s = self.settings.store
        return open_live(self.root, model_id, s.nprobe, s.ef_search, backend)

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
