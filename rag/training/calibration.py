"""The decision that turns reader outputs into a calibrated confidence, and the curves that measure it:
AUROC, the decision curve (share answered against precision and overall correctness per threshold), Platt
scaling, and the fit of the span and first-stage weights. numpy only: evaluation uses it too."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

Log = Callable[[str], None]


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    if not positive or not negative:
        return float("nan")
    values = np.concatenate([positive, negative])
    ranks = np.argsort(np.argsort(values, kind="stable"), kind="stable").astype(float) + 1
    # average ranks of ties
    for v in np.unique(values):
        mask = values == v
        if mask.sum() > 1:
            ranks[mask] = ranks[mask].mean()
    rp = ranks[: len(positive)].sum()
    return float((rp - len(positive) * (len(positive) + 1) / 2) / (len(positive) * len(negative)))


def decision_curve(scores: Sequence[float], answerable: Sequence[bool], right: Sequence[bool]
                   ) -> list[dict[str, float]]:
    """For every threshold between observed scores: share answered, accuracy of what is answered, answered
    right (share of answerable), rightly abstained (share of unanswerable) and overall correctness."""
    s = np.asarray(scores, dtype=float)
    a = np.asarray(answerable, dtype=bool)
    r = np.asarray(right, dtype=bool) & a
    points = np.unique(s)
    cuts = np.concatenate([[points[0] - 1], (points[:-1] + points[1:]) / 2, [points[-1] + 1]]) if len(points) \
        else np.array([0.0])
    n_a, n_u = max(1, int(a.sum())), max(1, int((~a).sum()))
    curve = []
    for t in cuts:
        answered = s >= t
        curve.append({
            "threshold": float(t),
            "answered": float(answered.mean()) if len(s) else 0.0,
            "precision": float((answered & r).sum() / max(1, answered.sum())),
            "answered_right": float((answered & r).sum() / n_a),
            "rightly_abstained": float((~answered & ~a).sum() / n_u),
            "overall": float(((answered & r).sum() + (~answered & ~a).sum()) / max(1, len(s))),
        })
    return curve


def best_threshold(curve: list[dict[str, float]]) -> dict[str, float]:
    """The point of highest overall correctness (the middle one among ties)."""
    top = max(p["overall"] for p in curve)
    ties = [p for p in curve if p["overall"] >= top - 1e-12]
    return ties[len(ties) // 2]


def platt(logits: Sequence[float], labels: Sequence[bool], iterations: int = 50,
          weights: Sequence[float] | None = None) -> tuple[float, float]:
    """(scale, bias) of the logistic curve P(label) = sigmoid(scale * logit + bias), by Newton's method
    (each example counted `weights[i]` times)."""
    x = np.asarray(logits, dtype=float)
    y = np.asarray(labels, dtype=float)
    sw = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    w = np.zeros(2)
    design = np.stack([x, np.ones_like(x)], axis=1)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(design @ w)))
        gradient = design.T @ (sw * (p - y))
        hessian = design.T @ (design * (sw * p * (1 - p))[:, None]) + 1e-6 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return float(w[0]), float(w[1])


@dataclass(frozen=True)
class Judged:
    """The reader's outputs and the first-stage score for each candidate of one question, and which
    candidates hold its answer."""

    answerable: bool
    logit: np.ndarray
    span: np.ndarray
    first_stage: np.ndarray
    right: np.ndarray


def combined(j: Judged, span_weight: float, first_stage_weight: float) -> np.ndarray:
    """The score that orders a question's candidates: the reader's answer logit, its span score and the
    first-stage evidence, weighted."""
    return j.logit + span_weight * j.span + first_stage_weight * j.first_stage


def decision_figures(judged: list[Judged], span_weight: float, first_stage_weight: float,
                     scale: float, bias: float) -> dict[str, float]:
    """Overall correctness and its parts when each question is answered with its best candidate if the
    calibrated confidence reaches 0.5, else abstained on."""
    best = [combined(j, span_weight, first_stage_weight) for j in judged]
    picks = [int(np.argmax(b)) for b in best]
    confidence = [1 / (1 + np.exp(-(scale * b[i] + bias))) for b, i in zip(best, picks)]
    answered = np.array([c >= 0.5 for c in confidence])
    answerable = np.array([j.answerable for j in judged])
    right = np.array([bool(j.right[i]) for j, i in zip(judged, picks)])
    top1 = float(right[answerable].mean()) if answerable.any() else 0.0
    return {"questions": len(judged), "top1_answerable": round(top1, 4),
            "answered_right": round(float((answered & right)[answerable].mean()) if answerable.any() else 0.0, 4),
            "rightly_abstained": round(float((~answered)[~answerable].mean()) if (~answerable).any() else 0.0, 4),
            "overall": round(float(((answered & right) | (~answered & ~answerable)).mean()), 4)}


def _overall_at(confidence: np.ndarray, right: np.ndarray, answerable: np.ndarray,
                thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(overall correctness, precision of what is answered) at each threshold, for one domain."""
    answered = confidence[None, :] >= thresholds[:, None]
    good = (answered & (right & answerable)[None, :]) | (~answered & ~answerable[None, :])
    precision = (answered & right[None, :]).sum(1) / np.maximum(1, answered.sum(1))
    return good.mean(1), precision


def fit_decision(domains: dict[str, list[Judged]], log: Log) -> dict[str, float]:
    """Weights of the span score and first-stage evidence, the logistic calibration of the best candidate's
    combined score, and the abstain threshold, chosen for the highest mean overall correctness over the domains
    (each domain counts equally, whatever its number of questions; among near ties, the more precise). The
    calibration's bias is then shifted so that the chosen threshold falls at confidence 0.5, the default of
    `answer.reader_threshold`: "at least 0.5" means "answered where answering is right more often"."""
    best_key, best = None, None
    thresholds = np.round(np.arange(0.05, 0.951, 0.01), 2)
    for span_weight in (0.0, 0.1, 0.25, 0.5):
        for first_stage_weight in (0.0, 1.0, 2.0, 4.0, 8.0):
            xs, ys, ws = [], [], []
            for judged in domains.values():
                for j in judged:
                    c = combined(j, span_weight, first_stage_weight)
                    i = int(np.argmax(c))
                    xs.append(float(c[i]))
                    ys.append(bool(j.right[i]))
                    ws.append(1.0 / len(judged))
            scale, bias = platt(xs, ys, weights=ws)
            overall, precision, at = np.zeros(len(thresholds)), np.zeros(len(thresholds)), 0
            for judged in domains.values():
                x = np.asarray(xs[at:at + len(judged)])
                o, p = _overall_at(1 / (1 + np.exp(-(scale * x + bias))), np.asarray(ys[at:at + len(judged)]),
                                   np.array([j.answerable for j in judged]), thresholds)
                overall, precision, at = overall + o / len(domains), precision + p / len(domains), at + len(judged)
            # the most precise threshold within half a point of the best overall correctness
            pick = int(np.argmax(np.where(overall >= overall.max() - 0.005, precision, -1.0)))
            key = (round(float(overall[pick]), 3), float(precision[pick]))
            if best_key is None or key > best_key:
                t = float(thresholds[pick])
                shifted = bias - float(np.log(t / (1 - t)))
                best_key = key
                best = {"span_weight": span_weight, "first_stage_weight": first_stage_weight,
                        "scale": round(scale, 6), "bias": round(shifted, 6), "platt_bias": round(bias, 6),
                        "fitted_threshold": t,
                        "figures": {name: decision_figures(judged, span_weight, first_stage_weight, scale, shifted)
                                    for name, judged in domains.items()}}
    log(f"decision: {json.dumps(best)}")
    return best  # type: ignore[return-value]
