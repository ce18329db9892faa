"""Sentence spans with exact character offsets."""

from __future__ import annotations

import re
import threading

_LINE = re.compile(r"[^\n]+")
_HEADING_MARK = re.compile(r"\s*#{1,6}\s+")  # a Markdown heading's "## " is markup, not part of a quote
_LOCAL = threading.local()
# pysbd's time grows with the square of the text it is given (0.7 s at 30 KB, minutes at 1 MB), so a longer
# line is cut into pieces of at most this many characters, at a sentence end or else a space where it can.
MAX_PIECE = 2000
_CUT_AT_SENTENCE = re.compile(r"[.!?…][\"'”’)\]]*\s+|[。！？][」』”’)]*")
_CUT_AT_SPACE = re.compile(r"\s+")


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
        for base, stop in pieces(text, line.start() + (mark.end() if mark else 0), line.end()):
            spans += _segment(text, base, stop)
    return spans


def pieces(text: str, start: int, end: int, limit: int = MAX_PIECE) -> list[tuple[int, int]]:
    """`text[start:end]` cut into consecutive spans of at most `limit` characters: after the last sentence end
    in the second half of a window, else at its last whitespace, else (one long word) at the limit."""
    out = []
    while end - start > limit:
        window = text[start + limit // 2:start + limit]
        cut = None
        for pattern in (_CUT_AT_SENTENCE, _CUT_AT_SPACE):
            last = None
            for last in pattern.finditer(window):
                pass
            if last is not None:
                cut = start + limit // 2 + last.end()
                break
        cut = cut if cut is not None and cut > start else start + limit
        out.append((start, cut))
        start = cut
    out.append((start, end))
    return out


def _segment(text: str, base: int, stop: int) -> list[tuple[int, int]]:
    """Sentence spans of `text[base:stop]`, a piece of one line, as offsets into `text`."""
    spans: list[tuple[int, int]] = []
    body = text[base:stop]
    if not body.strip():
        return spans
    cursor = 0
    for piece in _segmenter().segment(body):
        piece = piece.strip()
        if not piece:
            continue
        found = body.find(piece, cursor)
        if found < 0:  # the segmenter altered the text: fall back to the whole rest of the piece
            rest = body[cursor:]
            if rest.strip():
                s = base + cursor + len(rest) - len(rest.lstrip())
                spans.append((s, s + len(rest.strip())))
            break
        spans.append((base + found, base + found + len(piece)))
        cursor = found + len(piece)
    return spans
