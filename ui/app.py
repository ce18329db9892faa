"""The chat over the news archive: cited answers with linked source cards, filters, incremental rebuilds and
citation exports.

Start it with `rag ui` (builds the index first when it is missing or stale), or with
`streamlit run ui/app.py` and RAG_CORPUS / RAG_INDEX set; either way it listens on 127.0.0.1 only
(ui/.streamlit/config.toml) unless --server.address says otherwise. It uses only the public API of `rag`.
Archive and user text is always shown escaped (`chat_html`): nothing from the corpus is rendered as HTML or
Markdown. An error that is not the library's own is one message in the page; its detail goes to the log."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from typing import Any

import streamlit as st

import rag
import quotes_view
from build_job import BuildJob, BuildJobs
from chat_html import STYLE, answer_html, documents_html, passage_card_html, question_html, sources_html
from rag import EXPORTS, export_answers

st.set_page_config(page_title="News archive assistant", page_icon="📰")

PROBLEMS = {  # problem kind -> (what it means, label of the button that fixes it)
    "IndexMissing": (None, "Build the index"),
    "IndexMismatch": ("The index was built with another embedding model or index format than the settings use.",
                      "Rebuild the index with the current model"),
    "IndexCorrupt": ("The index is damaged.", "Rebuild the index"),
}
_MD_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")
log = logging.getLogger("rag.ui")


def unexpected(exc: Exception, doing: str) -> str:
    """One line for the page about an error that is not the library's own; the traceback goes to the log."""
    log.error("Unexpected error while %s", doing, exc_info=exc)
    return (f"Something went wrong while {doing} ({type(exc).__name__}); the details are in the server's log. "
            "Try again; if it keeps happening, rebuild the index (rag index build) or report the log.")


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def md(text: object) -> str:
    """Text for the Markdown of st.error/st.info/st.caption, with every ASCII punctuation mark escaped so that
    nothing in it (file names, paths, messages) can form a link, HTML, emphasis or math."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


@st.cache_resource(show_spinner="Loading the model and the index (once for every visitor of this server)…")
def load_engine(key: str, _settings: rag.Settings) -> rag.Engine:
    """The engine shared by every session of this process: a second tab does not load anything again."""
    return rag.get_engine(_settings)


@st.cache_resource
def build_jobs() -> BuildJobs:
    return BuildJobs()


@st.cache_resource(max_entries=4, show_spinner=False)
def indexed_documents(key: tuple[Any, ...], _engine: rag.Engine) -> list[rag.Document]:
    return _engine.documents()


def corpus_problem(settings: rag.Settings) -> str | None:
    """Why the corpus folder cannot be indexed, or None."""
    corpus = settings.paths.corpus
    if not corpus.exists():
        return (f"Corpus folder {corpus} does not exist. Create it and put articles in it (.txt, .md, .jsonl or "
                "HTML files), or start the app with: rag ui --corpus FOLDER. Then reload this page.")
    try:
        first = next(rag.read_corpus(settings, lambda _msg: None), None)
    except rag.RagError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - shown as one message, logged in full
        return unexpected(exc, "reading the corpus folder")
    if first is None:
        return str(rag.no_articles(corpus, ", then reload this page"))
    return None


def start_build(settings: rag.Settings) -> None:
    def reload() -> None:  # the engine notices the new CURRENT; load it now so the next question is quick
        try:
            rag.get_engine(settings).reload_if_changed()
        except rag.RagError:
            pass  # the page reports the problem on its next run

    build_jobs().start(settings, reload)


def show_progress(job: BuildJob) -> None:
    @st.fragment(run_every=0.5)
    def progress() -> None:
        if job.finished:
            st.rerun()  # the whole page: new status, articles and filters
        st.progress(job.fraction, text=job.label)

    progress()


def build_panel(label: str, primary: bool = True, disabled: bool = False, help: str | None = None) -> None:
    """The build button, the progress of a running build, or the outcome of the last one."""
    job = build_jobs().get(settings)
    if job is not None and not job.finished:
        st.caption("The chat keeps answering from the live index until the new one is complete.")
        show_progress(job)
        return
    if job is not None and job.error:
        st.error(md(job.error))
    elif job is not None:
        st.success(md(job.summary))
        for warning in job.warnings[:5]:
            st.warning(md(warning))
        if len(job.warnings) > 5:
            st.caption(f"… and {len(job.warnings) - 5} more warnings (run rag index build to see them all).")
    st.button(label, key="build", type="primary" if primary else "secondary", on_click=start_build,
              args=(settings,), disabled=disabled, help=help)


def clear_conversation() -> None:
    st.session_state.conversation = rag.Conversation()
    st.session_state.refused = []
    st.session_state.notes = {}
    st.session_state.coverage = {}


def export_text(answers: list[rag.Answer], fmt: str, style: str | None = None) -> str | None:
    try:
        return export_answers(answers, fmt, style=style if fmt == "markdown" else None)
    except rag.RagError:
        return None
    except Exception as exc:  # noqa: BLE001 - no download button rather than a traceback
        unexpected(exc, f"exporting as {fmt}")
        return None


def download_row(answers: list[rag.Answer], stem: str, key: str) -> None:
    """One download button per export format (reference formats only when something is cited)."""
    cited = any(a.citations for a in answers)
    style = None
    with st.container(horizontal=True, gap="small"):
        if cited:  # the Markdown export adds the cited articles as references in this style
            style = st.selectbox("Citation style", ["none", *rag.CITATION_STYLES], key=f"{key}-style",
                                 label_visibility="collapsed", width=190)
            style = None if style == "none" else style
        for fmt in EXPORTS:
            if fmt.references and not cited:
                continue
            data = export_text(answers, fmt.name, style)
            if data is not None:
                st.download_button(fmt.label, data, file_name=f"{stem}{fmt.extension}", mime=fmt.mime,
                                   key=f"{key}-{fmt.name}", on_click="ignore", icon=":material/download:")
    if style:
        try:
            st.code("\n\n".join(r.text for r in rag.format_references(answers, style)), language=None,
                    wrap_lines=True)
        except rag.RagError as exc:
            st.error(md(str(exc)))


# --- the conversation: a rag.Conversation in the session, turns asked in its context -----------------------------

def ask(question: str) -> None:
    """Answer `question` in the conversation so far and add the turn; a refused question is kept apart (with the
    number of turns before it), outside the conversation, so that follow-ups never refer to it."""
    conv: rag.Conversation = st.session_state.conversation
    n = len(conv) + 1
    try:
        answer = engine.ask(question, k, doc_ids or None, since.strip() or None, until.strip() or None, mode,
                            id=f"answer-{n}", conversation=conv)
    except rag.RagError as exc:
        st.session_state.refused.append((len(conv), question, str(exc)))
    except Exception as exc:  # noqa: BLE001 - one message in the page, the traceback in the log
        st.session_state.refused.append((len(conv), question, unexpected(exc, "answering this question")))
    else:
        st.session_state.conversation = conv.then(answer)
        st.session_state.notes[answer.id] = filters
        st.session_state.coverage[answer.id] = coverage_of(answer.standalone or question)


def coverage_of(question: str) -> list[tuple[str, int]]:
    """Coverage over time: the publication dates of the articles the question matches (a wider search)."""
    try:
        return rag.coverage(engine.search(question, 50, doc_ids or None, since.strip() or None,
                                          until.strip() or None))
    except rag.RagError:
        return []


def ask_again(n: int) -> None:
    """The last turn asked again as the standalone question the user edited (taken as it is, not resolved)."""
    conv: rag.Conversation = st.session_state.conversation
    edited = " ".join(str(st.session_state.get(f"edit-{n}", "")).split())
    if len(conv) != n or not edited:
        return
    typed = conv.turns[-1].question
    try:
        answer = engine.ask(edited, k, doc_ids or None, since.strip() or None, until.strip() or None, mode,
                            id=f"answer-{n}")
    except rag.RagError as exc:
        st.session_state.edit_error = str(exc)
        return
    except Exception as exc:  # noqa: BLE001
        st.session_state.edit_error = unexpected(exc, "answering the edited question")
        return
    st.session_state.edit_error = None
    answer = dataclasses.replace(answer, question=typed, standalone=edited)
    st.session_state.conversation = rag.Conversation(conv.turns[:-1] + (rag.Turn(typed, edited, answer),))
    st.session_state.notes[answer.id] = filters


def reopen_conversation() -> None:
    """The conversation of the uploaded file (saved by this app or rag chat) replaces the current one."""
    upload = st.session_state.get("reopen")
    if upload is None:
        return
    try:
        opened = rag.Conversation.from_json(upload.getvalue().decode("utf-8"))
    except UnicodeDecodeError:
        st.session_state.reopen_error = "The file is not UTF-8 text. Open a conversation saved by this app."
    except rag.RagError as exc:
        st.session_state.reopen_error = str(exc)
    else:
        clear_conversation()
        st.session_state.conversation = opened
        st.session_state.reopen_error = None


def show_answer(n: int, turn: rag.Turn, last: bool) -> None:
    try:
        show_answer_body(n, turn, last)
    except Exception as exc:  # noqa: BLE001 - a turn that cannot be drawn must not break the whole chat
        st.error(md(unexpected(exc, "showing this answer")))


def show_resolution(n: int, turn: rag.Turn, last: bool) -> None:
    """'Answering: <standalone>' above a follow-up's answer; the last one can be edited and asked again."""
    st.caption(md(f"Answering: {turn.standalone}"))
    if not last:
        return
    with st.expander("Edit the question as answered"):
        st.text_input("Question as answered", value=turn.standalone, key=f"edit-{n}")
        st.button("Ask again", key=f"again-{n}", on_click=ask_again, args=(n,))
        if st.session_state.get("edit_error"):
            st.error(md(st.session_state.edit_error))


def show_answer_body(n: int, turn: rag.Turn, last: bool) -> None:
    answer = turn.answer
    if turn.standalone != turn.question:
        show_resolution(n, turn, last)
    st.html(answer_html(n, answer))
    for notice in answer.notices:
        st.warning(md(notice), icon=":material/info:")
    st.html(sources_html(n, answer))
    if (answer.citations or answer.closest) and len(answer.passages) > 0:
        with st.expander(f"All {len(answer.passages)} retrieved passages"):
            st.html("".join(passage_card_html(h, answer.readings.get(h.chunk.chunk_id)) for h in answer.passages))
    how = {"llm": "language model", "clarify": "needs a name"}.get(answer.mode, "extractive")
    took = answer.timings.get("total_ms")
    details = [f"Answer {n}", how]
    if answer.confidence is not None:
        details.append(f"reader confidence {answer.confidence:.0%}"
                       + (" (under the threshold: no answer)" if answer.abstained else ""))
    details += [plural(len(answer.passages), "passage")] + st.session_state.notes.get(answer.id, [])
    if took is not None:
        details.append(f"{took:,.0f} ms")
    st.caption(md(" · ".join(details)))
    dated = st.session_state.coverage.get(answer.id)
    if dated:  # not shown when no matching article is dated
        st.caption("Matching articles by publication date")
        periods, counts = zip(*dated)
        st.bar_chart({"period": periods, "articles": counts}, x="period", y="articles", height=160)
    download_row([answer], f"answer-{n}", f"dl-{n}")


def show_turn(n: int, turn: rag.Turn, last: bool) -> None:
    with st.chat_message("user"):
        st.html(question_html(turn.question))
    with st.chat_message("assistant"):
        show_answer(n, turn, last)


def show_refused(question: str, error: str) -> None:
    with st.chat_message("user"):
        st.html(question_html(question))
    with st.chat_message("assistant"):
        st.error(md(error))


def show_conversation() -> None:
    """The turns and the refused questions, in the order they were asked."""
    turns = st.session_state.conversation.turns
    refused = st.session_state.refused
    for i in range(len(turns) + 1):
        for before, question, error in refused:
            if before == i:
                show_refused(question, error)
        if i < len(turns):
            show_turn(i + 1, turns[i], i + 1 == len(turns))


# --- settings and index -------------------------------------------------------------------------------------
st.session_state.setdefault("conversation", rag.Conversation())
st.session_state.setdefault("refused", [])
st.session_state.setdefault("notes", {})  # answer id -> the filters it was asked with
st.session_state.setdefault("coverage", {})  # answer id -> matching articles per publication period
st.html(STYLE)
st.title("News archive assistant")
st.caption("Every answer quotes the archive word for word; each marker links to its source card.")

try:
    settings = rag.load_settings()
except rag.RagError as exc:
    st.error(md(exc))
    st.info("Fix rag.toml or the RAG_* environment variable named above, then reload this page.")
    st.stop()

try:
    status = rag.index_status(settings)
except Exception as exc:  # noqa: BLE001 - index_status reports problems itself; this is a last resort
    st.error(md(unexpected(exc, "checking the index")))
    st.stop()
running = build_jobs().get(settings)
if not status.ready:
    if running is not None and not running.finished:
        st.info("Building the index: the page becomes the chat as soon as it is ready.")
        build_panel("Build the index")
        st.stop()
    problem = corpus_problem(settings)
    if problem:
        st.error(md(problem))
        st.stop()
    what, button = PROBLEMS.get(status.problem_kind or "", (None, None))
    st.error(md(f"{what + ' ' if what else ''}{status.problem}"))
    if button:
        st.info("Build it here: every article is embedded once (later rebuilds embed only new and changed "
                "ones). The page becomes the chat as soon as the index is ready.")
        build_panel(button)
    else:
        st.info("Fix the setting named above (rag.toml or RAG_* environment variables), then reload this page.")
    st.stop()

try:
    engine = load_engine(hashlib.sha256(repr(settings).encode()).hexdigest(), settings)
except Exception as exc:  # noqa: BLE001 - the library's errors say what to do; others are logged
    st.error(md(exc if isinstance(exc, rag.RagError) else unexpected(exc, "loading the index")))
    problem = corpus_problem(settings)
    if problem:
        st.warning(md(f"A rebuild needs the corpus: {problem}"))
    else:
        build_panel("Rebuild the index")
    st.stop()

# --- sidebar: index, search settings, conversation, articles -------------------------------------------------
with st.sidebar:
    view: str = st.radio("View", ["Chat", "Who said what"], key="view", horizontal=True)
    st.header("Index")
    c1, c2 = st.columns(2)
    c1.metric("Articles", f"{status.documents:,}")
    c2.metric("Chunks", f"{status.chunks:,}")
    built = (status.built_at or "unknown").replace("T", " ").replace("+00:00", " UTC")
    st.caption(md(f"Model: {status.model}") + "  \n" + md(f"Built: {built}") + "  \n"
               + md(f"Corpus: {settings.paths.corpus}"))
    corpus_there = settings.paths.corpus.is_dir()
    if not corpus_there:
        st.warning(md(f"Corpus folder {settings.paths.corpus} is missing: answers come from the existing index, "
                      "and rebuilding needs the folder back."))
    elif status.corpus_changed:
        names = ", ".join(status.corpus_changed[:5]) + (" …" if len(status.corpus_changed) > 5 else "")
        st.warning(md(f"The corpus changed since the build ({plural(len(status.corpus_changed), 'file')}: "
                      f"{names}). Rebuild to search the new text."))
    else:
        st.caption("The corpus is unchanged since the build.")
    if status.settings_changed:
        st.warning("The chunking settings changed since the build: rebuild to apply them.")
    build_panel("Rebuild index", primary=bool(status.corpus_changed), disabled=not corpus_there,
                help="Embeds only new and changed articles, then swaps in the new index; the chat keeps working.")

    st.header("Search")
    try:
        documents = indexed_documents((status.path, status.built_at, status.documents, status.chunks),
                                      engine)
    except Exception as exc:  # noqa: BLE001 - the library's errors say what to do; others are logged
        documents = []
        st.error(md(exc if isinstance(exc, rag.RagError) else unexpected(exc, "listing the articles")))
    by_id = {d.doc_id: d for d in documents}
    if "doc_filter" in st.session_state:  # a rebuild may have removed selected articles
        st.session_state.doc_filter = [i for i in st.session_state.doc_filter if i in by_id]
    doc_ids: list[str] = st.multiselect(
        "Only these articles", list(by_id), key="doc_filter", placeholder="All articles",
        format_func=lambda i: (t if len(t := by_id[i].title) <= 80 else t[:79] + "…"))
    c1, c2 = st.columns(2)
    since: str = c1.text_input("Since", key="since", placeholder="YYYY-MM-DD", help="YYYY, YYYY-MM or YYYY-MM-DD")
    until: str = c2.text_input("Until", key="until", placeholder="YYYY-MM-DD", help="YYYY, YYYY-MM or YYYY-MM-DD")
    max_k = min(settings.retrieval.max_k, 20)
    k: int = st.slider("Passages to retrieve (k)", 1, max_k, min(settings.retrieval.k, max_k), key="k")
    modes = ["extractive"] + (["llm"] if settings.llm.base_url and settings.llm.model else [])
    if len(modes) > 1:
        mode: str = st.radio("Answer with", modes, index=modes.index(settings.answer.mode), key="mode",
                             format_func=lambda m: f"Language model ({settings.llm.model})" if m == "llm"
                             else "Quotes from the archive (extractive)")
    else:
        mode = "extractive"
        st.caption("Answers are extractive quotes. Set llm.base_url and llm.model to offer a language model.")
    filters = ([f"only {plural(len(doc_ids), 'selected article')}"] if doc_ids else []) \
        + ([f"since {since.strip()}"] if since.strip() else []) + ([f"until {until.strip()}"] if until.strip() else [])

    conversation = st.container()  # filled at the end, once this run's question is answered

    with st.expander(f"Articles in the index ({len(documents):,})"):
        needle = st.text_input("Search titles, files and ids", key="doc_search").strip().lower()
        shown = [d for d in documents if needle in f"{d.title}\n{d.source}\n{d.doc_id}".lower()]
        st.caption(f"{len(shown):,} of {len(documents):,} articles")
        st.html(documents_html(shown[:300]))
        if len(shown) > 300:
            st.caption("Showing the first 300: refine the search.")

if view == "Who said what":
    quotes_view.show(engine, settings, doc_ids, since, until, download_row)
    st.stop()

# --- the chat ------------------------------------------------------------------------------------------------
question = st.chat_input("Ask a question about the archive")  # pinned to the bottom of the page
if question:
    with st.spinner("Searching the archive…"):
        ask(question)
conv: rag.Conversation = st.session_state.conversation
if not conv.turns and not st.session_state.refused:
    st.info("Ask a question about the archive below. Follow-up questions may refer to earlier ones (“he”, “that "
            "poll”, “And the UK?”). Answers quote the archive word for word, with their sources; when the "
            "archive has no answer, the assistant says so and shows the closest passages.")
show_conversation()

with conversation:
    st.header("Conversation")
    st.button("Clear conversation", key="clear", on_click=clear_conversation,
              disabled=not (conv.turns or st.session_state.refused))
    if conv.turns:
        st.caption(f"Export the conversation ({plural(len(conv), 'answer')}):")
        download_row(conv.answers, "conversation", "dl-all")
        st.download_button("Save the conversation", conv.to_json(), file_name="conversation.json",
                           mime="application/json", key="save", on_click="ignore", icon=":material/save:")
    st.file_uploader("Reopen a saved conversation", type=["json"], key="reopen", on_change=reopen_conversation)
    if st.session_state.get("reopen_error"):
        st.error(md(st.session_state.reopen_error))
