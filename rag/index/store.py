"""The store interface: where index generations live, whichever backend holds them.

Retrieval, answers and builds talk to these three interfaces only; `stores.open_store` picks the backend named
by `store.backend`:
- "folder" (`folder`): an index folder of SQLite, float32 matrices, FAISS and bm25s files, one process at a time
  writing and any number reading;
- "postgres" (`postgres`): a PostgreSQL database with pgvector, served to many processes and machines.

A `Snapshot` is one consistent, read-only view of one complete generation; a query uses one snapshot throughout.
A `Writer` makes a complete new generation (documents carried from the live one, new and changed ones added,
removed ones simply not written), verifies it and makes it live in one atomic step; until then readers keep the
old one. Rows are dense numbers from 0 in each generation (documents, chunks and sentences), assigned by the
build, so the same corpus gives the same rows on every backend.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import numpy as np

from ..ingest.attribution import Statement
from ..records import AttributedStatement, Chunk, Document, Speaker
from .manifest import Manifest
from .statements import matching_speakers, statement_from_row

if TYPE_CHECKING:
    from ..settings import Settings

# An empty filter result: no chunk may be searched.
NOTHING = np.zeros(0, dtype=np.int64)


def document_filter(doc_ids: list[str] | None, since: str | None, until: str | None, mark: str, ids_clause: str,
                    ids_args: list[Any]) -> tuple[str, list[Any]]:
    """The SQL condition (and its arguments) on a docs table of (doc_id, date) that the filters select, for a
    dialect whose parameter mark is `mark`; `ids_clause` with `ids_args` tests doc_id against `doc_ids` in that
    dialect. A date passes `until` when its prefix of the same length is not later ("2026-01" takes all of
    January); an undated document passes neither date filter."""
    clauses, args = ([ids_clause], list(ids_args)) if doc_ids else ([], [])
    if since:
        clauses.append(f"date IS NOT NULL AND date >= {mark}")
        args.append(since)
    if until:
        clauses.append(f"date IS NOT NULL AND substr(date, 1, {mark}) <= {mark}")
        args += [len(until), until]
    return " AND ".join(clauses), args


def chunk_rows(ranges: Iterable[tuple[int, int]]) -> np.ndarray:
    """The chunk rows of documents' [lo, hi) chunk ranges, in one array."""
    parts = [np.arange(lo, hi, dtype=np.int64) for lo, hi in ranges]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class DocRow:
    """A document as a generation stores it: its row, content hash, and the rows of its chunks and sentences."""

    row: int
    document: Document
    date: str | None
    hash: str
    chunks: tuple[int, int]
    sentences: tuple[int, int]


@dataclass(frozen=True)
class StoredDocument:
    """One document to write: its row record, its chunks (rows `doc.chunks[0]` on) and sentence spans (rows
    `doc.sentences[0]` on), in order."""

    doc: DocRow
    chunks: tuple[Chunk, ...]
    sentences: tuple[tuple[int, int], ...]
    statements: tuple[Statement, ...] = ()  # who said what, in text order (`rag.index.statements`)


@dataclass(frozen=True)
class Batch:
    """Documents to write with their vectors: `chunk_vectors` and `sentence_vectors` follow the documents'
    chunks and sentences in order."""

    documents: tuple[StoredDocument, ...]
    chunk_vectors: np.ndarray
    sentence_vectors: np.ndarray


class Snapshot(ABC):
    """One complete generation, read-only; safe to share between threads."""

    name: str  # the generation's name, unique within its store
    manifest: Manifest

    @property
    @abstractmethod
    def where(self) -> str:
        """Where the generation lives, for messages (a folder, a database and schema)."""

    @abstractmethod
    def documents(self) -> Iterator[DocRow]:
        """Every document, in row order."""

    @abstractmethod
    def document(self, doc_id: str) -> DocRow | None: ...

    def documents_named(self, doc_ids: list[str]) -> dict[str, DocRow]:
        """Document id -> DocRow, for the ids the generation holds, many at once."""
        found = {doc_id: self.document(doc_id) for doc_id in dict.fromkeys(doc_ids)}
        return {doc_id: doc for doc_id, doc in found.items() if doc is not None}

    @abstractmethod
    def doc_at(self, row: int) -> DocRow: ...

    def docs_at(self, rows: list[int]) -> dict[int, DocRow]:
        """Document row -> DocRow, for many rows at once."""
        return {row: self.doc_at(row) for row in dict.fromkeys(rows)}

    @abstractmethod
    def chunks(self, rows: list[int]) -> dict[int, tuple[Chunk, int]]:
        """Chunk row -> (chunk, document row), for the rows that exist."""

    @abstractmethod
    def chunk_texts(self) -> Iterator[tuple[int, str]]:
        """(row, text) of every chunk, in row order."""

    @abstractmethod
    def sentences_within(self, doc_row: int, start: int, end: int) -> list[tuple[int, int, int]]:
        """(sentence row, start, end) of the sentences of a document lying inside [start, end), in order."""

    def sentences_in(self, spans: list[tuple[str, int, int]]) -> list[list[tuple[int, int, int]]]:
        """For each (doc id, start, end): (sentence row, start, end) of the document's sentences inside it, in
        order (none for an unknown document). One call for many passages."""
        out = []
        for doc_id, start, end in spans:
            doc = self.document(doc_id)
            out.append(self.sentences_within(doc.row, start, end) if doc is not None else [])
        return out

    @abstractmethod
    def chunk_vectors(self, lo: int, hi: int) -> np.ndarray:
        """The vectors of chunk rows lo..hi-1."""

    @abstractmethod
    def sentence_vectors(self, rows: np.ndarray | list[int] | slice) -> np.ndarray:
        """The vectors of the given sentence rows (a slice: a range of rows)."""

    @abstractmethod
    def allowed_rows(self, doc_ids: list[str] | None, since: str | None, until: str | None) -> np.ndarray | None:
        """Chunk rows of the documents passing the filters, or None when nothing is filtered."""

    @abstractmethod
    def dense(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, chunk rows) of the `k` chunks nearest `vector` by inner product, best first."""

    @abstractmethod
    def lexical(self, query: str, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, chunk rows) of the best `k` chunks by BM25 with a positive score, best first."""

    @abstractmethod
    def known(self, terms: list[str]) -> set[str]:
        """The lexical terms that occur somewhere in the generation."""

    @abstractmethod
    def idf(self, terms: list[str]) -> dict[str, float]:
        """BM25 inverse document frequency of each term (unknown terms get the largest value)."""

    # --- who said what -----------------------------------------------------------------------------------

    @abstractmethod
    def document_statements(self, doc_rows: list[int]) -> dict[int, list[Statement]]:
        """Document row -> its statements in text order (speakers as that article names them), many at once."""

    @abstractmethod
    def statement_rows(self, speakers: list[str] | None, doc_ids: list[str] | None, since: str | None,
                       until: str | None) -> list[tuple]:
        """`STATEMENT_COLUMNS` rows of the statements of the documents passing the filters (and by one of the
        merged `speakers` names, unless None), in date order (undated last), then document and text order."""

    @abstractmethod
    def speaker_rows(self, doc_ids: list[str] | None, since: str | None, until: str | None
                     ) -> list[tuple[str, int, int]]:
        """(merged name, statements, articles) of every speaker in the documents passing the filters."""

    def statements(self, speaker: str | None = None, doc_ids: list[str] | None = None, since: str | None = None,
                   until: str | None = None) -> list[AttributedStatement]:
        """The attributed statements passing the filters, in date order; `speaker` is matched against the merged
        names ("Lavrov" finds Sergey Lavrov's)."""
        names = None
        if speaker is not None:
            names = matching_speakers(speaker, [name for name, _n, _a in self.speaker_rows(None, None, None)])
            if not names:
                return []
        return [statement_from_row(r) for r in self.statement_rows(names, doc_ids, since, until)]

    def speakers(self, doc_ids: list[str] | None = None, since: str | None = None,
                 until: str | None = None) -> list[Speaker]:
        """Every speaker of the documents passing the filters, most statements first."""
        rows = self.speaker_rows(doc_ids, since, until)
        return [Speaker(name, n, a) for name, n, a in sorted(rows, key=lambda r: (-r[1], r[0]))]

    @property
    def size(self) -> int:
        return self.manifest.counts.chunks

    def close(self) -> None:
        """Release what the snapshot holds (it must not be used afterwards)."""


class Writer(ABC):
    """Makes one new generation; `publish` makes it live, `abort` discards it."""

    name: str

    @abstractmethod
    def add(self, batch: Batch) -> None:
        """Write documents with their chunks, sentences and vectors (in any order of rows)."""

    @abstractmethod
    def finish(self, manifest: Manifest) -> Manifest:
        """Build the search structures (dense and lexical), write the manifest, flush to disk; returns the
        manifest as stored."""

    @abstractmethod
    def verify(self) -> Snapshot:
        """Read the new generation back as a reader would and check it; IndexWriteFailed when it does not."""

    @abstractmethod
    def publish(self) -> None:
        """Make the new generation the live one, atomically."""

    @abstractmethod
    def abort(self) -> None:
        """Discard the new generation (nothing if it was already published)."""


class Store(ABC):
    """Where generations live."""

    backend: str
    verified: str  # what `verify_live` checks, in words

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: "Settings") -> "Store":
        """The store the settings name (checked; nothing is created)."""

    @staticmethod
    @abstractmethod
    def key(settings: "Settings") -> tuple:
        """What identifies the index these settings serve, without opening it (the engine caches on it)."""

    @staticmethod
    def excluded(settings: "Settings") -> list[Path]:
        """Paths a corpus walk must skip because this store keeps its own files there."""
        return []

    @property
    @abstractmethod
    def where(self) -> str:
        """The folder or database, for messages."""

    @property
    def rebuild(self) -> str:
        """The command that rebuilds this store's index."""
        return "rag index build"

    def location(self, name: str) -> str:
        """Where generation `name` lives, for reports."""
        return f"{self.where} {name}"

    @abstractmethod
    def live_name(self) -> str:
        """The name of the live generation (cheap; IndexMissing when none was ever completed)."""

    @abstractmethod
    def open_live(self, model_id: str | None = None, backend: str | None = None) -> Snapshot:
        """The verified live generation; refuses one built with another model or embedding backend than
        given (None: not checked)."""

    @abstractmethod
    def live_manifest(self) -> tuple[str, Manifest]:
        """(name, manifest) of the live generation, read without opening its data."""

    def check_live(self) -> None:
        """A cheap look that the live generation's data is there and agrees with its manifest (no checksums);
        the matching RagError if not. `verify_live` is the full check."""
        self.open_live().close()

    @abstractmethod
    def verify_live(self) -> None:
        """Check the live generation's stored data fully (checksums, counts); the matching RagError if not."""

    @abstractmethod
    def check_writable(self) -> None:
        """Refuse, before anything is written, a place a build may not write to (with the fix)."""

    @abstractmethod
    def build_lock(self) -> AbstractContextManager[None]:
        """Held by the one build that may run; IndexLocked at once when another holds it."""

    @abstractmethod
    def writer(self, name: str, settings: "Settings", dimension: int) -> Writer:
        """A writer for a new generation called `name` of vectors of `dimension` (hold the build lock)."""

    @abstractmethod
    def clean(self, keep: set[str]) -> None:
        """Remove generations and leftovers of earlier builds except those named in `keep` (hold the lock)."""

    def close(self) -> None:
        """Release connections."""


def doc_from_row(r: Sequence[Any]) -> DocRow:
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
