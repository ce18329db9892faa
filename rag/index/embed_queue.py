"""The embed step of a build: documents waiting to be encoded, flushed to the writer in large batches."""

from __future__ import annotations

import bisect

import numpy as np

from ..records import Chunk
from .encoder import Embedder, Passage, Tokens
from .store import Batch, StoredDocument, Writer


class EmbedQueue:
    """Documents waiting to be encoded, flushed to the writer in large batches. Sentence vectors are either
    pooled from the chunk pass (each word piece encoded once; a sentence split between two chunks pools its
    pieces from both) or encoded on their own, in the same batches."""

    def __init__(self, embedder: Embedder, writer: Writer, pooled: bool, batch: int = 512) -> None:
        self.embedder, self.writer, self.pooled, self.batch = embedder, writer, pooled, batch
        self.documents: list[StoredDocument] = []
        self.passages: list[Passage] = []
        self.sentences: list[Passage] = []
        self.owners: list[int] = []  # pooled: for each span of each passage, its sentence (index into sentences)
        self.embedded = self.tokens = self.apart = 0

    def add(self, item: StoredDocument, pieces: list[tuple[Chunk, Tokens]], sentences: list[Passage]) -> None:
        """One document with its chunks' word pieces and its sentences (in source order)."""
        self.documents.append(item)
        base = len(self.sentences)
        self.sentences += sentences
        starts, ends = [p.start for p in sentences], [p.start + len(p.text) for p in sentences]
        for chunk, tokens in pieces:
            spans: tuple[tuple[int, int], ...] = ()
            if self.pooled:
                inside = range(bisect.bisect_right(ends, chunk.start), bisect.bisect_left(starts, chunk.end))
                spans = tuple((max(starts[j], chunk.start), min(ends[j], chunk.end)) for j in inside)
                self.owners += [base + j for j in inside]
            self.passages.append(Passage(chunk.start, chunk.text, tokens, spans))
        if len(self.passages) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if not self.documents:
            return
        n = len(self.passages)
        apart = [] if self.pooled else list(range(len(self.sentences)))
        pooled = self.embedder.encode_passages(self.passages + [self.sentences[i] for i in apart])
        dim = self.embedder.dimension
        vectors = pooled.vectors[n:]
        if self.pooled:
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
        chunk_vectors = pooled.vectors[:n] if n else np.zeros((0, dim), dtype=np.float32)
        sentence_vectors = vectors if len(self.sentences) else np.zeros((0, dim), dtype=np.float32)
        self.writer.add(Batch(tuple(self.documents), chunk_vectors, sentence_vectors))
        self.embedded += n
        self.tokens += sum(len(p.tokens) for p in self.passages) + sum(len(self.sentences[i].tokens) for i in apart)
        self.apart += len(apart)
        self.documents, self.passages, self.sentences, self.owners = [], [], [], []
