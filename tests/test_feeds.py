"""Feeds as corpus files: RSS 2.0, RSS 1.0 (sniffed from .xml) and Atom, with odd items, read into articles and
answering questions with exact-span citations through the real engine."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import rag
from conftest import DATA, make_settings
from rag.ingest.corpus import iter_articles

FEEDS = DATA / "feeds"


def read(folder: Path) -> tuple[dict[str, rag.Article], list[str]]:
    warnings: list[str] = []
    return {a.document.doc_id: a for a in iter_articles(folder, warn=warnings.append)}, warnings


def test_each_kind_of_feed_gives_one_article_per_item_with_its_metadata() -> None:
    articles, warnings = read(FEEDS)
    assert sorted(articles) == [
        "courier-1001", "https://courier.example/2026/04/ferry-timetable", "https://farm.example/apple-harvest",
        "https://farm.example/bee-count", "tag:mountain.example,2026:glacier-retreat",
        "tag:mountain.example,2026:ski-lifts"]
    tunnel = articles["courier-1001"]
    doc = tunnel.document
    assert doc.source == "harbour.rss"
    assert doc.title == "Harbour tunnel opens after six years of work"  # HTML in the title: text only
    assert dict(doc.metadata) == {"publisher": "Coastal Courier", "language": "en", "date": "2026-03-03",
                                  "url": "https://courier.example/2026/03/harbour-tunnel",
                                  "author": "Marta Lindqvist"}
    # the full content (content:encoded), not the teaser, cleaned to text; offsets index that text
    assert tunnel.source_text.startswith("The harbour tunnel opened to traffic on Tuesday")
    assert "teaser" not in tunnel.source_text and "<p>" not in tunnel.source_text
    assert all(tunnel.source_text[s:e].strip() for s, e in doc.spans)
    ferry = articles["https://courier.example/2026/04/ferry-timetable"].document  # no guid: the link; no date
    assert "date" not in ferry.metadata and ferry.title == "Ferry timetable changes for the summer season"
    glacier = articles["tag:mountain.example,2026:glacier-retreat"]
    assert glacier.document.title == "Glacier retreat measured at record pace"
    assert glacier.document.metadata["author"] == "Ines Baumann; Tomas Rey"
    assert glacier.document.metadata["date"] == "2026-05-01"  # published, not updated
    assert glacier.source_text.startswith("The Aletsch glacier lost 42 metres")
    assert articles["tag:mountain.example,2026:ski-lifts"].source_text.startswith("Twelve ski lifts")
    apple = articles["https://farm.example/apple-harvest"].document  # RSS 1.0 with a broken entity (&eacute;)
    assert apple.source == "orchards.xml" and apple.metadata["author"] == "Olga Petrov"
    assert apple.title.startswith("Apple harvest & cider prices")
    assert articles["https://farm.example/bee-count"].document.metadata["date"] == "2026-06-11"
    assert warnings == [
        "harbour.rss: 1 item(s) already read (the same id or link), kept once: courier-1001 (in harbour.rss).",
        "notes.xml: an XML file that is not an RSS or Atom feed, skipped.",
        "orchards.xml: the feed is not well-formed (<unknown>:9:44: undefined entity); its items were read "
        "leniently. Check the articles it gave, or fix the file.",
        "repeat.rss: 1 item(s) already read (the same id or link), kept once: courier-1001 (in harbour.rss).",
    ]


def test_sidecar_size_limit_and_broken_feeds(tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    shutil.copy(FEEDS / "glaciers.atom", corpus / "glaciers.atom")
    (corpus / "glaciers.atom.meta.toml").write_text('publisher = "Mountain Weekly Online"\nlanguage = "de"\n')
    (corpus / "broken.rss").write_text("<rss><channel><item><title>half")
    (corpus / "big.rss").write_text("<rss>" + " " * 2_000_000 + "</rss>")
    options = rag.load_settings(env={}, corpus={"max_file_mb": 1}).corpus
    warnings: list[str] = []
    articles = list(iter_articles(corpus, options, warnings.append))
    assert {a.document.metadata["publisher"] for a in articles} == {"Mountain Weekly Online"}  # the sidecar's
    assert warnings[0] == ("big.rss: file of 2.0 MB is over the 1 MB limit (corpus.max_file_mb), skipped. "
                           "Split it into smaller files or raise corpus.max_file_mb.")
    assert warnings[1].startswith("broken.rss: the feed is not well-formed (")  # read leniently, item by item
    assert warnings[2:] == ["broken.rss: item 1 (untitled) has no text, skipped."]


@pytest.mark.slow
def test_feed_articles_answer_with_exact_span_citations(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(FEEDS, corpus)
    settings = make_settings(corpus, tmp_path / "index")
    report = rag.build_index(settings)
    assert report.documents == 6
    engine = rag.get_engine(settings)
    answer = engine.ask("How many metres of length did the Aletsch glacier lose last year?")
    assert not answer.abstained and answer.citations
    cited = answer.citations[0]
    assert cited.doc_id == "tag:mountain.example,2026:glacier-retreat"
    text = rag.source_text(corpus, cited.source, cited.doc_id)
    assert text[cited.start:cited.end] == cited.quote and "42 metres" in cited.quote
    # unchanged feeds: nothing re-embedded on the next build
    again = rag.build_index(settings)
    assert (again.added, again.changed, again.unchanged, again.chunks_embedded) == (0, 0, 6, 0)
