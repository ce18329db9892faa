"""The app served by `streamlit run` on loopback, driven in Debian's headless Chromium through Playwright:
a cited answer with its highlighted source, a marker that jumps to its card, a real download, and a corpus
full of markup that stays text."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from conftest import make_settings

import rag

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "ui" / "app.py"
UI_DATA = Path(__file__).resolve().parent / "data" / "ui"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
NO_CHROMIUM = ("no chromium binary on PATH: install Debian's browser with `apt-get install chromium` "
               "(scripts/ensure-chromium does it when run as root)")
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)]

AVIATION = "Where was the aviation show held?"
ZORBLAND = "What did the Zorbland water festival print in its programme notes?"
WAIT_MS = 120_000  # the server loads the model on the first page view


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"streamlit did not answer on {url} in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium (checked before any index is built)."""
    assert CHROMIUM is not None
    pytest.importorskip("playwright.sync_api", reason="Playwright for Python is missing: pip install -e '.[test]'")
    return CHROMIUM


@pytest.fixture(scope="module")
def served(chromium: str, bundled_index: rag.Settings,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, rag.Settings]]:
    """The app on a free loopback port, over a copy of the bundled index plus the hostile test article."""
    root = tmp_path_factory.mktemp("e2e")
    shutil.copytree(bundled_index.paths.corpus, root / "corpus")
    shutil.copytree(bundled_index.paths.index, root / "index")
    for path in (UI_DATA / "hostile").iterdir():
        shutil.copy(path, root / "corpus" / path.name)
    settings = make_settings(root / "corpus", root / "index")
    assert rag.build_index(settings).added == 1

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_") and k != "OPENAI_API_KEY"}
    env.update(RAG_CORPUS=str(settings.paths.corpus), RAG_INDEX=str(settings.paths.index),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    log = root / "streamlit.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", "127.0.0.1",
             "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(url, proc, log)
        yield url, settings
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser(chromium: str, served: tuple[str, rag.Settings]) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _ask(page, url: str, question: str):  # noqa: ANN001, ANN202
    """Open the app, ask `question`, and return the first answer's locator once it is shown."""
    page.goto(url)
    box = page.get_by_test_id("stChatInputTextArea")
    box.wait_for(timeout=WAIT_MS)
    box.fill(question)
    box.press("Enter")
    answer = page.locator(".rag-answer").first
    answer.wait_for(timeout=WAIT_MS)
    return answer


def test_browser_shows_cited_answer_highlighted_source_and_downloads_export(
        served: tuple[str, rag.Settings], browser, tmp_path: Path) -> None:  # noqa: ANN001
    from playwright.sync_api import expect

    from rag.export import export_answers

    url, settings = served
    expected = rag.get_engine(settings).ask(AVIATION, id="answer-1")
    assert expected.citations and not expected.abstained
    first = expected.citations[0]

    page = browser.new_page(viewport={"width": 1280, "height": 1500}, accept_downloads=True)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    answer = _ask(page, url, AVIATION)
    expect(answer).to_have_text(expected.text)
    marker = answer.locator("a.rag-marker").first
    expect(marker).to_have_text(f"[{first.n}]")
    expect(marker).to_have_attribute("href", f"#src-1-{first.n}")
    card = page.locator(f"#src-1-{first.n}")
    expect(card.locator("mark.rag-quote")).to_have_text(first.quote)
    if first.answer_span is not None:  # the answer the reader found, marked inside the marked quote
        expect(card.locator("mark.rag-quote mark.rag-span")).to_have_text(first.answer_text)
    expect(card.locator(".rag-card-title")).to_have_text(f"[{first.n}]{first.title}")
    expect(card).to_contain_text(f"{first.source}, chars {first.start}–{first.end} · answer confidence ")
    page.wait_for_timeout(500)  # let the layout settle before the picture
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "answered.png"), full_page=True)

    marker.click()
    expect(page).to_have_url(re.compile(rf"#src-1-{first.n}$"))
    expect(card).to_be_in_viewport()

    reply = page.get_by_test_id("stChatMessage").nth(1)
    with page.expect_download(timeout=30_000) as info:
        reply.get_by_role("button", name="BibTeX").click()
    download = info.value
    assert download.suggested_filename == "answer-1.bib"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert saved.read_text(encoding="utf-8") == export_answers([expected], "bibtex")
    assert "Crocus Expo Center" in saved.read_text(encoding="utf-8")
    assert dialogs == []
    page.close()


def test_browser_follow_up_shows_the_resolved_question_edit_save_and_reopen(
        served: tuple[str, rag.Settings], browser, tmp_path: Path) -> None:  # noqa: ANN001
    from playwright.sync_api import expect

    url, _settings = served
    page = browser.new_page(viewport={"width": 1280, "height": 1500}, accept_downloads=True)
    _ask(page, url, "Who heads Russia's delegation at the Abu Dhabi talks?")
    expect(page.locator(".rag-answer").first).to_contain_text("Kostyukov")
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill("What's his regular job?")
    box.press("Enter")
    expect(page.locator(".rag-answer")).to_have_count(2, timeout=WAIT_MS)
    expect(page.get_by_text(re.compile(r"^Answering: What.s Igor Kostyukov.s regular job"))).to_be_visible()
    # edit the question as answered and ask again
    page.get_by_text("Edit the question as answered").click()
    edit = page.get_by_label("Question as answered")
    edit.fill("What is Igor Kostyukov's regular job?")
    edit.press("Enter")
    page.get_by_role("button", name="Ask again").click()
    expect(page.get_by_text("Answering: What is Igor Kostyukov's regular job?")).to_be_visible(timeout=WAIT_MS)
    # save the conversation, then reopen it in a fresh page. The sidebar's save button is drawn after the turns,
    # so while the page is still updating it can hold the conversation of a moment before: save until it is new
    for _attempt in range(20):
        with page.expect_download(timeout=30_000) as info:
            page.get_by_role("button", name="Save the conversation").click()
        saved = tmp_path / info.value.suggested_filename
        info.value.save_as(saved)
        talk = rag.Conversation.from_json(saved.read_text(encoding="utf-8"))
        if [t.standalone for t in talk.turns][1] == "What is Igor Kostyukov's regular job?":
            break
        page.wait_for_timeout(500)
    assert [t.standalone for t in talk.turns][1] == "What is Igor Kostyukov's regular job?"
    page.close()
    page = browser.new_page(viewport={"width": 1280, "height": 1500})
    page.goto(url)
    page.get_by_test_id("stChatInputTextArea").wait_for(timeout=WAIT_MS)
    page.locator("input[type=file]").set_input_files(str(saved))
    expect(page.locator(".rag-answer")).to_have_count(2, timeout=WAIT_MS)
    expect(page.get_by_text("Answering: What is Igor Kostyukov's regular job?")).to_be_visible()
    page.close()


def test_browser_shows_hostile_corpus_as_text(served: tuple[str, rag.Settings], browser) -> None:  # noqa: ANN001
    from playwright.sync_api import expect

    url, _settings = served
    page = browser.new_page(viewport={"width": 1280, "height": 1500})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    answer = _ask(page, url, ZORBLAND)
    expect(answer).to_contain_text("<script>alert(1)</script>")
    card = page.locator("#src-1-1")
    expect(card.locator("mark.rag-quote")).to_have_text(
        "The Zorbland water festival printed <script>alert(1)</script> in its programme notes this year.")
    for literal in ["<img src=x onerror=alert(1)>", "[click](javascript:alert(1))", "<!-- hidden -->",
                    "A hostile article puts <b>markup</b> and [a link](javascript:alert(2)) in its headline",
                    "<b>Evil</b> Press [x](javascript:alert(3))", "javascript:alert(document.cookie)"]:
        expect(card).to_contain_text(literal)

    page.get_by_test_id("stSidebar").get_by_text("Articles in the index").click()
    expect(page.locator(".rag-docs")).to_contain_text("A hostile article puts <b>markup</b> and [a link]")

    dom = page.evaluate("""() => ({
        hrefs: Array.from(document.querySelectorAll('[href]')).map(e => e.getAttribute('href')),
        scripts: Array.from(document.scripts).filter(s => s.textContent.includes('alert(')).length,
        images: document.querySelectorAll('img[src="x"], [onerror], [onclick], [onload]').length,
        bold: Array.from(document.querySelectorAll('b')).filter(b => b.textContent.includes('markup')
                                                                    || b.textContent.includes('Evil')).length,
        comments: document.createNodeIterator(document.body, NodeFilter.SHOW_COMMENT).nextNode() !== null
                  && Array.from((function* () { const it = document.createNodeIterator(document.body,
                      NodeFilter.SHOW_COMMENT); let n; while ((n = it.nextNode())) yield n.data; })())
                     .some(d => d.includes('hidden')),
    })""")
    assert dom["hrefs"] and not [h for h in dom["hrefs"] if re.sub(r"\s", "", h).lower().startswith("javascript:")]
    assert page.locator("a[href*='javascript' i]").count() == 0
    assert (dom["scripts"], dom["images"], dom["bold"], dom["comments"]) == (0, 0, 0, False)
    page.wait_for_timeout(500)
    assert dialogs == []
    page.close()
