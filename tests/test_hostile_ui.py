"""The chat page under faults (issue 10): an error that is not the library's own is one message with what to
do (the traceback goes to the log), a CURRENT that is a folder is explained, and the server listens on
loopback unless told otherwise."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_e2e import _free_port, _wait_healthy
from test_ui import APP, AVIATION, app_for, ask, click, run, texts, tiny_corpus, unmd

import rag

UNEXPECTED = ("Something went wrong while answering this question (ZeroDivisionError); the details are in the "
              "server's log. Try again; if it keeps happening, rebuild the index (rag index build) or report the log.")


@pytest.mark.slow
def test_an_unexpected_error_in_a_turn_is_one_message_and_the_chat_goes_on(
        monkeypatch: pytest.MonkeyPatch, bundled_index: rag.Settings, caplog: pytest.LogCaptureFixture) -> None:
    real_ask = rag.Engine.ask

    def flaky(self: rag.Engine, question: str, *args, **kwargs) -> rag.Answer:  # noqa: ANN002, ANN003
        if "boom" in question:
            return 1 / 0  # stands for any bug below the page: not a RagError
        return real_ask(self, question, *args, **kwargs)

    monkeypatch.setattr(rag.Engine, "ask", flaky)
    at = run(app_for(monkeypatch, bundled_index.paths.corpus, bundled_index.paths.index))
    with caplog.at_level(logging.ERROR, logger="rag.ui"):
        ask(at, "boom: what happened?")
    assert not at.exception
    assert texts(at.main.error) == [UNEXPECTED]
    assert "Traceback" not in "".join(unmd(e.value) for e in at.main.error)
    (record,) = [r for r in caplog.records if r.name == "rag.ui"]
    assert record.getMessage() == "Unexpected error while answering this question"
    assert record.exc_info and record.exc_info[0] is ZeroDivisionError
    ask(at, AVIATION)  # the next question is answered, the failed one stays in the history
    assert not at.exception and texts(at.main.error) == [UNEXPECTED]
    answer = at.session_state["conversation"].turns[-1].answer
    assert answer is not None and answer.citations


def test_current_that_is_a_folder_is_explained_in_the_page(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    corpus, index = tiny_corpus(tmp_path), tmp_path / "index"
    (index / "CURRENT").mkdir(parents=True)
    at = run(app_for(monkeypatch, corpus, index))
    (message,) = texts(at.error)
    assert message.startswith("The index is damaged. ")
    assert f"{index / 'CURRENT'} is a folder" in message and f"mv {index / 'CURRENT'} {index / 'CURRENT'}.old" in message
    click(at, "build")  # the build refuses too, in the page, with the same fix
    for _ in range(100):
        if not at.get("progress"):
            break
        time.sleep(0.1)
        run(at)
    assert not at.exception
    assert any("is a folder" in m for m in texts(at.error))
    assert (index / "CURRENT").is_dir()


@pytest.mark.slow
def test_streamlit_run_listens_on_loopback_only(bundled_index: rag.Settings, tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "STREAMLIT_"))}
    env.update(RAG_CORPUS=str(bundled_index.paths.corpus), RAG_INDEX=str(bundled_index.paths.index),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    log = tmp_path / "streamlit.log"
    with open(log, "wb") as out:  # as the app's docstring says to start it, from another folder, no address given
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
                                 "--server.headless", "true", "--server.fileWatcherType", "none"],
                                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", proc, log)
        assert listening(port) == {"127.0.0.1"}, log.read_text()[-2000:]
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def listening(port: int) -> set[str]:
    """The local addresses of the sockets listening on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        if not os.path.exists(table):
            continue
        with open(table) as fh:
            next(fh)
            for line in fh:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:
                    if width == 8:
                        found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
                    else:
                        found.add("::" if int(address, 16) == 0 else address)
    return found
