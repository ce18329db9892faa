"""Reading corpora into articles: segmentation of the bundled archive and of small archives made for these
tests (tests/data/corpus/), exact offsets, metadata, bad input, and `rag corpus list` through the front door."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import BUNDLED, DATA
from typer.testing import CliRunner

import rag
from rag.cli import app
from rag.ingest.formats import extract_html

CORPUS = DATA / "corpus"
STEM = BUNDLED.stem

BUNDLED_TITLES = [
    "Media outlets suspect Kiev of falsifying figures to withhold up to $30 billion in compensation to the "
    "families of killed soldiers",
    "Increased attempts to hinder a settlement are an indication of progress in diplomacy, Kirill Dmitriev has said",
    "Moscow is offering to play a role if Washington and Tehran strike a deal, the Russian foreign minister has said",
    "The organizers say more than 200 companies from Russia, China, Iran, and Belarus are showcasing their products",
    "Ambassador Andrey Kelin has said Moscow would treat NATO soldiers on the ground as a security threat",
    "History suggests the country’s physically and mentally decimated population is in for years of prolonged "
    "social strife",
    "Russia has not received any formal response from the US on renewing the compact",
    "The Ukrainian leader is not interested in peace, as any agreement would end his political career, Sergey "
    "Lavrov has told the network in an exclusive interview",
    "Only about a quarter of respondents genuinely support Vladimir Zelensky, the survey authors have claimed",
    "Foreign troops would be treated as “legitimate targets” if deployed to the country, Russian Foreign Ministry "
    "spokeswoman Maria Zakharova has said",
]
BUNDLED_IDS = [f"{STEM}/{slug}" for slug in (
    "media-outlets-suspect-kiev-of-falsifying-figures-to-withhold",
    "increased-attempts-to-hinder-a-settlement-are-an-indication",
    "moscow-is-offering-to-play-a-role-if-washington-and-tehran-s",
    "the-organizers-say-more-than-200-companies-from-russia-china",
    "ambassador-andrey-kelin-has-said-moscow-would-treat-nato-sol",
    "history-suggests-the-countrys-physically-and-mentally-decima",
    "russia-has-not-received-any-formal-response-from-the-us-on-r",
    "the-ukrainian-leader-is-not-interested-in-peace-as-any-agree",
    "only-about-a-quarter-of-respondents-genuinely-support-vladim",
    "foreign-troops-would-be-treated-as-legitimate-targets-if-dep",
)]
# The end of each article's last sentence, in order.
BUNDLED_LAST = [
    "leaving the government in a “bubble of lies.”",
    "would spell doom for the Ukrainian leader’s political career.",
    "will air on RT on Thursday at 14:30 GMT.",
    "Supercam spokeswoman Ekaterina Zgirovskaya told RT.",
    "would treat any Western troops in Ukraine as legitimate military targets.",
    "the country and its people, or what’s left of them.",
    "warned of a looming “full-blow arms race” between major powers.",
    "The full interview with Lavrov will air on Thursday at 17:30\u00a0Moscow Time.",
    "barring any elections until May or later.",
    "European NATO members should bear the brunt of responsibility.",
]
RELATED_HEADLINES = [
    "Putin ‘kept his word’ on Ukraine ceasefire – Trump",
    "WATCH IN FULL: Sergey Lavrov’s exclusive interview with RT",
    "NATO prepares Ukraine for the politics of defeat",
    "The Ukraine knot: How gas transit tied up Russia, Europe, and Kiev in one conflict",
    "Where Russia’s next major offensive may strike",
    "War-torn Ukraine is being sold as an ‘investment bonanza’ – but there’s a catch",
    "A peace deal won’t solve the deeper problem between Russia and Ukraine",
    "World is days from becoming more dangerous – Kremlin",
    "Zelensky hints at staying in power",
    "UK and France unveil troop commitments for Ukraine",
]
SUBHEADINGS_6 = [
    "PTSD and substance abuse", "Veterans and violence", "History of post-war issues",
    "Influx of weapons and Organized Crime", "People vs Government", "Far reaching consequences",
    "Similar issues in Russia", "Post-war crisis state",
]


def collect(corpus: Path, **kwargs) -> tuple[list[rag.Article], list[str]]:
    warnings: list[str] = []
    return list(rag.iter_articles(corpus, warn=warnings.append, **kwargs)), warnings


def inside(spans, start: int, end: int) -> bool:
    return any(s <= start and end <= e for s, e in spans)


def touches(spans, start: int, end: int) -> bool:
    return any(s < end and start < e for s, e in spans)


def related_regions(text: str) -> list[tuple[int, int]]:
    """Where the related-link blocks of an archive are, found independently of the segmenter: a `Read more`
    paragraph with the caption/headline paragraph after it, and every `READ MORE: ...` line."""
    regions = []
    for m in re.finditer(r"^Read more[ \t]*\r?\n[ \t]*\r?\n(.+?)(?=\r?\n[ \t]*\r?\n|\Z)", text, re.M | re.S):
        regions.append((m.start(), m.end()))
    for m in re.finditer(r"^READ MORE:[^\r\n]*", text, re.M):
        regions.append((m.start(), m.end()))
    return regions


@pytest.fixture(scope="module")
def bundled() -> list[rag.Article]:
    articles, warnings = collect(BUNDLED.parent)
    assert warnings == []
    return articles


@pytest.fixture(scope="module")
def data() -> tuple[dict[str, rag.Article], list[str]]:
    articles, warnings = collect(CORPUS)
    return {a.document.doc_id: a for a in articles}, warnings


# --- the bundled archive -------------------------------------------------------------------------------------

def test_bundled_archive_has_its_ten_articles_with_their_titles(bundled: list[rag.Article]) -> None:
    assert [a.document.title for a in bundled] == BUNDLED_TITLES
    assert [a.document.doc_id for a in bundled] == BUNDLED_IDS
    assert {a.document.source for a in bundled} == {BUNDLED.name}


def test_bundled_article_boundaries(bundled: list[rag.Article]) -> None:
    raw = BUNDLED.read_text(encoding="utf-8")
    previous_end = 0
    for article, title, last in zip(bundled, BUNDLED_TITLES, BUNDLED_LAST):
        doc, text = article.document, article.source_text
        assert text == raw  # the source text is the file exactly as stored
        body = text[doc.start:doc.end]
        assert body.startswith(title + "\n\n")
        assert body.endswith(last)
        assert doc.chars == doc.end - doc.start
        if previous_end:  # this article starts after the one before ends, with only blank lines between
            assert doc.start > previous_end and not text[previous_end:doc.start].strip()
        assert doc.spans[0][0] == doc.start and doc.spans[-1][1] == doc.end
        assert all(s < e for s, e in doc.spans)
        assert all(e1 < s2 for (_, e1), (s2, _) in zip(doc.spans, doc.spans[1:]))
        previous_end = doc.end
    assert previous_end == len(raw.rstrip())
    # the header is file metadata, not an article
    assert bundled[0].document.start == raw.index(BUNDLED_TITLES[0]) > raw.index("Category Archive : Russia")
    assert all(dict(a.document.metadata) == {"category": "Russia"} for a in bundled)


def test_related_links_are_left_out_of_every_span(bundled: list[rag.Article]) -> None:
    raw = BUNDLED.read_text(encoding="utf-8")
    regions = related_regions(raw)
    assert len(regions) == 14  # ten `Read more` blocks and four `READ MORE:` lines
    spans = [sp for a in bundled for sp in a.document.spans]
    for start, end in regions:
        assert not touches(spans, start, end), raw[start:end]
    indexed = "\n".join(raw[s:e] for s, e in spans)
    for headline in RELATED_HEADLINES:
        assert raw.count(headline) == 1 and headline not in indexed
    assert "Read more" not in indexed and "READ MORE" not in indexed
    assert "Category Archive" not in indexed
    # everything else is indexed: outside the spans there is only blank space, the header and related links
    covered = sorted(spans + regions + [(0, len("Category Archive : Russia"))])
    cursor = 0
    for s, e in covered:
        assert not raw[cursor:s].strip(), raw[cursor:s]
        cursor = max(cursor, e)
    assert not raw[cursor:].strip()


def test_subheadings_stay_inside_their_article(bundled: list[rag.Article]) -> None:
    sixth = bundled[5]
    raw = sixth.source_text
    for heading in SUBHEADINGS_6:
        at = raw.index(heading)
        assert inside(sixth.document.spans, at, at + len(heading)), heading
        assert heading not in [a.document.title for a in bundled]


def test_source_text_returns_what_the_offsets_index(bundled: list[rag.Article]) -> None:
    for article in bundled:
        doc = article.document
        text = rag.source_text(BUNDLED.parent, doc.source, doc.doc_id)
        assert text == article.source_text
    with pytest.raises(KeyError):
        rag.source_text(BUNDLED.parent, BUNDLED.name, "no-such-article")


def test_load_documents_matches_iter_articles(bundled: list[rag.Article]) -> None:
    assert rag.load_documents(BUNDLED.parent) == [a.document for a in bundled]


# --- small archives of our own -------------------------------------------------------------------------------

def test_data_corpus_lists_exactly_the_expected_articles(data) -> None:
    articles, warnings = data
    assert list(articles) == [
        "archive_crlf/scientists-map-the-deep-ocean-floor-near-the-azores-with-aut",
        "archive_crlf/city-council-approves-a-new-tram-line-after-years-of-debate",
        "archive_crlf/local-bakery-wins-national-award-for-its-sourdough-bread-mad",
        "bad_meta/museum-returns-a-looted-bronze-statue-to-the-village-where-i",
        "page",
        "rec-001",
        "wire/2026/42",
        "rec-003",
        "records/line-8",
        "single/the-harbour-master-said-on-monday-that-the-port-handled-more",
        "volcano/volcano-erupts-on-a-remote-island-forcing-two-villages-to-ev",
        "volcano/researchers-publish-a-century-of-rainfall-records-for-the-re",
        "with_meta/wind-farm-off-the-northern-coast-starts-feeding-power-into-t",
    ]
    assert len(warnings) == 4, warnings
    assert "bad_meta.meta.toml" in warnings[0] and "not valid TOML" in warnings[0] and "Fix it" in warnings[0]
    assert warnings[1].startswith("records.jsonl:3: not valid JSON") and "Fix the line" in warnings[1]
    assert warnings[2].startswith("records.jsonl:4: no 'text' field") and "Add a non-empty 'text'" in warnings[2]
    assert warnings[3].startswith("records.jsonl:5: duplicate id 'rec-001'")


def test_every_offset_of_the_data_corpus_is_exact(data) -> None:
    articles, _ = data
    for doc_id, article in articles.items():
        doc = article.document
        text = rag.source_text(CORPUS, doc.source, doc_id)
        assert text == article.source_text
        assert 0 <= doc.start <= doc.spans[0][0] and doc.spans[-1][1] <= doc.end <= len(text)
        for s, e in doc.spans:
            assert text[s:e] == text[s:e].strip() and text[s:e]


def test_plain_archive_with_crlf_nbsp_and_curly_quotes(data) -> None:
    articles, _ = data
    raw_bytes = (CORPUS / "archive_crlf.txt").read_bytes()
    assert raw_bytes.count(b"\r\n") > 20 and b"\n" not in raw_bytes.replace(b"\r\n", b"")  # guard the fixture
    raw = raw_bytes.decode("utf-8")
    docs = [a.document for a in articles.values() if a.document.source == "archive_crlf.txt"]
    assert [d.title for d in docs] == [
        "Scientists map the deep ocean floor near the Azores with autonomous submarines",
        "City council approves a new tram line after years of debate over costs",
        "Local bakery wins national award for its sourdough bread made with heritage grain",
    ]
    assert all(dict(d.metadata) == {"category": "Science"} for d in docs)
    ends = ["second expedition in the autumn.", "carry 20,000\u00a0passengers a day.",
            "who bakes 300\u00a0loaves every morning."]
    for doc, last in zip(docs, ends):
        body = raw[doc.start:doc.end]
        assert body.startswith(doc.title + "\r\n\r\n") and body.endswith(last)
        assert "\r" not in doc.title
    first, second, third = docs
    # the NBSP and the curly quotes are kept as stored
    assert "1,200\u00a0square kilometres" in raw[first.start:first.end]
    assert "“We found ridges nobody had drawn before,” said" in raw[first.start:first.end]
    assert "‘a turning point’" in raw[second.start:second.end]
    # the related-link block and the READ MORE line are out; the subheading is in
    regions = related_regions(raw)
    assert len(regions) == 2
    spans = [sp for d in docs for sp in d.spans]
    for s, e in regions:
        assert not touches(spans, s, e)
    assert len(first.spans) == 2 and len(third.spans) == 2 and len(second.spans) == 1
    heading = raw.index("Funding and timeline")
    assert inside(second.spans, heading, heading + len("Funding and timeline"))


def test_markdown_archive_splits_on_h1_and_keeps_h2_inside(data) -> None:
    articles, _ = data
    raw = (CORPUS / "volcano.md").read_text(encoding="utf-8")
    docs = [a.document for a in articles.values() if a.document.source == "volcano.md"]
    assert [d.title for d in docs] == [
        "Volcano erupts on a remote island, forcing two villages to evacuate",
        "Researchers publish a century of rainfall records for the region",
    ]
    first, second = docs
    assert raw[first.start:].startswith("# Volcano erupts") and raw[second.start:].startswith("# Researchers")
    assert raw[first.start:first.end].endswith("“The lava is moving slowly,” one of them said.")
    assert raw[second.start:second.end].endswith("settled by a third reader.")
    for heading, doc in (("## Evacuation", first), ("## What scientists expect", first), ("## Methods", second)):
        at = raw.index(heading)
        assert inside(doc.spans, at, at + len(heading))
    assert first.end < second.start


def test_single_article_without_summary_line_takes_its_first_line_as_title(data) -> None:
    articles, _ = data
    raw = (CORPUS / "single.txt").read_text(encoding="utf-8")
    doc = articles["single/the-harbour-master-said-on-monday-that-the-port-handled-more"].document
    assert doc.title == ("The harbour master said on Monday that the port handled more container ships in January "
                         "than in any month since records began, as shipping lines diverted…")
    assert (doc.start, doc.end) == (0, len(raw.rstrip()))
    assert doc.spans == ((0, len(raw.rstrip())),)  # the short subheading "Port traffic" stays in


def test_jsonl_records(data) -> None:
    articles, _ = data
    lines = (CORPUS / "records.jsonl").read_text(encoding="utf-8").split("\n")
    first = articles["rec-001"]
    assert first.document.title == "Rail strike ends after two weeks"
    assert first.source_text == json.loads(lines[0])["text"]
    assert dict(first.document.metadata) == {
        "publisher": "Example Wire", "url": "https://example.org/rail", "date": "2026-01-15",
        "author": "A. Writer", "language": "en", "category": "Transport",
    }
    # `_id` is used verbatim, slashes included
    assert articles["wire/2026/42"].document.title == "Snow closes mountain passes"
    assert dict(articles["wire/2026/42"].document.metadata) == {}
    # a record whose text holds a raw U+2028 (legal inside a JSON string), NBSP and curly quotes
    third = articles["rec-003"]
    body = json.loads(lines[5])["text"]
    assert "\u2028" in lines[5] and third.source_text == body
    assert third.document.title == "Harbour “reopens”"
    assert (third.document.start, third.document.end) == (0, len(body))
    (s, e), = third.document.spans
    assert body[s:e] == body.strip() and "06:00\u00a0local" in body[s:e]
    # no id: the file and line number
    assert articles["records/line-8"].document.title == "records/line-8"
    assert articles["records/line-8"].source_text == "A record with neither id nor title. It still counts."


def test_jsonl_ids_are_verbatim_and_global(tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.jsonl").write_text(
        '\ufeff{"id": 7, "text": "Seven is a number. It is odd."}\r\n'
        '{"id": "  spaced id ", "text": "Whitespace in ids is kept as given."}\r\n'
        '[1, 2]\r\n'
        '{"id": "x", "text": 5}\r\n', encoding="utf-8")
    (corpus / "b.ndjson").write_text('{"_id": "7", "text": "Same id in another file."}\n'
                                     '{"_id": "8", "text": "Another."}\n', encoding="utf-8")
    articles, warnings = collect(corpus)
    assert [a.document.doc_id for a in articles] == ["7", "  spaced id ", "8"]
    assert warnings == [
        "a.jsonl:3: not a JSON object, line skipped. Each line must be an object with 'text'.",
        "a.jsonl:4: no 'text' field with text, line skipped. Add a non-empty 'text'.",
        "b.ndjson:1: duplicate id '7' (already used by a.jsonl:1), line skipped. Give every record its own id.",
    ]


def test_html_page_is_extracted_and_offsets_index_the_extracted_text(data) -> None:
    articles, _ = data
    page = articles["page"]
    raw_html = (CORPUS / "page.html").read_text(encoding="utf-8")
    extracted, _meta = extract_html(raw_html)
    assert page.source_text == extracted
    assert page.document.title == "Glacier retreat speeds up in the Alps, survey finds"
    assert dict(page.document.metadata) == {
        "author": "Lena Berger", "date": "2025-09-14", "publisher": "Mountain Times",
        "url": "https://example.org/alps/glacier-retreat",
    }
    assert "<p>" not in extracted and "Subscribe now" not in extracted and "All rights reserved" not in extracted
    doc = page.document
    body = extracted[doc.start:doc.end]
    assert body.startswith("Glacier retreat speeds up in the Alps")
    assert body.endswith("stakes drilled into the ice and satellite images.")
    quote = "“Small glaciers below 3,000 metres are disappearing in front of our eyes,” said the network’s director"
    at = extracted.index(quote)
    assert inside(doc.spans, at, at + len(quote))


def test_sidecar_metadata(data) -> None:
    articles, _ = data
    good = articles["with_meta/wind-farm-off-the-northern-coast-starts-feeding-power-into-t"].document
    assert dict(good.metadata) == {"publisher": "Coastal Herald", "url": "https://example.org/news/wind-farm",
                                   "date": "2026-01-29", "author": "Jane Doe", "language": "en"}
    bad = articles["bad_meta/museum-returns-a-looted-bronze-statue-to-the-village-where-i"].document
    assert dict(bad.metadata) == {}  # a bad sidecar loses its metadata, not its article
    assert bad.title == "Museum returns a looted bronze statue to the village where it was found"


def test_sidecar_named_after_the_full_file_name_and_unknown_keys(tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "story.txt").write_text("Category Archive : Economy\n\nA short story about a long day at the "
                                      "market\n\nPrices rose. Traders grumbled.\n", encoding="utf-8")
    (corpus / "story.txt.meta.toml").write_text('publisher = "Daily"\neditor = "Sam"\nauthor = "  "\n',
                                                encoding="utf-8")
    articles, warnings = collect(corpus)
    assert len(articles) == 1
    assert dict(articles[0].document.metadata) == {"category": "Economy", "publisher": "Daily"}
    assert len(warnings) == 1 and "unknown metadata key 'editor'" in warnings[0]
    assert "story.txt.meta.toml" in warnings[0]


# --- bad input ------------------------------------------------------------------------------------------------

def test_bad_files_are_skipped_with_a_warning_each_and_the_rest_is_read(tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    (corpus / "sub").mkdir(parents=True)
    shutil.copy(CORPUS / "with_meta.txt", corpus / "good.txt")
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "blank.md").write_bytes(b"  \n\n\t\n")
    (corpus / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (corpus / "sub" / "latin1.txt").write_bytes("Café prices rise again in the old town this winter season\n\n"
                                                "Owners blame the cost of milk.\n".encode("latin-1"))
    (corpus / "report.pdf").write_bytes(b"%PDF-1.4 not really")
    (corpus / "header_only.txt").write_text("Category Archive : Russia\n", encoding="utf-8")
    (corpus / ".hidden.txt").write_text("A hidden file is never read even though it has a lot of words\n")
    (corpus / "bom.txt").write_bytes("\ufeffCategory Archive : Europe\r\n\r\nA file saved with a byte order "
                                     "mark by a Windows editor\r\n\r\nIt still works.\r\n".encode("utf-8"))
    articles, warnings = collect(corpus)
    assert [a.document.doc_id for a in articles] == [
        "bom/a-file-saved-with-a-byte-order-mark-by-a-windows-editor",
        "good/wind-farm-off-the-northern-coast-starts-feeding-power-into-t",
    ]
    bom = articles[0].document
    assert bom.title == "A file saved with a byte order mark by a Windows editor"
    assert dict(bom.metadata) == {"category": "Europe"}
    assert warnings == [
        "blank.md: empty file, skipped. Add text to it or remove it.",
        "empty.txt: empty file, skipped. Add text to it or remove it.",
        "header_only.txt: no article text found (only a header or related links), skipped. Add articles to it.",
        "image.txt: binary file, skipped. Only text, Markdown, JSON Lines and HTML files are indexed.",
        "report.pdf: unsupported file type .pdf, skipped. Supported: .atom, .htm, .html, .jsonl, .markdown, .md, "
        ".ndjson, .rss, .text, .txt, .warc, .warc.gz, .xml.",
        "sub/latin1.txt: not UTF-8 (byte 3), skipped. Re-save it as UTF-8, e.g. iconv -f latin1 -t utf-8 "
        "sub/latin1.txt > fixed.txt.",
    ]


def test_broken_html_support_skips_html_files_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    shutil.copy(CORPUS / "page.html", corpus / "page.html")
    shutil.copy(CORPUS / "single.txt", corpus / "single.txt")

    def broken(_html: str):
        raise ImportError("lxml.html.clean module is now a separate project lxml_html_clean.")

    monkeypatch.setattr("rag.ingest.formats.extract_html", broken)
    articles, warnings = collect(corpus)
    assert [a.document.source for a in articles] == ["single.txt"]
    assert len(warnings) == 1 and warnings[0].startswith("page.html: HTML pages cannot be read here")


def test_html_without_article_text_is_skipped(tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "blank.html").write_text("<html><head><title>Nothing</title></head><body><script>var x = 1;"
                                       "</script></body></html>")
    articles, warnings = collect(corpus)
    assert articles == [] and warnings == ["blank.html: no article text found in the HTML page, skipped."]


def test_missing_and_empty_corpus_folders(tmp_path: Path) -> None:
    with pytest.raises(rag.CorpusMissing, match=r"does not exist.*--corpus DIR"):
        list(rag.iter_articles(tmp_path / "nope"))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(rag.CorpusMissing, match="is not a folder"):
        list(rag.iter_articles(tmp_path / "file.txt"))
    (tmp_path / "empty").mkdir()
    assert collect(tmp_path / "empty") == ([], [])
    with pytest.raises(rag.CorpusEmpty, match=r"holds no articles\. Add \.txt, \.md, \.jsonl or \.html files"):
        rag.load_documents(tmp_path / "empty")


def test_min_title_words_decides_what_opens_an_article(tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Five words make a headline\n\nFirst body.\n\nAnother five word headline here"
                                  "\n\nSecond body.\n", encoding="utf-8")
    assert len(collect(corpus)[0]) == 1  # default: eight words or more
    options = rag.load_settings().update("corpus", min_title_words=5).corpus
    assert [a.document.title for a in collect(corpus, options=options)[0]] == [
        "Five words make a headline", "Another five word headline here"]


# --- the command line ------------------------------------------------------------------------------------------

def test_corpus_list_json_through_the_cli(data) -> None:
    articles, _ = data
    result = CliRunner().invoke(app, ["corpus", "list", "--corpus", str(CORPUS), "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["doc_id"] for r in rows] == list(articles)
    for row in rows:
        assert list(row) == ["doc_id", "title", "source", "start", "end", "chars"]
        doc = articles[row["doc_id"]].document
        assert (row["title"], row["source"], row["start"], row["end"]) == (doc.title, doc.source, doc.start, doc.end)
        assert row["chars"] == row["end"] - row["start"]
    assert "warning: records.jsonl:3: not valid JSON" in result.stderr
    assert "warning: records.jsonl:5: duplicate id 'rec-001'" in result.stderr


def test_corpus_list_bundled_text_output() -> None:
    result = CliRunner().invoke(app, ["corpus", "list", "--corpus", str(BUNDLED.parent)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 10
    doc_id, where, title = lines[0].split("\t")
    assert (doc_id, title) == (BUNDLED_IDS[0], BUNDLED_TITLES[0])
    assert re.fullmatch(rf"{re.escape(BUNDLED.name)}:\d+-\d+", where)


def test_corpus_list_errors_are_one_line_and_exit_1(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["corpus", "list", "--corpus", str(tmp_path / "nope")])
    assert missing.exit_code == 1
    assert missing.stderr.startswith("error: Corpus folder") and "does not exist" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1 and "Traceback" not in missing.output
    (tmp_path / "empty").mkdir()
    empty = runner.invoke(app, ["corpus", "list", "--corpus", str(tmp_path / "empty"), "--json"])
    assert empty.exit_code == 1 and "holds no articles" in empty.stderr and empty.stdout == ""
