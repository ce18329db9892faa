"""Dates as articles give them, normalised for filtering."""

from __future__ import annotations

import re
from datetime import datetime

_ISO = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


def normalise_date(value: str | None) -> str | None:
    """`YYYY`, `YYYY-MM` or `YYYY-MM-DD` from an ISO-like or RFC 2822 date; None when it cannot be read or
    names no real day (2026-13-45)."""
    if not value:
        return None
    text = str(value).strip()
    match = _ISO.match(text)
    if match:
        parts = [part for part in match.groups() if part]
        try:
            datetime(*(int(p) for p in parts + ["1", "1"][len(parts) - 1:]))
        except ValueError:
            return None
        return "-".join(parts)
    for fmt in ("%a, %d %b %Y %H:%M:%S %z", "%d %B %Y", "%B %d, %Y", "%d %b %Y", "%b %d, %Y"):
        try:
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    return None
