"""Follow-up questions end to end over the real bundled index: `rag.ask(..., conversation=...)` (standalone,
the boost for the last cited articles, the request to name who is meant, a question with no history unchanged),
the language-model rewrite under the added-words rule, `rag ask --batch` dialogue lines, `rag eval --dialogues`,
and `rag chat` in a pseudo-terminal (line editing, /save, /export, /new, /quit, --resume)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

import rag
from rag.answer.retrieval import retrieve
from rag.cli import app

try:
    from openai_stub import OpenAIStub, openai_stub  # noqa: F401 (the fixture)
except ImportError:  # --import-mode=importlib
    from tests.openai_stub import OpenAIStub, openai_stub  # noqa: F401

pytestmark = pytest.mark.slow  # the real bundled index with the real model and reader

ROOT = Path(__file__).resolve().parent.parent
OPENER = "Who heads Russia's delegation at the Abu Dhabi talks?"
FOLLOW_UP = "What's his regular job?"
AVIATION = "Where did Russia's civil aviation and drone exhibition open?"


def paths(settings: rag.Settings) -> list[str]:
    return ["--index", str(settings.paths.index), "--corpus", str(settings.paths.corpus)]


def test_a_question_with_no_history_goes_through_unchanged(engine: rag.Engine) -> None:
    plain = engine.ask(AVIATION)
    assert plain.standalone is None and "standalone" not in plain.to_dict()
    in_empty = engine.ask(AVIATION, conversation=rag.Conversation())
    assert in_empty.standalone == AVIATION and in_empty.question == AVIATION
    assert (in_empty.text, in_empty.citations, in_empty.passages, in_empty.abstained) == \
        (plain.text, plain.citations, plain.passages, plain.abstained)
    # a question that stands alone after a conversation about something else is answered as typed too
    other = engine.ask(OPENER)
    after = engine.ask(AVIATION, conversation=rag.Conversation().then(other))
    assert after.standalone == AVIATION and after.citations == plain.citations


def test_a_follow_up_is_resolved_answered_and_cited(bundled_index: rag.Settings, engine: rag.Engine) -> None:
    conversation = rag.Conversation()
    first = rag.ask(OPENER, settings=bundled_index, conversation=conversation)
    conversation = conversation.then(first)
    second = rag.ask(FOLLOW_UP, settings=bundled_index, conversation=conversation)
    assert second.question == FOLLOW_UP and "Igor Kostyukov" in second.standalone
    assert second.to_dict()["standalone"] == second.standalone and "resolve_ms" in second.timings
    assert any("military intelligence" in c.quote for c in second.citations)
    for c in second.citations:
        source = (Path(bundled_index.paths.corpus) / c.source).read_text(encoding="utf-8")
        assert source[c.start:c.end] == c.quote
    conversation = conversation.then(second)
    assert [t.depends for t in conversation.turns] == [False, True]
    assert rag.Conversation.from_json(conversation.to_json()) == \
        rag.Conversation.from_json(rag.Conversation.from_json(conversation.to_json()).to_json())


def test_an_unresolvable_reference_asks_who_is_meant(engine: rag.Engine) -> None:
    conversation = rag.Conversation().then(engine.ask(OPENER))
    answer = engine.ask("What did she say?", conversation=conversation)
    assert answer.abstained and answer.citations == () and answer.passages == () and answer.mode == "clarify"
    assert answer.text.startswith("Who do you mean by “she”?")
    # the request is kept in the conversation but a later follow-up does not refer to it
    conversation = conversation.then(answer)
    later = engine.ask(FOLLOW_UP, conversation=conversation)
    assert "Kostyukov" in later.standalone


def test_the_boost_favours_the_cited_article_and_never_filters(engine: rag.Engine) -> None:
    gen = engine.generation
    query = "What role is Moscow offering to play?"
    vector = engine.embedder.encode_queries([query])[0]
    plain = retrieve(gen, query, vector, engine.settings.retrieval, k=5)
    target = plain[-1].chunk.doc_id  # an article retrieval ranks low
    rows = gen.allowed_rows([target], None, None)
    boosted = retrieve(gen, query, vector, engine.settings.retrieval, k=5, boost=rows)
    first = [h.chunk.doc_id for h in boosted].index(target)
    assert first < len(plain) - 1 and boosted[first].score > plain[-1].score  # moved up
    assert {h.chunk.doc_id for h in boosted} - {target}  # other articles still come
    off = retrieve(gen, query, vector, replace(engine.settings.retrieval, boost=0.0), k=5, boost=rows)
    assert [h.chunk.chunk_id for h in off] == [h.chunk.chunk_id for h in plain]


def test_llm_rewrite_is_used_when_it_adds_nothing_and_refused_when_it_invents(
        bundled_index: rag.Settings, openai_stub: OpenAIStub) -> None:  # noqa: F811
    settings = rag.load_settings(env={}, llm={"base_url": openai_stub.base_url, "model": "stub"}).with_paths(
        bundled_index.paths.corpus, bundled_index.paths.index)
    engine = rag.get_engine(settings)
    conversation = rag.Conversation().then(engine.ask(OPENER))
    openai_stub.content = "What is the regular job of Admiral Igor Kostyukov?"
    good = engine.ask(FOLLOW_UP, mode="llm", conversation=conversation)
    assert good.standalone == "What is the regular job of Admiral Igor Kostyukov?"
    rewrite = openai_stub.requests[0].body["messages"]
    assert "What's his regular job?" in rewrite[-1]["content"] and "Igor Kostyukov" in rewrite[-1]["content"]

    openai_stub.content = "What is the regular job of Boris Johnson?"
    refused = engine.ask(FOLLOW_UP, mode="llm", conversation=conversation)
    rules = rag.ask(FOLLOW_UP, settings=settings, conversation=conversation)
    assert refused.standalone == rules.standalone and "Kostyukov" in refused.standalone
    assert any("adds words found nowhere in the conversation (Boris, Johnson)" in n for n in refused.notices)


def _rows(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_batch_dialogue_lines_are_answered_turn_by_turn(bundled_index: rag.Settings, engine: rag.Engine,
                                                        tmp_path: Path) -> None:
    lines = [json.dumps({"id": "d1", "turns": [{"question": OPENER}, {"question": FOLLOW_UP},
                                               {"question": "What did she say?"}]}),
             AVIATION, json.dumps({"id": "bad", "turns": "nope"})]
    batch = tmp_path / "dialogues.jsonl"
    batch.write_text("\n".join(lines) + "\n", encoding="utf-8")
    export = tmp_path / "all.json"
    result = CliRunner().invoke(app, ["ask", "--batch", str(batch), "--json", "--export", str(export),
                                      *paths(bundled_index)])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    dialogue, single, bad = _rows(result.stdout)
    assert dialogue["id"] == "d1" and [t["question"] for t in dialogue["turns"]] == [OPENER, FOLLOW_UP,
                                                                                      "What did she say?"]
    assert [t["standalone"] == t["question"] for t in dialogue["turns"]] == [True, False, True]
    assert "Kostyukov" in dialogue["turns"][1]["standalone"] and dialogue["turns"][1]["citations"]
    assert dialogue["turns"][2]["abstained"] and dialogue["turns"][2]["mode"] == "clarify"
    assert single["question"] == AVIATION and "standalone" not in single
    assert set(bad) == {"id", "question", "error"} and "turns" in bad["error"]
    assert len(json.loads(export.read_text(encoding="utf-8"))["answers"]) == 4


def test_eval_dialogues_reports_each_turn_kind(bundled_index: rag.Settings, tmp_path: Path) -> None:
    rows = [{"id": "t1", "turns": [
        {"question": OPENER, "standalone": OPENER, "kind": "answerable", "groups": [["Kostyukov"]]},
        {"question": FOLLOW_UP, "standalone": "What post does Admiral Igor Kostyukov hold?", "kind": "answerable",
         "groups": [["military intelligence"]]},
        {"question": "How old is he?", "standalone": "How old is Igor Kostyukov?", "kind": "unanswerable",
         "groups": []}]}]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["eval", "--dialogues", str(path), "--json", *paths(bundled_index)])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    report = json.loads(result.stdout)
    assert set(report["kinds"]) == {"opener", "follow-up", "follow-up-unanswerable"}
    assert report["kinds"]["follow-up"]["resolved"]["supported_accuracy"] == 1.0
    assert report["kinds"]["follow-up-unanswerable"]["resolved"]["abstention_unanswerable"] == 1.0
    text = CliRunner().invoke(app, ["eval", "--dialogues", str(path), *paths(bundled_index)])
    assert "follow-up" in text.stdout and "oracle" in text.stdout


# --- rag chat in a pseudo-terminal ---------------------------------------------------------------------------

class Terminal:
    """A process on a pseudo-terminal: type lines, wait for text."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
        env.update(PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]), TERM="xterm",
                   COLUMNS="200", LINES="50")
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen([sys.executable, "-m", "rag.cli", *args], stdin=slave, stdout=slave,
                                     stderr=slave, cwd=cwd, env=env, close_fds=True)
        os.close(slave)
        self.seen = ""

    def expect(self, text: str, timeout: float = 180) -> str:
        """Everything read until `text` appeared (and consumed up to it)."""
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0 and self.proc.poll() is None or text in self.seen, (text, self.seen[-3000:])
            ready, _, _ = select.select([self.master], [], [], min(left, 1.0))
            if ready:
                try:
                    self.seen += os.read(self.master, 65536).decode("utf-8", "replace")
                except OSError:
                    break
        assert text in self.seen, (text, self.seen[-3000:])
        before, _, self.seen = self.seen.partition(text)
        return before

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode("utf-8"))

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=60)
        finally:
            os.close(self.master)


def test_rag_chat_in_a_terminal(bundled_index: rag.Settings, tmp_path: Path) -> None:
    term = Terminal(["chat", *paths(bundled_index)], tmp_path)
    try:
        term.expect("you> ")
        term.type(OPENER + "\r")
        first = term.expect("you> ")
        assert "Kostyukov" in first and "Sources:" in first and "Answering:" not in first
        term.type(FOLLOW_UP + "\r")
        second = term.expect("you> ")
        assert "Answering: What's Igor Kostyukov’s regular job" in second and "military intelligence" in second
        term.type("/save talk.json\r")
        assert "Saved 2 turn(s) to talk.json" in term.expect("you> ")
        term.type("/export talk.md\r")
        assert "Exported 2 answer(s) as markdown to talk.md" in term.expect("you> ")
        term.type("/export talk.ris\r")
        assert "as ris to talk.ris" in term.expect("you> ")
        term.type("\x1b[A\x1b[A\r")  # arrow keys: the line before last from the history, again
        assert "Exported 2 answer(s) as markdown to talk.md" in term.expect("you> ")
        term.type("/new\r")
        assert "New conversation" in term.expect("you> ")
        term.type("What did he say?\r")  # no history now: asked as typed
        after_new = term.expect("you> ")
        assert "Answering:" not in after_new and "Who do you mean" not in after_new
        term.type("/quit\r")
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
    saved = rag.Conversation.from_json((tmp_path / "talk.json").read_text(encoding="utf-8"))
    assert [t.question for t in saved.turns] == [OPENER, FOLLOW_UP] and saved.turns[1].depends
    markdown = (tmp_path / "talk.md").read_text(encoding="utf-8")
    assert "Kostyukov" in markdown and "Answering:" in markdown
    assert "TY  - " in (tmp_path / "talk.ris").read_text(encoding="utf-8")

    term = Terminal(["chat", "--resume", "talk.json", *paths(bundled_index)], tmp_path)
    try:
        assert "Resumed a conversation of 2 turn(s)" in term.expect("you> ")
        term.type("What did he say?\r")
        assert "Answering: What did Igor Kostyukov say" in term.expect("you> ")
        term.type("\x04")  # Ctrl+D ends it too
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()


def test_rag_chat_refuses_a_file_that_is_not_a_conversation(bundled_index: rag.Settings, tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"a": 1}', encoding="utf-8")
    result = CliRunner().invoke(app, ["chat", "--resume", str(tmp_path / "x.json"), *paths(bundled_index)])
    assert result.exit_code == 1 and "not a saved conversation" in result.stderr
