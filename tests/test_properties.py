"""Property-based tests (hypothesis) for the corpus readers, sentence spans and exports, fed arbitrary Unicode:
control characters, lone surrogates, byte order marks, line separators, markup. The offsets contract holds
for whatever is read, nothing raises, and nothing unsafe reaches an export meant for people.

The examples are derandomised (the same every run, so CI cannot flake); HYPOTHESIS_PROFILE=explore searches
further with fresh random examples."""

from __future__ import annotations

import json
import re
import tempfile
import unicodedata
from pathlib import Path

import bibtexparser
import pytest
import rispy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rag
from rag.common.controls import visible
from rag.export import FORMATS, export_answers, write_export
from rag.ingest.sentences import MAX_PIECE, pieces, sentence_spans
from rag.records import Answer, Chunk, Citation, Hit

settings.register_profile("default", derandomize=True, deadline=None, max_examples=120,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", deadline=None, max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("default")

# every code point, surrogates and controls included, plus pieces that give the readers structure
ANY_CHAR = st.characters(exclude_categories=())
FRAGMENTS = ["\n", "\n\n", "\r\n", "\r\n\r\n", "\u2028", "\u0085", "\x0b", "\x1b[31m", "\x1b]0;title\x07",
             "\x1b]8;;http://x\x07", "\x9b", "\u202e", "\u2066", "\x00", "\ud800", "\udfff", "\ufeff", "# ",
             "## ", "Read more", "READ MORE: x", "Category Archive : Russia", ". ", "? ", "… ", "“", "”", "\u00a0",
             "  ", "\t", "Mr. ", "U.S. ", "55,000", "=cmd|' /C calc'!A0", "@SUM(1)", "-2+3", "{", "}", "\\", "%",
             "<script>", "[1]", "A headline of exactly eight words goes here", "é", "🕊️", "ﬁ"]
TEXT = st.lists(st.one_of(st.text(ANY_CHAR, max_size=12), st.sampled_from(FRAGMENTS)), max_size=60).map("".join)
SAFE_TEXT = TEXT.map(lambda t: re.sub("[\ud800-\udfff]", "", t))
# what may not appear in an export meant for people (tab and line feed aside)
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def read(files: dict[str, bytes]) -> tuple[list[rag.Article], list[str], Path]:
    folder = Path(tempfile.mkdtemp(dir="."))
    for name, data in files.items():
        (folder / name).write_bytes(data)
    warnings: list[str] = []
    return list(rag.iter_articles(folder, warn=warnings.append)), warnings, folder


def check_article(article: rag.Article) -> None:
    doc, text = article.document, article.source_text
    assert 0 <= doc.start <= doc.end <= len(text)
    assert doc.spans and doc.spans[0][0] >= doc.start and doc.spans[-1][1] <= doc.end
    for (s, e), nxt in zip(doc.spans, list(doc.spans[1:]) + [None]):
        assert s < e and text[s:e] == text[s:e].strip()
        if nxt is not None:
            assert e < nxt[0]
    assert not re.search("[\ud800-\udfff]", text + doc.doc_id + doc.title)  # SQLite and the encoder can take it


# --- corpus readers ------------------------------------------------------------------------------------------

@given(text=SAFE_TEXT, markdown=st.booleans())
def test_text_files_read_as_stored_with_exact_spans(text: str, markdown: bool) -> None:
    name = "page.md" if markdown else "page.txt"
    articles, warnings, folder = read({name: text.encode("utf-8")})
    assert all(isinstance(w, str) and "\n" not in w and w.startswith(name) for w in warnings)
    ids = [a.document.doc_id for a in articles]
    assert len(ids) == len(set(ids))
    for article in articles:
        assert article.source_text == text  # the file decoded as UTF-8, exactly as stored
        assert article.document.source == name
        check_article(article)
        assert rag.source_text(folder, name, article.document.doc_id) == text
    if text.strip() and "\x00" not in text[:8192]:
        assert articles or warnings


@given(data=st.binary(max_size=400))
def test_any_bytes_are_read_or_refused_with_one_warning(data: bytes) -> None:
    articles, warnings, _ = read({"blob.txt": data, "blob.jsonl": data})
    assert all("\n" not in w for w in warnings)
    for article in articles:
        check_article(article)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        assert any(w.startswith("blob.txt: not UTF-8") or w.startswith("blob.txt: binary") for w in warnings)
        assert not any(a.document.source == "blob.txt" for a in articles)


RECORD = st.fixed_dictionaries(
    {"text": TEXT},
    optional={"id": st.one_of(TEXT, st.integers(), st.none(), st.booleans(), st.lists(st.integers(), max_size=2)),
              "title": st.one_of(TEXT, st.none(), st.integers()),
              "author": st.one_of(TEXT, st.lists(TEXT, max_size=3), st.dictionaries(TEXT, TEXT, max_size=1)),
              "date": st.one_of(TEXT, st.dates().map(str), st.just("2026-13-45")), "url": TEXT},
)


@given(records=st.lists(st.one_of(RECORD, TEXT), max_size=6), ascii_only=st.booleans())
def test_json_lines_keep_each_record_text_with_surrogates_made_characters(records: list, ascii_only: bool) -> None:
    lines = [json.dumps(r, ensure_ascii=ascii_only) if isinstance(r, dict) else r.replace("\n", " ")
             for r in records]
    raw = "\n".join(lines).encode("utf-8", "surrogatepass")
    articles, warnings, _ = read({"feed.jsonl": raw})
    assert all("\n" not in w for w in warnings)
    texts = [r["text"] for r in records if isinstance(r, dict) and r["text"].strip()]
    for article in articles:
        check_article(article)
        assert all(isinstance(v, str) and v for v in article.document.metadata.values())
    for article in articles:  # each record's text, surrogates replaced one for one (same length: offsets hold)
        assert article.source_text in [re.sub("[\ud800-\udfff]", "\ufffd", t) for t in texts]


# --- sentence spans --------------------------------------------------------------------------------------------

LONG_LINE = st.tuples(st.sampled_from(["word ", "sentence. ", "x", "。", "a\u00a0b ", "\x1b"]),
                      st.integers(min_value=500, max_value=3000)).map(lambda p: p[0] * p[1])


@given(text=st.one_of(TEXT, LONG_LINE, st.tuples(TEXT, LONG_LINE, TEXT).map("".join)), data=st.data())
def test_sentence_spans_are_ordered_trimmed_slices_within_the_window(text: str, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    spans = sentence_spans(text, start, end)
    previous = start
    for s, e in spans:
        assert previous <= s < e <= end
        piece = text[s:e]
        assert piece == piece.strip() and "\n" not in piece and len(piece) <= MAX_PIECE
        previous = e


@given(text=st.one_of(TEXT, LONG_LINE), limit=st.integers(2, 300))
def test_pieces_cover_the_line_in_order(text: str, limit: int) -> None:
    cuts = pieces(text, 0, len(text), limit)
    assert cuts[0][0] == 0 and cuts[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in zip(cuts, cuts[1:]))
    assert all(0 < e - s <= limit for s, e in cuts) or text == ""


# --- exports ----------------------------------------------------------------------------------------------------

META = st.dictionaries(st.sampled_from(["publisher", "url", "date", "author", "language", "category"]), TEXT,
                       max_size=6)


@st.composite
def answers(draw: st.DrawFn) -> list[Answer]:
    out = []
    for n in range(draw(st.integers(1, 3))):
        quote, title, doc_id = draw(TEXT), draw(TEXT), draw(TEXT)
        chunk = Chunk(f"{doc_id}#0", doc_id, 10, 10 + len(quote), quote)
        metadata = draw(META)
        citation = Citation(1, doc_id, chunk.chunk_id, title, draw(TEXT), 10, 10 + len(quote), quote, metadata)
        hit = Hit(1, chunk, title, citation.source, 0.5, metadata=metadata)
        abstained = draw(st.booleans())
        out.append(Answer(draw(TEXT), draw(TEXT), abstained, () if abstained else (citation,), (hit,),
                          notices=tuple(draw(st.lists(TEXT, max_size=2))), id=f"answer-{n}"))
    return out


@given(conversation=answers())
def test_exports_of_any_text_are_safe_and_parse(conversation: list[Answer]) -> None:
    for fmt in FORMATS:
        text = export_answers(conversation, fmt)
        text.encode("utf-8")  # writable as UTF-8, whatever the archive held
        if fmt in ("json", "csl-json"):
            data = json.loads(text)  # the same data, unsafe characters written as escapes
            assert not re.search("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]", text)
            if fmt == "json":
                expected = conversation[0].to_dict() if len(conversation) == 1 else \
                    {"answers": [a.to_dict() for a in conversation]}
                assert data == json.loads(json.dumps(expected))
        else:
            assert not UNSAFE.search(text), (fmt, UNSAFE.search(text))
    ris = export_answers(conversation, "ris")
    for line in ris.splitlines():
        assert line == "" or re.fullmatch(r"[A-Z][A-Z0-9]  - .*", line), line
        assert line[6:7] not in ("=", "+", "-", "@"), line  # no value a spreadsheet would run
    records = rispy.loads(ris)
    assert len(records) == len({(c.doc_id, c.start, c.end) for a in conversation if not a.abstained
                                for c in a.citations})
    library = bibtexparser.parse_string(export_answers(conversation, "bibtex"))
    assert not library.failed_blocks


@given(conversation=answers(), fmt=st.sampled_from(list(FORMATS)))
def test_write_export_writes_any_text(conversation: list[Answer], fmt: str) -> None:
    path = Path(tempfile.mkdtemp(dir=".")) / f"out{FORMATS[fmt]}"
    assert write_export(conversation, path) == fmt
    assert path.read_text(encoding="utf-8") == export_answers(conversation, fmt)


@given(text=TEXT)
def test_visible_leaves_safe_text_alone_and_escapes_the_rest(text: str) -> None:
    shown = visible(text)
    assert not UNSAFE.search(shown)
    if not UNSAFE.search(text.replace("\r\n", "\n")):
        assert shown == text.replace("\r\n", "\n")
    assert unicodedata.normalize("NFC", shown) is not None


@pytest.mark.parametrize("value", ["=cmd|' /C calc'!A0", "+SUM(A1)", "-2+3", "@SUM(1)"])
def test_formula_looking_ris_values_are_quoted(value: str) -> None:
    chunk = Chunk("d#0", "d", 0, 5, "quote")
    citation = Citation(1, "d", "d#0", value, "f.txt", 0, 5, "quote", {"publisher": value})
    ris = export_answers([Answer("q", "a", False, (citation,), (Hit(1, chunk, value, "f.txt", 1.0),))], "ris")
    assert f"TI  - '{value}" in ris and f"PB  - '{value}" in ris
    (record,) = rispy.loads(ris)
    assert record["title"] == "'" + value
