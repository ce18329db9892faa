"""The "Who said what" view of the app: the archive's speakers with their numbers of statements and articles,
a speaker's statements in date order with their citations and passages, and the shown statements exported as
citations in every format. Uses only `rag`'s public API; archive text is always shown escaped."""

from __future__ import annotations

from typing import Callable

import streamlit as st

import rag
from chat_html import _metadata, esc

KINDS = {"direct": "quoted", "indirect": "reported speech", "according_to": "according to"}
SHOWN = 200  # statements shown at once (all are exported)
CONTEXT = 240  # characters of the passage shown on each side of a statement


def statement_html(n: int, s: rag.AttributedStatement, text: str | None) -> str:
    """One statement: its speaker, kind and words, its citation, and the passage around it with the statement
    marked (when the source text can be read)."""
    who = esc(s.speaker or "No speaker named")
    named = f' (as “{esc(s.name)}” in this article)' if s.name and s.name != s.speaker else ""
    passage = ""
    if text is not None and text[s.start:s.end] == s.text:
        lo, hi = max(0, s.start - CONTEXT), min(len(text), s.end + CONTEXT)
        passage = (f'<details><summary>Passage</summary><div class="rag-passage">{esc(text[lo:s.start])}'
                   f'<mark>{esc(s.text)}</mark>{esc(text[s.end:hi])}</div></details>')
    return (f'<div class="rag-card" id="statement-{n}"><div class="rag-card-title"><span class="rag-num">[{n}]</span>'
            f'{who}{named} · {esc(KINDS.get(s.kind, s.kind))}</div>'
            f'<div class="rag-passage">“{esc(s.text)}”</div>'
            f'<div class="rag-meta">{esc(s.title)} — {esc(s.source)}, chars {s.start}–{s.end}</div>'
            f"{_metadata(s.metadata)}{passage}</div>")


def show(engine: rag.Engine, settings: rag.Settings, doc_ids: list[str], since: str, until: str,
         download_row: Callable[[list[rag.Answer], str, str], None]) -> None:
    st.header("Who said what")
    st.caption("Statements the articles attribute to someone (quoted, reported or “according to”), found when the "
               "index was built; speakers named in several ways are merged across the archive.")
    filters = dict(doc_ids=doc_ids or None, since=since.strip() or None, until=until.strip() or None)
    try:
        speakers = engine.speakers(**filters)
    except rag.RagError as exc:
        st.error(str(exc))
        return
    st.caption(f"{len(speakers):,} speakers in the articles selected in the sidebar.")
    st.dataframe([{"Speaker": s.name, "Statements": s.statements, "Articles": s.articles} for s in speakers],
                 hide_index=True, key="speaker_table")
    names = ["Everyone", "No speaker named"] + [s.name for s in speakers]
    choice = st.selectbox("Speaker", names, key="quote_speaker")
    kinds = st.multiselect("Kinds", list(KINDS), default=list(KINDS), key="quote_kinds",
                           format_func=lambda k: KINDS[k])
    statements = engine.statements(None if choice in ("Everyone", "No speaker named") else choice, **filters)
    if choice == "No speaker named":
        statements = [s for s in statements if s.speaker is None]
    elif choice != "Everyone":
        statements = [s for s in statements if s.speaker == choice]
    statements = [s for s in statements if s.kind in kinds]
    st.caption(f"{len(statements):,} statements, in date order" +
               (f" (showing the first {SHOWN})" if len(statements) > SHOWN else ""))
    if statements:
        title = f"Statements by {choice}" if choice not in ("Everyone",) else "Selected statements"
        st.caption("Export these statements as citations:")
        download_row([rag.statement_citations(statements, title)], "statements", "dl-statements")
    texts: dict[tuple[str, str], str | None] = {}
    for n, s in enumerate(statements[:SHOWN], 1):
        key = (s.source, s.doc_id)
        if key not in texts:
            try:
                texts[key] = rag.source_text(settings.paths.corpus, s.source, s.doc_id, settings.corpus)
            except (rag.RagError, OSError):
                texts[key] = None  # the corpus moved: the statement and its citation still show
        st.html(statement_html(n, s, texts[key]))
