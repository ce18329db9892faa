"""The FAISS vector index of the folder store. The only module that imports FAISS."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import faiss
import numpy as np

from ..errors import IndexCorrupt, IndexWriteFailed

KINDS = ("flat", "ivf", "hnsw")
_ADD_BATCH = 65536


class VectorStore:
    """Inner-product search over L2-normalised vectors: exact (`flat`) or approximate (`ivf`, `hnsw`)."""

    def __init__(self, index: faiss.Index, nprobe: int = 48, ef_search: int = 128) -> None:
        self._index = index
        self.nprobe = nprobe
        self.ef_search = ef_search

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    @property
    def dimension(self) -> int:
        return int(self._index.d)

    @property
    def kind(self) -> str:
        if isinstance(self._index, faiss.IndexIVF):
            return "ivf"
        if isinstance(self._index, faiss.IndexHNSW):
            return "hnsw"
        return "flat"

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str = "flat", nlist: int = 0, hnsw_m: int = 32,
              progress: Callable[[int], None] | None = None) -> "VectorStore":
        """An index over `vectors` (n x d, float32, may be a memory map), added in batches."""
        n, dim = vectors.shape
        if kind == "flat":
            index: faiss.Index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        elif kind == "ivf":
            lists = nlist or max(1, min(65536, int(2 * math.sqrt(max(n, 1)))))
            lists = min(lists, max(1, n // 39))  # FAISS wants ~39 training points per list
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
            index.cp.niter = 12
            take = lists * 64
            rows = np.sort(np.random.default_rng(0).choice(n, take, replace=False)) if n > take else slice(None)
            index.train(np.ascontiguousarray(vectors[rows], dtype=np.float32))
        else:
            raise ValueError(f"unknown index type {kind!r}; known: {', '.join(KINDS)}")
        for lo in range(0, n, _ADD_BATCH):
            batch = np.ascontiguousarray(vectors[lo:lo + _ADD_BATCH], dtype=np.float32)
            index.add(batch)
            if progress:
                progress(len(batch))
        return cls(index)

    def save(self, path: Path) -> None:
        """Write the index to `path`. Written through Python, not FAISS's own file writer, so that a failed
        write (a full disk) raises IndexWriteFailed instead of leaving a short file and a note on stderr."""
        try:
            with open(path, "wb") as handle:
                faiss.write_index(self._index, faiss.PyCallbackIOWriter(handle.write))
        except (OSError, RuntimeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).strip().splitlines()[-1]
            raise IndexWriteFailed(f"Could not write the vector index {path} ({why}). Free some disk space or fix "
                                   "the folder's permissions, then run: rag index build. The live index is "
                                   "unchanged.") from None

    @classmethod
    def load(cls, path: Path, nprobe: int = 48, ef_search: int = 128) -> "VectorStore":
        """Read an index file. Call only after its checksum was verified."""
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise IndexCorrupt(f"Vector index {path} could not be read ({str(exc).splitlines()[0]}). "
                               "Rebuild it with: rag index build --full") from None
        return cls(index, nprobe, ef_search)

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, row ids) per query; `allowed` restricts the rows searched. Missing results are -1."""
        k = max(1, min(k, self.size))
        kind = self.kind
        selector = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64)) if allowed is not None else None
        if kind == "ivf":
            params: faiss.SearchParameters = faiss.SearchParametersIVF(nprobe=self.nprobe)
        elif kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k))
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        scores, ids = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), k, params=params)
        return scores, ids
