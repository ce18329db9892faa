"""Building an index generation: stream articles, reuse unchanged vectors, embed the rest, write beside the
live index, verify, then swap `CURRENT`."""

from __future__ import annotations

import bisect
import fcntl
import hashlib
import json
import os
import re
import shutil
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from . import __version__
from .chunking import Chunker
from .corpus import Article, corpus_files, iter_articles
from .dates import normalise_date
from .embedding import Embedder, Passage, Tokens, load_embedder
from .errors import CorpusEmpty, IndexCorrupt, IndexLocked, IndexWriteFailed, RagError
from .files import atomic_write_text, fsync_path, sha256_file
from .index import (BM25_DIR, CHUNK_VECTORS, CURRENT, DB, FAISS_FILE, FORMAT_VERSION, INDEXES, LOCK, MANIFEST, MARK,
                    SCHEMA, SENTENCE_VECTORS, DocRow, Generation, check_index_folder, data_files, index_backend,
                    is_generation, live_generation, pointer_problem)
from .lexical import Lexical
from .records import Chunk
from .sentences import sentence_spans
from .settings import Settings
from .sources import SourceFile
from .store import VectorStore

Progress = Callable[[str, int, int], None]  # stage, done, total
_EMBED_BATCH = 512


@dataclass(frozen=True)
class BuildReport:
    """What a build did."""

    index: str
    documents: int
    chunks: int
    sentences: int
    added: int
    changed: int
    removed: int
    unchanged: int
    chunks_embedded: int
    chunks_reused: int
    full: bool
    full_reason: str | None
    seconds: float
    warnings: tuple[str, ...] = field(default_factory=tuple)
    tokens_embedded: int = 0  # word pieces the encoder read (special tokens not counted)
    sentences_encoded: int = 0  # sentences encoded on their own (all, unless pooled from the chunk pass)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["warnings"] = list(self.warnings)
        return data


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


def _content_hash(article: Article) -> str:
    doc, text = article.document, article.source_text
    blob = json.dumps([doc.title, text[doc.start:doc.end], [(s - doc.start, e - doc.start) for s, e in doc.spans]])
    return hashlib.sha256(blob.encode()).hexdigest()


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


class _EmbedQueue:
    """Chunks of whole articles waiting to be encoded, with their sentences, flushed to their rows in large
    batches. Sentence vectors are either pooled from the chunk pass (each word piece encoded once; a sentence
    split between two chunks pools its pieces from both) or encoded on their own, in the same batches."""

    def __init__(self, embedder: Embedder, chunk_out: _VectorFile, sent_out: _VectorFile, pooled: bool) -> None:
        self.embedder, self.chunk_out, self.sent_out, self.pooled = embedder, chunk_out, sent_out, pooled
        self.passages: list[Passage] = []
        self.chunk_rows: list[int] = []
        self.sentences: list[Passage] = []
        self.sent_rows: list[int] = []
        self.owners: list[int] = []  # pooled: for each span of each passage, its sentence (index into sentences)
        self.embedded = self.tokens = self.apart = 0

    def add(self, chunk_row: int, pieces: list[tuple[Chunk, Tokens]], sent_row: int,
            sentences: list[Passage]) -> None:
        """One article's chunks (rows from `chunk_row`) and sentences (rows from `sent_row`, in source order)."""
        base = len(self.sentences)
        self.sent_rows += range(sent_row, sent_row + len(sentences))
        self.sentences += sentences
        starts, ends = [p.start for p in sentences], [p.start + len(p.text) for p in sentences]
        for i, (chunk, tokens) in enumerate(pieces):
            spans: tuple[tuple[int, int], ...] = ()
            if self.pooled:
                inside = range(bisect.bisect_right(ends, chunk.start), bisect.bisect_left(starts, chunk.end))
                spans = tuple((max(starts[j], chunk.start), min(ends[j], chunk.end)) for j in inside)
                self.owners += [base + j for j in inside]
            self.passages.append(Passage(chunk.start, chunk.text, tokens, spans))
            self.chunk_rows.append(chunk_row + i)
        if len(self.passages) >= _EMBED_BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.passages and not self.sentences:
            return
        n = len(self.passages)
        apart = [] if self.pooled else list(range(len(self.sentences)))
        pooled = self.embedder.encode_passages(self.passages + [self.sentences[i] for i in apart])
        _write_rows(self.chunk_out, self.chunk_rows, pooled.vectors[:n])
        vectors = pooled.vectors[n:]
        if self.pooled:
            dim = self.embedder.dimension
            sums = np.zeros((len(self.sentences), dim), dtype=np.float32)
            counts = np.zeros(len(self.sentences), dtype=np.int64)
            if self.owners:
                owners = np.asarray(self.owners)
                np.add.at(sums, owners, np.concatenate(pooled.span_sums).reshape(-1, dim))
                np.add.at(counts, owners, np.concatenate(pooled.span_tokens))
            # a sentence with no word piece in any chunk (only characters the tokenizer drops): on its own
            apart = [int(i) for i in np.flatnonzero(counts == 0)]
            if apart:
                sums[apart] = self.embedder.encode_passages([self.sentences[i] for i in apart]).vectors
            vectors = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
        _write_rows(self.sent_out, self.sent_rows, vectors)
        self.embedded += n
        self.tokens += sum(len(p.tokens) for p in self.passages) + sum(len(self.sentences[i].tokens) for i in apart)
        self.apart += len(apart)
        self.passages, self.chunk_rows, self.sentences, self.sent_rows, self.owners = [], [], [], [], []


def _write_rows(out: _VectorFile, rows: list[int], vectors: np.ndarray) -> None:
    """Write each vector at its row; rows arrive in runs, and each contiguous run is written at once."""
    if not rows:
        return
    at = np.asarray(rows)
    breaks = np.flatnonzero(np.diff(at) != 1) + 1
    for part_rows, part in zip(np.split(at, breaks), np.split(vectors, breaks)):
        out.write(int(part_rows[0]), part)


def _previous(root: Path, settings_hash: str, model_id: str, backend: str,
              full: bool) -> tuple[Generation | None, str | None]:
    """The live generation to reuse vectors from, or None with the reason for a full rebuild."""
    if full:
        return None, "--full was asked for"
    try:
        gen = live_generation(root)
    except RagError:
        return None, "no previous index"
    try:
        previous = Generation.open(gen)
    except RagError as exc:
        return None, f"the previous index is unusable ({exc})"
    if previous.manifest.get("model") != model_id:
        return None, f"the embedding model changed ({previous.manifest.get('model')} -> {model_id})"
    if index_backend(previous.manifest) != backend:
        return None, f"the embedding backend changed ({index_backend(previous.manifest)} -> {backend})"
    if previous.manifest.get("settings_hash") != settings_hash:
        return None, "the chunking settings changed"
    return previous, None


_POINTER_TMP = re.compile(rf"\.{CURRENT}\.\d+\.tmp")  # what atomic_write_text leaves when killed


def _clean(root: Path, keep: set[str]) -> None:
    """Remove the generations and temporary files that earlier builds left, except `keep`; nothing else."""
    for path in root.iterdir():
        if path.name not in keep and is_generation(path):
            shutil.rmtree(path, ignore_errors=True)
        elif _POINTER_TMP.fullmatch(path.name) and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)


def _discard(root: Path, gen: Path) -> None:
    """Remove a generation that failed, unless `CURRENT` already names it (the swap happened)."""
    try:
        live = (root / CURRENT).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        live = ""
    if live != gen.name:
        shutil.rmtree(gen, ignore_errors=True)


def _write_failed(gen: Path, exc: BaseException) -> IndexWriteFailed:
    if isinstance(exc, OSError):
        detail = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    else:
        detail = str(exc)
    return IndexWriteFailed(f"Could not write the new index in {gen} ({detail}). Free some disk space or fix the "
                            "folder's permissions, then run: rag index build. The live index is unchanged.")


def build_index(settings: Settings, full: bool = False, progress: Progress | None = None,
                warn: Callable[[str], None] | None = None, embedder: Embedder | None = None) -> BuildReport:
    """Build (incrementally unless `full`) an index of `settings.paths.corpus` into `settings.paths.index`."""
    began = time.monotonic()
    root, corpus = settings.paths.index, settings.paths.corpus
    warnings: list[str] = []

    def _warn(message: str) -> None:
        warnings.append(message)
        if warn:
            warn(message)

    # refused before anything is touched: a missing corpus, a folder that is not ours, an unusable CURRENT
    files = corpus_files(corpus, _warn, options=settings.corpus, exclude=[root])
    check_index_folder(root)
    pointer = root / CURRENT
    if pointer.is_symlink() or pointer.exists() and not pointer.is_file():
        raise IndexCorrupt(pointer_problem(pointer))
    with build_lock(root):
        try:
            live_name = live_generation(root).name
        except RagError:
            live_name = ""
        _clean(root, {live_name})
        embedder = embedder or load_embedder(settings.embedding, progress)
        settings_hash = settings.index_hash(embedder.model_id)
        previous, full_reason = _previous(root, settings_hash, embedder.model_id, embedder.backend, full)
        stamp = datetime.now(timezone.utc)
        gen = root / f"gen-{stamp:%Y%m%dT%H%M%S%fZ}-{settings_hash[:8]}"
        try:
            gen.mkdir()
            (gen / MARK).write_text(f"rag-news {__version__}\n", encoding="utf-8")
            report = _write_generation(gen, settings, embedder, settings_hash, previous, files, progress, _warn)
            atomic_write_text(root / CURRENT, gen.name + "\n")
        except (OSError, sqlite3.Error) as exc:
            _discard(root, gen)
            raise _write_failed(gen, exc) from None
        except BaseException:
            _discard(root, gen)
            raise
        finally:
            if previous is not None:
                previous.close()
        _clean(root, {gen.name, live_name})
        return BuildReport(index=str(gen), full=previous is None, full_reason=full_reason,
                           seconds=round(time.monotonic() - began, 3), warnings=tuple(warnings), **report)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # gone since the walk: the reader says so
        return 0


def _write_generation(gen: Path, settings: Settings, embedder: Embedder, settings_hash: str,
                      previous: Generation | None, files: list[Path], progress: Progress | None,
                      warn: Callable[[str], None]) -> dict[str, int]:
    dim = embedder.dimension
    chunker = Chunker(embedder.tokenize, settings.chunking.chunk_tokens, settings.chunking.overlap_tokens,
                      embedder.max_tokens)
    db = sqlite3.connect(gen / DB)
    db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + SCHEMA)
    chunk_file = _VectorFile(gen / CHUNK_VECTORS, dim)
    sent_file = _VectorFile(gen / SENTENCE_VECTORS, dim)
    queue = _EmbedQueue(embedder, chunk_file, sent_file, settings.embedding.sentence_vectors == "pooled")
    n_chunks = n_sents = n_docs = reused = 0
    added = changed = unchanged = 0
    seen: set[str] = set()
    documents: dict[str, dict[str, Any]] = {}
    # progress in bytes of the corpus read, so one big archive moves the bar as smoothly as many small files
    sizes = {f.relative_to(settings.paths.corpus).as_posix(): _size(f) for f in files}
    total_bytes, done_bytes, current = max(1, sum(sizes.values())), 0, None

    sources: dict[str, SourceFile] = {}  # fingerprints of exactly the bytes read, filled while reading
    for article in iter_articles(settings.paths.corpus, warn, settings.chunking.min_title_words, files,
                                 options=settings.corpus, sources=sources):
        doc, text = article.document, article.source_text
        if doc.source != current:
            done_bytes += sizes.get(current, 0) if current else 0
            current = doc.source
        if progress:
            progress("documents", min(total_bytes, done_bytes + int(sizes.get(doc.source, 0) * article.position)),
                     total_bytes)
        digest = _content_hash(article)
        old: DocRow | None = previous.document(doc.doc_id) if previous else None
        seen.add(doc.doc_id)
        chunk_lo, sent_lo = n_chunks, n_sents
        if old is not None and old.hash == digest:
            unchanged += 1
            shift = doc.start - old.document.start
            assert previous is not None
            olo, ohi = old.chunks
            rows = previous.chunks(list(range(olo, ohi)))
            db.executemany("INSERT INTO chunks VALUES (?,?,?,?,?,?)", [
                (n_chunks + i, rows[olo + i][0].chunk_id, n_docs, rows[olo + i][0].start + shift,
                 rows[olo + i][0].end + shift, rows[olo + i][0].text) for i in range(ohi - olo)])
            chunk_file.write(n_chunks, previous.chunk_vectors[olo:ohi])
            n_chunks += ohi - olo
            reused += ohi - olo
            slo, shi = old.sentences
            sents = previous.sentences_within(old.row, 0, 1 << 62)
            db.executemany("INSERT INTO sentences VALUES (?,?,?,?)", [
                (n_sents + i, n_docs, s + shift, e + shift) for i, (_r, s, e) in enumerate(sents)])
            sent_file.write(n_sents, previous.sentence_vectors[slo:shi])
            n_sents += shi - slo
        else:
            if old is None:
                added += 1
            else:
                changed += 1
            span_tokens = [embedder.tokenize(text[s:e]).shifted(s) for s, e in doc.spans]  # once per text
            pieces = chunker.chunk_tokens(doc, text, span_tokens)
            db.executemany("INSERT INTO chunks VALUES (?,?,?,?,?,?)", [
                (n_chunks + i, c.chunk_id, n_docs, c.start, c.end, c.text) for i, (c, _t) in enumerate(pieces)])
            sentences = [Passage(s, text[s:e], tokens.between(s, e))
                         for (a, b), tokens in zip(doc.spans, span_tokens) for s, e in sentence_spans(text, a, b)]
            db.executemany("INSERT INTO sentences VALUES (?,?,?,?)", [
                (n_sents + i, n_docs, p.start, p.start + len(p.text)) for i, p in enumerate(sentences)])
            queue.add(n_chunks, pieces, n_sents, sentences)
            n_chunks += len(pieces)
            n_sents += len(sentences)
        db.execute("INSERT INTO docs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", (
            n_docs, doc.doc_id, doc.title, doc.source, doc.start, doc.end, json.dumps(doc.spans),
            json.dumps(dict(doc.metadata), ensure_ascii=False), normalise_date(doc.metadata.get("date")),
            digest, chunk_lo, n_chunks, sent_lo, n_sents))
        documents[doc.doc_id] = {"hash": digest, "chunks": [chunk_lo, n_chunks]}
        n_docs += 1
    queue.flush()
    if progress:
        progress("documents", total_bytes, total_bytes)
    if n_docs == 0:
        db.close()
        chunk_file.close(0)
        sent_file.close(0)
        raise CorpusEmpty(f"Corpus folder {settings.paths.corpus} holds no articles that could be indexed. "
                          "Add .txt, .md, .jsonl or .html files to it; the previous index, if any, is kept.")
    removed = len(set(previous.manifest.get("documents", {})) - seen) if previous else 0
    db.executescript(INDEXES)
    db.commit()
    db.close()
    chunk_file.close(n_chunks)
    sent_file.close(n_sents)

    if progress:
        progress("vectors", 0, 1)
    vectors = np.memmap(gen / CHUNK_VECTORS, dtype=np.float32, mode="r", shape=(n_chunks, dim))
    store = VectorStore.build(vectors, settings.store.type, settings.store.nlist, settings.store.hnsw_m)
    store.save(gen / FAISS_FILE)
    del vectors
    lexical_db = sqlite3.connect(gen / DB)
    Lexical.build(text for (text,) in lexical_db.execute("SELECT text FROM chunks ORDER BY row")).save(gen / BM25_DIR)
    lexical_db.close()
    if progress:
        progress("vectors", 1, 1)

    for path in data_files(gen):
        fsync_path(path)
    manifest = {
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "model": embedder.model_id,
        "backend": embedder.backend,
        "sentence_vectors": settings.embedding.sentence_vectors,
        "dimension": dim,
        "max_seq_length": embedder.max_tokens + 2,
        "chunking": asdict(settings.chunking),
        "store": {"type": settings.store.type, "nlist": settings.store.nlist, "hnsw_m": settings.store.hnsw_m},
        "bm25": {"library": "bm25s", "stemmer": "english", "stopwords": "rag.lexical.STOPWORDS"},
        "settings_hash": settings_hash,
        "corpus": os.fsencode(settings.paths.corpus.resolve()).decode("utf-8", "replace"),  # informational
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "counts": {"documents": n_docs, "chunks": n_chunks, "sentences": n_sents},
        "sources": {rel: info.to_dict() for rel, info in sorted(sources.items())},
        "documents": documents,
        "files": {p.relative_to(gen).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
                  for p in data_files(gen)},
    }
    atomic_write_text(gen / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1))
    fsync_path(gen)
    try:
        check = Generation.open(gen)  # verify what was written before it can go live
    except RagError as exc:
        raise IndexWriteFailed(f"The new index in {gen} did not read back as written ({exc.__class__.__name__}), so "
                               "it was not swapped in. Check the free disk space, then run: rag index build. The "
                               "live index is unchanged.") from None
    if n_chunks:
        scores, ids = check.store.search(check.chunk_vectors[:1], 1)
        if ids[0][0] < 0:
            raise RagError(f"The new index in {gen} failed its test query; the live index is unchanged.")
    check.close()
    return {"documents": n_docs, "chunks": n_chunks, "sentences": n_sents, "added": added, "changed": changed,
            "removed": removed, "unchanged": unchanged, "chunks_embedded": queue.embedded,
            "chunks_reused": reused, "tokens_embedded": queue.tokens, "sentences_encoded": queue.apart}
