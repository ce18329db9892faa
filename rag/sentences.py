"""Sentence spans with exact character offsets."""

from __future__ import annotations

import re
import threading

_LINE = re.compile(r"[^\n]+")
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
        line_text = line.group()
        if not line_text.strip():
            continue
        cursor = 0
        for piece in _segmenter().segment(line_text):
            piece = piece.strip()
            if not piece:
                continue
            found = line_text.find(piece, cursor)
            if found < 0:  # the segmenter altered the text: fall back to the whole rest of the line
                rest = line_text[cursor:]
                lead = len(rest) - len(rest.lstrip())
                if rest.strip():
                    s = line.start() + cursor + lead
                    spans.append((s, s + len(rest.strip())))
                break
            spans.append((line.start() + found, line.start() + found + len(piece)))
            cursor = found + len(piece)
    return spans
