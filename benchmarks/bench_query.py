"""Warm query latency on the bundled corpus; approximate vector search and BM25 at scale on synthetic data.

    python benchmarks/bench_query.py [--ann-size 1000000] [--skip-ann]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peak_rss_mib, sentence, summary  # noqa: E402

import rag  # noqa: E402
from rag.index.lexical import Lexical
from rag.index.vectors import VectorStore

ROOT = Path(__file__).resolve().parent.parent


def queries_from_corpus(settings: rag.Settings) -> list[str]:
    """Questions a user might type: built from article titles and subjects, not from the dev set."""
    out = []
    for article in rag.read_corpus(settings, lambda _m: None):
        words = article.document.title.split()
        out.append("What happened: " + " ".join(words[: max(4, len(words) // 2)]) + "?")
        out.append("Who said " + " ".join(words[-6:]) + "?")
    return out


def bench_bundled(rounds: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="rag-bench-q-"))
    shutil.copytree(ROOT / "seeds", work / "corpus")
    settings = rag.load_settings().with_paths(work / "corpus", work / "index")
    rag.build_index(settings)
    engine = rag.Engine(settings)
    off = rag.Engine(settings.update("answer", reader="off"))
    questions = queries_from_corpus(settings) + ["What is the boiling point of water?", "nuclear treaty"]
    for q in questions:  # warm-up
        engine.ask(q)
        off.ask(q)
    search_ms, ask_ms, off_ms, read_ms, encode_ms = [], [], [], [], []
    for _ in range(rounds):
        for q in questions:
            t0 = time.perf_counter()
            engine.search(q)
            search_ms.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            answer = engine.ask(q)
            ask_ms.append((time.perf_counter() - t0) * 1000)
            read_ms.append(answer.timings["read_ms"])
            encode_ms.append(answer.timings["encode_ms"])
            t0 = time.perf_counter()
            off.ask(q)
            off_ms.append((time.perf_counter() - t0) * 1000)
    print(f"bundled corpus, warm, encoder {settings.embedding.backend}: search {summary(search_ms)}; "
          f"of which the query's encoder call {summary(encode_ms)}")
    print(f"  ask, reader on:  {summary(ask_ms)} (of which first stage + reader {summary(read_ms)})")
    print(f"  ask, reader off: {summary(off_ms)}")
    bench_resolution(engine, rounds)
    shutil.rmtree(work, ignore_errors=True)


def bench_resolution(engine: rag.Engine, rounds: int) -> None:
    """Follow-up resolution per turn (the rules alone, no answering) over the development dialogues' turns,
    each resolved against the real conversation so far (target: at most 20 ms a turn)."""
    import json

    from rag.answer.turns import plan_turn

    path = ROOT.parent / "shared" / "eval" / "dev_dialogues.jsonl"
    dialogues = [[t["question"] for t in json.loads(line)["turns"]]
                 for line in path.read_text(encoding="utf-8").splitlines() if line.strip()] if path.exists() else \
        [["Who is leading Russia's delegation at the trilateral talks in Abu Dhabi?", "What's his regular job?",
          "Who else is at the table, on the Ukrainian side?", "What did she say?"]]
    talks = []
    for questions in dialogues:  # the conversations, answered once
        conversation = rag.Conversation()
        for q in questions:
            talks.append((q, conversation))
            conversation = conversation.then(engine.ask(q, conversation=conversation))
    ms = []
    for _ in range(rounds):
        for q, conversation in talks:
            t0 = time.perf_counter()
            plan_turn(q, conversation)
            ms.append((time.perf_counter() - t0) * 1000)
    print(f"  follow-up resolution per turn ({len(talks)} turns of {len(dialogues)} dialogues): {summary(ms)}")


def clustered(n: int, dim: int, clusters: int, rng: np.random.Generator, intrinsic: int = 32) -> np.ndarray:
    """Unit vectors in topic clusters: each is its topic's centre plus an offset of norm 0.7 inside a shared
    32-dimensional subspace. Like sentence embeddings, neighbourhoods have a low intrinsic dimension; uniform
    noise in 384 dimensions would have no meaningful nearest neighbours at all."""
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    basis = np.linalg.qr(rng.standard_normal((dim, intrinsic)))[0].T.astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for lo in range(0, n, 100_000):
        hi = min(n, lo + 100_000)
        offsets = rng.standard_normal((hi - lo, intrinsic)).astype(np.float32) @ basis
        offsets *= 0.7 / np.linalg.norm(offsets, axis=1, keepdims=True)
        block = centres[rng.integers(0, clusters, hi - lo)] + offsets
        out[lo:hi] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def bench_ann(size: int, dim: int = 384, nq: int = 200) -> None:
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    vectors = clustered(size, dim, max(10, size // 500), rng)
    queries = vectors[rng.integers(0, size, nq)] + 0.02 * rng.standard_normal((nq, dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    print(f"ANN: {size:,} synthetic vectors of {dim} made in {time.perf_counter() - t0:.1f} s")
    exact = VectorStore.build(vectors, "flat")
    _, truth = exact.search(queries, 10)
    t0 = time.perf_counter()
    ivf = VectorStore.build(vectors, "ivf")
    print(f"ANN: IVF built in {time.perf_counter() - t0:.1f} s")
    del vectors
    for nprobe in (16, 48):
        ivf.nprobe = nprobe
        ms, found = [], []
        for q in queries:
            t0 = time.perf_counter()
            _, ids = ivf.search(q[None, :], 10)
            ms.append((time.perf_counter() - t0) * 1000)
            found.append(ids[0])
        recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
        print(f"ANN ivf nprobe={nprobe}: search {summary(ms)}, recall@10 vs exact {recall:.3f}")
    ms = []
    for q in queries[:50]:
        t0 = time.perf_counter()
        exact.search(q[None, :], 10)
        ms.append((time.perf_counter() - t0) * 1000)
    print(f"exact flat search at {size:,}: {summary(ms)}; peak RSS {peak_rss_mib():.0f} MiB")


def bench_bm25(size: int, nq: int = 200) -> None:
    """BM25 (the other half of hybrid search) over `size` synthetic passages."""
    import random

    rng = random.Random(3)
    t0 = time.perf_counter()
    lexical = Lexical.build(" ".join(sentence(rng) for _ in range(3)) for _ in range(size))
    print(f"BM25: {size:,} synthetic passages indexed in {time.perf_counter() - t0:.1f} s")
    ms = []
    for _ in range(nq):
        query = sentence(rng).split(",")[0]
        t0 = time.perf_counter()
        lexical.search(query, 50)
        ms.append((time.perf_counter() - t0) * 1000)
    print(f"BM25 search at {size:,} passages (top 50): {summary(ms)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--ann-size", type=int, default=1_000_000)
    parser.add_argument("--skip-ann", action="store_true")
    parser.add_argument("--skip-bm25", action="store_true")
    args = parser.parse_args()
    bench_bundled(args.rounds)
    if not args.skip_ann:
        bench_ann(args.ann_size)
    if not args.skip_bm25:
        bench_bm25(args.ann_size)


if __name__ == "__main__":
    main()
