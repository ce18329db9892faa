"""The encoder backends side by side, in one process: how close each one's vectors are to torch's (the model as
sentence-transformers runs it, fp32), encoding throughput on chunk-length passages, and the time to encode
one query. Texts are real: the chunks and sentences of the bundled archive and the SQuAD 2.0 paragraphs,
sentences and questions of ../shared/eval/squad2 when present.

    python benchmarks/bench_encoder.py [--rounds 5] [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import summary  # noqa: E402
from make_beir_squad import DEFAULT_SQUAD  # noqa: E402

import rag  # noqa: E402
from rag.index.chunking import Chunker
from rag.index.encoder import Passage
from rag.index.encoders import load_embedder
from rag.ingest.sentences import sentence_spans

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("torch", "onnx", "onnx-int8")


def texts() -> dict[str, list[str]]:
    """Chunks, sentences and questions: the bundled archive's, and SQuAD's when available."""
    settings = rag.load_settings(env={})
    emb = load_embedder(settings.embedding)
    chunker = Chunker(emb.tokenize, settings.chunking.chunk_tokens, settings.chunking.overlap_tokens, emb.max_tokens)
    out: dict[str, list[str]] = {"chunks": [], "sentences": [], "questions": []}
    for article in rag.iter_articles(ROOT / "seeds", warn=lambda _m: None):
        doc, text = article.document, article.source_text
        out["chunks"] += [c.text for c in chunker.chunk(doc, text)]
        out["sentences"] += [text[s:e] for a, b in doc.spans for s, e in sentence_spans(text, a, b)]
    for line in (ROOT.parent / "shared" / "eval" / "dev_qa.jsonl").read_text(encoding="utf-8").splitlines() \
            if (ROOT.parent / "shared" / "eval" / "dev_qa.jsonl").exists() else []:
        out["questions"].append(json.loads(line)["question"])
    squad = DEFAULT_SQUAD / "dev-part.json"
    if squad.exists():
        for article in json.loads(squad.read_text(encoding="utf-8"))["data"][:4]:
            for para in article["paragraphs"]:
                text = para["context"]
                out["chunks"].append(text)
                out["sentences"] += [text[s:e] for s, e in sentence_spans(text)]
                out["questions"] += [qa["question"] for qa in para["qas"][:3]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per backend, interleaved")
    parser.add_argument("--queries", type=int, default=200, help="single-query encodings timed per round")
    args = parser.parse_args()
    data = texts()
    print("texts: " + ", ".join(f"{len(v)} {k}" for k, v in data.items()))
    base = rag.load_settings(env={}).embedding
    encoders = {name: load_embedder(replace(base, backend=name)) for name in BACKENDS}

    reference = {kind: encoders["torch"].encode_documents(items) for kind, items in data.items()}
    for name in BACKENDS[1:]:
        parts = []
        for kind, items in data.items():
            cos = np.sum(encoders[name].encode_documents(items) * reference[kind], axis=1)
            parts.append(cos)
            print(f"{name:>9} vs torch fp32, {kind:<9}: mean cosine {cos.mean():.4f}, min {cos.min():.4f}")
        every = np.concatenate(parts)
        print(f"{name:>9} vs torch fp32, all      : mean cosine {every.mean():.4f}, min {every.min():.4f} "
              f"(the int8 encoder is the default only if the mean is >= 0.99)")

    passages = [Passage(0, t, encoders["torch"].tokenize(t)) for t in data["chunks"]]
    tokens = sum(min(len(p.tokens), encoders["torch"].max_tokens) for p in passages)
    questions = (data["questions"] * (1 + args.queries // max(1, len(data["questions"]))))[: args.queries]
    speed: dict[str, list[float]] = {n: [] for n in BACKENDS}
    latency: dict[str, list[float]] = {n: [] for n in BACKENDS}
    for name in BACKENDS:  # warm-up
        encoders[name].encode_passages(passages[:64])
        encoders[name].encode_queries(questions[:5])
    for _ in range(args.rounds):
        for name in BACKENDS:
            t0 = time.perf_counter()
            encoders[name].encode_passages(passages)
            speed[name].append(tokens / (time.perf_counter() - t0))
            for q in questions:
                t0 = time.perf_counter()
                encoders[name].encode_queries([q])
                latency[name].append((time.perf_counter() - t0) * 1000)
    torch_speed, torch_q = statistics.median(speed["torch"]), statistics.median(latency["torch"])
    for name in BACKENDS:
        s, q = statistics.median(speed[name]), statistics.median(latency[name])
        print(f"{name:>9}: {s:8,.0f} word pieces/s on {len(passages)} chunk passages ({s / torch_speed:.2f}x torch); "
              f"one query {summary(latency[name])} ({torch_q / q:.2f}x faster than torch)")


if __name__ == "__main__":
    main()
