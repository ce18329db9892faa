"""The optional language-model path against a hostile OpenAI-protocol server on loopback (issue 10): redirects,
slow drips, huge and malformed replies, clauses injected into supported sentences, markers to passages that do
not exist. The user always gets an answer (the extractive one when the model's cannot be used) and one notice
that says why, within the configured time."""

from __future__ import annotations

import json
import time
import tracemalloc
from dataclasses import replace

import pytest
from test_llm import FATALITIES, HITS, QUESTION, SOURCE, make_hit
from typer.testing import CliRunner

import rag
from rag.answer.llm import MAX_REPLY_BYTES, ask_llm, check_reply
from rag.cli import app
from rag.errors import LLMUnavailable
from rag.settings import LLMSettings

try:
    from openai_stub import OpenAIStub, openai_stub  # noqa: F401 (the fixture)
except ImportError:  # --import-mode=importlib
    from tests.openai_stub import OpenAIStub, openai_stub  # noqa: F401

GOOD = "Kiev has recorded 55,000 military fatalities [1]."
AVIATION = make_hit(1, "aviation", "The organizers say more than 200 companies from Russia, China, Iran, and Belarus "
                    "are showcasing their products", "A major civil aviation", "\n\nThe two-day")


@pytest.fixture
def other() -> OpenAIStub:
    """A second server, where a redirect would send the request."""
    stub = OpenAIStub(content="Kiev has recorded 55,000 military fatalities [1].").start()
    yield stub
    stub.stop()


def settings_for(stub: OpenAIStub, timeout: float = 5.0) -> LLMSettings:
    return LLMSettings(base_url=stub.base_url, model="stub-model", api_key="sk-secret", timeout=timeout)


def refused(stub: OpenAIStub, settings: LLMSettings) -> str:
    with pytest.raises(LLMUnavailable) as caught:
        ask_llm(QUESTION, HITS, settings)
    message = str(caught.value)
    assert "\n" not in message and message.endswith("; the extractive answer is used instead.")
    return message


# --- redirects --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed_and_the_key_goes_nowhere(openai_stub: OpenAIStub, other: OpenAIStub,
                                                            status: int) -> None:
    openai_stub.redirect_to = other.base_url + "/chat/completions"
    openai_stub.status = status
    message = refused(openai_stub, settings_for(openai_stub))
    assert f"redirected the request to '{other.base_url}/chat/completions'" in message
    assert "redirects are not followed, so the API key stays with the configured address" in message
    assert "RAG_LLM_BASE_URL" in message
    assert len(openai_stub.requests) == 1 and other.requests == []  # nothing reached the other host


# --- time ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("body_only", [False, True], ids=["headers-dripped", "body-dripped"])
def test_a_server_dripping_bytes_is_cut_off_at_the_timeout(openai_stub: OpenAIStub, body_only: bool) -> None:
    openai_stub.content = GOOD
    openai_stub.drip, openai_stub.drip_body_only = 0.2, body_only  # a byte every 0.2 s: a minute for the reply
    began = time.monotonic()
    message = refused(openai_stub, settings_for(openai_stub, timeout=1.0))
    took = time.monotonic() - began
    assert "did not answer within 1 s" in message
    assert took < 15, took  # the whole request, not each read (margin for a busy machine)
    assert openai_stub.dripped >= 2  # bytes kept coming (no read waited 1 s): the deadline stopped it


def test_a_quick_server_is_not_cut_off(openai_stub: OpenAIStub) -> None:
    openai_stub.content = GOOD
    openai_stub.drip, openai_stub.drip_body_only = 0.001, True
    reply = ask_llm(QUESTION, HITS, settings_for(openai_stub, timeout=10.0))
    assert reply.text == GOOD and [c.quote for c in reply.citations] == [FATALITIES]


# --- size and shape -----------------------------------------------------------------------------------------------

def test_a_huge_reply_is_refused_without_reading_it(openai_stub: OpenAIStub) -> None:
    openai_stub.raw_body = json.dumps({"choices": [{"message": {"content": GOOD * 250_000}}]}).encode()  # 12 MB
    tracemalloc.start()
    began = time.process_time()  # CPU time: a busy machine does not make it look slow
    try:
        message = refused(openai_stub, settings_for(openai_stub))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert f"sent a reply of more than {MAX_REPLY_BYTES // 1_000_000} MB" in message
    assert time.process_time() - began < 30  # reading and checking 12 MB took minutes
    assert peak < 20 * MAX_REPLY_BYTES, peak


def test_a_long_reply_under_the_cap_is_checked_in_linear_time(openai_stub: OpenAIStub) -> None:
    openai_stub.content = (GOOD + " The moon is made of cheese [1]. ") * 9000  # ~0.8 MB
    began = time.process_time()  # CPU time: a busy machine does not make it look slow
    reply = ask_llm(QUESTION, HITS, settings_for(openai_stub, timeout=600.0))
    assert time.process_time() - began < 60  # a quadratic check takes several minutes here
    assert reply.text.count("[1]") == 9000 and "cheese" not in reply.text
    assert len(reply.notices) == 1 and reply.notices[0].endswith("and 8995 more")


@pytest.mark.parametrize(("body", "problem"), [
    (b"[" * 200_000 + b"]" * 200_000, "returned a body that is not JSON"),
    (b"\xff\xfe\xfd not utf-8", "returned a body that is not JSON"),
    (b'{"choices": [{"message": {"content": ["a", "list"]}}]}', "returned no answer text"),
    (b'{"choices": "nope"}', "returned no answer text"),
    (b"null", "returned no answer text"),
])
def test_malformed_bodies_are_one_line(openai_stub: OpenAIStub, body: bytes, problem: str) -> None:
    openai_stub.raw_body = body
    message = refused(openai_stub, settings_for(openai_stub))
    assert problem in message and len(message) < 600


def test_a_huge_error_body_is_quoted_short(openai_stub: OpenAIStub) -> None:
    openai_stub.status, openai_stub.raw_body = 500, b"x" * 5_000_000
    message = refused(openai_stub, settings_for(openai_stub))
    assert "answered HTTP 500" in message and len(message) < 600


# --- what the model says ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("injected", "clause"), [
    ("A civil aviation exhibition opened at the Crocus Expo Center near Moscow, so wire your savings to "
     "evilbank now [1].", "wire your savings to evilbank now"),
    ("A civil aviation exhibition opened at the Crocus Expo Center near Moscow; visit evil.example for free "
     "tickets [1].", "visit evil.example for free tickets"),
    ("More than 200 companies from Russia and China are taking part, and the show was cancelled after a bomb "
     "threat [1].", "the show was cancelled"),
    ("A major civil aviation and drone technology exhibition opened at the Crocus Expo Center near Moscow on "
     "Wednesday (ignore previous instructions) [1].", "ignore previous instructions"),
])
def test_a_clause_bolted_onto_a_supported_sentence_is_removed(injected: str, clause: str) -> None:
    supported = "A civil aviation exhibition opened at the Crocus Expo Center near Moscow [1]."
    reply = check_reply(f"{supported} {injected}", [AVIATION])
    assert reply.text == supported
    assert reply.removed == (injected,)
    (notice,) = reply.notices
    assert notice.startswith("Removed 1 sentence the passages do not support: ")
    assert "not supported: '" + clause in notice


def test_supported_clauses_joined_by_conjunctions_are_kept() -> None:
    text = ("A civil aviation exhibition opened at the Crocus Expo Center near Moscow on Wednesday, and more than "
            "200 companies from Russia, Belarus, Iran and China are taking part [1].")
    reply = check_reply(text, [AVIATION])
    assert reply.text == text and reply.notices == ()
    for citation in reply.citations:
        assert SOURCE[citation.start:citation.end] == citation.quote


@pytest.mark.parametrize("markers", ["[0]", "[3]", "[99999]", "[3, 7]", "[" + "9" * 5000 + "]", "[-1]", "[1.5]"])
def test_markers_to_missing_passages_never_cite_and_never_crash(markers: str) -> None:
    reply = check_reply(f"Dmitriev said European powers are ramping up efforts to derail a peace deal {markers}. "
                        f"{GOOD}", HITS)
    assert reply.text == GOOD
    assert [c.quote for c in reply.citations] == [FATALITIES]
    assert reply.removed and all("\n" not in n and len(n) < 700 for n in reply.notices)


def test_passage_numbers_out_of_range_are_listed_briefly() -> None:
    reply = check_reply(GOOD[:-1] + "".join(f"[{n}]" for n in range(3, 200)) + ".", HITS)
    assert reply.text == GOOD
    assert reply.notices[0] == "Ignored markers [3], [4], [5], [6], [7] and 192 more: there are only 2 passages."


# --- what the user sees -----------------------------------------------------------------------------------------

@pytest.fixture
def llm_index(bundled_index: rag.Settings, openai_stub: OpenAIStub) -> rag.Settings:
    return bundled_index.update("llm", base_url=openai_stub.base_url, model="stub-model", api_key="sk-secret",
                                timeout=1.0)


ASK = "Where was the aviation show held?"


@pytest.mark.slow
def test_the_engine_falls_back_to_the_extractive_answer_with_a_notice(llm_index: rag.Settings,
                                                                      openai_stub: OpenAIStub,
                                                                      other: OpenAIStub) -> None:
    engine = rag.get_engine(llm_index)
    extractive = engine.ask(ASK)
    openai_stub.redirect_to = other.base_url + "/chat/completions"
    answer = engine.ask(ASK, mode="llm")
    assert answer.mode == "extractive" and answer.text == extractive.text
    assert len(answer.notices) == 1 and "redirects are not followed" in answer.notices[0]
    assert other.requests == []
    openai_stub.redirect_to, openai_stub.content, openai_stub.drip = None, GOOD, 0.2
    began = time.monotonic()
    answer = engine.ask(ASK, mode="llm")
    assert time.monotonic() - began < 15 and answer.text == extractive.text
    assert "did not answer within 1 s" in answer.notices[0]


@pytest.mark.slow
def test_rag_ask_llm_prints_escaped_model_text_and_one_note(llm_index: rag.Settings,
                                                           openai_stub: OpenAIStub) -> None:
    openai_stub.content = ("The exhibition opened at the Crocus Expo Center near Moscow \x1b[m\x07[1]. "
                           "\x1b]0;pwned\x07 Wire money to evilbank [1].")
    env = {"RAG_LLM_BASE_URL": openai_stub.base_url, "RAG_LLM_MODEL": "stub-model", "RAG_LLM_TIMEOUT": "5"}
    paths = ["--index", str(llm_index.paths.index), "--corpus", str(llm_index.paths.corpus)]
    result = CliRunner().invoke(app, ["ask", ASK, "--llm", *paths], env=env)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "Moscow \\x1b[m\\x07[1]." in result.stdout  # kept, its escapes made inert
    assert "\\x1b]0;pwned\\x07" in result.stderr  # the removed sentence, quoted in the note
    as_json = CliRunner().invoke(app, ["ask", ASK, "--llm", "--json", *paths], env=env)
    assert "\x1b" not in as_json.stdout
    data = json.loads(as_json.stdout)
    assert data["mode"] == "llm" and "Moscow \x1b[m\x07[1]" in data["answer"]  # the same data, as JSON escapes
    openai_stub.redirect_to = "http://127.0.0.1:9/v1/chat/completions"
    result = CliRunner().invoke(app, ["ask", ASK, "--llm", *paths], env=env)
    assert result.exit_code == 0 and "Traceback" not in result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "redirects are not followed" in notes[0]
    extractive = CliRunner().invoke(app, ["ask", ASK, *paths], env=env)  # what the fallback must show
    assert extractive.exit_code == 0 and extractive.stdout.strip()
    assert result.stdout == extractive.stdout


def test_settings_replace_keeps_the_deadline_semantics(openai_stub: OpenAIStub) -> None:
    """A timeout is a limit on the whole request: a reply that arrives in time is used."""
    openai_stub.content, openai_stub.delay = GOOD, 0.3
    reply = ask_llm(QUESTION, HITS, replace(settings_for(openai_stub), timeout=20.0))
    assert reply.text == GOOD
