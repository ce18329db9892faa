"""Extractive answers: attributed quotes with markers and exact-span citations checked against the real
source files, type-aware sentence choice, abstention, and the optional language-model mode."""

from __future__ import annotations

import re
import socket
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import DATA, indexed

import rag
from rag.answer.citations import check_citation
from rag.answer.compose import ABSTAIN_TEXT, closest, closest_citations, compose
from rag.answer.first_stage import Candidate, unknown_names
from rag.answer.question import expected_type, type_match
from rag.engine import Engine
from rag.errors import SpanError
from rag.records import Chunk, Citation, Hit

try:  # every test here runs against both stores: the folder index and the same archive in PostgreSQL
    from both_stores import bundled_in_both_stores, engine_in_both_stores  # noqa: F401 (the fixtures)
except ImportError:  # --import-mode=importlib
    from tests.both_stores import bundled_in_both_stores, engine_in_both_stores  # noqa: F401


try:
    from openai_stub import OpenAIStub, openai_stub  # noqa: F401 (the fixture)
except ImportError:  # --import-mode=importlib
    from tests.openai_stub import OpenAIStub, openai_stub  # noqa: F401

WIRE = DATA / "query" / "wire.jsonl"
MARKER = re.compile(r"\[(\d+)\]")

# Own wording, about facts the bundled archive states once.
ANSWERABLE = {
    "What share of Ukraine's soldiers fight of their own free will?": "25%",
    "Which venue near Moscow hosted the aviation and drone exhibition?": "Crocus Expo",
    "How many military fatalities has Kiev recorded since February 2022?": "55,000",
    "How many sets of Ukrainian remains were returned?": "14,000",
    "What does the New START treaty limit?": "nuclear arsenals",
}
UNANSWERABLE = [
    "Who is the prime minister of Japan?",
    "What is the boiling point of water at sea level?",
    "How do I bake sourdough bread?",
]


def real_text(settings: rag.Settings, source: str) -> str:
    """The source file exactly as stored (the bundled archive is plain text)."""
    return Path(settings.paths.corpus, source).read_bytes().decode("utf-8")


def assert_well_formed(answer: rag.Answer, settings: rag.Settings) -> None:
    """1-3 attributed quotes, markers [1..n] in order, every citation an exact span of its real source."""
    assert not answer.abstained
    n = len(answer.citations)
    assert 1 <= n <= 3
    assert [c.n for c in answer.citations] == list(range(1, n + 1))
    assert [int(m) for m in MARKER.findall(answer.text)] == list(range(1, n + 1))
    passages = {h.chunk.chunk_id: h for h in answer.passages}
    rest = answer.text
    for c in answer.citations:
        assert source_text_of(settings, c)[c.start:c.end] == c.quote
        assert c.quote.strip() == c.quote and c.quote
        assert c.doc_id and c.title and c.source
        assert c.chunk_id.startswith(c.doc_id + "#") and c.chunk_id in passages
        hit = passages[c.chunk_id]
        assert (hit.title, hit.source) == (c.title, c.source)
        assert hit.chunk.start <= c.start < c.end <= hit.chunk.end
        check_citation(c, hit)
        assert dict(c.metadata) == dict(hit.metadata)
        # each quote is attributed: "<who> reports:" or "It adds:" for the outlet's own words, "<speaker> said, in
        # “<title>”…:" or "According to <speaker>, in …:" for someone's statement; then “quote” [n]; never a bare claim
        lead, sep, rest = rest.partition(f"“{c.quote}” [{c.n}]")
        assert sep, f"quote [{c.n}] is not in the answer inside “ ” with its marker"
        assert re.fullmatch(r"\s*(?:.+ reports:|It adds:|.+ said, in “.+:|According to .+, in “.+:)\s*", lead), lead
    assert rest == ""
    assert "reports:" in answer.text or " said, in “" in answer.text or "According to " in answer.text


def source_text_of(settings: rag.Settings, c: Citation) -> str:
    return rag.source_text(settings.paths.corpus, c.source, c.doc_id)


# --- units ----------------------------------------------------------------------------------------------

TEXT = "Alpha one. Beta two is here. Gamma three."


def hit_for(start: int, end: int, *, doc_id: str = "d", title: str = "A title", meta: dict | None = None) -> Hit:
    chunk = Chunk(f"{doc_id}#0", doc_id, start, end, TEXT[start:end])
    return Hit(1, chunk, title, "s.txt", 1.0, metadata=meta or {})


def sentence(word: str, confidence: float, doc_id: str = "d") -> Candidate:
    s = TEXT.index(word)
    e = TEXT.index(".", s) + 1
    return Candidate(hit_for(0, len(TEXT), doc_id=doc_id), s, e, TEXT[s:e], 0.5, 0.5, 0.5, 0.5, 0.0, False,
                     confidence=confidence, span=(s, s + 4))


def test_closest_takes_the_most_trusted_sentences_of_every_part_once_above_the_floor() -> None:
    alpha, beta, gamma = sentence("Alpha", 0.3), sentence("Beta", 0.45), sentence("Gamma", 0.05)
    other_beta = sentence("Beta", 0.2, doc_id="e")  # the same words in another article: its own sentence
    parts_ = [("first part?", [alpha, gamma]), ("second part?", [beta, sentence("Alpha", 0.25), other_beta])]
    assert closest(parts_) == [beta, alpha, other_beta]  # the second "Alpha" (0.25) is the same sentence
    assert closest(parts_, limit=1) == [beta]
    assert closest(parts_, floor=0.35) == [beta]
    assert closest([("off topic?", [gamma])]) == []  # under the floor: nothing near enough to show
    cited = closest_citations([beta, alpha])
    assert [(c.n, c.quote, c.confidence, c.answer_span) for c in cited] == [
        (1, "Beta two is here.", 0.45, None), (2, "Alpha one.", 0.3, None)]
    with pytest.raises(SpanError):
        closest_citations([replace(alpha, quote="Alpha one!")])


def test_check_citation_accepts_only_exact_spans_inside_the_passage() -> None:
    hit = hit_for(0, len(TEXT))
    s = TEXT.index("Beta")
    e = TEXT.index("here.") + 5
    good = Citation(1, "d", "d#0", "A title", "s.txt", s, e, TEXT[s:e])
    check_citation(good, hit)
    for start, end, quote in ((s + 1, e, TEXT[s:e]), (s, e, TEXT[s:e] + " "), (s, e, "Beta two is here!")):
        with pytest.raises(SpanError):
            check_citation(Citation(1, "d", "d#0", "t", "s.txt", start, end, quote), hit)
    inner = hit_for(s, e)
    with pytest.raises(SpanError):  # the span exists in the source but lies outside the passage
        check_citation(Citation(1, "d", "d#0", "t", "s.txt", 0, 10, TEXT[0:10]), inner)


def test_expected_type_and_type_match() -> None:
    assert expected_type("How many homes are protected?") == ("number", None)
    assert expected_type("When did the strike end?") == ("date", None)
    assert expected_type("Where was the show held?") == ("place", None)
    assert expected_type("Who won the stage?") == ("name", None)
    assert expected_type("Which institute ran the poll?") == ("name", "institute")
    assert expected_type("Why did it happen?") == (None, None)
    assert type_match("It protects 4,200 homes.", "How many homes are protected?", "number", None) == 1.0
    assert type_match("It protects homes.", "How many homes are protected?", "number", None) == 0.0
    assert type_match("It opened at the Crocus Expo Center.", "Where was it?", "place", None) == 1.0
    assert type_match("It opened in March 2024.", "When did it open?", "date", None) == 1.0
    # an answer the question already holds is no answer
    assert type_match("The 2024 show opened.", "When did the 2024 show open?", "date", None) == 0.0


def test_compose_attributes_each_quote_and_numbers_markers_in_order() -> None:
    from rag.answer.first_stage import Candidate

    first = hit_for(0, len(TEXT), meta={"publisher": "Wire"})
    other = hit_for(0, len(TEXT), doc_id="e", title="Other story")

    def scored(hit: Hit, words: str) -> Candidate:
        s = TEXT.index(words)
        e = TEXT.index(".", s) + 1
        return Candidate(hit, s, e, TEXT[s:e], 0.9, 0.9, 0.9, 0.9, 0.0, False)

    text, citations = compose([scored(first, "Alpha"), scored(first, "Gamma"), scored(other, "Beta")])
    assert text == ("Wire, in “A title”, reports: “Alpha one.” [1] It adds: “Gamma three.” [2] "
                    "The article “Other story” reports: “Beta two is here.” [3]")
    dated = hit_for(0, len(TEXT), meta={"publisher": "Wire", "date": "2026-02-04"})
    assert compose([scored(dated, "Alpha")])[0] == "Wire, in “A title” (2026-02-04), reports: “Alpha one.” [1]"
    undated = hit_for(0, len(TEXT), meta={"date": "2026-02-04"})
    assert compose([scored(undated, "Alpha")])[0] == "The article “A title” (2026-02-04) reports: “Alpha one.” [1]"
    assert [(c.n, c.doc_id, c.quote) for c in citations] == [(1, "d", "Alpha one."), (2, "d", "Gamma three."),
                                                             (3, "e", "Beta two is here.")]
    assert citations[0].metadata == {"publisher": "Wire"}
    bad = Candidate(first, 0, 5, "Alpha!", 0.9, 0.9, 0.9, 0.9, 0.0, False)
    with pytest.raises(SpanError):
        compose([bad])


# --- the real model on the bundled archive ------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("question", list(ANSWERABLE))
def test_answers_are_attributed_quotes_with_exact_citations(engine: Engine, bundled_index: rag.Settings,
                                                            question: str) -> None:
    answer = engine.ask(question)
    assert_well_formed(answer, bundled_index)
    assert ANSWERABLE[question] in answer.text
    assert any(ANSWERABLE[question] in c.quote for c in answer.citations)
    assert answer.mode == "extractive" and answer.notices == ()
    assert answer.confidence is not None and answer.confidence >= bundled_index.answer.reader_threshold
    # the first k passages, and any cited passage the reader found beyond them
    assert bundled_index.retrieval.k <= len(answer.passages) <= bundled_index.retrieval.k + len(answer.citations)
    for c in answer.citations:
        assert real_text(bundled_index, c.source)[c.start:c.end] == c.quote
        assert c.metadata == {"category": "Russia"}  # the archive page's header, carried into citations
        assert c.to_dict()["category"] == "Russia"


@pytest.mark.slow
@pytest.mark.parametrize("question", UNANSWERABLE)
def test_unanswerable_questions_abstain_and_still_show_passages(engine: Engine, bundled_index: rag.Settings,
                                                                question: str) -> None:
    answer = engine.ask(question)
    assert answer.abstained
    assert answer.text == ABSTAIN_TEXT
    assert answer.text.startswith("The archive does not answer this question")
    assert answer.citations == () and answer.closest == ()  # off the archive's topics: nothing close to show
    assert len(answer.passages) == bundled_index.retrieval.k
    assert answer.confidence is not None and answer.confidence < bundled_index.answer.reader_threshold
    assert not MARKER.search(answer.text)


@pytest.mark.slow
def test_names_the_archive_never_mentions_weaken_the_evidence(engine: Engine) -> None:
    gen = engine.generation
    assert unknown_names(gen, "What did Zelensky say about Lavrov?") == 0.0
    assert unknown_names(gen, "What did Zelensky say in Kyiv?") == 0.5  # the archive spells it Kiev
    assert unknown_names(gen, "What is the population of Brazil?") == 1.0
    assert unknown_names(gen, "what is the population of brazil?") == 0.0  # no capitalised name to judge
    plain, named = engine.ask("What is the population of the country?"), engine.ask("What is the population of Brazil?")
    assert named.abstained and named.evidence is not None and plain.evidence is not None
    assert named.evidence < plain.evidence


@pytest.mark.slow
def test_k_and_max_sentences_are_respected(engine: Engine, bundled_index: rag.Settings) -> None:
    question = "What share of Ukraine's soldiers fight of their own free will?"
    assert len(engine.ask(question, 2).passages) == 2
    one = rag.get_engine(bundled_index.update("answer", max_sentences=1)).ask(question)
    assert len(one.citations) == 1 and MARKER.findall(one.text) == ["1"]
    assert_well_formed(one, bundled_index)


@pytest.mark.slow
def test_the_abstain_thresholds_are_settings(bundled_index: rag.Settings) -> None:
    question = "What share of Ukraine's soldiers fight of their own free will?"
    strict = rag.get_engine(bundled_index.update("answer", reader_threshold=0.999))
    answer = strict.ask(question)
    assert answer.abstained and answer.citations == () and answer.passages
    off = rag.get_engine(bundled_index.update("answer", reader="off", abstain_threshold=0.99))
    answer = off.ask(question)
    assert answer.abstained and answer.citations == () and answer.passages


@pytest.mark.slow
def test_answers_on_a_jsonl_corpus_carry_its_metadata(tmp_path: Path) -> None:
    settings = indexed(tmp_path, WIRE)
    engine = rag.get_engine(settings)
    for question, expected in (("How many homes will the barrier protect?", "4,200"),
                               ("Where were the hydraulic hinges of the barrier tested?", "Dunmore"),
                               ("How many visitors came to the cheese festival?", "18,000")):
        answer = engine.ask(question)
        assert_well_formed(answer, settings)
        assert expected in answer.text
    answer = engine.ask("Where were the hydraulic hinges of the barrier tested?", doc_ids=["gazette-barrier"])
    c = answer.citations[0]
    assert c.doc_id == "gazette-barrier"
    assert answer.text.startswith("Harbour Gazette, in “Kelmsford opens its tidal barrier after a decade of "
                                  "planning” (2024-03-05), reports: “")
    assert c.answer_span is not None and "Dunmore" in c.answer_text
    assert c.to_dict() == {
        "n": 1, "doc_id": "gazette-barrier", "chunk_id": c.chunk_id, "title": c.title, "source": "wire.jsonl",
        "start": c.start, "end": c.end, "quote": c.quote, "publisher": "Harbour Gazette",
        "url": "https://gazette.example/kelmsford-barrier", "date": "2024-03-05", "author": "Ines Okafor",
        "answer_span": {"start": c.answer_span[0], "end": c.answer_span[1], "text": c.answer_text},
        "confidence": round(c.confidence, 4)}


# --- language-model mode --------------------------------------------------------------------------------

QUESTION = "How many sets of Ukrainian remains were returned?"


@pytest.fixture
def llm_engine(openai_stub: OpenAIStub, bundled_index: rag.Settings) -> Engine:
    settings = bundled_index.update("llm", base_url=openai_stub.base_url, model="stub-model", timeout=5.0)
    return rag.get_engine(settings)


def evidence_passage(engine: Engine) -> tuple[int, str]:
    """(passage number, sentence) of the extractive answer's first quote."""
    answer = engine.ask(QUESTION)
    c = answer.citations[0]
    n = next(h.rank for h in answer.passages if h.chunk.chunk_id == c.chunk_id)
    return n, c.quote


@pytest.mark.slow
def test_llm_mode_shows_a_checked_reply(llm_engine: Engine, openai_stub: OpenAIStub,
                                        bundled_index: rag.Settings) -> None:
    n, quote = evidence_passage(llm_engine)
    openai_stub.content = f"According to official reports, {quote[0].lower() + quote[1:]} [{n}]"
    answer = llm_engine.ask(QUESTION, mode="llm")
    assert answer.mode == "llm" and not answer.abstained
    assert answer.text == openai_stub.content.replace(f"[{n}]", "[1]")
    assert len(answer.citations) == 1 and answer.citations[0].quote == quote
    c = answer.citations[0]
    assert real_text(bundled_index, c.source)[c.start:c.end] == c.quote
    assert answer.notices == ()
    assert openai_stub.requests and openai_stub.requests[-1].body["model"] == "stub-model"
    assert QUESTION in openai_stub.requests[-1].body["messages"][1]["content"]


@pytest.mark.slow
def test_llm_mode_removes_an_unsupported_sentence_and_says_so(llm_engine: Engine,
                                                              openai_stub: OpenAIStub) -> None:
    n, quote = evidence_passage(llm_engine)
    invented = "The returned remains were flown to Lisbon aboard a purple zeppelin in 1850 [1]."
    openai_stub.content = f"{quote} [{n}] {invented}"
    answer = llm_engine.ask(QUESTION, mode="llm")
    assert answer.mode == "llm"
    assert "zeppelin" not in answer.text and "Lisbon" not in answer.text
    assert answer.text == f"{quote} [1]"
    assert any("Removed 1 sentence" in note and "zeppelin" in note for note in answer.notices)
    assert [c.n for c in answer.citations] == [1]


@pytest.mark.slow
def test_llm_mode_with_no_supported_sentence_falls_back(llm_engine: Engine, openai_stub: OpenAIStub) -> None:
    openai_stub.content = "Penguins govern the moon [1]."
    answer = llm_engine.ask(QUESTION, mode="llm")
    assert answer.mode == "extractive" and "14,000" in answer.text
    assert any("showing the extractive answer" in note for note in answer.notices)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_llm_endpoint_down_gives_the_extractive_answer_with_a_notice(bundled_index: rag.Settings) -> None:
    settings = bundled_index.update("llm", base_url=f"http://127.0.0.1:{closed_port()}/v1", model="m", timeout=2)
    answer = rag.get_engine(settings).ask(QUESTION, mode="llm")
    assert answer.mode == "extractive" and not answer.abstained and "14,000" in answer.text
    assert len(answer.notices) == 1
    assert "could not be reached" in answer.notices[0] and "extractive answer is used instead" in answer.notices[0]


@pytest.mark.slow
def test_llm_timeout_gives_the_extractive_answer_with_a_notice(openai_stub: OpenAIStub,
                                                               bundled_index: rag.Settings) -> None:
    openai_stub.delay = 2.0
    openai_stub.content = "too late [1]."
    settings = bundled_index.update("llm", base_url=openai_stub.base_url, model="m", timeout=0.3)
    answer = rag.get_engine(settings).ask(QUESTION, mode="llm")
    assert answer.mode == "extractive" and "14,000" in answer.text
    assert any("did not answer within 0.3 s" in note for note in answer.notices)


@pytest.mark.slow
def test_llm_mode_without_an_endpoint_says_how_to_set_one(engine: Engine) -> None:
    answer = engine.ask(QUESTION, mode="llm")
    assert answer.mode == "extractive" and "14,000" in answer.text
    assert any("RAG_LLM_BASE_URL" in note for note in answer.notices)


@pytest.mark.slow
def test_llm_mode_is_not_asked_when_the_archive_has_no_answer(llm_engine: Engine,
                                                              openai_stub: OpenAIStub) -> None:
    openai_stub.content = "Japan's prime minister is someone [1]."
    answer = llm_engine.ask("Who is the prime minister of Japan?", mode="llm")
    assert answer.abstained and answer.citations == () and answer.mode == "extractive"
    assert openai_stub.requests == []
