"""BM25 over chunk texts with stemming. The only module that imports bm25s."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..common.text import STOPWORDS as _STOPWORDS
from ..common.text import content_terms, normalise, stemmer

STOPWORDS = sorted(_STOPWORDS)  # as bm25s takes them; the list itself lives in rag.text


def top_k(scores: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows) of the best `k` rows with a positive score (among `allowed`, when given), best first."""
    if allowed is not None:
        mask = np.zeros(len(scores), dtype=bool)
        mask[allowed] = True
        scores = np.where(mask, scores, 0.0)
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    top = top[scores[top] > 0]
    return scores[top].astype(np.float32), top.astype(np.int64)


class Lexical:
    """A BM25 index whose documents are the chunk rows 0..n-1."""

    def __init__(self, model) -> None:  # type: ignore[no-untyped-def]
        self._model = model

    @classmethod
    def build(cls, texts: Iterable[str]) -> "Lexical":
        import bm25s

        tokens = bm25s.tokenize([normalise(t) for t in texts], stopwords=STOPWORDS, stemmer=stemmer(),
                                show_progress=False, allow_empty=True)
        model = bm25s.BM25()
        model.index(tokens, show_progress=False)
        return cls(model)

    def save(self, folder: Path) -> None:
        self._model.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path) -> "Lexical":
        import bm25s

        return cls(bm25s.BM25.load(str(folder), mmap=False, load_corpus=False))

    def search(self, query: str, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, row ids) of the best `k` rows with a positive score, best first."""
        tokens = self.terms(query)
        ids = self._model.get_tokens_ids(tokens)
        if not ids:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        return top_k(self._model.get_scores(tokens), k, allowed)

    def postings(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """(term, rows, scores) for every term: the rows holding it and its BM25 score in each, as bm25s
        computed them (what a store without bm25s keeps to rank alike)."""
        scores = self._model.scores
        indptr, indices, data = scores["indptr"], scores["indices"], scores["data"]
        for term, tid in self._model.vocab_dict.items():
            if tid + 1 < len(indptr) and indptr[tid + 1] > indptr[tid]:
                lo, hi = indptr[tid], indptr[tid + 1]
                yield term, np.asarray(indices[lo:hi], dtype=np.int32), np.asarray(data[lo:hi], dtype=np.float32)

    def terms(self, text: str) -> list[str]:
        """The stemmed, stop-word-free terms BM25 sees in `text` (bm25s's own tokenisation, without its
        per-call overhead)."""
        return content_terms(text)

    def known(self, terms: list[str]) -> set[str]:
        """The terms that occur somewhere in the indexed passages."""
        indptr = self._model.scores["indptr"]
        vocab = self._model.vocab_dict
        return {t for t in terms if (tid := vocab.get(t)) is not None and tid + 1 < len(indptr)
                and indptr[tid + 1] > indptr[tid]}

    def idf(self, terms: list[str]) -> dict[str, float]:
        """Inverse document frequency of each term (unknown terms get the largest value)."""
        scores = self._model.scores
        n = max(1, int(scores["num_docs"]))
        indptr = scores["indptr"]
        out = {}
        for term in terms:
            tid = self._model.vocab_dict.get(term)
            df = int(indptr[tid + 1] - indptr[tid]) if tid is not None and tid + 1 < len(indptr) else 0
            out[term] = float(np.log(1 + (n - df + 0.5) / (df + 0.5)))
        return out
