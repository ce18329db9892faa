"""Scoring "who said what" against labelled statements (`dev_attributions.jsonl`; the format is documented in
`validate_attributions.py` beside it): statement precision and recall, speaker accuracy, per kind."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..ingest.attribution import KINDS, Statement, extract_statements
from ..ingest.corpus import iter_articles
from ..errors import RagError
from ..settings import CorpusSettings
from ..ingest.speakers import speaker_key


@dataclass(frozen=True)
class Labelled:
    """A statement with its speaker and kind, and its offsets into a source text (`source` names it)."""

    speaker: str | None
    kind: str
    start: int
    end: int
    source: str = ""


def _overlap(a: Labelled | Statement, b: Labelled | Statement) -> int:
    return max(0, min(a.end, b.end) - max(a.start, b.start))


def _same_speaker(predicted: str | None, gold: str | None) -> bool:
    if gold is None or predicted is None:
        return gold is None and predicted is None
    return speaker_key(predicted) == speaker_key(gold)


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def score_attributions(predicted: Sequence[Labelled], gold: Sequence[Labelled]) -> dict[str, Any]:
    """Precision, recall and speaker accuracy. A predicted statement matches a gold one (of the same source)
    when they overlap by at least half of the gold span; each is matched at most once, largest overlap first.
    A null gold speaker is matched only by no speaker; names compare by `speaker_key`. Per kind: recall and
    speaker accuracy by the gold kind, precision by the predicted kind, kind accuracy over matches."""
    pairs = []
    for i, g in enumerate(gold):
        for j, p in enumerate(predicted):
            if p.source == g.source:
                ov = _overlap(p, g)
                if ov * 2 >= g.end - g.start and ov > 0:
                    pairs.append((ov, i, j))
    matched: dict[int, int] = {}
    used: set[int] = set()
    for _ov, i, j in sorted(pairs, reverse=True):
        if i not in matched and j not in used:
            matched[i] = j
            used.add(j)

    def block(gold_ids: list[int], pred_ids: list[int]) -> dict[str, Any]:
        hits = [i for i in gold_ids if i in matched]
        right = [i for i in hits if _same_speaker(predicted[matched[i]].speaker, gold[i].speaker)]
        return {"gold": len(gold_ids), "predicted": len(pred_ids), "matched": len(hits),
                "precision": _ratio(sum(j in used for j in pred_ids), len(pred_ids)),
                "recall": _ratio(len(hits), len(gold_ids)),
                "speaker_accuracy": _ratio(len(right), len(hits)),
                "kind_accuracy": _ratio(sum(predicted[matched[i]].kind == gold[i].kind for i in hits), len(hits))}

    report = block(list(range(len(gold))), list(range(len(predicted))))
    report["per_kind"] = {k: block([i for i, g in enumerate(gold) if g.kind == k],
                                   [j for j, p in enumerate(predicted) if p.kind == k]) for k in KINDS}
    report["misses"] = [i for i in range(len(gold)) if i not in matched]
    report["wrong_speaker"] = [(i, predicted[matched[i]].speaker) for i in matched
                               if not _same_speaker(predicted[matched[i]].speaker, gold[i].speaker)]
    report["unmatched_predictions"] = [j for j in range(len(predicted)) if j not in used]
    return report


def read_labels(path: Path) -> list[dict[str, Any]]:
    """The records of a labels file (JSON Lines)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise RagError(f"Cannot read attribution labels {path}: {e.strerror}. Pass an existing JSONL file.") from e
    rows = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise RagError(f"{path}:{n} is not JSON ({e.msg}). Fix the line; validate_attributions.py "
                               f"checks a labels file.") from e
    return rows


def corpus_statements(corpus: Path, options: CorpusSettings | None = None) -> list[tuple[str, Statement]]:
    """Every article's statements, with the source (file path relative to the corpus) its offsets index."""
    out = []
    for article in iter_articles(corpus, warn=lambda _m: None, options=options):
        doc = article.document
        out += [(doc.source, s) for s in extract_statements(article.source_text, doc.spans)]
    return out


def evaluate_attributions(labels: Path, corpus: Path, options: CorpusSettings | None = None) -> dict[str, Any]:
    """Extract statements from the corpus and score them against a labels file. The labels' offsets index the
    corpus's source texts; only sources that the labels cover are scored (a record names its source by the
    article opener it lies in, so a labelled corpus holds labels for every file it scores)."""
    rows = read_labels(labels)
    found = corpus_statements(corpus, options)
    texts = {doc.source: a.source_text for a in iter_articles(corpus, warn=lambda _m: None, options=options)
             for doc in [a.document]}
    gold: list[Labelled] = []
    for r in rows:
        source = next((src for src, text in texts.items()
                       if r["end"] <= len(text) and text[r["start"]:r["end"]] == r["statement"]), None)
        if source is None:
            raise RagError(f"{labels}: statement {r.get('id')} is not at its offsets in any file of {corpus}. "
                           f"Point --corpus at the archive the labels were made on.")
        gold.append(Labelled(r["speaker"], r["kind"], r["start"], r["end"], source))
    sources = {g.source for g in gold}
    predicted = [Labelled(s.speaker, s.kind, s.start, s.end, src) for src, s in found if src in sources]
    report = score_attributions(predicted, gold)
    report["ids"] = [r.get("id") for r in rows]
    return report


def summary(report: dict[str, Any]) -> str:
    """The figures of a report as a few lines of text."""
    lines = [f"statements: gold {report['gold']}, predicted {report['predicted']}, matched {report['matched']}",
             f"precision {report['precision']}  recall {report['recall']}  "
             f"speaker accuracy {report['speaker_accuracy']}  kind accuracy {report['kind_accuracy']}"]
    for kind, k in report["per_kind"].items():
        lines.append(f"  {kind:13} gold {k['gold']:3}  predicted {k['predicted']:3}  precision {k['precision']}  "
                     f"recall {k['recall']}  speaker {k['speaker_accuracy']}")
    return "\n".join(lines)


def labelled(statements: Iterable[tuple[str, Statement]]) -> list[Labelled]:
    return [Labelled(s.speaker, s.kind, s.start, s.end, src) for src, s in statements]
