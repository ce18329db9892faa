"""The index folder: generations, `CURRENT`, the manifest with checksums, and loading a live index.

    index/
      CURRENT            name of the live generation, replaced atomically after a build completes
      gen-<time>-<id>/   manifest.json, chunks.sqlite, chunk_vectors.f32, sentence_vectors.f32,
                         vectors.faiss, bm25/
      build.lock         held by the one build that may run
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import IndexCorrupt, IndexFolderRefused, IndexMismatch, IndexMissing
from .files import sha256_file
from .lexical import Lexical
from .records import Chunk, Document
from .store import VectorStore

FORMAT_VERSION = 1
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

REBUILD = "Rebuild it with: rag index build --full"


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


def read_manifest(gen: Path) -> dict[str, Any]:
    path = gen / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexCorrupt(f"Index manifest {path} is missing. {REBUILD}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IndexCorrupt(f"Index manifest {path} does not parse ({exc}). {REBUILD}") from None
    except RecursionError:
        raise IndexCorrupt(f"Index manifest {path} does not parse (nested too deeply). {REBUILD}") from None
    except OSError as exc:
        raise IndexCorrupt(f"Index manifest {path} cannot be read ({exc.strerror or exc}). {REBUILD}") from None
    if not isinstance(manifest, dict) or "files" not in manifest or "counts" not in manifest:
        raise IndexCorrupt(f"Index manifest {path} lacks its files or counts. {REBUILD}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexMismatch(f"Index in {gen.parent} has format {manifest.get('format_version')!r}; this version "
                            f"reads format {FORMAT_VERSION}. {REBUILD}")
    problem = _manifest_problem(manifest)
    if problem:
        raise IndexCorrupt(f"Index manifest {path} is malformed: {problem}. {REBUILD}")
    return manifest


def index_backend(manifest: dict[str, Any]) -> str:
    """The embedding backend that built an index; indexes from before backends were recorded used torch."""
    return str(manifest.get("backend", "torch"))


def check_encoder(gen: Path, manifest: dict[str, Any], model_id: str | None, backend: str | None) -> None:
    """IndexMismatch unless the index was built with this model and this backend (None: not checked)."""
    if model_id is not None and manifest.get("model") != model_id:
        raise IndexMismatch(
            f"Index in {gen.parent} was built with model {manifest.get('model')!r} but the settings use "
            f"{model_id!r}. Rebuild it with: rag index build --index {gen.parent} (or set embedding.model back)."
        )
    if backend is not None and index_backend(manifest) != backend:
        raise IndexMismatch(
            f"Index in {gen.parent} was built with embedding backend {index_backend(manifest)!r} but the settings "
            f"use {backend!r}; its vectors would not match the questions'. Rebuild it with: rag index build "
            f"--index {gen.parent} (or set embedding.backend = {index_backend(manifest)!r})."
        )


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _manifest_problem(manifest: dict[str, Any]) -> str | None:
    """What is wrong with the shape of a parsed manifest, or None: readers index into it without checks."""
    files, counts = manifest["files"], manifest["counts"]
    if not isinstance(files, dict) or not all(
        isinstance(info, dict) and _count(info.get("bytes")) and isinstance(info.get("sha256"), str)
        for info in files.values()
    ):
        return "'files' must map each file to its bytes and sha256"
    if not isinstance(counts, dict) or not all(_count(counts.get(k)) for k in ("documents", "chunks", "sentences")):
        return "'counts' must hold whole numbers of documents, chunks and sentences"
    if not _count(manifest.get("dimension")) or not manifest["dimension"]:
        return "'dimension' must be a positive whole number"
    if not isinstance(manifest.get("model"), str):
        return "'model' must name the embedding model"
    if not isinstance(manifest.get("backend", ""), str):
        return "'backend' must name the embedding backend"
    sources = manifest.get("sources", {})
    if not isinstance(sources, dict) or not all(
        isinstance(f, dict) and {"bytes", "mtime_ns", "sha256"} <= set(f) for f in sources.values()
    ):
        return "'sources' must map each corpus file to its bytes, mtime_ns and sha256"
    return None


def check_files(gen: Path, manifest: dict[str, Any]) -> None:
    """Every data file exists with the size and sha256 the manifest records, and no other file is there."""
    recorded: dict[str, dict[str, Any]] = manifest["files"]
    present = {p.relative_to(gen).as_posix() for p in data_files(gen)}
    for name, info in recorded.items():
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
    extra = present - set(recorded)
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


@dataclass(frozen=True)
class DocRow:
    row: int
    document: Document
    date: str | None
    hash: str
    chunks: tuple[int, int]
    sentences: tuple[int, int]


def _doc_from_row(r: sqlite3.Row | tuple) -> DocRow:
    row, doc_id, title, source, start, end, spans, metadata, date, hash_, clo, chi, slo, shi = r
    doc = Document(doc_id, title, source, start, end, tuple(tuple(s) for s in json.loads(spans)),
                   json.loads(metadata))
    return DocRow(row, doc, date, hash_, (clo, chi), (slo, shi))


class Generation:
    """One verified, read-only index generation: metadata, vectors, FAISS and BM25."""

    def __init__(self, gen: Path, manifest: dict[str, Any], nprobe: int = 48, ef_search: int = 128) -> None:
        self.path = gen
        self.manifest = manifest
        counts = manifest["counts"]
        dim = int(manifest["dimension"])
        self.chunk_vectors = _vectors(gen / CHUNK_VECTORS, counts["chunks"], dim)
        self.sentence_vectors = _vectors(gen / SENTENCE_VECTORS, counts["sentences"], dim)
        self._local = threading.local()
        n_chunks = self._db().execute("SELECT count(*) FROM chunks").fetchone()[0]
        n_docs = self._db().execute("SELECT count(*) FROM docs").fetchone()[0]
        if (n_chunks, n_docs) != (counts["chunks"], counts["documents"]):
            raise IndexCorrupt(f"Index in {gen} holds {n_chunks} chunks and {n_docs} documents, the manifest says "
                               f"{counts['chunks']} and {counts['documents']}. {REBUILD}")
        self.store = VectorStore.load(gen / FAISS_FILE, nprobe, ef_search)
        if self.store.size != n_chunks or self.store.dimension != dim:
            raise IndexCorrupt(f"Vector index in {gen} holds {self.store.size} vectors of dimension "
                               f"{self.store.dimension}; the metadata has {n_chunks} chunks of dimension {dim}. "
                               f"{REBUILD}")
        self.lexical = Lexical.load(gen / BM25_DIR)

    @classmethod
    def open(cls, gen: Path, model_id: str | None = None, nprobe: int = 48, ef_search: int = 128,
             backend: str | None = None) -> "Generation":
        """Verify a generation (manifest, model and backend, checksums, counts) and open it."""
        manifest = read_manifest(gen)
        check_encoder(gen, manifest, model_id, backend)
        check_files(gen, manifest)
        try:
            return cls(gen, manifest, nprobe, ef_search)
        except sqlite3.DatabaseError as exc:
            raise IndexCorrupt(f"Index metadata in {gen / DB} cannot be read ({exc}). {REBUILD}") from None
        except (ValueError, KeyError, TypeError, AttributeError, OSError) as exc:  # BM25 files bm25s cannot read
            raise IndexCorrupt(f"Index files in {gen} cannot be read ({type(exc).__name__}: {exc}). "
                               f"{REBUILD}") from None

    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            uri = f"file:{(self.path / DB).as_posix()}?mode=ro&immutable=1"
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._local.conn = conn
        return conn

    @property
    def model(self) -> str:
        return str(self.manifest["model"])

    def documents(self) -> Iterator[DocRow]:
        for r in self._db().execute("SELECT * FROM docs ORDER BY row"):
            yield _doc_from_row(r)

    def document(self, doc_id: str) -> DocRow | None:
        r = self._db().execute("SELECT * FROM docs WHERE doc_id = ?", (doc_id,)).fetchone()
        return _doc_from_row(r) if r else None

    def doc_at(self, row: int) -> DocRow:
        return _doc_from_row(self._db().execute("SELECT * FROM docs WHERE row = ?", (row,)).fetchone())

    def chunks(self, rows: list[int]) -> dict[int, tuple[Chunk, int]]:
        """Chunk row -> (chunk, doc row)."""
        if not rows:
            return {}
        marks = ",".join("?" * len(rows))
        out = {}
        for row, chunk_id, doc_row, start, end, text in self._db().execute(
            f"SELECT c.row, c.chunk_id, c.doc_row, c.start, c.end, c.text FROM chunks c WHERE c.row IN ({marks})",
            rows,
        ):
            doc_id = chunk_id.rsplit("#", 1)[0]
            out[row] = (Chunk(chunk_id, doc_id, start, end, text), doc_row)
        return out

    def all_chunks(self) -> Iterator[tuple[int, str]]:
        yield from self._db().execute("SELECT row, text FROM chunks ORDER BY row")

    def chunk_rows(self, doc_row: int) -> tuple[int, int]:
        lo, hi = self._db().execute("SELECT chunk_lo, chunk_hi FROM docs WHERE row = ?", (doc_row,)).fetchone()
        return lo, hi

    def sentences_within(self, doc_row: int, start: int, end: int) -> list[tuple[int, int, int]]:
        """(sentence row, start, end) of the sentences of a document lying inside [start, end)."""
        return list(self._db().execute(
            "SELECT row, start, end FROM sentences WHERE doc_row = ? AND start >= ? AND end <= ? ORDER BY start",
            (doc_row, start, end),
        ))

    def allowed_rows(self, doc_ids: list[str] | None, since: str | None, until: str | None) -> np.ndarray | None:
        """Chunk rows of the documents passing the filters, or None when nothing is filtered."""
        if not doc_ids and not since and not until:
            return None
        clauses, args = [], []
        if doc_ids:
            clauses.append(f"doc_id IN ({','.join('?' * len(doc_ids))})")
            args += list(doc_ids)
        if since:
            clauses.append("date IS NOT NULL AND date >= ?")
            args.append(since)
        if until:
            clauses.append("date IS NOT NULL AND substr(date, 1, ?) <= ?")
            args += [len(until), until]
        ranges = self._db().execute(f"SELECT chunk_lo, chunk_hi FROM docs WHERE {' AND '.join(clauses)}", args)
        parts = [np.arange(lo, hi, dtype=np.int64) for lo, hi in ranges]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def open_live(root: Path, model_id: str | None = None, nprobe: int = 48, ef_search: int = 128,
              backend: str | None = None) -> Generation:
    """The verified live generation; refuses one built with another model than `model_id` or another
    embedding backend than `backend`."""
    return Generation.open(live_generation(root), model_id, nprobe, ef_search, backend)
