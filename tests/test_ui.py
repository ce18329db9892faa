"""The Streamlit chat (ui/app.py) driven headlessly with Streamlit's AppTest: asking, citations, abstention,
filters, exports, rebuilds, every error state, and a corpus full of markup that must stay inert."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import socket
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
import streamlit as st
from conftest import make_settings
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

import rag

try:
    from openai_stub import OpenAIStub, openai_stub  # noqa: F401 (the fixture)
except ImportError:  # --import-mode=importlib
    from tests.openai_stub import OpenAIStub, openai_stub  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "ui" / "app.py"
UI_DATA = Path(__file__).resolve().parent / "data" / "ui"
DATED = UI_DATA / "extra" / "dated.jsonl"
HOSTILE = UI_DATA / "hostile"


def _load_ui_module(name: str):  # noqa: ANN202
    """A helper module of the app (ui/ is not a package; Streamlit puts it on sys.path while the app runs)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "ui" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


chat_html = _load_ui_module("chat_html")

AVIATION = "Where was the aviation show held?"
BOILING = "What is the boiling point of water at sea level?"
UNSURE = "For how long did Israel and Iran trade missile fire before America joined in?"  # the reader is unsure
ZORBLAND = "What did the Zorbland water festival print in its programme notes?"
TRAM = "How long does the tram trip to Ostervik airport take?"
BEACON = "How often does the restored Varnmouth beacon flash?"


# --- helpers ---------------------------------------------------------------------------------------------------

def app_for(monkeypatch: pytest.MonkeyPatch, corpus: Path, index: Path, **env: str) -> AppTest:
    monkeypatch.setenv("RAG_CORPUS", str(corpus))
    monkeypatch.setenv("RAG_INDEX", str(index))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return AppTest.from_file(str(APP), default_timeout=60)


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def ask(at: AppTest, question: str) -> AppTest:
    at.chat_input[0].set_value(question)
    return run(at)


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click()
    return run(at)


def unmd(text: str) -> str:
    """The text of a Markdown string whose punctuation the app backslash-escaped."""
    return re.sub(r"\\(.)", r"\1", text)


def texts(elements) -> list[str]:  # noqa: ANN001
    return [unmd(e.value) for e in elements]


def bodies(at: AppTest) -> list[str]:
    return [h.value for h in at.html]


def one_body(at: AppTest, marker: str) -> str:
    found = [b for b in bodies(at) if marker in b]
    assert len(found) == 1, (marker, found)
    return found[0]


def last_answer(at: AppTest) -> rag.Answer:
    answer = at.session_state["conversation"].turns[-1].answer
    assert isinstance(answer, rag.Answer)
    return answer


def copy_index(settings: rag.Settings, dest: Path) -> rag.Settings:
    shutil.copytree(settings.paths.corpus, dest / "corpus")
    shutil.copytree(settings.paths.index, dest / "index")
    return make_settings(dest / "corpus", dest / "index")


def tiny_corpus(dest: Path) -> Path:
    corpus = dest / "corpus"
    corpus.mkdir(parents=True)
    shutil.copy(DATED, corpus / DATED.name)
    return corpus


def wait_for_build(at: AppTest, timeout: float = 180) -> AppTest:
    """Rerun the page until the background build's progress bar is gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not at.get("progress"):
            return at
        time.sleep(0.3)
        run(at)
    raise AssertionError("the build did not finish in time")


@pytest.fixture(scope="session")
def mixed_index(bundled_index: rag.Settings, tmp_path_factory: pytest.TempPathFactory) -> rag.Settings:
    """The bundled archive plus the dated and the hostile test articles (an incremental build of a copy)."""
    settings = copy_index(bundled_index, tmp_path_factory.mktemp("mixed"))
    for path in [DATED, *HOSTILE.iterdir()]:
        shutil.copy(path, settings.paths.corpus / path.name)
    report = rag.build_index(settings)
    assert (report.added, report.unchanged) == (4, rag.index_status(bundled_index).documents)
    return settings


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[str, bytes]]:
    """Every file handed to a download button: file id -> (file name, bytes)."""
    saved: dict[str, tuple[str, bytes]] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):  # noqa: ANN001, ANN202
        file_id = original(self, path_or_data, mimetype, kind, filename)
        saved[file_id] = (filename, path_or_data)
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    return saved


def downloaded(at: AppTest, key: str, saved: dict[str, tuple[str, bytes]]) -> tuple[str, str]:
    url = at.download_button(key=key).proto.url
    name, data = saved[url.rsplit("/", 1)[1].split(".")[0]]
    return name, data.decode("utf-8")


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str]] = []
        self.comments: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs += [(k, v or "") for k, v in attrs]

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)


# --- the HTML helpers --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("url, link", [
    ("https://example.org/a?b=1&c=2", "https://example.org/a?b=1&c=2"),
    ("http://example.com", "http://example.com"),
    ("  HTTPS://Example.org/x  ", "HTTPS://Example.org/x"),
    ("javascript:alert(1)", None),
    ("JavaScript:alert(1)", None),
    ("java\nscript:alert(1)", None),
    ("data:text/html,<script>alert(1)</script>", None),
    ("//evil.example/x", None),
    ("https:///no-host", None),
    ("ftp://example.org/file", None),
    ("", None),
])
def test_only_plain_http_urls_become_links(url: str, link: str | None) -> None:
    assert chat_html.web_url(url) == link


def _answer(text: str, quote: str, title: str, url: str) -> rag.Answer:
    source = f"Intro. {quote} Outro."
    chunk = rag.Chunk("doc#0", "doc", 100, 100 + len(source), source)
    start = 100 + source.index(quote)
    hit = rag.Hit(1, chunk, title, "a.txt", 0.5, metadata={"url": url, "publisher": "<i>P</i>"})
    citation = rag.Citation(1, "doc", "doc#0", title, "a.txt", start, start + len(quote), quote, {"url": url})
    return rag.Answer("q", text, False, (citation,), (hit,))


def test_answer_and_card_escape_markup_and_link_only_cited_markers() -> None:
    quote = "He wrote <script>alert(1)</script> & [x](javascript:alert(1)) <!-- c -->."
    answer = _answer(f"“{quote}” [1] and [2]", quote, "<img src=x onerror=alert(1)>", "javascript:alert(1)")
    assert chat_html.answer_html(4, answer) == (
        '<div class="rag-answer">“He wrote &lt;script&gt;alert(1)&lt;/script&gt; &amp; [x](javascript:alert(1)) '
        '&lt;!-- c --&gt;.” <a class="rag-marker" href="#src-4-1" title="Go to source 1">[1]</a> and [2]</div>')
    card = chat_html.citation_card_html(4, answer.citations[0], answer.passages)
    assert card == (
        '<div class="rag-card" id="src-4-1"><div class="rag-card-title"><span class="rag-num">[1]</span>'
        '&lt;img src=x onerror=alert(1)&gt;</div>'
        f'<div class="rag-meta">a.txt, chars {answer.citations[0].start}–{answer.citations[0].end} · '
        'retrieval rank 1</div>'
        '<div class="rag-meta">link (not a web address, not clickable): javascript:alert(1)</div>'
        '<div class="rag-passage">Intro. <mark class="rag-quote">He wrote &lt;script&gt;alert(1)&lt;/script&gt; '
        '&amp; [x](javascript:alert(1)) &lt;!-- c --&gt;.</mark> Outro.</div></div>')


def test_card_links_http_url_with_escaped_attribute() -> None:
    answer = _answer("“q” [1]", "Quote.", "T", 'https://example.org/?a="b"&c=<d>')
    card = chat_html.citation_card_html(1, answer.citations[0], answer.passages)
    assert ('<a href="https://example.org/?a=&quot;b&quot;&amp;c=&lt;d&gt;" target="_blank" '
            'rel="noopener noreferrer nofollow">https://example.org/?a=&quot;b&quot;&amp;c=&lt;d&gt;</a>') in card


def test_card_without_its_passage_still_shows_the_quote() -> None:
    answer = _answer("“q” [1]", "Quote.", "T", "")
    card = chat_html.citation_card_html(1, answer.citations[0], ())
    assert '<div class="rag-passage"><mark class="rag-quote">Quote.</mark></div>' in card
    assert "· not among the passages</div>" in card


def test_card_marks_the_answer_inside_the_quote_and_shows_the_confidence() -> None:
    quote = "Kiev has recorded 55,000 <b>fatalities</b>."
    answer = _answer("“q” [1]", quote, "T", "")
    c = answer.citations[0]
    span = (c.start + quote.index("55,000"), c.start + quote.index("55,000") + len("55,000"))
    cited = rag.Citation(1, c.doc_id, c.chunk_id, c.title, c.source, c.start, c.end, c.quote, {}, span, 0.873)
    card = chat_html.citation_card_html(2, cited, answer.passages)
    assert ('<mark class="rag-quote">Kiev has recorded <mark class="rag-span" title="The answer, as the reader '
            'found it">55,000</mark> &lt;b&gt;fatalities&lt;/b&gt;.</mark>') in card
    assert "· answer confidence 87%</div>" in card
    # a span that does not lie inside the quote is not marked (the quote is still shown whole)
    odd = rag.Citation(1, c.doc_id, c.chunk_id, c.title, c.source, c.start, c.end, c.quote, {},
                       (c.end, c.end + 3), 0.5)
    assert "rag-span" not in chat_html.citation_card_html(2, odd, answer.passages)


# --- error states (no model needed) ------------------------------------------------------------------------------

def test_missing_corpus_is_a_message_with_the_next_step(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    at = run(app_for(monkeypatch, tmp_path / "nowhere", tmp_path / "index"))
    assert texts(at.error) == [f"Corpus folder {tmp_path / 'nowhere'} does not exist. Create it and put articles "
                               "in it (.txt, .md, .jsonl or HTML files), or start the app with: rag ui --corpus "
                               "FOLDER. Then reload this page."]
    assert not at.button and not at.chat_input


def test_empty_corpus_is_a_message_with_the_next_step(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "notes.pdf").write_bytes(b"%PDF")  # unsupported: still no articles
    at = run(app_for(monkeypatch, tmp_path / "corpus", tmp_path / "index"))
    assert texts(at.error) == [f"Corpus folder {tmp_path / 'corpus'} holds no articles. Add .txt, .md, .jsonl or "
                               ".html files to it, then reload this page."]
    assert not at.button and not at.chat_input


def test_bad_setting_is_a_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    at = run(app_for(monkeypatch, tmp_path, tmp_path / "index", RAG_RETRIEVAL_K="many"))
    with pytest.raises(rag.SettingsError) as refused:
        rag.load_settings()
    assert "retrieval.k" in str(refused.value)
    assert texts(at.error) == [str(refused.value)]
    assert texts(at.info) == ["Fix rag.toml or the RAG_* environment variable named above, then reload this page."]


# --- asking --------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_cited_answer_links_markers_to_source_cards(monkeypatch: pytest.MonkeyPatch,
                                                    bundled_index: rag.Settings) -> None:
    at = run(app_for(monkeypatch, bundled_index.paths.corpus, bundled_index.paths.index))
    status = rag.index_status(bundled_index)
    assert [m.value for m in at.sidebar.metric] == [str(status.documents), str(status.chunks)]
    assert "The corpus is unchanged since the build." in texts(at.sidebar.caption)
    ask(at, AVIATION)
    answer = last_answer(at)
    assert not answer.abstained and answer.citations and answer.id == "answer-1"
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    assert one_body(at, 'class="rag-question"') == f'<div class="rag-question">{AVIATION}</div>'

    body = one_body(at, 'class="rag-answer"')
    for c in answer.citations:
        assert f'<a class="rag-marker" href="#src-1-{c.n}" title="Go to source {c.n}">[{c.n}]</a>' in body
    assert re.sub(r"<a [^>]+>(\[\d+\])</a>", r"\1", body) == \
        f'<div class="rag-answer">{chat_html.esc(answer.text)}</div>'

    sources = one_body(at, '<div class="rag-heading">Sources</div>')
    cards = re.findall(r'<div class="rag-card" id="src-1-(\d+)">', sources)
    assert cards == [str(c.n) for c in answer.citations]  # citation order
    first = answer.citations[0]
    assert "Crocus Expo Center" in first.quote
    assert f'<span class="rag-num">[{first.n}]</span>{chat_html.esc(first.title)}</div>' in sources
    assert (f'<div class="rag-meta">{first.source}, chars {first.start}–{first.end} · '
            f'answer confidence {first.confidence:.0%}</div>') in sources
    assert re.sub(r'<mark class="rag-span"[^>]*>([^<]*)</mark>', r"\1", sources).count(
        f'<mark class="rag-quote">{chat_html.esc(first.quote)}</mark>') == 1
    assert '<div class="rag-meta">category: Russia</div>' in sources
    caption = [t for t in texts(at.caption) if t.startswith("Answer 1")]
    assert caption and caption[0].startswith(f"Answer 1 · extractive · reader confidence {answer.confidence:.0%} · "
                                             f"{len(answer.passages)} passages · ")


@pytest.mark.slow
def test_the_chat_serves_an_archive_in_postgresql(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                   bundled_postgres: rag.Settings) -> None:
    pg = bundled_postgres.store
    # no index folder at all: only the database can serve this chat
    at = run(app_for(monkeypatch, bundled_postgres.paths.corpus, tmp_path / "no-index-here",
                     RAG_STORE_BACKEND="postgres", RAG_STORE_URL=pg.url, RAG_STORE_NAMESPACE=pg.namespace))
    status = rag.index_status(bundled_postgres)
    assert status.store_backend == "postgres" and not at.error
    assert [m.value for m in at.sidebar.metric] == [str(status.documents), str(status.chunks)]
    ask(at, AVIATION)
    answer = last_answer(at)
    expected = rag.ask(AVIATION, settings=bundled_postgres)
    assert (answer.text, answer.citations) == (expected.text, expected.citations) and answer.citations
    assert not (tmp_path / "no-index-here").exists()


@pytest.mark.slow
def test_history_is_kept_and_cleared(monkeypatch: pytest.MonkeyPatch, bundled_index: rag.Settings) -> None:
    at = run(app_for(monkeypatch, bundled_index.paths.corpus, bundled_index.paths.index))
    assert at.button(key="clear").disabled
    ask(at, AVIATION)
    ask(at, "Who took part in the aviation show?")
    assert [m.name for m in at.chat_message] == ["user", "assistant"] * 2
    assert [a.id for a in at.session_state["conversation"].answers] == ["answer-1", "answer-2"]
    assert len([b for b in bodies(at) if 'class="rag-answer' in b]) == 2
    click(at, "clear")
    assert not at.chat_message and len(at.session_state["conversation"]) == 0
    assert at.button(key="clear").disabled


@pytest.mark.slow
def test_abstention_says_so_and_shows_closest_passages(monkeypatch: pytest.MonkeyPatch,
                                                       bundled_index: rag.Settings) -> None:
    at = ask(run(app_for(monkeypatch, bundled_index.paths.corpus, bundled_index.paths.index)), BOILING)
    answer = last_answer(at)
    assert answer.abstained and not answer.citations and answer.passages
    assert one_body(at, 'class="rag-answer') == (
        '<div class="rag-answer rag-abstained"><div class="rag-badge">No answer in the archive</div>\n'
        f"{chat_html.esc(answer.text)}</div>")
    closest = one_body(at, "Closest passages (not citations)")
    assert closest.count('<div class="rag-card">') == len(answer.passages)
    assert "rag-marker" not in closest and "<mark" not in closest
    for hit in answer.passages:
        how = (f"best sentence answer confidence {answer.readings[hit.chunk.chunk_id]:.0%}"
               if hit.chunk.chunk_id in answer.readings else f"retrieval rank {hit.rank}")
        assert f'{hit.source}, chars {hit.chunk.start}–{hit.chunk.end} · {how}</div>' in closest
    assert [b.key for b in at.download_button] == ["dl-1-markdown", "dl-1-json", "dl-all-markdown", "dl-all-json",
                                                   "save"]


@pytest.mark.slow
def test_an_unsure_answer_marks_the_closest_sentences_inside_their_passages(monkeypatch: pytest.MonkeyPatch,
                                                                            bundled_index: rag.Settings) -> None:
    at = ask(run(app_for(monkeypatch, bundled_index.paths.corpus, bundled_index.paths.index)), UNSURE)
    answer = last_answer(at)
    assert answer.abstained and answer.closest and not answer.citations  # see test_reader for why
    badge = "Possible answer, not confirmed: check the quote" if answer.possible else "No clear answer in the archive"
    assert one_body(at, 'class="rag-answer') == (
        f'<div class="rag-answer rag-abstained"><div class="rag-badge">{badge}</div>\n'
        f"{chat_html.esc(answer.text)}</div>")
    closest = one_body(at, "Closest sentences (not citations: none answers clearly enough)")
    assert closest.count('<div class="rag-card">') == len(answer.closest)
    assert "rag-marker" not in closest and "rag-quote" not in closest and "rag-span" not in closest
    for c in answer.closest:
        assert f'<span class="rag-num">({c.n})</span>' in closest
        assert f'<mark class="rag-closest">{chat_html.esc(c.quote)}</mark>' in closest
        assert f"{c.source}, chars {c.start}–{c.end} · answer confidence {c.confidence:.0%}</div>" in closest
    assert at.expander[0].label == f"All {len(answer.passages)} retrieved passages"


@pytest.mark.slow
def test_too_long_question_and_bad_date_are_refused_with_a_message(monkeypatch: pytest.MonkeyPatch,
                                                                   bundled_index: rag.Settings) -> None:
    at = run(app_for(monkeypatch, bundled_index.paths.corpus, bundled_index.paths.index))
    engine = rag.get_engine(bundled_index)
    question = "why " * 700
    with pytest.raises(rag.BadQuestion) as too_long:
        engine.ask(question)
    with pytest.raises(rag.BadQuestion) as bad_date:
        engine.ask(AVIATION, since="2024-13-45")
    assert "2,799 characters" in str(too_long.value) and "2024-13-45" in str(bad_date.value)
    ask(at, question)
    assert texts(at.error) == [str(too_long.value)]
    assert one_body(at, 'class="rag-question"').endswith("… (2,800 characters)</div>")
    at.text_input(key="since").set_value("2024-13-45")
    ask(at, AVIATION)
    assert len(at.session_state["conversation"]) == 0  # refused questions stay out of the conversation
    assert [q for _, q, _ in at.session_state["refused"]] == [question, AVIATION]
    assert texts(at.error) == [str(too_long.value), str(bad_date.value)]
    assert not at.download_button


@pytest.mark.slow
def test_article_filter_limits_the_passages(monkeypatch: pytest.MonkeyPatch, bundled_index: rag.Settings) -> None:
    at = run(app_for(monkeypatch, bundled_index.paths.corpus, bundled_index.paths.index))
    docs = rag.indexed_documents(bundled_index)
    picker = at.multiselect(key="doc_filter")
    assert picker.options == [d.title if len(d.title) <= 80 else d.title[:79] + "…" for d in docs]
    chosen = next(d for d in docs if "formal response" in d.title)
    picker.set_value([chosen.doc_id])
    at.slider(key="k").set_value(3)
    ask(at, AVIATION)
    answer = last_answer(at)
    assert answer.passages and {h.chunk.doc_id for h in answer.passages} == {chosen.doc_id}
    assert len(answer.passages) <= 3
    assert all(c.doc_id == chosen.doc_id for c in answer.citations)
    assert any("· only 1 selected article ·" in t for t in texts(at.caption))


@pytest.mark.slow
def test_date_filters_limit_the_passages(monkeypatch: pytest.MonkeyPatch, mixed_index: rag.Settings) -> None:
    at = run(app_for(monkeypatch, mixed_index.paths.corpus, mixed_index.paths.index))
    at.text_input(key="since").set_value("2024")
    ask(at, TRAM)
    answer = last_answer(at)
    assert [c.doc_id for c in answer.citations][:1] == ["ostervik-tram"]
    assert {h.chunk.doc_id for h in answer.passages} <= {"ostervik-tram", "keldby-harvest",
                                                         next(d.doc_id for d in rag.indexed_documents(mixed_index)
                                                              if d.source == "hostile.txt")}
    at.text_input(key="since").set_value("")
    at.text_input(key="until").set_value("2023-12-31")
    ask(at, BEACON)
    answer = last_answer(at)
    assert {h.chunk.doc_id for h in answer.passages} == {"varnmouth-beacon"}
    assert any(t.endswith("· until 2023-12-31 · " + t.rsplit(" · ", 1)[-1]) for t in texts(at.caption))


@pytest.mark.slow
def test_metadata_shows_publisher_date_and_clickable_http_link(monkeypatch: pytest.MonkeyPatch,
                                                               mixed_index: rag.Settings) -> None:
    at = ask(run(app_for(monkeypatch, mixed_index.paths.corpus, mixed_index.paths.index)), BEACON)
    assert last_answer(at).citations[0].doc_id == "varnmouth-beacon"
    sources = one_body(at, '<div class="rag-heading">Sources</div>')
    assert ('<div class="rag-meta">publisher: Coastal Gazette · date: 2023-05-14 · '
            '<a href="https://example.org/varnmouth-beacon" target="_blank" rel="noopener noreferrer nofollow">'
            'https://example.org/varnmouth-beacon</a></div>') in sources


@pytest.mark.slow
def test_article_list_is_searchable(monkeypatch: pytest.MonkeyPatch, mixed_index: rag.Settings) -> None:
    at = run(app_for(monkeypatch, mixed_index.paths.corpus, mixed_index.paths.index))
    count = len(rag.indexed_documents(mixed_index))
    assert at.sidebar.expander[0].label == f"Articles in the index ({count})"
    assert one_body(at, 'class="rag-docs"').count("<li>") == count
    at.text_input(key="doc_search").set_value("KELDBY")
    run(at)
    assert one_body(at, 'class="rag-docs"') == (
        '<ul class="rag-docs"><li><strong>Apple growers in Keldby report a record autumn harvest</strong><br>'
        '<span class="rag-meta">dated.jsonl, chars 0–208 · Valley Courier · 2024-10-02</span></li></ul>')
    assert f"1 of {count} articles" in texts(at.sidebar.caption)


# --- the hostile corpus --------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_hostile_corpus_displays_literally(monkeypatch: pytest.MonkeyPatch, mixed_index: rag.Settings) -> None:
    at = ask(run(app_for(monkeypatch, mixed_index.paths.corpus, mixed_index.paths.index)), ZORBLAND)
    answer = last_answer(at)
    assert answer.citations and "<script>alert(1)</script>" in answer.citations[0].quote
    page = "\n".join(b for b in bodies(at) if "<style>" not in b)
    for literal in ["&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x onerror=alert(1)&gt;",
                    "[click](javascript:alert(1))", "&lt;!-- hidden --&gt;",
                    "A hostile article puts &lt;b&gt;markup&lt;/b&gt; and [a link](javascript:alert(2)) in its "
                    "headline",
                    "publisher: &lt;b&gt;Evil&lt;/b&gt; Press [x](javascript:alert(3))",
                    "link (not a web address, not clickable): javascript:alert(document.cookie)"]:
        assert literal in page, literal
    parsed = _Tags()
    parsed.feed(page)
    assert parsed.tags <= {"div", "span", "a", "mark", "strong", "br", "ul", "li"}
    assert not parsed.comments
    assert {name for name, _ in parsed.attrs} <= {"class", "id", "href", "title", "target", "rel"}
    hrefs = [v for name, v in parsed.attrs if name == "href"]
    assert hrefs and all(re.fullmatch(r"#src-\d+-\d+|https?://[^\s\"<>]+", h) for h in hrefs), hrefs
    # Nothing from the archive reaches a Markdown element.
    markdown = [e.value for kind in ("markdown", "caption", "error", "warning", "info", "success")
                for e in at.get(kind)]
    assert not [m for m in markdown if "javascript" in m or "Zorbland" in m or "<" in m]


# --- exports -------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_exports_per_answer_and_for_the_conversation(monkeypatch: pytest.MonkeyPatch, bundled_index: rag.Settings,
                                                    downloads: dict[str, tuple[str, bytes]]) -> None:
    from rag.export import FORMATS, export_answers

    at = run(app_for(monkeypatch, bundled_index.paths.corpus, bundled_index.paths.index))
    assert not at.download_button
    ask(at, AVIATION)
    ask(at, BOILING)
    first, second = at.session_state["conversation"].answers
    assert not first.abstained and second.abstained
    assert [b.label for b in at.download_button if b.key.startswith("dl-1-")] == \
        ["Markdown", "JSON", "BibTeX", "RIS", "CSL-JSON"]
    for fmt, ext in FORMATS.items():
        assert downloaded(at, f"dl-1-{fmt}", downloads) == (f"answer-1{ext}", export_answers([first], fmt))
        assert downloaded(at, f"dl-all-{fmt}", downloads) == (f"conversation{ext}",
                                                             export_answers([first, second], fmt))
    for fmt in ("markdown", "json"):
        assert downloaded(at, f"dl-2-{fmt}", downloads) == (f"answer-2{FORMATS[fmt]}", export_answers([second], fmt))
    assert not [b for b in at.download_button if b.key in ("dl-2-bibtex", "dl-2-ris", "dl-2-csl-json")]
    _, bib = downloaded(at, "dl-1-bibtex", downloads)
    assert "Crocus Expo Center" in bib
    assert json.loads(downloaded(at, "dl-1-json", downloads)[1])["id"] == "answer-1"
    assert [a["question"] for a in json.loads(downloaded(at, "dl-all-json", downloads)[1])["answers"]] == \
        [AVIATION, BOILING]


# --- answer modes, notices and the shared engine -------------------------------------------------------------------

@pytest.mark.slow
def test_language_model_offered_only_when_configured_and_fallback_is_noticed(
        monkeypatch: pytest.MonkeyPatch, bundled_index: rag.Settings) -> None:
    at = run(app_for(monkeypatch, bundled_index.paths.corpus, bundled_index.paths.index))
    assert [r.key for r in at.radio] == ["view"]  # the view switch only: no answer-mode choice
    assert ("Answers are extractive quotes. Set llm.base_url and llm.model to offer a language model."
            in texts(at.sidebar.caption))

    with socket.socket() as s:  # a port nobody listens on: the endpoint is down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    at = run(app_for(monkeypatch, bundled_index.paths.corpus, bundled_index.paths.index,
                     RAG_LLM_BASE_URL=f"http://127.0.0.1:{port}/v1", RAG_LLM_MODEL="stub-model",
                     RAG_LLM_TIMEOUT="5"))
    assert at.radio(key="mode").options == ["Quotes from the archive (extractive)", "Language model (stub-model)"]
    at.radio(key="mode").set_value("llm")
    ask(at, AVIATION)
    answer = last_answer(at)
    assert answer.mode == "extractive" and answer.notices and answer.citations
    assert texts(at.warning) == list(answer.notices)


@pytest.mark.slow
def test_language_model_answer_links_each_marker_and_escapes_its_text(
        monkeypatch: pytest.MonkeyPatch, bundled_index: rag.Settings, openai_stub: OpenAIStub) -> None:
    openai_stub.content = ("The National Aviation Infrastructure Show opened at the Crocus Expo Center near Moscow "
                           "[1]. It is a <b>two-day</b> show [1].")
    at = run(app_for(monkeypatch, bundled_index.paths.corpus, bundled_index.paths.index,
                     RAG_LLM_BASE_URL=openai_stub.base_url, RAG_LLM_MODEL="stub-model", RAG_ANSWER_MODE="llm"))
    assert at.radio(key="mode").value == "llm"
    answer = last_answer(ask(at, AVIATION))
    assert answer.mode == "llm" and [c.n for c in answer.citations] == [1, 2] and not answer.notices
    body = one_body(at, 'class="rag-answer"')
    assert "&lt;b&gt;two-day&lt;/b&gt;" in body and "<b>" not in body
    assert re.findall(r'<a class="rag-marker" href="#(src-1-\d)"', body) == ["src-1-1", "src-1-2", "src-1-2"]
    sources = one_body(at, '<div class="rag-heading">Sources</div>')
    assert re.findall(r'<mark class="rag-quote">([^<]*)</mark>', sources) == \
        [chat_html.esc(c.quote) for c in answer.citations]  # no answer span from a language model's reply
    assert any(t.startswith("Answer 1 · language model · ") for t in texts(at.caption))


@pytest.mark.slow
def test_engine_is_loaded_once_and_shared_by_sessions(monkeypatch: pytest.MonkeyPatch,
                                                      bundled_index: rag.Settings) -> None:
    calls: list[rag.Settings] = []
    real = rag.get_engine

    def counting(settings: rag.Settings) -> rag.Engine:
        calls.append(settings)
        return real(settings)

    monkeypatch.setattr(rag, "get_engine", counting)
    st.cache_resource.clear()
    first = ask(run(app_for(monkeypatch, bundled_index.paths.corpus, bundled_index.paths.index)), AVIATION)
    second = ask(run(app_for(monkeypatch, bundled_index.paths.corpus, bundled_index.paths.index)), BOILING)
    assert len(calls) == 1
    assert last_answer(first).citations and last_answer(second).abstained


# --- building and rebuilding ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_rebuild_swaps_in_new_articles_without_losing_the_chat(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                               bundled_index: rag.Settings) -> None:
    settings = copy_index(bundled_index, tmp_path)
    before = rag.index_status(settings)
    at = ask(run(app_for(monkeypatch, settings.paths.corpus, settings.paths.index)), AVIATION)
    shutil.copy(DATED, settings.paths.corpus / DATED.name)
    run(at)
    assert texts(at.sidebar.warning) == ["The corpus changed since the build (1 file: dated.jsonl). "
                                         "Rebuild to search the new text."]
    click(at, "build")
    wait_for_build(at)
    (done,) = texts(at.sidebar.success)
    after = rag.index_status(settings)
    assert after.documents == before.documents + 3 and after.chunks > before.chunks
    assert re.fullmatch(rf"Index rebuilt at [\d:]+ in [\d.]+ s: {after.documents} articles, {after.chunks} chunks\. "
                        rf"Articles: 3 added, 0 changed, 0 removed, {before.documents} unchanged\. "
                        rf"Chunks embedded: {after.chunks - before.chunks} \({before.chunks} reused\)\.", done), done
    assert [m.value for m in at.sidebar.metric] == [str(after.documents), str(after.chunks)]
    assert "The corpus is unchanged since the build." in texts(at.sidebar.caption)
    assert "Tramline to Ostervik airport opens after four years of work" in at.multiselect(key="doc_filter").options
    ask(at, TRAM)
    assert [t.question for t in at.session_state["conversation"].turns] == [AVIATION, TRAM]
    assert last_answer(at).citations[0].doc_id == "ostervik-tram"


@pytest.mark.slow
def test_no_index_yet_offers_a_build_that_works(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                bundled_index: rag.Settings) -> None:
    corpus = tiny_corpus(tmp_path)
    at = run(app_for(monkeypatch, corpus, tmp_path / "index"))
    status = rag.index_status(make_settings(corpus, tmp_path / "index"))
    assert status.problem_kind == "IndexMissing" and str(tmp_path / "index") in (status.problem or "")
    assert texts(at.error) == [status.problem]
    assert not at.chat_input
    click(at, "build")
    wait_for_build(at)
    assert not at.error and at.chat_input
    assert [m.value for m in at.sidebar.metric] == ["3", "3"]
    assert texts(at.sidebar.success)[0].startswith("Index built at ")
    ask(at, BEACON)
    assert last_answer(at).citations[0].doc_id == "varnmouth-beacon"


@pytest.mark.slow
def test_index_from_another_model_is_explained_and_rebuilt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                           bundled_index: rag.Settings) -> None:
    settings = make_settings(tiny_corpus(tmp_path), tmp_path / "index")
    rag.build_index(settings)
    manifest_path = next((tmp_path / "index").glob("gen-*/manifest.json"))
    manifest = json.loads(manifest_path.read_text())
    manifest["model"] = "someone-else/other-model"
    manifest_path.write_text(json.dumps(manifest))
    at = run(app_for(monkeypatch, settings.paths.corpus, settings.paths.index))
    status = rag.index_status(settings)
    assert status.problem_kind == "IndexMismatch" and "someone-else/other-model" in (status.problem or "")
    assert texts(at.error) == ["The index was built with another embedding model or index format than the settings "
                               f"use. {status.problem}"]
    assert at.button(key="build").label == "Rebuild the index with the current model" and not at.chat_input
    click(at, "build")
    wait_for_build(at)
    assert not at.error and at.chat_input
    assert "Full rebuild: the embedding model changed" in texts(at.sidebar.success)[0]


@pytest.mark.slow
def test_corrupt_index_is_explained_and_rebuilt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                bundled_index: rag.Settings) -> None:
    settings = make_settings(tiny_corpus(tmp_path), tmp_path / "index")
    rag.build_index(settings)
    vectors = next((tmp_path / "index").glob("gen-*/chunk_vectors.f32"))
    vectors.write_bytes(bytes(vectors.stat().st_size))  # same size, other bytes
    at = run(app_for(monkeypatch, settings.paths.corpus, settings.paths.index))
    (message,) = texts(at.error)
    assert message.startswith(f"Index file {vectors} ") and "checksum" in message
    assert at.button(key="build").label == "Rebuild the index" and not at.chat_input
    click(at, "build")
    wait_for_build(at)
    assert not at.error and at.chat_input
    ask(at, TRAM)
    assert last_answer(at).citations[0].doc_id == "ostervik-tram"
