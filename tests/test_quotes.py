"""Who said what through the index: statements stored in both stores, carried over, merged speakers, filters,
answers that name the speaker, `rag quotes`, `rag eval --attributions`, and exports of statements."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
try:
    from both_stores import bundled_in_both_stores, engine_in_both_stores  # noqa: F401 (the fixtures)
except ImportError:  # --import-mode=importlib
    from tests.both_stores import bundled_in_both_stores, engine_in_both_stores  # noqa: F401
from conftest import make_settings, on_postgres
from typer.testing import CliRunner

import rag
from rag.cli import app

ROOT = Path(__file__).resolve().parents[1]
LABELS = ROOT.parent / "shared" / "eval" / "dev_attributions.jsonl"
# "What did X say about Y?" over the bundled archive, with the speaker each must quote first
SAID = [("What did Lavrov say about Zelensky?", "Sergey Lavrov"),
        ("What did Zakharova say about European troops?", "Maria Zakharova"),
        ("What did Dmitriev say about relations with the US?", "Kirill Dmitriev"),
        ("What did Kelin say about the peacekeepers?", "Andrey Kelin"),
        ("What has Trump said about Iran?", "Donald Trump")]


def test_statements_are_stored_with_exact_offsets_and_counted(bundled_index: rag.Settings,
                                                              engine: rag.Engine) -> None:
    found = engine.statements()
    counts = engine.generation.manifest.counts
    assert len(found) == counts.statements > 100 and counts.speakers == len(engine.speakers()) > 10
    texts: dict[str, str] = {}
    for s in found:
        if s.source not in texts:
            texts[s.source] = (bundled_index.paths.corpus / s.source).read_text(encoding="utf-8")
        assert texts[s.source][s.start:s.end] == s.text
    assert {s.kind for s in found} == {"direct", "indirect", "according_to"}
    assert any(s.speaker is None for s in found)  # "critics say": no speaker


def test_speakers_merge_across_articles_and_the_filter_finds_them_by_surname(engine: rag.Engine
                                                                             ) -> None:
    top = {s.name: s for s in engine.speakers()}
    lavrov = top["Sergey Lavrov"]
    assert lavrov.articles >= 3 and lavrov.statements >= 10
    assert "Lavrov" not in top and "Russian Foreign Minister Sergey Lavrov" not in top
    mine = engine.statements("Lavrov")
    assert len(mine) == lavrov.statements and {s.speaker for s in mine} == {"Sergey Lavrov"}
    assert len({s.doc_id for s in mine}) == lavrov.articles
    assert engine.statements("Nobody Atall") == []


def test_filters_by_article_and_date(engine: rag.Engine) -> None:
    everything = engine.statements()
    doc = everything[0].doc_id
    assert {s.doc_id for s in engine.statements(doc_ids=[doc])} == {doc}
    assert engine.statements(since="2999") == [] and engine.speakers(since="2999") == []
    with pytest.raises(rag.BadQuestion):
        engine.statements(doc_ids=["no-such-article"])


@pytest.mark.parametrize("question,speaker", SAID)
def test_what_did_x_say_quotes_x_first(engine: rag.Engine, question: str, speaker: str) -> None:
    answer = engine.ask(question)
    assert not answer.abstained and answer.citations
    first = answer.citations[0]
    theirs = [s for s in engine.statements(doc_ids=[first.doc_id]) if s.speaker == speaker]
    assert any(s.start < first.end and first.start < s.end for s in theirs), (question, first.quote)
    assert answer.text.startswith(f"{speaker} said, in “")


def test_what_x_said_on_another_topic_is_not_quoted_as_the_answer(engine: rag.Engine) -> None:
    """Lavrov is quoted at length, but never on football: none of his statements is presented as what he
    said about it (the reader decides, as for any question)."""
    answer = engine.ask("What did Lavrov say about the football World Cup final?")
    assert not answer.text.startswith("Sergey Lavrov said")


def test_who_question_answers_with_the_speaker_and_the_outlet_keeps_reports(engine: rag.Engine
                                                                           ) -> None:
    answer = engine.ask("Who described the plans as dead?")
    assert answer.text.startswith("Andrey Kelin said, in “") and "dead" in answer.citations[0].quote
    plain = engine.ask("Where was the aviation show held?")
    assert " reports: “" in plain.text and " said, in “" not in plain.text


def test_statements_export_as_citations_in_every_format(engine: rag.Engine) -> None:
    chosen = engine.statements("Lavrov")[:3]
    record = rag.statement_citations(chosen, "Statements by Sergey Lavrov")
    assert [c.quote for c in record.citations] == [s.text for s in chosen]
    for fmt in rag.EXPORTS:
        text = rag.export_answers([record], fmt.name)
        assert chosen[0].title.split()[0] in text or fmt.name in ("bibtex",)


@pytest.mark.parametrize("backend", ["folder", "postgres"])
def test_unchanged_articles_carry_their_statements(tmp_path: Path, request: pytest.FixtureRequest,
                                                   backend: str) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Talks resumed, Finance Minister Maria Jensen said on Monday. “The budget is "
                                  "balanced,” she said.\n", encoding="utf-8")
    settings = make_settings(corpus, tmp_path / "index")
    if backend == "postgres":
        settings = on_postgres(settings, request.getfixturevalue("pg_url"), f"carry_{tmp_path.name[-8:]}".lower())
    rag.build_index(settings)
    first = rag.statements(settings=settings)
    (corpus / "b.txt").write_text("Critics say the reform came too late.\n", encoding="utf-8")
    report = rag.build_index(settings)
    assert report.unchanged == 1 and report.added == 1 and report.statements == 3
    rag.get_engine(settings).reload_if_changed()  # a serving engine looks for a new generation once a second
    again = rag.statements(settings=settings)
    assert [s.to_dict() for s in again if s.source == "a.txt"] == [s.to_dict() for s in first]
    assert [s.speaker for s in again] == ["Maria Jensen", "Maria Jensen", None]


def test_rag_quotes_json_and_eval_attributions(bundled_index: rag.Settings) -> None:
    runner = CliRunner()
    env = {"RAG_STORE_BACKEND": bundled_index.store.backend, "RAG_STORE_URL": bundled_index.store.url or "",
           "RAG_STORE_NAMESPACE": bundled_index.store.namespace}
    args = ["--index", str(bundled_index.paths.index), "--corpus", str(bundled_index.paths.corpus)]
    out = runner.invoke(app, ["quotes", "--speaker", "Lavrov", "--json", *args], env=env)
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.output.splitlines()]
    assert rows and {r["speaker"] for r in rows} == {"Sergey Lavrov"}
    assert set(rows[0]) >= {"speaker", "kind", "statement", "doc_id", "source", "start", "end"}
    out = runner.invoke(app, ["eval", "--attributions", str(LABELS), "--json", *args], env=env)
    report = json.loads(out.output)
    assert report["gold"] == 121 and report["precision"] >= 0.95 and report["recall"] >= 0.95
    assert set(report["per_kind"]) == {"direct", "indirect", "according_to"}
