"""The app's "Who said what" view, driven headlessly with Streamlit's AppTest: speakers with their counts, a
speaker's statements with citations and passages, the sidebar's filters, and exports of the shown statements."""

from __future__ import annotations

import json

import pytest

import rag

try:
    from test_ui import app_for, bodies, downloaded, run, downloads  # noqa: F401 (a fixture among them)
except ImportError:  # --import-mode=importlib
    from tests.test_ui import app_for, bodies, downloaded, run, downloads  # noqa: F401


def quotes_view(monkeypatch: pytest.MonkeyPatch, settings: rag.Settings):  # noqa: ANN201
    at = run(app_for(monkeypatch, settings.paths.corpus, settings.paths.index))
    at.radio(key="view").set_value("Who said what")
    return run(at)


def test_speakers_and_a_speakers_statements_with_citations(monkeypatch: pytest.MonkeyPatch,
                                                          bundled_index: rag.Settings) -> None:
    at = quotes_view(monkeypatch, bundled_index)
    table = at.dataframe[0].value
    assert list(table.columns) == ["Speaker", "Statements", "Articles"]
    row = table[table["Speaker"] == "Sergey Lavrov"].iloc[0]
    assert row["Statements"] >= 10 and row["Articles"] >= 3
    assert not at.chat_input  # the chat is another view
    at.selectbox(key="quote_speaker").set_value("Sergey Lavrov")
    run(at)
    cards = [b for b in bodies(at) if 'id="statement-' in b]
    assert len(cards) == row["Statements"]
    assert all("Sergey Lavrov" in c and "chars " in c and "<mark>" in c for c in cards)
    at.multiselect(key="quote_kinds").set_value(["direct"])
    run(at)
    assert 0 < len([b for b in bodies(at) if 'id="statement-' in b]) < len(cards)


def test_the_sidebar_filters_apply_and_the_statements_export(monkeypatch: pytest.MonkeyPatch,
                                                             bundled_index: rag.Settings,
                                                             downloads: dict) -> None:
    at = quotes_view(monkeypatch, bundled_index)
    at.text_input(key="since").set_value("2999")
    run(at)
    assert at.dataframe[0].value.empty
    at.text_input(key="since").set_value("")
    run(at)
    at.selectbox(key="quote_speaker").set_value("Sergey Lavrov")
    run(at)
    keys = [b.key for b in at.download_button]
    assert keys == [f"dl-statements-{fmt.name}" for fmt in rag.EXPORTS]
    name, data = downloaded(at, "dl-statements-json", downloads)
    exported = json.loads(data)
    record = exported  # one answer-like record: its citations are the statements
    quotes = [c["quote"] for c in record["citations"]]
    assert quotes == [s.text for s in rag.statements("Lavrov", settings=bundled_index)]
    _name, bib = downloaded(at, "dl-statements-bibtex", downloads)
    assert "@" in bib
