"""HTML for the chat: answers with linked markers, source cards, passage cards and the article list.

Every piece of archive or user text goes through `esc` (html.escape, quotes included) and is shown with
`st.html`, which does not interpret Markdown, so markup in the corpus displays literally. Only http(s)
URLs become links."""

from __future__ import annotations

import html
import re
from typing import Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from rag import CLOSEST_HEADING, POSSIBLE_LEAD, Answer, Citation, Document, Hit, quote_in_passage

STYLE = """<style>
.rag-question, .rag-answer { white-space: pre-wrap; overflow-wrap: anywhere; }
.rag-answer.rag-abstained { border-left: 4px solid #d29922; padding-left: .7rem; }
.rag-badge { display: inline-block; font-size: .75rem; font-weight: 600; padding: .05rem .45rem;
  border-radius: .6rem; background: rgba(210, 153, 34, .18); margin-bottom: .3rem; }
a.rag-marker { font-weight: 600; text-decoration: none; padding: 0 .1rem; }
.rag-heading { font-weight: 600; margin: .8rem 0 .2rem 0; }
.rag-card { border: 1px solid rgba(128, 128, 128, .35); border-radius: .5rem; padding: .6rem .8rem;
  margin: .45rem 0; scroll-margin-top: 4.5rem; }
.rag-card:target { outline: 2px solid #f0b429; }
.rag-card-title { font-weight: 600; overflow-wrap: anywhere; }
.rag-num { color: #1c7ed6; margin-right: .3rem; }
.rag-meta { font-size: .85rem; opacity: .75; overflow-wrap: anywhere; }
.rag-passage { white-space: pre-wrap; overflow-wrap: anywhere; font-size: .92rem; margin-top: .35rem; }
mark.rag-quote { background: rgba(255, 214, 10, .5); color: inherit; padding: 0 .1em; border-radius: .2em; }
mark.rag-closest { background: rgba(140, 140, 140, .22); color: inherit; padding: 0 .1em; border-radius: .2em;
                  border-bottom: 1px dashed rgba(140, 140, 140, .9); }
mark.rag-span { background: rgba(255, 150, 0, .55); color: inherit; font-weight: 600; padding: 0;
  border-bottom: 2px solid #e8590c; }
.rag-docs { list-style: none; padding-left: 0 !important; margin: 0; }
.rag-docs li { margin: .35rem 0; font-size: .88rem; overflow-wrap: anywhere; }
</style>"""

_MARKER = re.compile(r"\[(\d+)\]")
SHOWN_META = ("publisher", "author", "date", "category")


def esc(text: object) -> str:
    """Text made inert as HTML (attribute-safe too)."""
    return html.escape(str(text), quote=True)


def web_url(url: object) -> str | None:
    """`url` when it is a plain http(s) address that may be a link, else None."""
    text = str(url or "").strip()
    if not text or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text):
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return text


def anchor(turn: int, n: int) -> str:
    """The element id of source card `n` of chat turn `turn`."""
    return f"src-{turn}-{n}"


def question_html(question: str, limit: int = 600) -> str:
    shown = question if len(question) <= limit else question[:limit] + f"… ({len(question):,} characters)"
    return f'<div class="rag-question">{esc(shown)}</div>'


def answer_html(turn: int, answer: Answer) -> str:
    """The answer text; each marker `[n]` of a citation links to its source card on the page."""
    cited = {c.n for c in answer.citations}

    def link(match: re.Match[str]) -> str:
        n = int(match.group(1))
        if n not in cited:
            return match.group(0)
        return f'<a class="rag-marker" href="#{anchor(turn, n)}" title="Go to source {n}">[{n}]</a>'

    body = _MARKER.sub(link, esc(answer.text))
    if answer.abstained:
        badge = (f"{POSSIBLE_LEAD}: check the quote" if answer.possible else
                 "No clear answer in the archive" if answer.closest else "No answer in the archive")
        return f'<div class="rag-answer rag-abstained"><div class="rag-badge">{badge}</div>\n{body}</div>'
    return f'<div class="rag-answer">{body}</div>'


def _metadata(metadata: Mapping[str, str]) -> str:
    parts = [f"{esc(key)}: {esc(metadata[key])}" for key in SHOWN_META if str(metadata.get(key) or "").strip()]
    url = str(metadata.get("url") or "").strip()
    if url:
        link = web_url(url)
        if link:
            parts.append(f'<a href="{esc(link)}" target="_blank" rel="noopener noreferrer nofollow">{esc(link)}</a>')
        else:
            parts.append(f"link (not a web address, not clickable): {esc(url)}")
    return f'<div class="rag-meta">{" · ".join(parts)}</div>' if parts else ""


def _passage_for(citation: Citation, passages: Sequence[Hit]) -> Hit | None:
    """The retrieved passage holding the quoted span, word for word: its own chunk first, else any of the same
    article."""
    holding = [h for h in passages if quote_in_passage(citation, h)]
    own = [h for h in holding if h.chunk.chunk_id == citation.chunk_id]
    return (own or holding or [None])[0]


def _quote_html(citation: Citation) -> str:
    """The quote, with the answer span inside it marked when the reader found one."""
    quote = citation.quote
    if citation.answer_span is None:
        return esc(quote)
    lo, hi = citation.answer_span[0] - citation.start, citation.answer_span[1] - citation.start
    if not 0 <= lo < hi <= len(quote):
        return esc(quote)
    return (f'{esc(quote[:lo])}<mark class="rag-span" title="The answer, as the reader found it">'
            f"{esc(quote[lo:hi])}</mark>{esc(quote[hi:])}")


def confidence_text(confidence: float | None, hit: Hit | None) -> str:
    """What the card says about how far to trust it: the reader's answer confidence when it read the
    passage, else the passage's retrieval rank (the min-max retrieval score reads 1.0 for any top passage)."""
    if confidence is not None:
        return f"answer confidence {confidence:.0%}"
    if hit is not None:
        return f"retrieval rank {hit.rank}"
    return "not among the passages"


def _span_card_html(citation: Citation, passages: Sequence[Hit], number: str, mark_class: str, attrs: str = ""
                    ) -> str:
    hit = _passage_for(citation, passages)
    mark = f'<mark class="{mark_class}">{_quote_html(citation)}</mark>'
    if hit is not None:
        text, lo, hi = hit.chunk.text, citation.start - hit.chunk.start, citation.end - hit.chunk.start
        passage = f"{esc(text[:lo])}{mark}{esc(text[hi:])}"
    else:
        passage = mark
    score = confidence_text(citation.confidence, hit)
    return (f'<div class="rag-card"{attrs}>'
            f'<div class="rag-card-title"><span class="rag-num">{number}</span>{esc(citation.title)}</div>'
            f'<div class="rag-meta">{esc(citation.source)}, chars {citation.start}–{citation.end} · {score}</div>'
            f"{_metadata(citation.metadata)}"
            f'<div class="rag-passage">{passage}</div></div>')


def citation_card_html(turn: int, citation: Citation, passages: Sequence[Hit]) -> str:
    """Source card `citation.n`: title, file and span, metadata, the passage with the quote (and the answer
    inside it) marked, the reader's confidence."""
    return _span_card_html(citation, passages, f"[{citation.n}]", "rag-quote", f' id="{anchor(turn, citation.n)}"')


def closest_card_html(sentence: Citation, passages: Sequence[Hit]) -> str:
    """A sentence the reader judged closest to answering when it abstained: marked inside its passage like a
    quote, but numbered apart from citations ("(1)", never "[1]"), in a paler mark and with no answer span."""
    return _span_card_html(sentence, passages, f"({sentence.n})", "rag-closest")


def passage_card_html(hit: Hit, confidence: float | None = None) -> str:
    """A retrieved passage (not a citation): title, file and span, metadata, text, and the reader's best
    confidence for a sentence of it (when it read one) or its retrieval rank."""
    c = hit.chunk
    how = f"best sentence {confidence_text(confidence, hit)}" if confidence is not None \
        else confidence_text(None, hit)
    return (f'<div class="rag-card">'
            f'<div class="rag-card-title"><span class="rag-num">#{hit.rank}</span>{esc(hit.title)}</div>'
            f'<div class="rag-meta">{esc(hit.source)}, chars {c.start}–{c.end} · {how}'
            f"</div>{_metadata(hit.metadata)}"
            f'<div class="rag-passage">{esc(c.text)}</div></div>')


def sources_html(turn: int, answer: Answer) -> str:
    """The cards under an answer: its sources in citation order, or the closest passages of an abstention."""
    if answer.citations:
        cards = "".join(citation_card_html(turn, c, answer.passages) for c in answer.citations)
        return f'<div class="rag-heading">Sources</div>{cards}'
    if answer.closest:
        cards = "".join(closest_card_html(c, answer.passages) for c in answer.closest)
        return f'<div class="rag-heading">{esc(CLOSEST_HEADING)}</div>{cards}'
    if answer.passages:
        cards = "".join(passage_card_html(h, answer.readings.get(h.chunk.chunk_id)) for h in answer.passages)
        return f'<div class="rag-heading">Closest passages (not citations)</div>{cards}'
    return '<div class="rag-meta">No passage of the archive matched (check the filters in the sidebar).</div>'


def documents_html(documents: Iterable[Document]) -> str:
    """The article list: title, source file and character range, date and publisher when known."""
    items = []
    for d in documents:
        meta = " · ".join(esc(d.metadata[k]) for k in ("publisher", "date") if str(d.metadata.get(k) or "").strip())
        items.append(f"<li><strong>{esc(d.title)}</strong><br>"
                     f'<span class="rag-meta">{esc(d.source)}, chars {d.start}–{d.end}'
                     f'{" · " + meta if meta else ""}</span></li>')
    return f'<ul class="rag-docs">{"".join(items)}</ul>'
