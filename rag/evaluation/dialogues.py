"""`rag eval --dialogues FILE`: answer dialogues turn by turn, each turn resolved against the conversation so
far, and compare with the oracle (each turn's gold standalone question asked alone) and with no resolution (the
typed question asked alone), per kind of turn.

A dialogue line: {"id": ..., "turns": [{"question", "standalone", "kind": "answerable" | "unanswerable",
"groups", "evidence"}, ...]}. Turn kinds reported: `opener` (a dialogue's first turn), `follow-up` (later
answerable turns) and `follow-up-unanswerable` (later turns the archive cannot answer).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..answer.conversation import Conversation
from ..answer.resolution import resolve
from ..answer.turns import context
from ..engine import Engine, get_engine
from ..errors import BadQuestion
from . import _load_jsonl, _percentile, gold_groups, quotes_answer
from ..records import Answer
from ..settings import Settings
from ..common.text import content_terms

KINDS = ("opener", "follow-up", "follow-up-unanswerable")


def _turn_kind(n: int, turn: dict[str, Any]) -> str:
    if n == 0:
        return "opener"
    unanswerable = turn.get("kind") == "unanswerable" or not gold_groups(turn)
    return "follow-up-unanswerable" if unanswerable else "follow-up"


def _judge(answer: Answer, groups: list[list[str]]) -> dict[str, bool]:
    quotes = [c.quote for c in answer.citations]
    return {"supported": not answer.abstained and quotes_answer(groups, quotes),
            "first_quote": not answer.abstained and quotes_answer(groups, quotes[:1]),
            "abstained": answer.abstained}


def resolution_overlap(resolved: str, gold: str) -> float:
    """Share of the gold standalone question's content terms (stemmed, as BM25 sees them) in the resolved one."""
    want = set(content_terms(gold))
    return len(want & set(content_terms(resolved))) / len(want) if want else 1.0


def _summary(rows: list[dict[str, Any]], system: str) -> dict[str, Any]:
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]

    def share(items: list[dict[str, Any]], key: str) -> float | None:
        return round(sum(r[system][key] for r in items) / len(items), 4) if items else None

    return {"supported_accuracy": share(answerable, "supported"),
            "first_quote_accuracy": share(answerable, "first_quote"),
            "false_abstention": share(answerable, "abstained"),
            "abstention_unanswerable": share(unanswerable, "abstained")}


def evaluate_dialogues(path: Path | str, settings: Settings, k: int | None = None,
                       engine: Engine | None = None) -> dict[str, Any]:
    """Per kind of turn: supported and first-quote accuracy, abstention on unanswerable turns, for the resolved
    turns ("resolved"), the gold standalone questions asked alone ("oracle") and the typed questions asked alone
    ("alone"); resolution overlap with the gold standalone and resolution time."""
    path = Path(path)
    dialogues = _load_jsonl(path)
    engine = engine or get_engine(settings)
    rows: list[dict[str, Any]] = []
    resolve_ms: list[float] = []
    for n, dialogue in enumerate(dialogues, 1):
        turns = dialogue.get("turns") if isinstance(dialogue, dict) else None
        if not isinstance(turns, list) or not all(isinstance(t, dict) and isinstance(t.get("question"), str)
                                                  for t in turns):
            raise BadQuestion(f"{path}: dialogue {n} has no list of turns with a \"question\" each. Each line must "
                              'be like {"id": "d1", "turns": [{"question": "...", "standalone": "..."}, ...]}.')
        conversation = Conversation()
        for i, turn in enumerate(turns):
            t0 = time.perf_counter()
            resolution = resolve(turn["question"], context(conversation))
            resolve_ms.append((time.perf_counter() - t0) * 1000)
            answer = engine.ask(turn["question"], k, conversation=conversation)  # resolved again, with the boost
            asked = answer.standalone or turn["question"]
            conversation = conversation.then(answer)
            groups = gold_groups(turn)
            gold = turn.get("standalone") or turn["question"]
            oracle = engine.ask(gold, k)
            alone = answer if asked == turn["question"] else engine.ask(turn["question"], k)
            rows.append({"dialogue": dialogue.get("id", n), "turn": i, "kind": _turn_kind(i, turn),
                         "answerable": bool(groups), "question": turn["question"], "standalone": asked,
                         "dependency": resolution.kind, "unresolved": resolution.unresolved,
                         "overlap": round(resolution_overlap(asked, gold), 4),
                         "overlap_typed": round(resolution_overlap(turn["question"], gold), 4),
                         # an unresolved reference gets a request to name it: an abstention
                         "resolved": _judge(answer, groups), "oracle": _judge(oracle, groups),
                         "alone": _judge(alone, groups)})
    kinds: dict[str, Any] = {}
    for kind in KINDS:
        chosen = [r for r in rows if r["kind"] == kind]
        if chosen:
            kinds[kind] = {"turns": len(chosen), **{s: _summary(chosen, s) for s in ("resolved", "oracle", "alone")},
                           "resolution_overlap": round(sum(r["overlap"] for r in chosen) / len(chosen), 4),
                           "typed_overlap": round(sum(r["overlap_typed"] for r in chosen) / len(chosen), 4)}
    later = [r for r in rows if r["turn"] > 0]
    return {"dialogues": len(dialogues), "turns": len(rows), "kinds": kinds,
            "follow-ups_detected": round(sum(r["dependency"] is not None for r in later) / max(1, len(later)), 4),
            "resolve_ms_p50": round(_percentile(resolve_ms, 0.5), 3),
            "resolve_ms_max": round(max(resolve_ms, default=0.0), 3),
            "per_turn": rows}


def format_dialogue_report(report: dict[str, Any]) -> str:
    """A readable table of a dialogue evaluation."""
    lines = [f"{report['dialogues']} dialogues, {report['turns']} turns; resolution p50 "
             f"{report['resolve_ms_p50']:.2f} ms, max {report['resolve_ms_max']:.2f} ms",
             f"  {'turn kind':<24} {'n':>3}  {'':<9} {'supported':>9} {'first':>6} {'abstain':>8}  overlap"]

    def fmt(v: float | None) -> str:
        return "    -" if v is None else f"{v:.3f}"

    for kind, figures in report["kinds"].items():
        for system in ("resolved", "oracle", "alone"):
            f = figures[system]
            overlap = {"resolved": figures["resolution_overlap"], "alone": figures["typed_overlap"]}.get(system)
            lines.append(f"  {kind if system == 'resolved' else '':<24} {figures['turns'] if system == 'resolved' else '':>3}"
                         f"  {system:<9} {fmt(f['supported_accuracy']):>9} {fmt(f['first_quote_accuracy']):>6} "
                         f"{fmt(f['abstention_unanswerable']):>8}  {fmt(overlap) if overlap is not None else ''}")
    return "\n".join(lines)
