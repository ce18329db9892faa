"""Building an index generation, in four steps that each read alone:

- plan: stream the articles and compare each with the live generation (added, changed, unchanged);
- embed: chunk and encode only the added and changed ones, in large batches;
- write: hand documents with their vectors to the store's writer (unchanged ones carried from the live
  generation with their vectors);
- verify: the writer builds the search structures, reads the new generation back, and only then makes it live.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from itertools import chain
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from ..common.dates import normalise_date
from ..errors import IndexMissing, RagError
from ..ingest import attribution
from ..ingest.corpus import corpus_files, iter_articles, no_articles
from ..ingest.formats import Article
from ..ingest.sentences import sentence_spans
from ..ingest.sources import SourceFile
from ..records import Chunk
from ..settings import Settings
from ..version import __version__
from .chunking import Chunker
from .encoder import Embedder, Passage
from .embed_queue import EmbedQueue
from .encoders import load_embedder
from .manifest import Counts, Manifest, encoder_change
from .statements import shifted, timed_statements
from .store import Batch, DocRow, Snapshot, Store, StoredDocument, Writer
from .stores import excluded_paths, open_store
from .unchanged import reuse_unchanged, without_ids

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
    statements: int = 0  # attributed statements (who said what) in the new generation
    speakers: int = 0  # speakers merged across the archive
    attribution_seconds: float = 0.0  # time spent extracting statements (new, changed and re-read articles)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["warnings"] = list(self.warnings)
        return data


def content_hash(article: Article) -> str:
    """What decides whether a document changed: its title, text and indexed spans (not where it sits)."""
    doc, text = article.document, article.source_text
    blob = json.dumps([doc.title, text[doc.start:doc.end], [(s - doc.start, e - doc.start) for s, e in doc.spans]])
    return hashlib.sha256(blob.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class Planned:
    """An article and what the live generation holds of it."""

    article: Article
    digest: str
    old: DocRow | None

    @property
    def unchanged(self) -> bool:
        return self.old is not None and self.old.hash == self.digest


# Articles looked up in the live generation, and unchanged ones carried from it, this many at a time: a few calls
# (round trips, for a server store) per group instead of several per article.
CARRY_BATCH = 256


def plan(articles: Iterable[Article], previous: Snapshot | None) -> Iterator[Planned]:
    """Each article with the live generation's record of it (None when it is new or nothing is reused)."""
    group: list[Article] = []
    for article in articles:
        group.append(article)
        if len(group) >= CARRY_BATCH:
            yield from _planned(group, previous)
            group = []
    yield from _planned(group, previous)


def _planned(group: list[Article], previous: Snapshot | None) -> Iterator[Planned]:
    known = previous.documents_named([a.document.doc_id for a in group]) if previous is not None and group else {}
    for article in group:
        yield Planned(article, content_hash(article), known.get(article.document.doc_id))


def previous_generation(store: Store, settings_hash: str, model_id: str, backend: str,
                        full: bool) -> tuple[Snapshot | None, str | None]:
    """The live generation to reuse vectors from, or None with the reason for a full rebuild."""
    if full:
        return None, "--full was asked for"
    try:
        previous = store.open_live()
    except IndexMissing:
        return None, "no previous index"
    except RagError as exc:
        return None, f"the previous index is unusable ({exc})"
    m = previous.manifest
    change = encoder_change(m, model_id, backend)
    reason = (f"the embedding model changed ({m.model} -> {model_id})" if change == "model" else
              f"the embedding backend changed ({m.backend} -> {backend})" if change == "backend" else
              "the chunking settings changed" if m.settings_hash != settings_hash else None)
    if reason:
        previous.close()
        return None, reason
    return previous, None


# ---------------------------------------------------------------------------------------------------- write


def _carry(previous: Snapshot, group: list[Planned], row: int, chunk_lo: int, sent_lo: int,
           timer: list[float]) -> Batch:
    """Unchanged documents from the live generation, with their vectors, at their new rows from `row`,
    `chunk_lo` and `sent_lo` on (and offsets: the same text may sit elsewhere in its file). Four calls to the live
    generation for the whole group, whatever its size."""
    olds: list[DocRow] = []
    for p in group:
        assert p.old is not None
        olds.append(p.old)
    chunk_rows = [r for old in olds for r in range(*old.chunks)]
    stored = previous.chunks(chunk_rows)
    within = previous.sentences_in([(old.document.doc_id, 0, 1 << 62) for old in olds])
    # statements are carried when the live generation's extractor is this one, else found again in the text
    said = previous.document_statements([old.row for old in olds]) \
        if previous.manifest.attribution == attribution.VERSION else None
    documents = []
    for p, old, sentences in zip(group, olds, within):
        doc = p.article.document
        shift = doc.start - old.document.start
        chunks = tuple(Chunk(c.chunk_id, c.doc_id, c.start + shift, c.end + shift, c.text)
                       for c, _doc_row in (stored[r] for r in range(*old.chunks)))
        spans = tuple((s + shift, e + shift) for _r, s, e in sentences)
        statements = shifted(said.get(old.row, ()), shift) if said is not None else \
            timed_statements(p.article, spans, timer)
        documents.append(StoredDocument(
            DocRow(row, doc, normalise_date(doc.metadata.get("date")), p.digest,
                   (chunk_lo, chunk_lo + len(chunks)), (sent_lo, sent_lo + len(spans))), chunks, spans,
            statements))
        row, chunk_lo, sent_lo = row + 1, chunk_lo + len(chunks), sent_lo + len(spans)
    return Batch(tuple(documents), _rows_of(previous, chunk_rows),
                 previous.sentence_vectors([r for sentences in within for r, _s, _e in sentences]))


def _rows_of(previous: Snapshot, rows: list[int]) -> np.ndarray:
    """The chunk vectors of `rows`, one call per run of consecutive rows (unchanged articles that sat together
    in the live generation make one run)."""
    runs: list[list[int]] = []
    for r in rows:
        if runs and runs[-1][1] == r:
            runs[-1][1] = r + 1
        else:
            runs.append([r, r + 1])
    if not runs:
        return np.zeros((0, previous.manifest.dimension), dtype=np.float32)
    return np.concatenate([previous.chunk_vectors(lo, hi) for lo, hi in runs])


@dataclass
class _Tally:
    documents: int = 0
    chunks: int = 0
    sentences: int = 0
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    reused: int = 0
    statements: int = 0
    attribution: list[float] = field(default_factory=lambda: [0.0])  # seconds spent extracting statements


def write_documents(planned: Iterable[Planned], previous: Snapshot | None, writer: Writer, embedder: Embedder,
                    settings: Settings, on_article: Callable[[Article], None] | None = None
                    ) -> tuple[_Tally, EmbedQueue, dict[str, dict[str, Any]]]:
    """Carry unchanged documents and embed the rest into `writer`, assigning rows in corpus order."""
    chunker = Chunker(embedder.tokenize, settings.chunking.chunk_tokens, settings.chunking.overlap_tokens,
                      embedder.max_tokens)
    queue = EmbedQueue(embedder, writer, settings.embedding.sentence_vectors == "pooled", _EMBED_BATCH)
    t = _Tally()
    documents: dict[str, dict[str, Any]] = {}
    carried: list[Planned] = []  # unchanged articles waiting to be carried, in corpus order

    def written(item: StoredDocument) -> None:
        documents[item.doc.document.doc_id] = {"hash": item.doc.hash, "chunks": list(item.doc.chunks)}
        t.documents += 1
        t.chunks += len(item.chunks)
        t.sentences += len(item.sentences)
        t.statements += len(item.statements)

    def carry() -> None:
        if not carried:
            return
        assert previous is not None
        batch = _carry(previous, carried, t.documents, t.chunks, t.sentences, t.attribution)
        writer.add(batch)
        for item in batch.documents:
            t.unchanged += 1
            t.reused += len(item.chunks)
            written(item)
        carried.clear()

    for p in planned:
        if on_article:
            on_article(p.article)
        doc, text = p.article.document, p.article.source_text
        if p.unchanged:
            carried.append(p)
            if len(carried) >= CARRY_BATCH:
                carry()
            continue
        carry()  # rows follow corpus order
        t.added, t.changed = t.added + (p.old is None), t.changed + (p.old is not None)
        span_tokens = [embedder.tokenize(text[s:e]).shifted(s) for s, e in doc.spans]  # once per text
        pieces = chunker.chunk_tokens(doc, text, span_tokens)
        sentences = [Passage(s, text[s:e], tokens.between(s, e))
                     for (a, b), tokens in zip(doc.spans, span_tokens) for s, e in sentence_spans(text, a, b)]
        record = DocRow(t.documents, doc, normalise_date(doc.metadata.get("date")), p.digest,
                        (t.chunks, t.chunks + len(pieces)), (t.sentences, t.sentences + len(sentences)))
        spans = tuple((q.start, q.start + len(q.text)) for q in sentences)
        item = StoredDocument(record, tuple(c for c, _ in pieces), spans, timed_statements(p.article, spans, t.attribution))
        queue.add(item, pieces, sentences)
        written(item)
    carry()
    queue.flush()
    return t, queue, documents


# ---------------------------------------------------------------------------------------------------- build


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # gone since the walk: the reader says so
        return 0


def read_corpus(settings: Settings, warn: Callable[[str], None] | None = None, files: list[Path] | None = None,
                sources: dict[str, SourceFile] | None = None) -> Iterator[Article]:
    """The articles of the corpus as a build reads them (its settings, the store's own files left out); `files`
    and `sources` as for `iter_articles`."""
    return iter_articles(settings.paths.corpus, settings.corpus, warn, files=files,
                         exclude=excluded_paths(settings), sources=sources)


def build_index(settings: Settings, full: bool = False, progress: Progress | None = None,
                warn: Callable[[str], None] | None = None, embedder: Embedder | None = None) -> BuildReport:
    """Build (incrementally unless `full`) an index of `settings.paths.corpus` into the store in force
    (`settings.paths.index`, or the PostgreSQL database of `store.url`)."""
    began = time.monotonic()
    corpus = settings.paths.corpus
    warnings: list[str] = []

    def _warn(message: str) -> None:
        warnings.append(message)
        if warn:
            warn(message)

    store = open_store(settings)
    try:
        # refused before anything is touched: a missing corpus, a place that is not ours, an unusable pointer
        exclude = store.excluded(settings)
        files = corpus_files(corpus, _warn, options=settings.corpus, exclude=exclude)
        store.check_writable()
        with store.build_lock():
            try:
                live_name = store.live_name()
            except RagError:
                live_name = ""
            store.clean({live_name})
            embedder = embedder or load_embedder(settings.embedding, progress)
            settings_hash = settings.index_hash(embedder.model_id)
            previous, full_reason = previous_generation(store, settings_hash, embedder.model_id, embedder.backend,
                                                        full)
            name = f"gen-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}-{settings_hash[:8]}"
            try:
                writer = store.writer(name, settings, embedder.dimension)
                try:
                    report = _build(writer, settings, embedder, settings_hash, previous, files, progress, _warn)
                    writer.publish()
                except BaseException:
                    writer.abort()
                    raise
            finally:
                if previous is not None:
                    previous.close()
            try:
                store.clean({name, live_name})
            except RagError as exc:  # the new generation is live: a failed clean-up is only a warning
                _warn(f"The new index is live, but removing old generations failed: {exc}")
            return BuildReport(index=store.location(name), full=previous is None, full_reason=full_reason,
                               seconds=round(time.monotonic() - began, 3), warnings=tuple(warnings), **report)
    finally:
        store.close()


def _build(writer: Writer, settings: Settings, embedder: Embedder, settings_hash: str, previous: Snapshot | None,
           files: list[Path], progress: Progress | None, warn: Callable[[str], None]) -> dict[str, int]:
    corpus = settings.paths.corpus
    # progress in bytes of the corpus read, so one big archive moves the bar as smoothly as many small files
    sizes = {f.relative_to(corpus).as_posix(): _size(f) for f in files}
    total_bytes = max(1, sum(sizes.values()))
    state: dict[str, Any] = {"done": 0, "current": None}

    def on_article(article: Article) -> None:
        if article.document.source != state["current"]:
            state["done"] += sizes.get(state["current"], 0) if state["current"] else 0
            state["current"] = article.document.source
        if progress:
            progress("documents", min(total_bytes, state["done"] + int(sizes.get(article.document.source, 0)
                                                                        * article.position)), total_bytes)

    sources: dict[str, SourceFile] = {}  # fingerprints of exactly the bytes read, filled while reading
    files, kept, kept_sources = reuse_unchanged(corpus, files, previous)  # unchanged web archives: not re-read
    sources.update(kept_sources)
    articles = read_corpus(settings, warn, files, sources)
    planned = chain((Planned(Article(row.document, ""), row.hash, row) for row in kept),
                    plan(without_ids(articles, {row.document.doc_id for row in kept}, warn), previous))
    tally, queue, documents = write_documents(planned, previous, writer, embedder, settings, on_article)
    if progress:
        progress("documents", total_bytes, total_bytes)
    if tally.documents == 0:
        raise no_articles(corpus, "; the previous index, if any, is kept", indexed=True)
    removed = len(set(previous.manifest.documents) - set(documents)) if previous else 0
    st = settings.store
    manifest = Manifest(
        model=embedder.model_id, dimension=embedder.dimension,
        counts=Counts(tally.documents, tally.chunks, tally.sentences, tally.statements),
        settings_hash=settings_hash, attribution=attribution.VERSION,
        backend=embedder.backend, sentence_vectors=settings.embedding.sentence_vectors,
        max_seq_length=embedder.max_tokens + 2, chunking=asdict(settings.chunking),
        store={"backend": st.backend, "type": st.type, "nlist": st.nlist, "hnsw_m": st.hnsw_m},
        bm25={"library": "bm25s", "stemmer": "english", "stopwords": "rag.text.STOPWORDS"},
        corpus=os.fsencode(corpus.resolve()).decode("utf-8", "replace"),  # informational
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), package_version=__version__,
        sources={rel: info.to_dict() for rel, info in sorted(sources.items())}, documents=documents,
    )
    if progress:
        progress("vectors", 0, 1)
    stored = writer.finish(manifest)  # the writer merges speakers across the archive and counts them
    if progress:
        progress("vectors", 1, 1)
    check = writer.verify()  # read back what was written before it can go live
    try:
        if tally.chunks:
            _scores, rows = check.dense(check.chunk_vectors(0, 1)[0], 1)
            if len(rows) == 0:
                raise RagError(f"The new index in {check.where} failed its test query; the live index is unchanged.")
    finally:
        check.close()
    return {"documents": tally.documents, "chunks": tally.chunks, "sentences": tally.sentences,
            "added": tally.added, "changed": tally.changed, "removed": removed, "unchanged": tally.unchanged,
            "chunks_embedded": queue.embedded, "chunks_reused": tally.reused, "tokens_embedded": queue.tokens,
            "sentences_encoded": queue.apart, "statements": tally.statements, "speakers": stored.counts.speakers,
            "attribution_seconds": round(tally.attribution[0], 3)}
