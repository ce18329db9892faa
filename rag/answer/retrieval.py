"""Hybrid retrieval over any store: dense and lexical (BM25) candidates, fused, near-duplicates suppressed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..common.text import words
from ..index.store import Snapshot
from ..records import Chunk, Hit
from ..settings import RetrievalSettings


@dataclass(frozen=True)
class Fused:
    row: int
    score: float
    dense: float | None
    lexical: float | None


def _minmax(values: dict[int, float]) -> dict[int, float]:
    if not values:
        return {}
    lo, hi = min(values.values()), max(values.values())
    if hi - lo < 1e-9:
        return {k: 1.0 for k in values}
    return {k: (v - lo) / (hi - lo) for k, v in values.items()}


def fuse(dense: dict[int, float], lexical: dict[int, float], method: str, dense_weight: float,
         rrf_k: int) -> list[Fused]:
    """Fused candidates, best first. `score` fusion min-max normalises each list and mixes them with
    `dense_weight`; `rrf` sums 1 / (rrf_k + rank)."""
    rows = set(dense) | set(lexical)
    if method == "rrf":
        drank = {r: i for i, r in enumerate(sorted(dense, key=dense.get, reverse=True))}  # type: ignore[arg-type]
        lrank = {r: i for i, r in enumerate(sorted(lexical, key=lexical.get, reverse=True))}  # type: ignore[arg-type]
        scored = {r: (1 / (rrf_k + drank[r] + 1) if r in drank else 0.0)
                  + (1 / (rrf_k + lrank[r] + 1) if r in lrank else 0.0) for r in rows}
    else:
        nd, nl = _minmax(dense), _minmax(lexical)
        scored = {r: dense_weight * nd.get(r, 0.0) + (1 - dense_weight) * nl.get(r, 0.0) for r in rows}
    order = sorted(rows, key=lambda r: (-scored[r], r))
    return [Fused(r, scored[r], dense.get(r), lexical.get(r)) for r in order]


def _shingles(text: str) -> set[tuple[str, ...]]:
    found = words(text)
    return {tuple(found[i:i + 3]) for i in range(max(1, len(found) - 2))}


def _overlapping(a_span: tuple[str, int, int], b_span: tuple[str, int, int]) -> bool:
    """Chunks of one article that share more than half of the shorter one."""
    (da, sa, ea), (db, sb, eb) = a_span, b_span
    return da == db and min(ea, eb) - max(sa, sb) > 0.5 * min(ea - sa, eb - sb)


def _covered(a_sh: set, shown: set) -> bool:
    """Most of a passage's word trigrams are already shown. Measured on the passage alone: a long passage
    that merely quotes a shorter one already shown still adds new text."""
    return bool(a_sh) and len(a_sh & shown) > 0.5 * len(a_sh)


def near_duplicate(a_span: tuple[str, int, int], b_span: tuple[str, int, int], a_sh: set, b_sh: set) -> bool:
    """Overlapping chunks of one article, or a passage `a` most of whose word trigrams are in `b`."""
    return _overlapping(a_span, b_span) or _covered(a_sh, b_sh)


def _boosted(gen: Snapshot, query: str, query_vector: np.ndarray, settings: RetrievalSettings,
             allowed: np.ndarray | None, boost: np.ndarray, n: int, dense: dict[int, float],
             lexical: dict[int, float]) -> tuple[dict[int, float], dict[int, float], list[Fused]]:
    """Fusion with the boosted rows' own best candidates added to both lists (same query, same score scales)
    and a bonus of `settings.boost` times the top fused score for every boosted row."""
    rows = boost if allowed is None else np.intersect1d(boost, allowed)
    if len(rows):
        m = min(n, len(rows))
        scores, ids = gen.dense(query_vector, m, rows)
        dense = dense | {int(i): float(s) for s, i in zip(scores, ids)}
        lscores, lids = gen.lexical(query, m, rows)
        lexical = lexical | {int(i): float(s) for s, i in zip(lscores, lids)}
    fused = fuse(dense, lexical, settings.fusion, settings.dense_weight, settings.rrf_k)
    if not fused:
        return dense, lexical, fused
    favoured = set(int(r) for r in rows)
    bonus = settings.boost * fused[0].score
    fused = [Fused(f.row, f.score + bonus, f.dense, f.lexical) if f.row in favoured else f for f in fused]
    fused.sort(key=lambda f: (-f.score, f.row))
    return dense, lexical, fused


def retrieve(gen: Snapshot, query: str, query_vector: np.ndarray, settings: RetrievalSettings,
             allowed: np.ndarray | None = None, k: int | None = None, boost: np.ndarray | None = None) -> list[Hit]:
    """The best `k` passages for a query (`settings.k` unless given), fused and de-duplicated. `boost`: chunk
    rows to favour (a follow-up's last cited articles): their best candidates join the pool and gain
    `settings.boost` of the top fused score; a boost, never a filter."""
    k = settings.k if k is None else k
    if allowed is not None and len(allowed) == 0:
        return []
    n = min(max(settings.candidates, k), gen.size if allowed is None else len(allowed))
    if n == 0:
        return []
    scores, ids = gen.dense(query_vector, n, allowed)
    dense = {int(i): float(s) for s, i in zip(scores, ids)}
    lscores, lids = gen.lexical(query, n, allowed)
    lexical = {int(i): float(s) for s, i in zip(lscores, lids)}
    if boost is not None and len(boost) and settings.boost > 0:
        dense, lexical, fused = _boosted(gen, query, query_vector, settings, allowed, boost, n, dense, lexical)
    else:
        fused = fuse(dense, lexical, settings.fusion, settings.dense_weight, settings.rrf_k)
    fetched = gen.chunks([c.row for c in fused[: max(k * 4, 20)]])
    kept_rows: list[tuple[Fused, Chunk, int]] = []
    kept: list[tuple[str, int, int]] = []
    shown: set[tuple[str, ...]] = set()  # word trigrams of the passages kept so far
    for cand in fused:
        if cand.row not in fetched:
            fetched.update(gen.chunks([cand.row]))
        chunk, doc_row = fetched[cand.row]
        span = (chunk.doc_id, chunk.start, chunk.end)
        sh = _shingles(chunk.text)
        # against the union of what is shown: text syndicated into several kept passages counts once
        if _covered(sh, shown) or any(_overlapping(span, other) for other in kept):
            continue
        kept.append(span)
        shown |= sh
        kept_rows.append((cand, chunk, doc_row))
        if len(kept_rows) == k:
            break
    docs = gen.docs_at([doc_row for _c, _ch, doc_row in kept_rows])
    hits: list[Hit] = []
    for cand, chunk, doc_row in kept_rows:
        d = docs[doc_row].document
        hits.append(Hit(len(hits) + 1, chunk, d.title, d.source, cand.score, cand.dense, cand.lexical,
                        dict(d.metadata)))
    return hits
