"""Dates, in one place: read from articles (for the index's date filter), checked when given as a filter, and
split into parts for reference exports. All three share one calendar check, and always agree on a plain
`YYYY`, `YYYY-MM` or `YYYY-MM-DD`; they differ only in how much else they accept, each on purpose:

- `normalise_date` reads what archives hold (ISO with a time or trailing text, RFC 2822, "5 March 2024"),
  because a date an article gives is better read than lost;
- `date_filter` takes exactly `YYYY`, `YYYY-MM` or `YYYY-MM-DD` in ASCII digits, because a mistyped filter
  must be refused, not silently read as a wider or empty range;
- `iso_date_parts` takes an ISO date (optionally with a time) and nothing else, because an export writes only
  what is known, and anything else goes verbatim into the note."""

from __future__ import annotations

import re
from datetime import datetime

from ..errors import BadQuestion

# The start of an ISO-like date; a month or day of one or two digits (2024-3-5), none followed by another digit.
_ISO_START = re.compile(r"(\d{4})(?:-(\d{1,2})(?!\d)(?:-(\d{1,2})(?!\d))?)?")
# A whole ISO date, optionally with a time of day.
_ISO_STAMP = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T[\d:.]+(?:Z|[+-]\d{2}:?\d{2})?)?)?)?")
# Exactly YYYY, YYYY-MM or YYYY-MM-DD, in ASCII digits.
_PLAIN = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?", re.ASCII)
_NAMED_FORMATS = ("%a, %d %b %Y %H:%M:%S %z", "%d %B %Y", "%B %d, %Y", "%d %b %Y", "%b %d, %Y")


def real_date(parts: list[int]) -> bool:
    """`[year]`, `[year, month]` or `[year, month, day]` names a day, month or year of the calendar."""
    try:
        datetime(*(parts + [1, 1])[:3])
    except ValueError:
        return False
    return True


def normalise_date(value: str | None) -> str | None:
    """`YYYY`, `YYYY-MM` or `YYYY-MM-DD` (ASCII digits) from an ISO-like or RFC 2822 date, or one with the
    month named; None when it cannot be read or names no real day (2026-13-45)."""
    if not value:
        return None
    text = str(value).strip()
    match = _ISO_START.match(text)
    if match:
        parts = [int(g) for g in match.groups() if g is not None]  # int() also reads other scripts' digits
        if not real_date(parts):
            return None
        return "-".join(f"{p:0{4 if i == 0 else 2}d}" for i, p in enumerate(parts))
    for fmt in _NAMED_FORMATS:
        try:
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    return None


def date_filter(value: str | None, name: str) -> str | None:
    """`YYYY`, `YYYY-MM` or `YYYY-MM-DD` naming a real date, for filtering; BadQuestion for anything else
    (2024-13, 2024-02-30, 2024-1-5), which is refused rather than silently read as a wider or empty range.
    `name` says which filter it is ("The 'since' date")."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    match = _PLAIN.fullmatch(text)
    if match is None or not real_date([int(g) for g in match.groups() if g is not None]):
        raise BadQuestion(f"{name} {value!r} is not a date; use YYYY, YYYY-MM or YYYY-MM-DD.")
    return text


def iso_date_parts(raw: str) -> list[int] | None:
    """[year, month?, day?] of an ISO date (a time of day after it allowed), or None when it is not one."""
    match = _ISO_STAMP.fullmatch(raw.strip())
    if not match:
        return None
    parts = [int(g) for g in match.groups() if g is not None]
    return parts if real_date(parts) else None
