"""The app's conversation (ui/app.py with Streamlit's AppTest): a follow-up is answered in context and shows the
question it was answered as; that question can be edited and asked again; the conversation is saved as JSON,
reopened from the file, and goes on from where it was."""

from __future__ import annotations

import json

import pytest

import rag

try:
    from test_ui import app_for, ask, click, downloaded, downloads, run, texts  # noqa: F401 (the fixture)
except ImportError:  # --import-mode=importlib
    from tests.test_ui import app_for, ask, click, downloaded, downloads, run, texts  # noqa: F401

OPENER = "Who heads Russia's delegation at the Abu Dhabi talks?"
FOLLOW_UP = "What's his regular job?"
EDITED = "What is Igor Kostyukov's regular job?"


@pytest.mark.slow
def test_follow_up_edit_save_and_reopen(monkeypatch: pytest.MonkeyPatch, bundled_index: rag.Settings,
                                        downloads: dict[str, tuple[str, bytes]]) -> None:  # noqa: F811
    at = run(app_for(monkeypatch, bundled_index.paths.corpus, bundled_index.paths.index))
    ask(at, OPENER)
    ask(at, FOLLOW_UP)
    conv = at.session_state["conversation"]
    assert isinstance(conv, rag.Conversation) and len(conv) == 2
    first, second = conv.turns
    assert first.standalone == OPENER and first.answer.citations
    assert "Kostyukov" in second.standalone and second.question == FOLLOW_UP
    assert any("Kostyukov" in c.quote for c in second.answer.citations)
    # the follow-up shows what it was answered as; the opener (standalone) does not
    answering = [t for t in texts(at.caption) if t.startswith("Answering: ")]
    assert answering == [f"Answering: {second.standalone}"]

    # edit the resolved question and ask again: the last turn is replaced, typed question kept
    assert at.text_input(key="edit-2").value == second.standalone
    at.text_input(key="edit-2").set_value(EDITED)
    click(at, "again-2")
    conv = at.session_state["conversation"]
    assert len(conv) == 2 and conv.turns[-1].question == FOLLOW_UP and conv.turns[-1].standalone == EDITED
    assert conv.turns[-1].answer.standalone == EDITED and conv.turns[-1].answer.id == "answer-2"
    assert f"Answering: {EDITED}" in texts(at.caption)

    # save: the download is the conversation's JSON, and the whole conversation exports in every format
    name, saved = downloaded(at, "save", downloads)
    assert name == "conversation.json"
    assert rag.Conversation.from_json(saved) == rag.Conversation.from_json(conv.to_json())
    assert json.loads(saved)["turns"][1]["standalone"] == EDITED
    for fmt, ext in rag.EXPORT_FORMATS.items():
        assert downloaded(at, f"dl-all-{fmt}", downloads) == (f"conversation{ext}",
                                                             rag.export_answers(conv.answers, fmt))
    assert f"Answering: {EDITED}" in downloaded(at, "dl-all-markdown", downloads)[1].replace("\\", "")

    # clear, then reopen the saved file: the turns come back and the next follow-up resolves against them
    click(at, "clear")
    assert len(at.session_state["conversation"]) == 0 and not at.chat_message
    at.file_uploader(key="reopen").set_value(("conversation.json", saved.encode("utf-8"), "application/json"))
    run(at)
    reopened = at.session_state["conversation"]
    assert [t.standalone for t in reopened.turns] == [OPENER, EDITED]
    assert [m.name for m in at.chat_message] == ["user", "assistant"] * 2
    ask(at, "What did he say?")
    last = at.session_state["conversation"].turns[-1]
    assert "Kostyukov" in last.standalone

    # a file that is not a saved conversation is one message, and the conversation stays
    at.file_uploader(key="reopen").set_value(("notes.json", b'{"hello": 1}', "application/json"))
    run(at)
    assert any("not a saved conversation" in t for t in texts(at.error))
    assert len(at.session_state["conversation"]) == 3


@pytest.mark.slow
def test_unresolvable_reference_asks_who_is_meant(monkeypatch: pytest.MonkeyPatch,
                                                  bundled_index: rag.Settings) -> None:
    at = run(app_for(monkeypatch, bundled_index.paths.corpus, bundled_index.paths.index))
    ask(at, OPENER)
    ask(at, "What did she say?")
    last = at.session_state["conversation"].turns[-1].answer
    assert last.abstained and not last.citations and last.mode == "clarify"
    assert "Who do you mean by “she”?" in last.text
    assert not at.exception
