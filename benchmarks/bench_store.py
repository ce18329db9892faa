"""The PostgreSQL store beside the folder store, in one run on one machine:

1. the bundled archive with the real model: the same top-10 (exact search) and the same answers from both
   stores, and search p50 end to end (question to hits) through each;
2. a synthetic corpus of 100,000 chunks written through each store's writer: retrieval p50 (dense + BM25 +
   fusion + fetching the passages, the query already encoded) for the folder store (exact FAISS), PostgreSQL
   with HNSW and PostgreSQL exact; HNSW recall@10 against exact search;
3. 8 client processes x 200 questions against one database while an incremental build adds 200 articles:
   errors, and answers that differ from a serial run on the generation they read;
4. a rebuild with nothing changed over 3,000 synthetic articles (every article carried from the live
   generation, none embedded), through each store.

    python benchmarks/bench_store.py [--url postgresql://...] [--chunks 100000] [--clients 8] [--questions 200]
                                     [--articles 3000]

Without --url it starts a local server with scripts/local_postgres.py (pgserver's PostgreSQL and pgvector).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT / "scripts")]
from bench_query import clustered, queries_from_corpus  # noqa: E402
from bench_scale import synthetic_texts, write_synthetic  # noqa: E402
from common import summary, write_corpus  # noqa: E402

import rag  # noqa: E402
from rag.answer.retrieval import retrieve
from rag.index.encoders import load_embedder
from rag.index.stores import open_store


def timed(call, items) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for item in items:
        t0 = time.perf_counter()
        call(item)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def on_postgres(settings: rag.Settings, url: str, namespace: str, kind: str = "flat") -> rag.Settings:
    return settings.update("store", backend="postgres", url=url, namespace=namespace, type=kind)


def signature(answer: rag.Answer) -> list:
    return [answer.text, answer.abstained, [[c.doc_id, c.start, c.end, c.quote] for c in answer.citations]]


def bundled(url: str, work: Path) -> rag.Settings:
    shutil.copytree(ROOT / "seeds", work / "corpus")
    folder = rag.load_settings(env={}).with_paths(work / "corpus", work / "index")
    pg = on_postgres(folder, url, "bench")
    hnsw = on_postgres(folder, url, "bench_hnsw", "hnsw")
    for settings in (folder, pg, hnsw):
        rag.build_index(settings)
    questions = queries_from_corpus(folder) + ["What is the boiling point of water?", "nuclear treaty"]
    engines = {name: rag.Engine(s) for name, s in (("folder", folder), ("postgres", pg), ("postgres hnsw", hnsw))}
    same_top, same_answer = 0, 0
    for q in questions:
        tops = [[h.chunk.chunk_id for h in e.search(q, 10)] for e in engines.values()]
        same_top += tops[0] == tops[1]
        same_answer += signature(engines["folder"].ask(q)) == signature(engines["postgres"].ask(q))
    print(f"bundled archive, {len(questions)} questions: same top-10 folder vs postgres (exact) {same_top}/"
          f"{len(questions)}; same answers {same_answer}/{len(questions)}")
    times = {}
    for name, engine in engines.items():
        for q in questions:
            engine.search(q)
        times[name] = timed(engine.search, questions * 5)
        print(f"  search end to end, {name}: {summary(times[name])}")
    base = float(np.median(times["folder"]))
    print("  ratio to folder (p50): " + ", ".join(f"{n} {np.median(t) / base:.2f}x" for n, t in times.items()
                                                   if n != "folder"))
    for engine in engines.values():
        engine.close()
    return pg


def synthetic(url: str, work: Path, chunks: int, nq: int = 200) -> None:
    settings = rag.load_settings(env={}).with_paths(work / "syn-corpus", work / "syn-index")
    model_id, dim = load_embedder(settings.embedding).model_id, 384
    texts = synthetic_texts(chunks)
    vectors = clustered(chunks, dim, max(10, chunks // 500), np.random.default_rng(1))
    stores = {"folder (exact)": settings, "postgres hnsw": on_postgres(settings, url, "syn_hnsw", "hnsw"),
              "postgres exact": on_postgres(settings, url, "syn_flat", "flat")}
    for name, s in stores.items():
        print(f"synthetic {chunks:,} chunks: written to {name} in {write_synthetic(s, texts, vectors, model_id):.1f} s")
    rng = np.random.default_rng(3)
    picks = rng.choice(chunks, nq, replace=False)
    noise = rng.normal(size=(nq, dim)).astype(np.float32)
    queries = vectors[picks] + 0.6 * noise / np.linalg.norm(noise, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    words = random.Random(4)
    texts_q = [" ".join(words.sample(texts[p].split(), 6)) for p in picks]
    snaps = {name: open_store(s).open_live() for name, s in stores.items()}
    r = settings.retrieval
    truth = [set(snaps["folder (exact)"].dense(q, 10)[1].tolist()) for q in queries]
    got = [set(snaps["postgres hnsw"].dense(q, 10)[1].tolist()) for q in queries]
    recall = sum(len(t & g) for t, g in zip(truth, got)) / sum(len(t) for t in truth)
    exact_pg = [set(snaps["postgres exact"].dense(q, 10)[1].tolist()) for q in queries[:50]]
    agree = sum(t == e for t, e in zip(truth, exact_pg))
    print(f"  dense recall@10 of postgres HNSW against exact: {recall:.3f} ({nq} queries); postgres exact "
          f"gives exact search's top-10 for {agree}/50")
    times = {}
    for name, snap in snaps.items():
        n = 50 if "exact" in name and "postgres" in name else nq

        def one(i: int, snap=snap) -> None:  # type: ignore[no-untyped-def]
            retrieve(snap, texts_q[i], queries[i], r)

        for i in range(10):
            one(i)
        times[name] = timed(one, range(n))
        print(f"  retrieval (dense + BM25 + fusion + fetch), {name}: {summary(times[name])}")
    base = float(np.median(times["folder (exact)"]))
    print("  ratio to folder (p50): " + ", ".join(f"{n} {np.median(t) / base:.2f}x" for n, t in times.items()
                                                   if not n.startswith("folder")))
    for snap in snaps.values():
        snap.close()


CLIENT = """
import json, sys, time
sys.path.insert(0, {root!r})
import rag
settings = rag.load_settings(env={{}}).with_paths(sys.argv[1], sys.argv[2]).update(
    "store", backend="postgres", url=sys.argv[3], namespace=sys.argv[4])
questions, n, out, go = json.loads(sys.argv[5]), int(sys.argv[6]), sys.argv[7], sys.argv[8]
engine = rag.Engine(settings)
engine.ask(questions[0])
print("READY", flush=True)
import os
while not os.path.exists(go):
    time.sleep(0.05)
rows, errors = [], []
for i in range(n):
    q = questions[i % len(questions)]
    before = engine.generation.name
    try:
        a = engine.ask(q)
    except Exception as exc:
        errors.append(f"{{type(exc).__name__}}: {{exc}}")
        continue
    rows.append([q, before, engine.generation.name, [a.text, a.abstained,
                 [[c.doc_id, c.start, c.end, c.quote] for c in a.citations]]])
json.dump({{"rows": rows, "errors": errors}}, open(out, "w"))
"""


def concurrency(pg: rag.Settings, work: Path, clients: int, per_client: int) -> None:
    questions = queries_from_corpus(pg) + ["What is the boiling point of water?", "nuclear treaty"]
    engine = rag.Engine(pg)
    old_name = engine.generation.name
    serial = {old_name: {q: signature(engine.ask(q)) for q in questions}}
    script = work / "client.py"
    script.write_text(CLIENT.format(root=str(ROOT)))
    go = work / "go"
    procs = [subprocess.Popen([sys.executable, str(script), str(pg.paths.corpus), str(pg.paths.index), pg.store.url,
                               pg.store.namespace, json.dumps(questions), str(per_client), str(work / f"c{i}.json"),
                               str(go)], stdout=subprocess.PIPE, text=True) for i in range(clients)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "READY"
    write_corpus(pg.paths.corpus / "added", 200, seed=99)
    go.write_text("")
    t0 = time.perf_counter()
    report = rag.build_index(pg)
    build_s = time.perf_counter() - t0
    for p in procs:
        p.wait(1800)
    wall = time.perf_counter() - t0
    engine.reload_if_changed()
    new_name = engine.generation.name
    serial[new_name] = {q: signature(engine.ask(q)) for q in questions}
    rows, errors = [], []
    for i in range(clients):
        data = json.loads((work / f"c{i}.json").read_text())
        rows += data["rows"]
        errors += data["errors"]
    differ = 0
    for q, before, after, sig in rows:
        allowed = [serial[g][q] for g in {before, after} if g in serial]
        differ += sig not in allowed
    seen_new = sum(1 for _q, before, _a, _s in rows if before == new_name)
    print(f"{clients} clients x {per_client} questions against one database during an incremental build "
          f"({report.added} articles added, {report.chunks_embedded} chunks embedded, {report.chunks_reused} reused, "
          f"{build_s:.1f} s): {len(rows)} answers in {wall:.1f} s, {len(errors)} errors, {differ} differ from the "
          f"serial run on their generation; {seen_new} were answered from the new generation")
    engine.close()


def unchanged_rebuild(url: str, work: Path, articles: int) -> None:
    """Build `articles` synthetic articles, then build again with nothing changed: the second build only
    carries articles from the live generation, so it measures what carrying costs through each store."""
    corpus = work / "carry-corpus"
    write_corpus(corpus, articles)
    base = rag.load_settings(env={}).with_paths(corpus, work / "carry-index")
    for name, settings in (("folder", base), ("postgres", on_postgres(base, url, "bench_carry"))):
        first = rag.build_index(settings, warn=lambda _m: None)
        began = time.perf_counter()
        again = rag.build_index(settings, warn=lambda _m: None)
        print(f"unchanged rebuild, {name} store: {articles} articles, {first.chunks} chunks: "
              f"{time.perf_counter() - began:.2f} s ({again.chunks_reused} chunks carried, "
              f"{again.chunks_embedded} embedded)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="")
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--articles", type=int, default=3000)
    parser.add_argument("--skip", nargs="*", default=[], choices=["bundled", "synthetic", "concurrency", "rebuild"])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rag-bench-store-"))
    server = None
    url = args.url
    if not url:
        import local_postgres

        server = Path(tempfile.mkdtemp(prefix="rag-pg-bench-"))
        url = local_postgres.start(server)
    try:
        pg = bundled(url, work) if "bundled" not in args.skip or "concurrency" not in args.skip else None
        if "synthetic" not in args.skip:
            synthetic(url, work, args.chunks)
        if "concurrency" not in args.skip and pg is not None:
            concurrency(pg, work, args.clients, args.questions)
        if "rebuild" not in args.skip:
            unchanged_rebuild(url, work, args.articles)
    finally:
        if server is not None:
            import local_postgres

            local_postgres.stop(server)
            shutil.rmtree(server, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
