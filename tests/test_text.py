"""One home each for text normalisation, stop words and terms (rag.common.text), dates (rag.common.dates) and citation spans
(rag.answer.citations): the behaviour of each, and the places that must agree with each other (the index's BM25 terms
and the query's, the date the index stores and the date a filter asks for, the check a citation gets in every
answer mode)."""

from __future__ import annotations

import datetime
import json
import re
import tokenize
import unicodedata
from pathlib import Path

import pytest
from conftest import FakeEmbedder, make_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rag
from rag.answer.citations import check_citation, check_quote, cite, exact_span, quote_in_passage, span_problem
from rag.answer.retrieval import _shingles
from rag.common.dates import date_filter, iso_date_parts, normalise_date, real_date
from rag.common.text import REPORTING_WORDS, STOPWORDS, claim_words, content_terms, fold, normalise, slug, words
from rag.engine import Engine
from rag.errors import BadQuestion, SpanError
from rag.export import _slug as export_key
from rag.index.lexical import Lexical
from rag.ingest.segment import slugify
from rag.records import Chunk, Citation, Hit

ROOT = Path(__file__).resolve().parent.parent
TRICKY = [
    "Kiev's council opened the ﬁrst tidal barrier: ５５,０００ homes\u00a0protected, said the Mayor.",
    "“Quoted” words—dashes, Straße, İstanbul, naïve café, e-mail, under_score, x y zz 3 14 3.5",
    "THE report SAYS they were told nothing; ours, yours, theirs, whose and many much below.",
    "Ｆｕｌｌｗｉｄｔｈ ＴＥＸＴ and ligatures ﬂow ﬀ ﬃ, superscript km² and ½ measures",
    "",
]


# --- text: normalisation, words, terms, stop words ---------------------------------------------------------

def test_normalise_is_nfkc_and_words_fold_what_the_encoders_see() -> None:
    assert normalise("ﬁnal\u00a0ＴＥＳＴ ５５") == "final TEST 55"
    assert words("The ﬁnal\u00a0ＴＥＳＴ, 55 times_two") == ["the", "final", "test", "55", "times_two"]
    # near-duplicate passages are told apart on the same words: NBSP, fullwidth and case do not matter
    assert _shingles("Gates\u00a0close in ＥＬＥＶＥＮ minutes") == _shingles("gates close in eleven minutes")
    assert fold("  The  “New”\u00a0START –  Treaty ") == 'the "new" start - treaty'


@given(st.text(max_size=200))
def test_words_and_terms_read_the_normalised_text(text: str) -> None:
    assert words(text) == words(normalise(text))
    assert content_terms(text) == content_terms(normalise(text))
    assert claim_words(text) == claim_words(normalise(text))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(max_size=120), max_size=4))
def test_bm25_indexes_exactly_the_terms_a_query_is_read_as(extra: list[str]) -> None:
    """The index side (bm25s's tokenizer, in Lexical.build) and the query side (content_terms) are two
    implementations of one rule; they must give the same terms, or a query misses what the index holds."""
    texts = ["Tidal barrier gates close in eleven minutes."] + TRICKY + extra
    lexical = Lexical.build(texts)
    expected = set().union(*(content_terms(t) for t in texts))
    assert set(lexical._model.vocab_dict) - {""} == expected
    for i, text in enumerate(texts):
        terms = content_terms(text)
        assert lexical.known(terms) == set(terms)
        if terms:
            scores, rows = lexical.search(text, len(texts))
            assert i in rows.tolist()


def test_stop_words_are_one_list_for_bm25_the_reader_and_the_claim_check() -> None:
    assert rag.index.lexical.STOPWORDS == sorted(STOPWORDS)  # what bm25s is given, and what the manifest names
    assert content_terms(" ".join(sorted(STOPWORDS))) == []
    assert claim_words(" ".join(sorted(STOPWORDS | REPORTING_WORDS))) == []
    # reporting words are left out of the claim check only: BM25 (and so every built index) still sees them
    assert not REPORTING_WORDS & STOPWORDS
    assert content_terms("reported passages") == ["report", "passag"]


def test_claim_words_keep_figures_whole_and_read_the_normalised_text() -> None:
    assert claim_words("The report said Kiev recorded many military fatalities, 55,000 and 3.5%.") == \
        ["kiev", "record", "milita", "fatali", "55000", "3.5"]
    assert claim_words("Ｋｉｅｖ recorded ５５,０００ ﬁnal cities") == ["kiev", "record", "55000", "final", "city"]


def test_slugs_are_one_rule_for_article_ids_and_reference_keys() -> None:
    assert slug("Crème Brûlée — Übersicht!") == "creme-brulee-ubersicht"
    assert slug("  --Ends--  ") == "ends"
    assert slug("a" * 59 + " b", 60) == "a" * 59  # cut, and no "-" left at the cut
    assert slug("__a_b__ c", keep="_") == "a_b__-c"
    assert slugify("Wörld News: 2026!") == "world-news-2026" and slugify("¿¡!?") == "article"
    assert export_key("gazette_barrier#2") == "gazette_barrier-2"
    assert re.fullmatch(r"doc-[0-9a-f]{8}", export_key("東京"))


@given(st.text(max_size=80))
def test_an_id_without_underscores_slugs_the_same_for_ids_and_keys(text: str) -> None:
    if "_" not in unicodedata.normalize("NFKD", text) and slug(text):
        assert slugify(text) == export_key(text) == slug(text)


# --- dates ------------------------------------------------------------------------------------------------

def plain(day: datetime.date, parts: int) -> str:
    return day.isoformat()[: {1: 4, 2: 7, 3: 10}[parts]]


@given(st.dates(min_value=datetime.date(1000, 1, 1)), st.sampled_from([1, 2, 3]))
def test_the_three_date_readers_agree_on_every_plain_date(day: datetime.date, n: int) -> None:
    """What the index stores for an article's date, what a filter accepts and what an export writes are one
    date whenever the article gives a plain YYYY[-MM[-DD]]."""
    text = plain(day, n)
    assert normalise_date(text) == text == date_filter(text, "The 'since' date")
    assert iso_date_parts(text) == [day.year, day.month, day.day][:n]
    if n == 3:
        assert normalise_date(f"{text}T10:15:00Z") == text and iso_date_parts(f"{text}T10:15:00Z") == [
            day.year, day.month, day.day]


@pytest.mark.parametrize("raw", ["2026-02-30", "2026-13", "2026-00", "0000", "2026-04-31", "2025-02-29"])
def test_a_date_that_names_no_real_day_is_refused_by_all_three(raw: str) -> None:
    assert not real_date([int(p) for p in raw.split("-")])
    assert normalise_date(raw) is None and iso_date_parts(raw) is None
    with pytest.raises(BadQuestion, match=re.escape(f"The 'until' date '{raw}' is not a date; use YYYY, YYYY-MM "
                                                    "or YYYY-MM-DD.")):
        date_filter(raw, "The 'until' date")


@pytest.mark.parametrize(("raw", "read"), [
    ("2026-01-29T10:15:00+01:00", "2026-01-29"), ("2026-01-29 10:15", "2026-01-29"),
    ("Thu, 29 Jan 2026 10:15:00 +0000", "2026-01-29"), ("29 January 2026", "2026-01-29"),
    ("January 29, 2026", "2026-01-29"), ("29 Jan 2026", "2026-01-29"), ("Jan 29, 2026", "2026-01-29"),
    # a month or day of one digit is read, not cut down to the year (it was "2026")
    ("2026-1-5", "2026-01-05"), ("2026-1", "2026-01"),
    # digits of another script are read, and stored in ASCII so that filters compare them (they were kept as is)
    ("٢٠٢٦-٠١-٢٩", "2026-01-29"), ("२०२६", "2026"),
    ("sometime in winter", None), ("26", None), ("", None), (None, None),
])
def test_article_dates_are_read_leniently_into_ascii(raw: str | None, read: str | None) -> None:
    assert normalise_date(raw) == read
    assert read is None or read.isascii()


@pytest.mark.parametrize("raw", ["2026-1-5", "٢٠٢٦", "29 January 2026", "2026-01-29T10:15", "2026/01/29", "26"])
def test_a_filter_takes_only_plain_ascii_dates(raw: str) -> None:
    with pytest.raises(BadQuestion, match="is not a date; use YYYY, YYYY-MM or YYYY-MM-DD"):
        date_filter(raw, "The 'since' date")
    assert date_filter("  2026-01 ", "x") == "2026-01" and date_filter("  ", "x") is None


def test_an_export_takes_only_iso_dates() -> None:
    assert iso_date_parts(" 2026-01-29T10:15:00.5Z ") == [2026, 1, 29]
    assert iso_date_parts("٢٠٢٦-٠١") == [2026, 1]
    for raw in ("29 January 2026", "2026-1-5", "2026-01-29 10:15", "2026-01-29, updated"):
        assert iso_date_parts(raw) is None


def test_the_date_filter_finds_articles_whose_dates_the_index_read(tmp_path: Path) -> None:
    """Through the real build and query: dates written loosely (one-digit month, other digits) are filtered
    like the plain ones. The shown metadata keeps the article's own spelling."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rows = [("loose", "2026-3-5", "The tidal barrier gates closed for the first storm of March."),
            ("arabic", "٢٠٢٦-٠٣-٠٦", "Engineers found the barrier gates sound after a night of high water."),
            ("plain", "2026-03-07", "A ferry strike began as the tidal barrier gates reopened."),
            ("before", "2026-02-28", "Councillors voted to test the barrier gates every month.")]
    (corpus / "feed.jsonl").write_text("".join(
        json.dumps({"id": i, "title": f"Barrier report {i}", "date": d, "text": text}) + "\n"
        for i, d, text in rows), encoding="utf-8")
    settings = make_settings(corpus, tmp_path / "index", answer={"reader": "off"})
    embedder = FakeEmbedder()
    rag.build_index(settings, embedder=embedder)
    engine = Engine(settings, embedder=embedder)
    found = {h.chunk.doc_id: h for h in engine.search("tidal barrier gates", 10, since="2026-03-05",
                                                       until="2026-03-06")}
    assert set(found) == {"loose", "arabic"}
    assert found["arabic"].metadata["date"] == "٢٠٢٦-٠٣-٠٦"
    assert {h.chunk.doc_id for h in engine.search("tidal barrier gates", 10, since="2026-03")} == \
        {"loose", "arabic", "plain"}


# --- citation spans ----------------------------------------------------------------------------------------

TEXT = "Alpha one. Beta two is here. Gamma three."


def hit_for(start: int, end: int, doc_id: str = "d", text: str | None = None) -> Hit:
    chunk = Chunk(f"{doc_id}#0", doc_id, start, end, TEXT[start:end] if text is None else text)
    return Hit(1, chunk, "A title", "s.txt", 1.0, metadata={"publisher": "Wire"})


def test_exact_span_is_the_one_rule() -> None:
    assert exact_span(TEXT, 11, 28, "Beta two is here.")
    assert exact_span(TEXT[11:], 11, 28, "Beta two is here.", offset=11)
    for start, end, quote in ((11, 28, "Beta two is here!"), (12, 28, "Beta two is here."), (5, 5, ""),
                              (40, 45, "three"), (-3, 2, "Al"), (28, 11, "")):
        assert not exact_span(TEXT, start, end, quote)


def test_cite_builds_checked_citations_and_the_checker_names_what_is_wrong() -> None:
    hit = hit_for(0, len(TEXT))
    c = cite(2, hit, 11, 28, answer_span=(16, 19), confidence=0.9)
    assert (c.n, c.doc_id, c.chunk_id, c.quote, c.answer_text, dict(c.metadata)) == \
        (2, "d", "d#0", "Beta two is here.", "two", {"publisher": "Wire"})
    assert span_problem(c, hit) is None and quote_in_passage(c, hit)
    wrong_doc = Citation(2, "e", "d#0", "A title", "s.txt", 11, 28, "Beta two is here.")
    odd_span = Citation(2, "d", "d#0", "A title", "s.txt", 11, 28, "Beta two is here.", {}, (20, 40))
    assert span_problem(wrong_doc, hit) == ("Citation [2] of e is not an exact span of its source; the answer was "
                                            "withheld. Please report this with the question.")
    assert not quote_in_passage(wrong_doc, hit)
    # the quote is in place, only its answer span is not: shown in place, never returned as an answer
    assert quote_in_passage(odd_span, hit)
    with pytest.raises(SpanError, match=r"^The answer span of citation \[2\] lies outside its quote"):
        check_citation(odd_span, hit)
    with pytest.raises(SpanError, match=r"^Citation \[1\] of d is not an exact span"):
        cite(1, hit_for(11, 28), 0, 10)  # in the source, but outside the passage
    with pytest.raises(SpanError, match=r"^The sentence judged for citation \[1\] of d is not the source text"):
        check_quote(hit, 0, 10, "Alpha one!", "The sentence judged for citation [1]")


def test_a_passage_whose_text_runs_past_its_end_cannot_be_cited_past_it() -> None:
    """A malformed passage (its text longer than its offsets say): the quote matches the text, but lies
    outside the passage's span of the source, so it is refused."""
    short = hit_for(0, 10, text=TEXT)
    with pytest.raises(SpanError):
        cite(1, short, 11, 28)
    assert cite(1, short, 0, 10).quote == "Alpha one."


def code_of(path: Path) -> str:
    """The Python source of `path` with every string and comment blanked out (docstrings state the rules;
    only code can duplicate them)."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines(keepends=True)
    at = [0]
    for line in lines:
        at.append(at[-1] + len(line))
    out = list(source)
    blank = {tokenize.STRING, tokenize.COMMENT, getattr(tokenize, "FSTRING_MIDDLE", -1)}
    for token in tokenize.generate_tokens(iter(lines).__next__):
        if token.type in blank:
            lo, hi = at[token.start[0] - 1] + token.start[1], at[token.end[0] - 1] + token.end[1]
            out[lo:hi] = [" "] * (hi - lo)
    return "".join(out)


def test_every_answer_mode_checks_spans_with_the_one_checker() -> None:
    """No second span check is left to drift: the extractive answer, the language-model answer and the
    evaluation all take theirs from rag.answer.citations, and no module outside rag/common/text.py normalises text."""
    import rag.answer.llm

    import rag.answer.compose
    import rag.engine

    assert rag.answer.compose.check_quote is check_quote and rag.answer.llm.check_citation is check_citation
    assert rag.engine._check_date is date_filter
    sources = {p.relative_to(ROOT).as_posix(): code_of(p)
               for folder in ("rag", "ui", "benchmarks") for p in (ROOT / folder).rglob("*.py")}
    assert "rag/answer/citations.py" in sources and "ui/chat_html.py" in sources
    for name, source in sources.items():
        if name != "rag/common/text.py":
            assert not re.search(r"\bnormalize\b", source), f"{name} normalises text itself"
        if name != "rag/common/dates.py":
            assert "strptime" not in source, f"{name} parses dates itself"
        if name != "rag/answer/citations.py":
            assert not re.search(r"[!=]=\s*(?:\w+\s*\.\s*)*quote\b|\bquote\s*[!=]=", source), \
                f"{name} checks a quote against its source itself"
        assert "raise AssertionError" not in source, f"{name} raises AssertionError instead of its own error"
