"""Web archives as corpus files: a WARC written with warcio holding HTML pages, a redirect, a PDF, a 404 and a
duplicate capture; read as a stream, answering with exact-span citations, and not re-read when unchanged."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import rag
import rag.ingest.warc
from conftest import make_settings
from rag.ingest.corpus import iter_articles
from warc_files import add, odd_archive, page


@pytest.mark.parametrize("name", ["capture.warc.gz", "capture.warc"])
def test_html_responses_become_articles_and_the_rest_is_counted(tmp_path: Path, name: str) -> None:
    odd_archive(tmp_path / name)
    warnings: list[str] = []
    sources: dict = {}
    articles = {a.document.doc_id: a for a in iter_articles(tmp_path, warn=warnings.append, sources=sources)}
    assert sorted(articles) == ["https://news.example/dam", "https://news.example/lighthouse"]
    dam = articles["https://news.example/dam"]
    # the latest capture, its date from the page
    assert dam.document.title == "Dam project approved by the regional council"
    assert "early draft" not in dam.source_text
    assert dict(dam.document.metadata) == {"url": "https://news.example/dam", "date": "2025-11-03",
                                           "date_source": "page", "captured": "2025-11-04T09:00:00Z"}
    lighthouse = articles["https://news.example/lighthouse"]
    assert lighthouse.document.metadata["date"] == "2025-12-05"  # no date on the page: the capture's
    assert lighthouse.document.metadata["date_source"] == "capture"
    assert "Home | World" not in lighthouse.source_text  # navigation cleaned away, as for HTML files
    for article in articles.values():
        doc = article.document
        assert doc.source == name and article.source_text[doc.start:doc.end].strip()
    assert warnings == [f"{name}: 2 page(s) read as articles; skipped: 1 redirect(s); 1 non-HTML response(s); "
                        "1 error response(s) (4xx/5xx); 1 older capture(s) of a URL captured again (the latest "
                        "is kept)."]
    assert sources[name].bytes == (tmp_path / name).stat().st_size and sources[name].sha256


def test_a_file_that_is_not_a_warc_is_skipped_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "junk.warc.gz").write_bytes(b"\x1f\x8b not really gzip at all")
    (tmp_path / "story.txt").write_text("A story about the harbour and the new tunnel.\n\nThe tunnel opened today.\n")
    warnings: list[str] = []
    docs = list(iter_articles(tmp_path, rag.load_settings().update("corpus", min_title_words=4).corpus, warnings.append))
    assert [d.document.source for d in docs] == ["story.txt"]
    assert len(warnings) == 1 and warnings[0].startswith("junk.warc.gz: ")
    assert "no HTML page" in warnings[0] or "not a readable web archive" in warnings[0]


@pytest.mark.slow
def test_warc_articles_answer_and_unchanged_archives_are_not_re_read(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from warcio.warcwriter import WARCWriter

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    odd_archive(corpus / "news.warc.gz")

    def second(text: str) -> None:
        with open(corpus / "more.warc.gz", "wb") as handle:
            add(WARCWriter(handle, gzip=True), "https://news.example/orchestra", "200 OK", "text/html",
                page("City orchestra names a new conductor", [text]), "2026-01-10T12:00:00Z")

    second("The city orchestra named Alma Ferreira as its new chief conductor, starting in September.")
    settings = make_settings(corpus, tmp_path / "index")
    first = rag.build_index(settings)
    assert first.documents == 3
    answer = rag.get_engine(settings).ask("After how many years did the northern cape's last lighthouse keeper retire?")
    assert not answer.abstained
    cited = answer.citations[0]
    assert cited.doc_id == "https://news.example/lighthouse"
    assert rag.source_text(corpus, cited.source, cited.doc_id)[cited.start:cited.end] == cited.quote

    read: list[str] = []
    real = rag.ingest.warc.warc_articles
    monkeypatch.setattr(rag.ingest.warc, "warc_articles", lambda reader, path, rel, meta: (read.append(rel),
                                                                                      real(reader, path, rel,
                                                                                           meta))[1])
    second("The city orchestra named Jonas Berg as its new chief conductor, starting in October.")
    again = rag.build_index(settings)
    assert read == ["more.warc.gz"]  # news.warc.gz did not change: its articles were carried, not re-read
    assert (again.documents, again.changed, again.unchanged, again.chunks_reused > 0) == (3, 1, 2, True)
    manifest = rag.index_info(settings)
    assert manifest["sources"] == 2
    read.clear()
    third = rag.build_index(settings)
    assert read == [] and (third.unchanged, third.chunks_embedded) == (3, 0)
    time.sleep(1.2)  # the shared engine looks for a new live generation once a second
    answer = rag.get_engine(settings).ask("Who is the new chief conductor of the city orchestra?")
    assert any("Jonas Berg" in c.quote for c in answer.citations)
