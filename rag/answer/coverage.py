"""Coverage over time: how many of the articles that match a question or search were published when."""

from __future__ import annotations

from typing import Sequence

from ..common.dates import normalise_date
from ..records import Hit


def coverage(hits: Sequence[Hit]) -> list[tuple[str, int]]:
    """The distinct articles among `hits` counted by publication month (`YYYY-MM`; by year, `YYYY`, when they
    spread over more than three years), in date order; empty when no hit carries a date."""
    dates: dict[str, str] = {}
    for hit in hits:
        date = normalise_date(hit.metadata.get("date"))
        if date and hit.chunk.doc_id not in dates:
            dates[hit.chunk.doc_id] = date
    if not dates:
        return []
    years = sorted({int(d[:4]) for d in dates.values()})
    monthly = years[-1] - years[0] < 3 and all(len(d) >= 7 for d in dates.values())
    counts: dict[str, int] = {}
    for date in dates.values():
        key = date[:7] if monthly else date[:4]
        counts[key] = counts.get(key, 0) + 1
    return sorted(counts.items())
