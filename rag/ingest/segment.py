"""Archive pages split into articles: paragraphs, headlines, subheadings and related-link blocks, as spans of
the page's text. Pure functions of the text: nothing here reads a file."""

from __future__ import annotations

import re

from ..common.text import slug

_PARAGRAPH = re.compile(r"\S(?:.*?\S)?(?=[^\S\n]*\n[^\S\n]*\n|\s*\Z)", re.S)
_HEADER = re.compile(r"^(?:(?P<kind>[A-Za-z][\w ]{0,30}?)\s+)?Archives?\s*[:\-–—]\s*(?P<name>\S.{0,80})$")
_READ_MORE = re.compile(r"^(?:read|see)\s+(?:more|also)\s*[.…]*$", re.I)
_READ_MORE_LINE = re.compile(r"^(?:read|see)\s+(?:more|also)\s*:", re.I)
_END_PUNCT = re.compile(r"[.!?:;,\"”’)\]…]$")
_MD_H1 = re.compile(r"^#(?!#)\s*(\S.*?)\s*#*\s*$")


def slugify(text: str, limit: int = 60) -> str:
    """ASCII slug for readable ids."""
    return slug(text, limit) or "article"


def paragraphs(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Spans of blank-line separated paragraphs, trimmed of surrounding whitespace."""
    end = len(text) if end is None else end
    if start == 0 and text.startswith("\ufeff"):  # a UTF-8 byte order mark is not text
        start = 1
    return [(m.start(), m.end()) for m in _PARAGRAPH.finditer(text[:end], start)]


def _is_title(para: str, min_words: int) -> bool:
    return "\n" not in para and not _END_PUNCT.search(para) and len(para.split()) >= min_words


def _excluded(text: str, paras: list[tuple[int, int]]) -> set[int]:
    """Indexes of paragraphs that are related-link blocks, not article text."""
    out: set[int] = set()
    for i, (s, e) in enumerate(paras):
        para = text[s:e]
        if _READ_MORE.match(para):
            out.add(i)
            if i + 1 < len(paras):
                ns, ne = paras[i + 1]
                follow = text[ns:ne]
                # caption + headline, or a lone headline without end punctuation
                if "\n" in follow.strip() and follow.count("\n") <= 3 or not _END_PUNCT.search(follow):
                    out.add(i + 1)
        elif _READ_MORE_LINE.match(para):
            out.add(i)
    return out


def merge_spans(spans: list[tuple[int, int]], text: str) -> tuple[tuple[int, int], ...]:
    """Join neighbouring paragraph spans into maximal runs with nothing excluded between them."""
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and not text[merged[-1][1]:s].strip():  # only whitespace between: one run
            merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return tuple(merged)


def segment_text(
    text: str, markdown: bool = False, min_title_words: int = 8
) -> tuple[dict[str, str], list[tuple[str, list[tuple[int, int]]]]]:
    """Split an archive page into articles: (file metadata, [(title, paragraph spans)])."""
    paras = paragraphs(text)
    meta: dict[str, str] = {}
    if paras:
        first = text[paras[0][0]:paras[0][1]]
        header = _HEADER.match(first) if "\n" not in first else None
        if header:
            meta["category"] = header.group("name").strip()
            paras = paras[1:]
    skip = _excluded(text, paras)
    kept = [p for i, p in enumerate(paras) if i not in skip]
    h1 = [p for p in kept if markdown and _MD_H1.match(text[p[0]:p[1]].split("\n", 1)[0])]
    articles: list[tuple[str, list[tuple[int, int]]]] = []
    for s, e in kept:
        para = text[s:e]
        if h1:
            match = _MD_H1.match(para.split("\n", 1)[0])
            starts = match is not None
            title = match.group(1) if match else ""
        else:
            starts = _is_title(para, min_title_words) and not para.lstrip().startswith("#")
            title = para
        if starts or not articles:
            if not starts:  # leading text with no headline: title from the first line
                first_line = para.split("\n", 1)[0].lstrip("# ").strip()
                title = first_line if len(first_line) <= 160 else first_line[:157].rsplit(" ", 1)[0] + "…"
            articles.append((title.strip(), [(s, e)]))
        else:
            articles[-1][1].append((s, e))
    return meta, articles
