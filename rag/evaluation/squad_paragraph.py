"""`rag eval --squad FILE --paragraph`: the reader on SQuAD 2.0 with each question's own paragraph given, scored
with the official metric (normalised exact match and token F1, an unanswerable question right only when no
answer is given), so that it can stand beside published figures for models of this size.

The reader reads every sentence of the paragraph (with the article's title and the sentence before it, as in the
answer step), the first-stage evidence computed as the answer step computes it over the paragraph; the sentence
it trusts most gives its answer span when its confidence reaches `answer.reader_threshold`, else no answer."""

from __future__ import annotations

import collections
import random
import re
import string
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..answer.readers import load_reader
from ..errors import BadQuestion
from ..settings import Settings

# Published paragraph-given figures on SQuAD 2.0 dev for models of the same family (F1; no-answer accuracy).
ANCHORS = {"MiniLM-L6-H384, full SQuAD 2.0 train, 384 tokens (microsoft/unilm)": {"f1": 75.6},
           "MiniLM-L12-H384 (microsoft/unilm)": {"f1": 81.7},
           "deepset MiniLM-L12 SQuAD 2.0, no-answer accuracy": {"no_answer_accuracy": 73.9}}


def normalize_answer(text: str) -> str:
    """The official SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals a normalised gold answer; for an unanswerable question (no
    gold answer), 1.0 only for no prediction."""
    if not golds:
        return float(not prediction)
    return max(float(normalize_answer(prediction) == normalize_answer(g)) for g in golds)


def f1_score(prediction: str, golds: Sequence[str]) -> float:
    """The official token F1, the best over the gold answers (no answer scores as exact match does)."""
    if not golds:
        return float(not prediction)

    def one(gold: str) -> float:
        p, g = normalize_answer(prediction).split(), normalize_answer(gold).split()
        if not p or not g:
            return float(p == g)
        common = sum((collections.Counter(p) & collections.Counter(g)).values())
        if common == 0:
            return 0.0
        precision, recall = common / len(p), common / len(g)
        return 2 * precision * recall / (precision + recall)

    return max(one(g) for g in golds)


def _figures(rows: list[dict[str, Any]], threshold: float) -> dict[str, float]:
    """EM/F1 (percent) and their parts when a question is answered at confidence >= threshold."""
    em, f1, has_em, has_f1, no_right = [], [], [], [], []
    for r in rows:
        prediction = r["prediction"] if r["confidence"] >= threshold else ""
        e, f = exact_match(prediction, r["golds"]), f1_score(prediction, r["golds"])
        em.append(e)
        f1.append(f)
        if r["golds"]:
            has_em.append(e)
            has_f1.append(f)
        else:
            no_right.append(e)

    def pct(values: list[float]) -> float:
        return round(100 * float(np.mean(values)), 2) if values else 0.0

    return {"exact": pct(em), "f1": pct(f1), "has_answer_exact": pct(has_em), "has_answer_f1": pct(has_f1),
            "no_answer_accuracy": pct(no_right)}


def evaluate_squad_paragraph(path: Path, settings: Settings, sample: int | None = None, seed: int = 0,
                             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Paragraph-given EM/F1 of the reader in force on a SQuAD 2.0 file (see the module docstring)."""
    from ..index.encoders import load_embedder
    from ..training.data import TermShare, first_stage_score, make_pool, read_squad

    if settings.answer.reader == "off":
        raise BadQuestion("--paragraph measures the reader, and answer.reader is 'off': set it to 'bundled' or a "
                          "reader folder.")
    try:
        pool = make_pool(read_squad(path))
    except FileNotFoundError:
        raise BadQuestion(f"SQuAD file {path} does not exist.") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise BadQuestion(f"{path} is not a SQuAD 2.0 JSON file ({exc}).") from None
    questions = list(pool.questions)
    if sample is not None and 0 < sample < len(questions):
        questions = random.Random(seed).sample(questions, sample)
    reader = load_reader(settings.answer.reader)
    assert reader is not None
    encode = load_embedder(settings.embedding).encode_documents
    wanted = sorted({i for q in questions for i in pool.by_paragraph.get(q.paragraph, [])})
    vectors = dict(zip(wanted, encode([pool.sentences[i].text for i in wanted])))
    q_vectors = encode([q.text for q in questions])
    share = TermShare([s.text for s in pool.sentences])
    rows = []
    for qi, q in enumerate(questions):
        members = pool.by_paragraph.get(q.paragraph, [])
        sentences = [pool.sentences[i] for i in members]
        if not sentences:
            continue
        lexical = share(q.text)
        first = [float(first_stage_score(vectors[i] @ q_vectors[qi], lexical[i])) for i in members]
        readings = reader.read(q.text, [s.text for s in sentences], [s.context for s in sentences], first)
        best = max(range(len(readings)), key=lambda i: readings[i].confidence)
        span = readings[best].span
        text = sentences[best].text
        rows.append({"id": q.qid, "golds": list(q.answer_texts), "confidence": readings[best].confidence,
                     "prediction": text[span[0]:span[1]] if span else text})
        if progress and (qi + 1) % 1000 == 0:
            progress(f"{qi + 1} of {len(questions)} questions")
    threshold = settings.answer.reader_threshold
    at = _figures(rows, threshold)
    cuts = sorted({0.0, 1.01} | {round(float(c), 3) for c in np.quantile([r["confidence"] for r in rows],
                                                                        np.linspace(0, 1, 41))})
    best_cut = max(cuts, key=lambda c: _figures(rows, c)["f1"])
    return {"squad": str(path), "paragraph": True, "questions": len(rows),
            "answerable": sum(bool(r["golds"]) for r in rows), "unanswerable": sum(not r["golds"] for r in rows),
            "reader": settings.answer.reader, "reader_threshold": threshold, **at,
            "best_threshold": best_cut, "best_f1": _figures(rows, best_cut)["f1"],
            "anchors": ANCHORS, "per_question": rows}


def format_paragraph_report(report: dict[str, Any]) -> str:
    lines = [f"SQuAD {report['squad']}, paragraph given: {report['questions']} questions ({report['answerable']} "
             f"answerable, {report['unanswerable']} unanswerable), reader {report['reader']}",
             f"  {'exact match':<24} {report['exact']:.1f}",
             f"  {'F1':<24} {report['f1']:.1f}  (answerable {report['has_answer_f1']:.1f}, no-answer accuracy "
             f"{report['no_answer_accuracy']:.1f})",
             f"  {'reader threshold':<24} {report['reader_threshold']} (best F1 on these questions: "
             f"{report['best_f1']:.1f} at {report['best_threshold']})",
             "  published anchors (SQuAD 2.0 dev, paragraph given, other articles):"]
    for name, figures in report["anchors"].items():
        lines.append(f"    {name}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    return "\n".join(lines)
