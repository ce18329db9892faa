"""End-to-end `search` latency on an index of 1,000,000 chunks (synthetic text and vectors, IVF store).

Building a million real chunks takes hours of encoding on 2 cores, so this writes an index generation through
the store's own writer: synthetic passages, clustered unit vectors (one sentence per chunk), the store's vector
and BM25 indexes and its manifest. Then it opens it with the real engine (real encoder for the query) and times
`search` from question to hits.

    python benchmarks/bench_scale.py [--chunks 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_query import clustered  # noqa: E402
from common import peak_rss_mib, sentence, summary  # noqa: E402

import rag  # noqa: E402
from rag.index.encoders import load_embedder
from rag.index.manifest import Counts, Manifest
from rag.index.store import Batch, DocRow, StoredDocument
from rag.index.stores import open_store
from rag.records import Chunk, Document

PER_DOC = 10
BATCH_DOCS = 1000


def synthetic_texts(chunks: int, seed: int = 5) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(sentence(rng) for _ in range(3)) for _ in range(chunks)]


def write_synthetic(settings: rag.Settings, texts: list[str], vectors: np.ndarray, model_id: str,
                    name: str = "gen-synthetic") -> float:
    """Write a generation of `texts` (one chunk and one sentence each, PER_DOC chunks an article) with their
    `vectors` through the store named by `settings`, and make it live; the seconds it took."""
    began = time.perf_counter()
    store = open_store(settings)
    store.check_writable()
    chunks, dim = vectors.shape
    with store.build_lock():
        store.clean(set())
        writer = store.writer(f"{name}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}", settings, dim)
        docs = (chunks + PER_DOC - 1) // PER_DOC
        for lo in range(0, docs, BATCH_DOCS):
            items = []
            for d in range(lo, min(docs, lo + BATCH_DOCS)):
                rows = range(d * PER_DOC, min(chunks, (d + 1) * PER_DOC))
                text = " ".join(texts[r] for r in rows)  # the article: its chunks one after the other
                offsets, at = [], 0
                for r in rows:
                    offsets.append((at, at + len(texts[r])))
                    at += len(texts[r]) + 1
                doc = Document(f"syn-{d:07d}", f"Synthetic article {d}", "synthetic.jsonl", 0, len(text),
                               ((0, len(text)),), {"date": f"2025-{1 + d % 12:02d}-01"})
                record = DocRow(d, doc, doc.metadata["date"], "", (rows.start, rows.stop), (rows.start, rows.stop))
                items.append(StoredDocument(record, tuple(Chunk(f"{doc.doc_id}#{i}", doc.doc_id, s, e, texts[r])
                                                          for i, (r, (s, e)) in enumerate(zip(rows, offsets))),
                                            tuple(offsets)))
            first, last = lo * PER_DOC, min(chunks, min(docs, lo + BATCH_DOCS) * PER_DOC)
            writer.add(Batch(tuple(items), vectors[first:last], vectors[first:last]))
        st = settings.store
        manifest = Manifest(model=model_id, dimension=dim, counts=Counts(docs, chunks, chunks),
                            settings_hash="synthetic", backend=settings.embedding.backend,
                            sentence_vectors=settings.embedding.sentence_vectors, max_seq_length=256,
                            chunking=asdict(settings.chunking),
                            store={"backend": st.backend, "type": st.type, "nlist": st.nlist, "hnsw_m": st.hnsw_m},
                            built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        writer.finish(manifest)
        writer.verify().close()
        writer.publish()
    store.close()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="rag-scale-"))
    settings = rag.load_settings(env={}).with_paths(root / "corpus", root / "index")
    settings = settings.update("store", type="ivf")
    embedder = load_embedder(settings.embedding)
    vectors = clustered(args.chunks, embedder.dimension, max(10, args.chunks // 500), np.random.default_rng(1))
    took = write_synthetic(settings, synthetic_texts(args.chunks), vectors, embedder.model_id)
    del vectors
    print(f"synthetic index of {args.chunks:,} chunks written in {took:.1f} s")
    t0 = time.perf_counter()
    engine = rag.Engine(settings, embedder)
    print(f"opened (checksums verified) in {time.perf_counter() - t0:.1f} s")
    rng = random.Random(11)
    questions = [sentence(rng).split(",")[0] + "?" for _ in range(220)]
    for q in questions[:20]:
        engine.search(q)
    ms = []
    for q in questions[20:]:
        t0 = time.perf_counter()
        engine.search(q)
        ms.append((time.perf_counter() - t0) * 1000)
    print(f"search end to end at {args.chunks:,} chunks (IVF, nprobe {settings.store.nprobe}): {summary(ms)}; "
          f"peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
