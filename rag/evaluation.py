"""`rag eval`: evidence retrieval, answer accuracy, abstention, citation validity and latency on a question
set; nDCG@10 and Recall@100 on a BEIR folder."""

from __future__ import annotations

import json
import math
import re
import shutil
import time
import unicodedata
from pathlib import Path
from typing import Any, Callable

from .build import build_index
from .corpus import iter_articles
from .engine import Engine, get_engine
from .errors import BadQuestion, RagError
from .records import Answer
from .settings import Settings

_QUOTES = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-"})


def normalise(text: str) -> str:
    """Case, quotes, dashes and whitespace folded, for matching gold strings."""
    return " ".join(unicodedata.normalize("NFKC", text).translate(_QUOTES).lower().split())


def holds_evidence(passage: str, evidence: str) -> bool:
    """The passage holds the evidence, or overlaps it (holds its first or last half, at least 4 words)."""
    p, e = normalise(passage), normalise(evidence)
    if e in p:
        return True
    words = e.split()
    if len(words) < 8:
        return False
    half = len(words) // 2
    return " ".join(words[:half]) in p or " ".join(words[half:]) in p


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _load_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise BadQuestion(f"Question file {path} does not exist.")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise BadQuestion(f"{path}:{n} is not valid JSON ({exc.msg}). Fix the line.") from None
    return rows


def _source_texts(settings: Settings) -> dict[tuple[str, str], str]:
    return {(a.document.source, a.document.doc_id): a.source_text
            for a in iter_articles(settings.paths.corpus, warn=lambda _m: None, options=settings.corpus,
                                   exclude=[settings.paths.index])}


def _calibrate(answerable: list[float], unanswerable: list[float]) -> float | None:
    """The threshold that best separates the two groups' evidence scores (midpoint of the widest gap)."""
    if not answerable or not unanswerable:
        return None
    points = sorted(set(answerable + unanswerable))
    best, best_key = None, None
    for lo, hi in zip(points, points[1:]):
        t = (lo + hi) / 2
        right = sum(s >= t for s in answerable) + sum(s < t for s in unanswerable)
        key = (right, hi - lo)
        if best_key is None or key > best_key:
            best, best_key = t, key
    return round(best, 3) if best is not None else None


def evaluate_qa(path: Path, settings: Settings, k: int = 5, engine: Engine | None = None) -> dict[str, Any]:
    """Metrics of the current index on a JSON Lines file of {id, question, answers, evidence}."""
    rows = _load_jsonl(Path(path))
    engine = engine or get_engine(settings)
    sources = _source_texts(settings)
    ranks: list[int | None] = []
    correct = supported = false_abstain = right_abstain = 0
    n_answerable = n_unanswerable = 0
    citations = valid = 0
    latencies: list[float] = []
    scores_answerable: list[float] = []
    scores_unanswerable: list[float] = []
    per_question = []
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not isinstance(row.get("question"), str):
            raise BadQuestion(f"{path}: entry {n} has no \"question\" text. Each line must be an object like "
                              '{"id": "q1", "question": "...", "answers": ["..."], "evidence": "..."}.')
        t0 = time.perf_counter()
        try:
            answer: Answer = engine.ask(row["question"], k)
        except BadQuestion as exc:
            raise BadQuestion(f"{path}: question {row.get('id') or n} cannot be asked: {exc}") from None
        latencies.append((time.perf_counter() - t0) * 1000)
        answers = row.get("answers") or []
        golds = [normalise(str(g)) for g in ([answers] if isinstance(answers, str) else answers)]
        evidence = row.get("evidence")
        answerable = bool(golds) or bool(evidence)
        rank = None
        if evidence:
            rank = next((h.rank for h in answer.passages if holds_evidence(h.chunk.text, evidence)), None)
            ranks.append(rank)
        for c in answer.citations:
            citations += 1
            text = sources.get((c.source, c.doc_id))
            valid += text is not None and text[c.start:c.end] == c.quote
        is_correct = not answer.abstained and any(g in normalise(answer.text) for g in golds)
        is_supported = not answer.abstained and any(g in normalise(c.quote) for c in answer.citations for g in golds)
        if answerable:
            n_answerable += 1
            correct += is_correct
            supported += is_supported
            false_abstain += answer.abstained
            if answer.evidence is not None:
                scores_answerable.append(answer.evidence)
        else:
            n_unanswerable += 1
            right_abstain += answer.abstained
            if answer.evidence is not None:
                scores_unanswerable.append(answer.evidence)
        per_question.append({"id": row.get("id"), "has_evidence": bool(evidence), "rank": rank, "abstained": answer.abstained,
                             "correct": is_correct, "supported": is_supported,
                             "evidence_score": answer.evidence})
    n_ev = len(ranks) or 1

    def hit_at(n: int) -> float:
        return round(sum(r is not None and r <= n for r in ranks) / n_ev, 4)

    return {
        "questions": len(rows), "answerable": n_answerable, "unanswerable": n_unanswerable, "k": k,
        "hit@1": hit_at(1), "hit@3": hit_at(3), "hit@5": hit_at(5),
        "mrr": round(sum(1 / r for r in ranks if r) / n_ev, 4),
        "answer_accuracy": round(correct / max(1, n_answerable), 4),
        "supported_accuracy": round(supported / max(1, n_answerable), 4),
        "abstention_unanswerable": round(right_abstain / max(1, n_unanswerable), 4),
        "false_abstention": round(false_abstain / max(1, n_answerable), 4),
        "citation_validity": round(valid / citations, 4) if citations else 1.0,
        "citations": citations,
        "latency_ms_p50": round(_percentile(latencies, 0.5), 2),
        "latency_ms_p95": round(_percentile(latencies, 0.95), 2),
        "abstain_threshold": settings.answer.abstain_threshold,
        "suggested_abstain_threshold": _calibrate(scores_answerable, scores_unanswerable),
        "per_question": per_question,
    }


def _beir_settings(folder: Path, settings: Settings) -> Settings:
    corpus_file = folder / "corpus.jsonl"
    if not corpus_file.exists():
        raise BadQuestion(f"{folder} is not a BEIR folder: corpus.jsonl is missing.")
    work = folder / ".rag"
    corpus = work / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    link = corpus / "corpus.jsonl"
    if not link.exists():
        try:
            link.symlink_to(corpus_file.resolve())
        except OSError:
            shutil.copy(corpus_file, link)
    # the link to the BEIR file is ours, so reading what it points to is no surprise
    return settings.with_paths(corpus, work / "index").update("corpus", follow_outside_links=True)


def _qrels(path: Path) -> dict[str, dict[str, int]]:
    if not path.exists():
        raise BadQuestion(f"BEIR relevance judgements {path} are missing.")
    qrels: dict[str, dict[str, int]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        parts = re.split(r"\t", line.strip())
        if len(parts) < 3 or (n == 0 and not parts[2].lstrip("-").isdigit()):
            continue
        qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return qrels


def evaluate_beir(folder: Path, settings: Settings, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """nDCG@10 and Recall@100 at the document level on a BEIR folder (index built or reused in DIR/.rag)."""
    folder = Path(folder)
    settings = _beir_settings(folder, settings)
    report = build_index(settings, warn=lambda _m: None)
    if progress:
        progress(f"index: {report.documents} documents, {report.chunks_embedded} chunks embedded, "
                 f"{report.chunks_reused} reused")
    qrels = _qrels(folder / "qrels" / "test.tsv")
    queries = {str(q.get("_id")): q.get("text", "") for q in _load_jsonl(folder / "queries.jsonl")}
    engine = Engine(settings)
    ndcgs, recalls, latencies = [], [], []
    for qid, judged in qrels.items():
        if qid not in queries:
            continue
        t0 = time.perf_counter()
        try:
            hits = engine.search(queries[qid], 100)
        except RagError:
            hits = []
        latencies.append((time.perf_counter() - t0) * 1000)
        ranking: list[str] = []
        for h in hits:
            if h.chunk.doc_id not in ranking:
                ranking.append(h.chunk.doc_id)
        dcg = sum((2 ** judged.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranking[:10]))
        ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:10]
        idcg = sum((2 ** g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
        ndcgs.append(dcg / idcg if idcg else 0.0)
        relevant = {d for d, g in judged.items() if g > 0}
        recalls.append(len(relevant & set(ranking[:100])) / len(relevant) if relevant else 0.0)
    n = len(ndcgs) or 1
    return {"beir": str(folder), "queries": len(ndcgs), "documents": report.documents,
            "ndcg@10": round(sum(ndcgs) / n, 4), "recall@100": round(sum(recalls) / n, 4),
            "latency_ms_p50": round(_percentile(latencies, 0.5), 2), "fusion": settings.retrieval.fusion}


def format_report(report: dict[str, Any]) -> str:
    """A readable summary of an evaluation report."""
    if "beir" in report:
        return (f"BEIR {report['beir']}: {report['queries']} queries over {report['documents']} documents\n"
                f"  nDCG@10     {report['ndcg@10']:.4f}\n  Recall@100  {report['recall@100']:.4f}\n"
                f"  search p50  {report['latency_ms_p50']:.1f} ms  (fusion: {report['fusion']})")
    lines = [f"{report['questions']} questions ({report['answerable']} answerable, "
             f"{report['unanswerable']} unanswerable), k={report['k']}"]
    for key in ("hit@1", "hit@3", "hit@5", "mrr", "answer_accuracy", "supported_accuracy",
                "abstention_unanswerable", "false_abstention", "citation_validity"):
        lines.append(f"  {key:<24} {report[key]:.3f}")
    lines.append(f"  {'latency p50 / p95':<24} {report['latency_ms_p50']:.1f} / {report['latency_ms_p95']:.1f} ms")
    lines.append(f"  {'abstain threshold':<24} {report['abstain_threshold']} "
                 f"(suggested from these questions: {report['suggested_abstain_threshold']})")
    misses = [str(q["id"]) for q in report["per_question"] if q["has_evidence"] and q["rank"] is None]
    if misses:
        lines.append(f"  evidence not retrieved for: {', '.join(misses)}")
    return "\n".join(lines)
