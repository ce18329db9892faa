"""Sentence spans with exact character offsets."""

from __future__ import annotations

import re
import threading

_LINE = re.compile(r"[^\n]+")
_HEADING_MARK = re.compile(r"\s*#{1,6}\s+")  # a Markdown heading's "## " is markup, not part of a quote
_LOCAL = threading.local()


def _segmenter():  # type: ignore[no-untyped-def]
    """This thread's pysbd segmenter: one keeps the text it is splitting on itself, so threads cannot share it."""
    segmenter = getattr(_LOCAL, "segmenter", None)
    if segmenter is None:
        import pysbd

        segmenter = _LOCAL.segmenter = pysbd.Segmenter(language="en", clean=False)
    return segmenter


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Spans `(s, e)` of the sentences of `text[start:end]`, as offsets into `text`, trimmed of
    surrounding whitespace. A sentence never crosses a line break; `text[s:e]` is the sentence."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    for line in _LINE.finditer(text, start, end):
        mark = _HEADING_MARK.match(line.group())
        base = line.start() + (mark.end() if mark else 0)
        body = text[base:line.end()]
        if not body.strip():
            continue
        cursor = 0
        for piece in _segmenter().segment(body):
            piece = piece.strip()
            if not piece:
                continue
            found = body.find(piece, cursor)
            if found < 0:  # the segmenter altered the text: fall back to the whole rest of the line
                rest = body[cursor:]
                if rest.strip():
                    s = base + cursor + len(rest) - len(rest.lstrip())
                    spans.append((s, s + len(rest.strip())))
                break
            spans.append((base + found, base + found + len(piece)))
            cursor = found + len(piece)
    return spans
