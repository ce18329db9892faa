"""`rag search` and `rag ask` through the front door: JSON shapes, readable output, batches, exports,
filters, and bad input that ends in one clear line (exit 1) and leaves the index untouched."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import bibtexparser
import pytest
import rag.index.encoders
import rispy
from conftest import DATA, indexed
from markdown_it import MarkdownIt
from typer.testing import CliRunner, Result

import rag
import rag.answer.readers
import rag.engine
from rag.cli import app
from rag.records import METADATA_KEYS

pytestmark = pytest.mark.slow  # every test here serves the real bundled index with the real model

WIRE = DATA / "query" / "wire.jsonl"
REMAINS = "How many sets of Ukrainian remains were returned?"
JAPAN = "Who is the prime minister of Japan?"
UNSURE = "For how long did Israel and Iran trade missile fire before America joined in?"  # the reader is unsure
TOP_KEYS = {"question", "answer", "abstained", "possible_answer", "citations", "closest", "passages", "timings",
            "mode", "notices", "evidence", "confidence"}
CITATION_KEYS = {"n", "doc_id", "chunk_id", "title", "source", "start", "end", "quote", "answer_span"}
PASSAGE_KEYS = {"rank", "doc_id", "chunk_id", "title", "source", "start", "end", "text", "score", "dense", "lexical"}
READ = {"confidence"}  # the reader's confidence, on what it read
TIMING_KEYS = {"encode_ms", "retrieve_ms", "read_ms", "answer_ms", "total_ms"}

runner = CliRunner()


def tree_hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def paths(settings: rag.Settings) -> list[str]:
    return ["--index", str(settings.paths.index), "--corpus", str(settings.paths.corpus)]


def run(*args: object, input: str | None = None) -> Result:
    return runner.invoke(app, [str(a) for a in args], input=input)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert "Traceback" not in result.output
    return result


def one_line_error(result: Result, pattern: str) -> str:
    """Exit 1, nothing on stdout, exactly one `error: ...` line on stderr matching `pattern`."""
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


def source_file(settings: rag.Settings, source: str) -> str:
    return Path(settings.paths.corpus, source).read_bytes().decode("utf-8")


def check_passages(passages: list[dict], settings: rag.Settings) -> None:
    assert [p["rank"] for p in passages] == list(range(1, len(passages) + 1))
    for p in passages:
        assert PASSAGE_KEYS <= set(p) and set(p) - PASSAGE_KEYS <= set(METADATA_KEYS) | READ, set(p)
        assert source_file(settings, p["source"])[p["start"]:p["end"]] == p["text"]
        assert isinstance(p["score"], float)


@pytest.fixture(scope="module")
def wire(tmp_path_factory: pytest.TempPathFactory) -> rag.Settings:
    return indexed(tmp_path_factory.mktemp("cli-wire"), WIRE)


@pytest.fixture
def untouched(bundled_index: rag.Settings):  # type: ignore[no-untyped-def]
    """Asserts after the test that no file of the bundled index changed."""
    before = tree_hashes(bundled_index.paths.index)
    yield bundled_index
    assert tree_hashes(bundled_index.paths.index) == before


# --- JSON shapes ---------------------------------------------------------------------------------------

def test_search_json(untouched: rag.Settings) -> None:
    result = ok(run("search", "Crocus Expo drone exhibition", "-k", 3, "--json", *paths(untouched)))
    assert result.stderr == ""
    data = json.loads(result.stdout)
    assert set(data) == {"question", "passages", "timings"}
    assert data["question"] == "Crocus Expo drone exhibition"
    assert len(data["passages"]) == 3
    check_passages(data["passages"], untouched)
    assert "Crocus Expo Center" in data["passages"][0]["text"]
    assert set(data["timings"]) == {"total_ms"}


def test_ask_json(untouched: rag.Settings) -> None:
    data = json.loads(ok(run("ask", REMAINS, "--json", *paths(untouched))).stdout)
    assert set(data) == TOP_KEYS
    assert data["question"] == REMAINS and data["abstained"] is False
    assert data["mode"] == "extractive" and data["notices"] == [] and isinstance(data["evidence"], float)
    assert "14,000" in data["answer"]
    assert [c["n"] for c in data["citations"]] == list(range(1, len(data["citations"]) + 1))
    for c in data["citations"]:
        assert CITATION_KEYS <= set(c) and set(c) - CITATION_KEYS <= set(METADATA_KEYS) | READ
        if c["answer_span"] is not None:
            span = c["answer_span"]
            assert c["start"] <= span["start"] < span["end"] <= c["end"]
            assert c["quote"][span["start"] - c["start"]:span["end"] - c["start"]] == span["text"]
        assert source_file(untouched, c["source"])[c["start"]:c["end"]] == c["quote"]
        assert f"“{c['quote']}” [{c['n']}]" in data["answer"]
    assert len(data["passages"]) == untouched.retrieval.k
    check_passages(data["passages"], untouched)
    assert set(data["timings"]) == TIMING_KEYS and all(v >= 0 for v in data["timings"].values())


def test_ask_json_abstains(untouched: rag.Settings) -> None:
    data = json.loads(ok(run("ask", JAPAN, "--json", *paths(untouched))).stdout)
    assert data["abstained"] is True and data["citations"] == []
    assert data["answer"].startswith("The archive does not answer this question")
    assert len(data["passages"]) == untouched.retrieval.k


# --- readable output -----------------------------------------------------------------------------------

def test_ask_readable_prints_the_answer_then_numbered_sources(untouched: rag.Settings, engine: rag.Engine) -> None:
    answer = engine.ask(REMAINS)
    result = ok(run("ask", REMAINS, *paths(untouched)))
    expected = [answer.text, "", "Sources:"]
    for c in answer.citations:
        expected += [f"[{c.n}] {c.title} ({c.source}:{c.start}-{c.end})", f"    “{c.quote}”"]
    assert result.stdout.splitlines() == expected
    assert result.stderr == ""


def test_ask_readable_abstention_lists_the_closest_passages(untouched: rag.Settings) -> None:
    lines = ok(run("ask", JAPAN, *paths(untouched))).stdout.splitlines()
    assert lines[0].startswith("The archive does not answer this question")
    assert lines[1:3] == ["", "Closest passages:"]
    assert [line.split("]")[0] for line in lines[3:]] == [f"[{n}" for n in range(1, untouched.retrieval.k + 1)]


def test_ask_readable_unsure_lists_the_closest_sentences_then_passages(untouched: rag.Settings,
                                                                        engine: rag.Engine) -> None:
    answer = engine.ask(UNSURE)
    assert answer.abstained and answer.closest  # what this test is about; see test_reader for the reasons
    lines = ok(run("ask", UNSURE, *paths(untouched))).stdout.splitlines()
    expected = [answer.text, "", "Closest sentences (not citations: none answers clearly enough):"]
    for c in answer.closest:
        expected += [f"({c.n}) {c.title} ({c.source}:{c.start}-{c.end}) answer confidence {c.confidence:.0%}",
                     f"    “{c.quote}”"]
    expected += ["", "Closest passages:"]
    assert lines[:len(expected)] == expected
    assert len(lines) == len(expected) + len(answer.passages)


def test_search_readable(untouched: rag.Settings) -> None:
    lines = ok(run("search", "New START treaty", "-k", 2, *paths(untouched))).stdout.splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("[1] ") and lines[2].startswith("[2] ")
    assert lines[1].startswith("    ") and lines[3].startswith("    ")
    assert "New START" in lines[1]


# --- batches -------------------------------------------------------------------------------------------

BATCH = [
    REMAINS,
    json.dumps({"id": "q-2", "question": JAPAN}),
    json.dumps({"id": 7, "question": "Which venue near Moscow hosted the aviation exhibition?"}),
    json.dumps({"id": "empty", "question": "   "}),
    "What does the New START treaty limit?",
]


def batch_rows(stdout: str) -> list[dict]:
    lines = stdout.splitlines()
    assert len(lines) == len(BATCH)
    return [json.loads(line) for line in lines]


def check_batch(rows: list[dict]) -> None:
    assert [r.get("id") for r in rows] == [None, "q-2", "7", "empty", None]
    assert "id" not in rows[0] and "id" not in rows[4]
    assert [r["question"] for r in rows] == [REMAINS, JAPAN, "Which venue near Moscow hosted the aviation "
                                             "exhibition?", "   ", "What does the New START treaty limit?"]
    assert set(rows[3]) == {"id", "question", "error"} and "empty" in rows[3]["error"]


def test_ask_batch_file(untouched: rag.Settings, tmp_path: Path) -> None:
    questions = tmp_path / "questions.txt"
    questions.write_text("\n".join(BATCH) + "\n", encoding="utf-8")
    rows = batch_rows(ok(run("ask", "--batch", questions, *paths(untouched))).stdout)
    check_batch(rows)
    assert [r.get("abstained") for r in rows] == [False, True, False, None, False]
    assert set(rows[1]) == TOP_KEYS | {"id"} and set(rows[0]) == TOP_KEYS
    assert "14,000" in rows[0]["answer"] and "Crocus Expo" in rows[2]["answer"]


def test_ask_batch_stdin_gives_the_same_answers_as_single_asks(untouched: rag.Settings,
                                                                engine: rag.Engine) -> None:
    rows = batch_rows(ok(run("ask", "--batch", "-", *paths(untouched), input="\n".join(BATCH) + "\n")).stdout)
    check_batch(rows)
    single = engine.ask(JAPAN).to_dict()
    assert {k: v for k, v in rows[1].items() if k not in ("id", "timings")} == \
        {k: v for k, v in single.items() if k != "timings"}


def test_search_batch_stdin(untouched: rag.Settings) -> None:
    rows = batch_rows(ok(run("search", "--batch", "-", "-k", 2, *paths(untouched),
                             input="\n".join(BATCH))).stdout)
    check_batch(rows)
    for r in (rows[0], rows[1], rows[2], rows[4]):
        assert set(r) - {"id"} == {"question", "passages", "timings"} and len(r["passages"]) == 2
        check_passages(r["passages"], untouched)


class SpanPastItsSentence:
    """The bundled reader, except that for a question holding `word` it places the answer just past the end of
    every sentence it reads (as a reader whose idea of a sentence's end disagreed with ours would). The span
    check must catch that citation: a SpanError for that question, never an answer."""

    def __init__(self, reader, word: str) -> None:  # type: ignore[no-untyped-def]
        self._reader, self._word = reader, word

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._reader, name)

    def read(self, question, texts, contexts=None, first_stage=None):  # type: ignore[no-untyped-def]
        readings = self._reader.read(question, texts, contexts, first_stage)
        if self._word not in question:
            return readings
        return [dataclasses.replace(r, span=(len(t) + 1, len(t) + 4)) for r, t in zip(readings, texts)]


SPAN_ERROR = ("The answer span of citation [1] lies outside its quote; the answer was withheld. "
              "Please report this with the question.")


def test_a_failed_span_check_is_an_error_row_and_the_batch_goes_on(untouched: rag.Settings, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """One question whose citation fails the span check, one that is no question: each becomes its own error
    row, and every other question of the batch is answered as usual (exit 0)."""
    real = rag.answer.readers.load_reader
    monkeypatch.setattr(rag.engine, "load_reader", lambda setting: SpanPastItsSentence(real(setting), "venue"))
    monkeypatch.setattr(rag.engine, "_ENGINES", {})
    monkeypatch.setattr(rag.engine, "_SERVED", {})
    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(BATCH) + "\n", encoding="utf-8")
    rows = batch_rows(ok(run("ask", "--batch", questions, *paths(untouched))).stdout)
    check_batch(rows)
    assert rows[2] == {"id": "7", "question": "Which venue near Moscow hosted the aviation exhibition?",
                       "error": SPAN_ERROR}
    assert set(rows[3]) == {"id", "question", "error"}
    assert [r.get("abstained") for r in rows] == [False, True, None, None, False]
    assert "14,000" in rows[0]["answer"] and "nuclear" in rows[4]["answer"]
    # the same question alone: one line naming the problem, exit 1, no traceback
    one_line_error(run("ask", "Which venue near Moscow hosted the aviation exhibition?", *paths(untouched)),
                   "^error: " + re.escape(SPAN_ERROR) + "$")


def test_a_batch_loads_the_model_once(untouched: rag.Settings, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rag.index.encoders, "_CACHE", {})
    monkeypatch.setattr(rag.engine, "_ENGINES", {})
    monkeypatch.setattr(rag.engine, "_SERVED", {})
    loads: list[str] = []
    real_create = rag.index.encoders._create

    def counting_create(*args: object) -> object:
        loads.append("load")
        return real_create(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(rag.index.encoders, "_create", counting_create)
    questions = tmp_path / "q.jsonl"
    questions.write_text("\n".join(BATCH), encoding="utf-8")
    batch_rows(ok(run("ask", "--batch", questions, *paths(untouched))).stdout)
    assert loads == ["load"]


# --- exports -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["out.bib", "out.ris", "out.md", "out.json", "out.csl.json"])
def test_ask_export_writes_a_parseable_file(untouched: rag.Settings, engine: rag.Engine, tmp_path: Path,
                                            name: str) -> None:
    target = tmp_path / name
    result = ok(run("ask", REMAINS, "--json", "--export", target, *paths(untouched)))
    answer = engine.ask(REMAINS)
    quotes = [c.quote for c in answer.citations]
    assert json.loads(result.stdout)["citations"] == [c.to_dict() for c in answer.citations]
    assert f"to {target}" in result.stderr
    text = target.read_text(encoding="utf-8")
    if name.endswith(".bib"):
        library = bibtexparser.parse_string(text)
        assert not library.failed_blocks and len(library.entries) == len(quotes)
        assert all(any(q in e["note"] for e in library.entries) for q in quotes)
    elif name.endswith(".ris"):
        entries = rispy.loads(text)
        assert len(entries) == len(quotes)
        assert entries[0]["title"] == answer.citations[0].title
    elif name.endswith(".md"):
        tokens = MarkdownIt().parse(text)
        assert tokens and any(q in text for q in quotes)
        assert "### Sources" in text
    elif name.endswith(".csl.json"):
        items = json.loads(text)
        assert [item["title"] for item in items] == [c.title for c in answer.citations]
        assert all(q in item["note"] for q, item in zip(quotes, items))
    else:
        assert {k: v for k, v in json.loads(text).items() if k != "timings"} == \
            {k: v for k, v in answer.to_dict().items() if k != "timings"}


def test_batch_export_holds_every_answer(untouched: rag.Settings, tmp_path: Path) -> None:
    target = tmp_path / "all.json"
    ok(run("ask", "--batch", "-", "--export", target, *paths(untouched), input=f"{REMAINS}\n{JAPAN}\n"))
    data = json.loads(target.read_text(encoding="utf-8"))
    assert [a["question"] for a in data["answers"]] == [REMAINS, JAPAN]


def test_an_unknown_export_format_is_refused_before_any_work(untouched: rag.Settings, tmp_path: Path) -> None:
    one_line_error(run("ask", REMAINS, "--export", tmp_path / "out.docx", *paths(untouched)),
                   r"Unknown export format|out\.docx")
    assert list(tmp_path.iterdir()) == []


# --- filters -------------------------------------------------------------------------------------------

def test_doc_filter(untouched: rag.Settings, engine: rag.Engine) -> None:
    doc_ids = [h.chunk.doc_id for h in engine.search("Zelensky", 5)]
    first, second = doc_ids[0], next(d for d in doc_ids if d != doc_ids[0])
    data = json.loads(ok(run("search", "nuclear treaty", "-k", 5, "--doc", first, "--json",
                             *paths(untouched))).stdout)
    assert data["passages"] and {p["doc_id"] for p in data["passages"]} == {first}
    data = json.loads(ok(run("ask", "What did Zelensky say?", "--doc", first, "--doc", second, "--json",
                             *paths(untouched))).stdout)
    assert {p["doc_id"] for p in data["passages"]} <= {first, second}
    assert {c["doc_id"] for c in data["citations"]} <= {first, second}


def test_since_and_until(wire: rag.Settings) -> None:
    dates = {json.loads(line)["id"]: json.loads(line).get("date") for line in WIRE.read_text().splitlines()}
    data = json.loads(ok(run("search", "news", "-k", 20, "--since", "2025", "--json", *paths(wire))).stdout)
    assert data["passages"] and all(dates[p["doc_id"]] >= "2025" for p in data["passages"])
    assert all(p["date"] >= "2025" for p in data["passages"])  # metadata travels with each passage
    data = json.loads(ok(run("ask", "How many homes will the barrier protect?", "--since", "2024-03-06",
                             "--until", "2024-03-06", "--json", *paths(wire))).stdout)
    assert [p["doc_id"] for p in data["passages"]] == ["courier-barrier"]
    assert data["citations"][0]["doc_id"] == "courier-barrier" and "4,200" in data["answer"]
    assert data["citations"][0]["publisher"] == "Valley Courier"


@pytest.mark.parametrize("flag", ["--since", "--until"])
@pytest.mark.parametrize("value", ["2024-13", "2024-02-30", "last week"])
def test_a_bad_date_is_one_line(wire: rag.Settings, flag: str, value: str) -> None:
    before = tree_hashes(wire.paths.index)
    one_line_error(run("ask", "barrier", flag, value, *paths(wire)),
                   rf"^error: .*{flag.strip('-')}.* '{value}' is not a date; use YYYY, YYYY-MM or YYYY-MM-DD\.$")
    one_line_error(run("search", "barrier", flag, value, *paths(wire)), "is not a date")
    assert tree_hashes(wire.paths.index) == before


# --- bad input -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "pattern"), [
    (["ask", ""], r"The question is empty"),
    (["ask", "   \t  "], r"The question is empty"),
    (["ask", "\x01\x02\x7f"], r"The question is empty"),
    (["search", ""], r"The question is empty"),
    (["ask", "x" * 100_000], r"100,000 characters long; the limit is 2,000"),
    (["ask", REMAINS, "-k", "0"], r"k must be a whole number of at least 1, got 0"),
    (["ask", REMAINS, "-k", "-3"], r"got -3"),
    (["search", "treaty", "-k", "0"], r"k must be a whole number"),
    (["ask"], r"Give a question"),
    (["search"], r"Give a query"),
])
def test_bad_input_is_one_line_and_leaves_the_index_alone(untouched: rag.Settings, args: list[str],
                                                          pattern: str) -> None:
    one_line_error(run(*args, *paths(untouched)), pattern)


def test_a_batch_file_that_cannot_be_read_is_one_line(untouched: rag.Settings, tmp_path: Path) -> None:
    for command in ("ask", "search"):
        one_line_error(run(command, "--batch", tmp_path / "nope.txt", *paths(untouched)),
                       r"^error: Cannot read batch file .*nope\.txt: No such file or directory\.")
        one_line_error(run(command, "--batch", tmp_path, *paths(untouched)), r"Cannot read batch file")


def test_a_batch_line_that_is_not_utf8_is_an_error_row_and_the_batch_goes_on(untouched: rag.Settings,
                                                                            tmp_path: Path) -> None:
    latin = tmp_path / "latin1.txt"
    latin.write_bytes(f"{REMAINS}\n".encode() + "Où est la réunion ?\n".encode("latin-1") + b"New START treaty\n")
    for command in ("ask", "search"):
        result = ok(run(command, "--batch", latin, *paths(untouched)))
        rows = [json.loads(line) for line in result.stdout.splitlines()]
        assert len(rows) == 3 and "error" not in rows[0] and "error" not in rows[2]
        assert rows[1] == {"question": None, "error": f"Line 2 of the batch file {latin} is not UTF-8 text "
                                                      "(byte 2). Re-save the file as UTF-8."}


@pytest.mark.parametrize("question", [
    "How many\x00 sets of\x1b Ukrainian\x07 remains were returned?",
    "كم عدد الجنود؟ מה קרה? 🤔🇺🇦",
    "\u202eWho signed\u202c the treaty? 🕊️",
])
def test_odd_characters_give_a_sane_answer(untouched: rag.Settings, question: str) -> None:
    data = json.loads(ok(run("ask", question, "--json", *paths(untouched))).stdout)
    assert set(data) == TOP_KEYS
    assert "\x00" not in data["question"] and "\x1b" not in data["question"]
    k = untouched.retrieval.k
    assert len(data["passages"]) >= k
    # past the first k, a passage is listed only for a cited (or closest) sentence inside it
    quoted = {c["chunk_id"] for c in data["citations"] + data["closest"]}
    assert all(p["chunk_id"] in quoted for p in data["passages"][k:])
    if data["abstained"]:
        assert data["citations"] == []
    else:
        for c in data["citations"]:
            assert source_file(untouched, c["source"])[c["start"]:c["end"]] == c["quote"]


def test_a_missing_index(tmp_path: Path) -> None:
    for command in (["ask", REMAINS], ["search", "treaty"]):
        one_line_error(run(*command, "--index", tmp_path / "no-index"),
                       r"No index yet in .*no-index\. Build one with: rag index build")
    assert not (tmp_path / "no-index").exists()


def test_a_stale_index_still_answers_and_index_info_says_the_corpus_changed(bundled_index: rag.Settings,
                                                                            tmp_path: Path) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(bundled_index.paths.corpus, corpus)
    shutil.copytree(bundled_index.paths.index, index)
    settings = bundled_index.with_paths(corpus, index)
    before = tree_hashes(index)
    info = json.loads(ok(run("index", "info", "--json", *paths(settings))).stdout)
    assert info["corpus_changed"] == []
    (corpus / "extra.txt").write_text("Ferry operators add a night crossing to the islands from June\n\n"
                                      "The new crossing leaves the harbour at midnight.\n", encoding="utf-8")
    seed = next(p for p in corpus.iterdir() if p.name != "extra.txt")
    with seed.open("a", encoding="utf-8") as f:
        f.write("\n\nA late addition to the archive page, not yet indexed.\n")
    data = json.loads(ok(run("ask", REMAINS, "--json", *paths(settings))).stdout)
    assert not data["abstained"] and "14,000" in data["answer"]
    for c in data["citations"]:  # text was only appended: the old offsets still hold in the changed file
        assert source_file(settings, c["source"])[c["start"]:c["end"]] == c["quote"]
    info = json.loads(ok(run("index", "info", "--json", *paths(settings))).stdout)
    assert sorted(info["corpus_changed"]) == sorted(["extra.txt", seed.name])
    readable = ok(run("index", "info", *paths(settings))).stdout
    assert "Corpus:     2 files changed since the build; run: rag index build" in readable
    assert tree_hashes(index) == before


# --- one real process ------------------------------------------------------------------------------------

def rag_command() -> list[str]:
    script = Path(sys.executable).with_name("rag")
    return [str(script)] if script.exists() else [sys.executable, "-m", "rag.cli"]


def test_front_door_subprocess_batch_from_stdin(untouched: rag.Settings, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    proc = subprocess.run([*rag_command(), "ask", "--batch", "-", *paths(untouched)], input="\n".join(BATCH),
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    rows = batch_rows(proc.stdout)
    check_batch(rows)
    assert "14,000" in rows[0]["answer"] and rows[1]["abstained"] is True
