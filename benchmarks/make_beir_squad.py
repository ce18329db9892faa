"""A BEIR folder made from the SQuAD 2.0 excerpts in ../shared/eval/squad2, for `rag eval --beir`, and the same
development questions as a `rag eval` question file.

Documents are the paragraphs (of the development part, plus those of the training part as distractors unless
--dev-only); queries are the development part's answerable questions; each query's one relevant document is
the paragraph it was written on. `qa.jsonl` holds every development question, answerable or not, in the form
`rag eval` reads: answers, and as evidence the sentence of the paragraph holding the answer. The output is the
same for the same input (ids follow the files' order).

    python benchmarks/make_beir_squad.py [OUT_DIR] [--squad DIR] [--dev-only]
    rag eval --beir OUT_DIR                                               # nDCG@10, Recall@100
    rag eval OUT_DIR/qa.jsonl --corpus OUT_DIR/.rag/corpus --index OUT_DIR/.rag/index   # answers, abstention
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from rag.ingest.sentences import sentence_spans

DEFAULT_SQUAD = ROOT.parent / "shared" / "eval" / "squad2"


def paragraphs(path: Path, prefix: str) -> list[tuple[str, str, dict]]:
    """(doc id, title, paragraph) of every paragraph of a SQuAD file, in file order."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    return [(f"{prefix}-{a}-{p}", article["title"].replace("_", " "), para)
            for a, article in enumerate(data) for p, para in enumerate(article["paragraphs"])]


def write_beir(squad: Path, out: Path, dev_only: bool = False) -> dict[str, int]:
    docs = paragraphs(squad / "dev-part.json", "dev")
    if not dev_only:
        docs += paragraphs(squad / "train-part.json", "train")
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    queries = questions = 0
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as corpus, \
            open(out / "queries.jsonl", "w", encoding="utf-8") as qfile, \
            open(out / "qrels" / "test.tsv", "w", encoding="utf-8") as qrels, \
            open(out / "qa.jsonl", "w", encoding="utf-8") as qa_file:
        qrels.write("query-id\tcorpus-id\tscore\n")
        for doc_id, title, para in docs:
            text = para["context"]
            corpus.write(json.dumps({"_id": doc_id, "title": title, "text": text}, ensure_ascii=False) + "\n")
            if not doc_id.startswith("dev-"):
                continue
            spans = sentence_spans(text)
            for qa in para["qas"]:
                question = qa["question"].strip()
                answerable = not qa.get("is_impossible") and qa.get("answers")
                row = {"id": qa["id"], "question": question, "answers": [], "evidence": None}
                if answerable:
                    at = qa["answers"][0]["answer_start"]
                    row["answers"] = sorted({a["text"] for a in qa["answers"]})
                    row["evidence"] = next((text[s:e] for s, e in spans if s <= at < e), qa["answers"][0]["text"])
                    qfile.write(json.dumps({"_id": qa["id"], "text": question}, ensure_ascii=False) + "\n")
                    qrels.write(f"{qa['id']}\t{doc_id}\t1\n")
                    queries += 1
                qa_file.write(json.dumps(row, ensure_ascii=False) + "\n")
                questions += 1
    return {"documents": len(docs), "queries": queries, "questions": questions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", type=Path, default=ROOT / "benchmarks" / "out" / "beir-squad")
    parser.add_argument("--squad", type=Path, default=DEFAULT_SQUAD, help="folder holding dev-part.json and train-part.json")
    parser.add_argument("--dev-only", action="store_true", help="leave the training part's paragraphs out")
    args = parser.parse_args()
    counts = write_beir(args.squad, args.out, args.dev_only)
    print(f"{args.out}: {counts['documents']} documents, {counts['queries']} queries (answerable questions); "
          f"qa.jsonl: {counts['questions']} questions, answerable or not")


if __name__ == "__main__":
    main()
