"""Answer and retrieval quality of each encoder configuration, measured with `rag eval` as a user runs it:
the two development question sets over the bundled archive (../shared/eval), and the SQuAD 2.0 BEIR folder of
benchmarks/make_beir_squad.py: nDCG@10 and Recall@100 over its 1,039 paragraphs, then its 3,250 questions
(answerable or not) for answers and abstention.

    python benchmarks/bench_quality.py [--configs torch:encoded,onnx-int8:pooled] [--skip-squad] [--keep DIR]

A configuration is BACKEND:SENTENCE_VECTORS. torch:encoded is what rag did before ONNX and pooled sentence
vectors (its figures equal those of that version); onnx-int8:pooled is the default.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_beir_squad import DEFAULT_SQUAD, write_beir  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT.parent / "shared" / "eval"
RAG = Path(sys.executable).parent / "rag"
CONFIGS = "torch:encoded,onnx:encoded,onnx:pooled,onnx-int8:encoded,onnx-int8:pooled"
QA_KEYS = ("hit@1", "hit@3", "mrr", "answer_accuracy", "supported_accuracy", "abstention_unanswerable",
           "false_abstention")


def rag_json(args: list[str], env: dict[str, str]) -> dict:
    out = subprocess.run([str(RAG), *args, "--json"], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"rag {' '.join(args)} failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default=CONFIGS)
    parser.add_argument("--skip-squad", action="store_true")
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="rag-bench-quality-"))
    rows: list[tuple[str, str, dict]] = []
    for config in args.configs.split(","):
        backend, _, sentences = config.partition(":")
        env = dict(os.environ, RAG_EMBEDDING_BACKEND=backend, RAG_EMBEDDING_SENTENCE_VECTORS=sentences or "pooled",
                   HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        where = work / config.replace(":", "-")
        shutil.rmtree(where, ignore_errors=True)
        index = ["--corpus", str(ROOT / "seeds"), "--index", str(where / "index")]
        rag_json(["index", "build", *index], env)
        for name in ("dev_qa", "dev_qa_paraphrased"):
            report = rag_json(["eval", str(EVAL / f"{name}.jsonl"), *index], env)
            rows.append((config, name, report))
            print(config, name, {k: report[k] for k in QA_KEYS}, flush=True)
        if args.skip_squad:
            continue
        beir = where / "beir-squad"
        write_beir(DEFAULT_SQUAD, beir)
        report = rag_json(["eval", "--beir", str(beir)], env)
        rows.append((config, "beir", report))
        print(config, "beir", {k: report[k] for k in ("ndcg@10", "recall@100")}, flush=True)
        report = rag_json(["eval", str(beir / "qa.jsonl"), "--corpus", str(beir / ".rag" / "corpus"),
                           "--index", str(beir / ".rag" / "index")], env)
        rows.append((config, "squad_qa", report))
        print(config, "squad_qa", {k: report[k] for k in QA_KEYS}, flush=True)

    print()
    head = ("hit@1", "hit@3", "MRR", "answer", "supported", "abstain", "false abst.")
    for name in ("dev_qa", "dev_qa_paraphrased", "squad_qa"):
        table = [(c, r) for c, n, r in rows if n == name]
        if not table:
            continue
        print(f"{name} ({table[0][1]['questions']} questions, {table[0][1]['unanswerable']} unanswerable):")
        print(f"  {'config':<20}" + "".join(f"{h:>12}" for h in head))
        for config, r in table:
            print(f"  {config:<20}" + "".join(f"{r[k]:>12.4f}" for k in QA_KEYS))
    table = [(c, r) for c, n, r in rows if n == "beir"]
    if table:
        print(f"SQuAD BEIR ({table[0][1]['queries']} queries, {table[0][1]['documents']} documents):")
        for config, r in table:
            print(f"  {config:<20} nDCG@10 {r['ndcg@10']:.4f}  Recall@100 {r['recall@100']:.4f}")
    print(f"work folder: {work}")


if __name__ == "__main__":
    main()
