"""End-to-end `search` latency on an index of 1,000,000 chunks (synthetic text and vectors, IVF store).

Building a million real chunks takes hours of encoding on 2 cores, so this writes an index generation in
the same on-disk format directly: synthetic passages in chunks.sqlite, clustered unit vectors, an IVF FAISS
index, BM25 over the passages and a manifest with checksums. Then it opens it with the real engine (real
encoder for the query) and times `search` from question to hits.

    python benchmarks/bench_scale.py [--chunks 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_query import clustered  # noqa: E402
from common import peak_rss_mib, sentence, summary  # noqa: E402

import rag  # noqa: E402
from rag.embedding import load_embedder  # noqa: E402
from rag.files import sha256_file  # noqa: E402
from rag.index import (BM25_DIR, CHUNK_VECTORS, CURRENT, DB, FAISS_FILE, FORMAT_VERSION, INDEXES, MANIFEST,  # noqa: E402
                       SCHEMA, SENTENCE_VECTORS, data_files)
from rag.lexical import Lexical  # noqa: E402
from rag.store import VectorStore  # noqa: E402

PER_DOC = 10


def write_generation(root: Path, chunks: int, model_id: str, dim: int) -> None:
    gen = root / "gen-synthetic"
    gen.mkdir(parents=True)
    rng = random.Random(5)
    texts = [" ".join(sentence(rng) for _ in range(3)) for _ in range(chunks)]
    db = sqlite3.connect(gen / DB)
    db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + SCHEMA)
    docs = chunks // PER_DOC
    db.executemany("INSERT INTO docs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", (
        (d, f"syn-{d:07d}", f"Synthetic article {d}", "synthetic.jsonl", 0, 0, "[]", "{}", None, "", d * PER_DOC,
         (d + 1) * PER_DOC, 0, 0) for d in range(docs)))
    db.executemany("INSERT INTO chunks VALUES (?,?,?,?,?,?)", (
        (r, f"syn-{r // PER_DOC:07d}#{r % PER_DOC}", r // PER_DOC, 0, len(t), t) for r, t in enumerate(texts)))
    db.executescript(INDEXES)
    db.commit()
    db.close()
    vectors = clustered(chunks, dim, max(10, chunks // 500), np.random.default_rng(1))
    vectors.tofile(gen / CHUNK_VECTORS)
    (gen / SENTENCE_VECTORS).write_bytes(b"")
    VectorStore.build(vectors, "ivf").save(gen / FAISS_FILE)
    del vectors
    Lexical.build(texts).save(gen / BM25_DIR)
    manifest = {
        "format_version": FORMAT_VERSION, "package_version": rag.__version__, "model": model_id, "dimension": dim,
        "max_seq_length": 256, "settings_hash": "synthetic", "built_at": "synthetic",
        "store": {"type": "ivf"}, "counts": {"documents": docs, "chunks": chunks, "sentences": 0},
        "files": {p.relative_to(gen).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
                  for p in data_files(gen)},
    }
    (gen / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    (root / CURRENT).write_text(gen.name + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="rag-scale-"))
    settings = rag.load_settings(env={}).with_paths(root / "corpus", root / "index")
    settings = settings.update("store", type="ivf")
    embedder = load_embedder(settings.embedding)
    t0 = time.perf_counter()
    write_generation(settings.paths.index, args.chunks, embedder.model_id, embedder.dimension)
    print(f"synthetic index of {args.chunks:,} chunks written in {time.perf_counter() - t0:.1f} s")
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
