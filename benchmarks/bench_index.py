"""Index build throughput and incremental rebuild time on a generated corpus (default 5,000 articles).

    python benchmarks/bench_index.py [--articles N] [--keep DIR]

RAG_* variables apply, e.g. RAG_EMBEDDING_BACKEND=torch or RAG_EMBEDDING_SENTENCE_VECTORS=encoded.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import article, peak_rss_mib, write_corpus  # noqa: E402

import rag  # noqa: E402
from rag.index.encoder import threads
from rag.index.encoders import load_embedder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--articles", type=int, default=5000)
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="rag-bench-"))
    corpus, index = work / "corpus", work / "index"
    write_corpus(corpus, args.articles)
    settings = rag.load_settings().with_paths(corpus, index)
    e = settings.embedding
    print(f"encoder: backend {e.backend}, sentence vectors {e.sentence_vectors}, {threads(e.threads)} threads")

    t0 = time.perf_counter()
    load_embedder(settings.embedding)  # the model (and, the first time, its ONNX encoder): timed apart
    print(f"model load: {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    full = rag.build_index(settings, full=True)
    full_s = time.perf_counter() - t0
    print(f"corpus: {full.documents} articles, {full.chunks} chunks, {full.sentences} sentences")
    print(f"full build: {full_s:.1f} s -> {full.chunks / full_s:.1f} chunks/s, "
          f"{full.tokens_embedded / full_s:,.0f} word pieces/s ({full.tokens_embedded:,} word pieces encoded; "
          f"{full.sentences_encoded} sentences encoded on their own)")

    t0 = time.perf_counter()
    same = rag.build_index(settings)
    print(f"rebuild, nothing changed: {time.perf_counter() - t0:.1f} s "
          f"({same.chunks_embedded} chunks embedded, {same.chunks_reused} reused)")

    # change 1% of the articles in one file and add 50 new ones
    part = sorted(corpus.glob("*.jsonl"))[0]
    rows = [json.loads(line) for line in part.read_text(encoding="utf-8").splitlines()]
    rng = random.Random(99)
    for row in rng.sample(rows, max(1, args.articles // 100)):
        row["text"] += "\n\nAn update was added to this report after publication."
    part.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with open(corpus / "new.jsonl", "w", encoding="utf-8") as fh:
        for n in range(50):
            fh.write(json.dumps(article(rng, 900000 + n)) + "\n")
    t0 = time.perf_counter()
    inc = rag.build_index(settings)
    print(f"incremental rebuild (1% changed, 50 added): {time.perf_counter() - t0:.1f} s "
          f"({inc.changed} changed, {inc.added} added; {inc.chunks_embedded} chunks embedded, "
          f"{inc.chunks_reused} reused)")
    size = sum(p.stat().st_size for p in Path(inc.index).rglob("*") if p.is_file())
    print(f"index size: {size / 2**20:.1f} MiB; peak RSS {peak_rss_mib():.0f} MiB; work folder {work}")


if __name__ == "__main__":
    main()
