"""`rag eval`: evidence retrieval, answer accuracy, abstention, citation validity and latency on a question
set; nDCG@10 and Recall@100 on a BEIR folder."""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from ..answer.citations import exact_span
from ..common.files import sha256_file
from ..common.text import fold as normalise
from ..common.text import word_bounded
from ..engine import Engine, get_engine
from ..errors import BadQuestion, RagError
from ..index.build import build_index, read_corpus
from ..records import Answer
from ..settings import Settings
from ..training.calibration import best_threshold, decision_curve


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
            for a in read_corpus(settings, lambda _m: None)}


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


def gold_groups(row: dict[str, Any]) -> list[list[str]]:
    """The parts a correct answer must quote: `groups` (one alternative of every group), else `answers` as
    alternatives of a single group; [] for an unanswerable question."""
    groups = row.get("groups")
    if isinstance(groups, list) and groups:
        return [[str(g) for g in (group if isinstance(group, list) else [group]) if str(g).strip()]
                for group in groups]
    answers = row.get("answers") or []
    answers = [answers] if isinstance(answers, str) else answers
    alternatives = [str(a) for a in answers if str(a).strip()]
    return [alternatives] if alternatives else []


def quotes_answer(groups: Sequence[Sequence[str]], quotes: Sequence[str]) -> bool:
    """Every group has an alternative that appears, word-bounded, inside one of the quotes."""
    return bool(groups) and all(any(word_bounded(g, q) for g in group for q in quotes) for group in groups)


def _curve_report(confidences: list[float | None], answerable: list[bool], right: list[bool]) -> dict[str, Any]:
    """The abstention curve over the reader's confidence: answered share against the accuracy of what is
    answered, and the threshold of highest overall correctness."""
    points = [(c, a, r) for c, a, r in zip(confidences, answerable, right) if c is not None]
    if not points:
        return {}
    curve = decision_curve([p[0] for p in points], [p[1] for p in points], [p[2] for p in points])
    best = best_threshold(curve)
    step = max(1, len(curve) // 25)
    return {"curve": [{k: round(v, 4) for k, v in p.items()} for p in curve[::step] + curve[-1:]],
            "best_threshold": round(best["threshold"], 4), "best_overall": round(best["overall"], 4)}


def evaluate_qa(path: Path, settings: Settings, k: int = 5, engine: Engine | None = None) -> dict[str, Any]:
    """Metrics of the current index on a JSON Lines file of {id, question, answers | groups, evidence}."""
    rows = _load_jsonl(Path(path))
    engine = engine or get_engine(settings)
    sources = _source_texts(settings)
    ranks: list[int | None] = []
    first = supported = false_abstain = right_abstain = in_closest = answered = 0
    n_answerable = n_unanswerable = 0
    citations = valid = 0
    latencies: list[float] = []
    scores_answerable: list[float] = []
    scores_unanswerable: list[float] = []
    per_question = []
    confidences: list[float | None] = []
    answerable_flags: list[bool] = []
    right_flags: list[bool] = []
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
        groups = gold_groups(row)
        evidence = row.get("evidence")
        answerable = bool(groups) or bool(evidence)
        rank = None
        if evidence:
            rank = next((h.rank for h in answer.passages if holds_evidence(h.chunk.text, evidence)), None)
            ranks.append(rank)
        for c in answer.citations:
            citations += 1
            text = sources.get((c.source, c.doc_id))
            valid += text is not None and exact_span(text, c.start, c.end, c.quote)
        quotes = [c.quote for c in answer.citations]
        is_supported = not answer.abstained and quotes_answer(groups, quotes)
        is_first = not answer.abstained and quotes_answer(groups, quotes[:1])
        # abstained, but the answer is among the closest sentences shown for the user to check
        shown = answer.abstained and bool(groups) and quotes_answer(groups, [c.quote for c in answer.closest])
        answered += not answer.abstained
        confidences.append(answer.confidence)
        answerable_flags.append(answerable)
        # what the top sentence would give if answered: right when its quote holds the answer
        right_flags.append(quotes_answer(groups, quotes) if quotes else False)
        if answerable:
            n_answerable += 1
            first += is_first
            supported += is_supported
            false_abstain += answer.abstained
            in_closest += shown
            if answer.evidence is not None:
                scores_answerable.append(answer.evidence)
        else:
            n_unanswerable += 1
            right_abstain += answer.abstained
            if answer.evidence is not None:
                scores_unanswerable.append(answer.evidence)
        per_question.append({"id": row.get("id"), "has_evidence": bool(evidence), "rank": rank, "abstained": answer.abstained,
                             "supported": is_supported, "first_quote": is_first, "answer_in_closest": shown,
                             "evidence_score": answer.evidence, "confidence": answer.confidence})
    n_ev = len(ranks) or 1

    def hit_at(n: int) -> float:
        return round(sum(r is not None and r <= n for r in ranks) / n_ev, 4)

    return {
        "questions": len(rows), "answerable": n_answerable, "unanswerable": n_unanswerable, "k": k,
        "hit@1": hit_at(1), "hit@3": hit_at(3), "hit@5": hit_at(5),
        "mrr": round(sum(1 / r for r in ranks if r) / n_ev, 4),
        "supported_accuracy": round(supported / max(1, n_answerable), 4),
        "first_quote_accuracy": round(first / max(1, n_answerable), 4),
        "abstention_unanswerable": round(right_abstain / max(1, n_unanswerable), 4),
        "false_abstention": round(false_abstain / max(1, n_answerable), 4),
        # of the questions answered (not abstained on), the share whose quotes hold a gold answer
        "answered_precision": round(supported / answered, 4) if answered else None,
        # of the answerable questions abstained on, the share whose answer a closest sentence shows
        "answer_in_closest": round(in_closest / false_abstain, 4) if false_abstain else None,
        "citation_validity": round(valid / citations, 4) if citations else 1.0,
        "citations": citations,
        "latency_ms_p50": round(_percentile(latencies, 0.5), 2),
        "latency_ms_p95": round(_percentile(latencies, 0.95), 2),
        "abstain_threshold": settings.answer.abstain_threshold,
        "suggested_abstain_threshold": _calibrate(scores_answerable, scores_unanswerable),
        "reader": settings.answer.reader,
        "reader_threshold": settings.answer.reader_threshold,
        "calibration": _curve_report(confidences, answerable_flags, right_flags),
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


def _squad_work(path: Path, work: Path | None) -> Path:
    if work is not None:
        return Path(work)
    digest = sha256_file(Path(path))[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "rag-news" / "squad" / digest


def squad_corpus(path: Path, folder: Path) -> list[dict[str, Any]]:
    """Write the articles of a SQuAD 2.0 file as a JSON Lines corpus in `folder` (one record per article, its
    paragraphs separated by blank lines); return its questions as {id, question, answers, article}."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        articles = data["data"]
    except FileNotFoundError:
        raise BadQuestion(f"SQuAD file {path} does not exist.") from None
    except (ValueError, KeyError, TypeError):
        raise BadQuestion(f"{path} is not a SQuAD 2.0 JSON file (no top-level 'data' list of articles).") from None
    folder.mkdir(parents=True, exist_ok=True)
    questions = []
    lines = []
    for a, article in enumerate(articles):
        title = str(article.get("title") or f"article-{a}").replace("_", " ")
        contexts = [p["context"].strip() for p in article.get("paragraphs", [])]
        lines.append(json.dumps({"id": f"squad-{a}", "title": title, "text": "\n\n".join(contexts)},
                                ensure_ascii=False))
        for para in article.get("paragraphs", []):
            for qa in para.get("qas", []):
                answers = [] if qa.get("is_impossible") else sorted({x["text"] for x in qa.get("answers", [])})
                questions.append({"id": str(qa.get("id")), "question": qa["question"], "answers": answers,
                                  "article": title})
    target = folder / (Path(path).stem + ".jsonl")
    text = "\n".join(lines) + "\n"
    if not target.exists() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")
    return questions


def evaluate_squad(path: Path, settings: Settings, sample: int | None = None, k: int = 5,
                   work: Path | None = None, seed: int = 0,
                   progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Ask a SQuAD 2.0 file's questions against an index of all its articles: supported accuracy on answerable
    questions, abstention on unanswerable ones, overall correctness and the abstention curve."""
    folder = _squad_work(Path(path), work)
    questions = squad_corpus(Path(path), folder / "corpus")
    if sample is not None and 0 < sample < len(questions):
        questions = random.Random(seed).sample(questions, sample)
    settings = settings.with_paths(folder / "corpus", folder / "index")
    report = build_index(settings, warn=lambda _m: None)
    if progress:
        progress(f"index {folder / 'index'}: {report.documents} articles, {report.chunks} chunks "
                 f"({report.chunks_embedded} embedded, {report.chunks_reused} reused)")
    engine = Engine(settings)
    answered_right = rightly_abstained = n_answerable = false_abstain = in_closest = 0
    latencies, confidences, answerable_flags, right_flags, per_question = [], [], [], [], []
    for n, q in enumerate(questions, 1):
        t0 = time.perf_counter()
        answer = engine.ask(q["question"], k)
        latencies.append((time.perf_counter() - t0) * 1000)
        groups = [q["answers"]] if q["answers"] else []
        quotes = [c.quote for c in answer.citations]
        right = quotes_answer(groups, quotes)
        shown = answer.abstained and bool(groups) and quotes_answer(groups, [c.quote for c in answer.closest])
        if groups:
            n_answerable += 1
            answered_right += (not answer.abstained) and right
            false_abstain += answer.abstained
            in_closest += shown
        else:
            rightly_abstained += answer.abstained
        confidences.append(answer.confidence)
        answerable_flags.append(bool(groups))
        right_flags.append(right)
        per_question.append({"id": q["id"], "answerable": bool(groups), "abstained": answer.abstained,
                             "right": right, "answer_in_closest": shown, "confidence": answer.confidence})
        if progress and n % 250 == 0:
            progress(f"{n} of {len(questions)} questions")
    n_unanswerable = len(questions) - n_answerable
    return {
        "squad": str(path), "questions": len(questions), "answerable": n_answerable,
        "unanswerable": n_unanswerable, "documents": report.documents, "k": k,
        "answered_right": round(answered_right / max(1, n_answerable), 4),
        "abstention_unanswerable": round(rightly_abstained / max(1, n_unanswerable), 4),
        "overall": round((answered_right + rightly_abstained) / max(1, len(questions)), 4),
        "always_abstain_overall": round(n_unanswerable / max(1, len(questions)), 4),
        # of the answerable questions abstained on, the share whose answer a closest sentence shows
        "answer_in_closest": round(in_closest / false_abstain, 4) if false_abstain else None,
        "latency_ms_p50": round(_percentile(latencies, 0.5), 2),
        "latency_ms_p95": round(_percentile(latencies, 0.95), 2),
        "reader": settings.answer.reader, "reader_threshold": settings.answer.reader_threshold,
        "calibration": _curve_report(confidences, answerable_flags, right_flags),
        "per_question": per_question,
    }


def format_report(report: dict[str, Any]) -> str:
    """A readable summary of an evaluation report."""
    if "squad" in report:
        lines = [f"SQuAD {report['squad']}: {report['questions']} questions ({report['answerable']} answerable, "
                 f"{report['unanswerable']} unanswerable) over {report['documents']} articles, k={report['k']}",
                 f"  {'answered right':<24} {report['answered_right']:.3f}  (share of answerable questions)",
                 f"  {'abstention':<24} {report['abstention_unanswerable']:.3f}  (share of unanswerable questions)",
                 f"  {'overall correctness':<24} {report['overall']:.3f}  (always abstaining: "
                 f"{report['always_abstain_overall']:.3f})"]
        if report.get("answer_in_closest") is not None:
            lines.append(f"  {'answer_in_closest':<24} {report['answer_in_closest']:.3f}  (of the answerable "
                         f"questions abstained on)")
        lines.append(f"  {'latency p50 / p95':<24} {report['latency_ms_p50']:.1f} / {report['latency_ms_p95']:.1f} ms")
        if report.get("calibration"):
            cal = report["calibration"]
            lines.append(f"  {'reader threshold':<24} {report['reader_threshold']} (best on these questions: "
                         f"{cal['best_threshold']}, overall {cal['best_overall']:.3f})")
        return "\n".join(lines)
    if "beir" in report:
        return (f"BEIR {report['beir']}: {report['queries']} queries over {report['documents']} documents\n"
                f"  nDCG@10     {report['ndcg@10']:.4f}\n  Recall@100  {report['recall@100']:.4f}\n"
                f"  search p50  {report['latency_ms_p50']:.1f} ms  (fusion: {report['fusion']})")
    lines = [f"{report['questions']} questions ({report['answerable']} answerable, "
             f"{report['unanswerable']} unanswerable), k={report['k']}"]
    for key in ("hit@1", "hit@3", "hit@5", "mrr", "supported_accuracy", "first_quote_accuracy",
                "abstention_unanswerable", "false_abstention", "citation_validity"):
        lines.append(f"  {key:<24} {report[key]:.3f}")
    if report.get("answered_precision") is not None:
        lines.append(f"  {'answered_precision':<24} {report['answered_precision']:.3f}  (of the questions answered)")
    if report.get("answer_in_closest") is not None:
        lines.append(f"  {'answer_in_closest':<24} {report['answer_in_closest']:.3f}  (of the false abstentions)")
    lines.append(f"  {'latency p50 / p95':<24} {report['latency_ms_p50']:.1f} / {report['latency_ms_p95']:.1f} ms")
    if report.get("reader") != "off" and report.get("calibration"):
        cal = report["calibration"]
        lines.append(f"  {'reader threshold':<24} {report['reader_threshold']} (best on these questions: "
                     f"{cal['best_threshold']}, overall {cal['best_overall']:.3f})")
    else:
        lines.append(f"  {'abstain threshold':<24} {report['abstain_threshold']} "
                     f"(suggested from these questions: {report['suggested_abstain_threshold']})")
    misses = [str(q["id"]) for q in report["per_question"] if q["has_evidence"] and q["rank"] is None]
    if misses:
        lines.append(f"  evidence not retrieved for: {', '.join(misses)}")
    return "\n".join(lines)
