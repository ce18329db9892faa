"""`rag eval`: retrieval, answer, abstention, citation-validity and latency metrics on a question file,
and nDCG@10 / Recall@100 on a tiny BEIR folder."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA, ROOT
from typer.testing import CliRunner, Result

import rag
from rag.cli import app
from rag.evaluation import _calibrate, _percentile, _qrels, gold_groups, holds_evidence, normalise, quotes_answer

QA = DATA / "query" / "qa.jsonl"
BEIR = DATA / "query" / "beir"
DEV_QA = ROOT.parent / "shared" / "eval" / "dev_qa.jsonl"
QA_KEYS = {"hit@1", "hit@3", "hit@5", "mrr", "first_quote_accuracy", "supported_accuracy",
           "abstention_unanswerable", "false_abstention", "citation_validity", "latency_ms_p50", "latency_ms_p95"}

runner = CliRunner()


def run(*args: object) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def paths(settings: rag.Settings) -> list[str]:
    return ["--index", str(settings.paths.index), "--corpus", str(settings.paths.corpus)]


def report_of(result: Result) -> dict:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return json.loads(result.stdout)


def check_qa_report(report: dict, rows: int) -> None:
    assert QA_KEYS <= set(report)
    assert report["questions"] == rows == len(report["per_question"])
    for key in QA_KEYS - {"latency_ms_p50", "latency_ms_p95"}:
        assert 0.0 <= report[key] <= 1.0, key
    assert report["hit@1"] <= report["hit@3"] <= report["hit@5"]
    assert report["hit@1"] <= report["mrr"] <= report["hit@5"]
    assert 0 < report["latency_ms_p50"] <= report["latency_ms_p95"]
    assert report["citation_validity"] == 1.0 and report["citations"] > 0


# --- units ---------------------------------------------------------------------------------------------

def test_percentile_interpolates() -> None:
    assert _percentile([], 0.5) == 0.0
    assert _percentile([10.0], 0.95) == 10.0
    assert _percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.5
    assert _percentile([float(i) for i in range(1, 101)], 0.95) == pytest.approx(95.05)


def test_evidence_matching_folds_case_quotes_and_whitespace() -> None:
    assert normalise("  The  “New”\u00a0START –  Treaty ") == 'the "new" start - treaty'
    passage = "Between March 2025 and January 2026, almost 14,000 sets of Ukrainian remains were returned."
    assert holds_evidence(passage, "ALMOST 14,000 sets of Ukrainian remains")
    assert not holds_evidence(passage, "almost 15,000 sets")
    # a long evidence string that the chunk boundary cut in half still counts
    assert holds_evidence(passage, "almost 14,000 sets of Ukrainian remains were returned, according to official "
                                   "reports in the capital")


def test_gold_answers_count_only_word_bounded_inside_quotes() -> None:
    assert quotes_answer([["25%"]], ["just 25% of servicemen"])
    assert not quotes_answer([["25%"]], ["just 125% of servicemen"])  # not at a word boundary
    assert not quotes_answer([["Iran"]], ["The Iranian delegation arrived."])
    assert quotes_answer([["Iran"]], ["“Iran is our close partner”"])
    assert quotes_answer([["nuclear arsenals"]], ["the world’s two largest nuclear\u00a0arsenals."])
    # one alternative of every group, each anywhere among the quotes
    groups = [["70%"], ["75%", "three quarters"]]
    assert not quotes_answer(groups, ["around 70% are volunteers"])
    assert quotes_answer(groups, ["around 70% are volunteers", "Around 75% are conscripts"])
    assert not quotes_answer([], ["anything"])  # an unanswerable question is never "answered right"


def test_gold_groups_read_both_file_forms() -> None:
    assert gold_groups({"answers": ["2010", "in 2010"]}) == [["2010", "in 2010"]]
    assert gold_groups({"answers": "99,999"}) == [["99,999"]]
    assert gold_groups({"answers": ["2010", "2021"], "groups": [["2010"], ["2021"]]}) == [["2010"], ["2021"]]
    assert gold_groups({"answers": [], "groups": []}) == []


def test_threshold_calibration_separates_the_groups() -> None:
    assert _calibrate([0.6, 0.7, 0.8], [0.1, 0.2]) == pytest.approx(0.4)
    assert _calibrate([0.5], []) is None


def test_qrels_skip_the_header_and_keep_grades(tmp_path: Path) -> None:
    path = tmp_path / "test.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t2\nq2\td3\t0\n", encoding="utf-8")
    assert _qrels(path) == {"q1": {"d1": 1, "d2": 2}, "q2": {"d3": 0}}


# --- rag eval QA.jsonl ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_eval_json_on_the_shipped_questions(bundled_index: rag.Settings) -> None:
    rows = [json.loads(line) for line in QA.read_text(encoding="utf-8").splitlines() if line.strip()]
    report = report_of(run("eval", QA, "--json", *paths(bundled_index)))
    check_qa_report(report, len(rows))
    assert (report["answerable"], report["unanswerable"]) == (5, 2)
    assert report["k"] == 5
    assert report["hit@5"] == 1.0
    assert report["first_quote_accuracy"] == 1.0 and report["supported_accuracy"] == 1.0
    assert report["abstention_unanswerable"] == 1.0 and report["false_abstention"] == 0.0
    answered = [q for q in report["per_question"] if not q["abstained"]]
    assert report["answered_precision"] == round(sum(q["supported"] for q in answered) / len(answered), 4) == 1.0
    assert [q["id"] for q in report["per_question"]] == [r["id"] for r in rows]
    assert report["reader"] == "bundled" and report["reader_threshold"] == bundled_index.answer.reader_threshold
    # the abstention curve over the reader's confidence: answered share falls as the threshold rises
    curve = report["calibration"]["curve"]
    assert curve[0]["answered"] == 1.0 and curve[-1]["answered"] == 0.0
    assert all(a["answered"] >= b["answered"] for a, b in zip(curve, curve[1:]))
    assert 0.0 <= report["calibration"]["best_overall"] <= 1.0


@pytest.mark.slow
def test_eval_readable_report(bundled_index: rag.Settings) -> None:
    result = run("eval", QA, "-k", 3, *paths(bundled_index))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "7 questions (5 answerable, 2 unanswerable), k=3"
    for key in ("hit@1", "hit@3", "hit@5", "mrr", "supported_accuracy", "first_quote_accuracy",
                "abstention_unanswerable", "false_abstention", "citation_validity"):
        assert any(line.split()[:1] == [key] for line in lines), key
    assert any(line.strip().startswith("citation_validity") and line.endswith("1.000") for line in lines)
    assert any(line.strip().startswith("latency p50 / p95") for line in lines)
    assert any(re.match(r"reader threshold\s+0\.\d+ \(best on these questions: 0\.\d+", line.strip()) for line in lines)


@pytest.mark.slow
def test_eval_counts_false_abstentions_whose_answer_a_closest_sentence_shows(bundled_index: rag.Settings,
                                                                             tmp_path: Path) -> None:
    unsure = "For how long did Israel and Iran trade missile fire before America joined in?"  # see test_reader
    questions = tmp_path / "unsure.jsonl"
    questions.write_text("\n".join(json.dumps(r) for r in [
        {"id": "shown", "question": unsure, "groups": [["two-week"]]},
        {"id": "not-shown", "question": unsure, "groups": [["fortnight"]]},  # not in the archive's wording
        {"id": "off", "question": "What is the boiling point of water at sea level?"}]) + "\n", encoding="utf-8")
    answer = rag.get_engine(bundled_index).ask(unsure)
    assert answer.abstained and answer.closest  # what this test is about
    report = report_of(run("eval", questions, "--json", *paths(bundled_index)))
    assert report["false_abstention"] == 1.0 and report["abstention_unanswerable"] == 1.0
    assert report["answer_in_closest"] == 0.5
    assert [q["answer_in_closest"] for q in report["per_question"]] == [True, False, False]
    lines = run("eval", questions, *paths(bundled_index)).stdout.splitlines()
    assert "  answer_in_closest        0.500  (of the false abstentions)" in lines


@pytest.mark.slow
def test_eval_on_the_development_questions(bundled_index: rag.Settings) -> None:
    if not DEV_QA.exists():
        pytest.skip(f"development questions not found at {DEV_QA}")
    rows = [line for line in DEV_QA.read_text(encoding="utf-8").splitlines() if line.strip()]
    report = report_of(run("eval", DEV_QA, "--json", *paths(bundled_index)))
    check_qa_report(report, len(rows))
    assert report["hit@5"] >= 0.9
    # the shipped reader's figures (README); the targets (>= 0.95 supported) are not met yet
    assert report["abstention_unanswerable"] == 1.0 and report["false_abstention"] <= 0.2
    assert report["supported_accuracy"] >= 0.7 and report["first_quote_accuracy"] >= 0.7


@pytest.mark.slow
def test_citation_validity_notices_offsets_that_no_longer_hold(bundled_index: rag.Settings,
                                                               tmp_path: Path) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(bundled_index.paths.corpus, corpus)
    shutil.copytree(bundled_index.paths.index, index)
    seed = next(corpus.iterdir())
    seed.write_text(" " + seed.read_text(encoding="utf-8"), encoding="utf-8")  # every offset moves by one
    report = report_of(run("eval", QA, "--json", "--corpus", corpus, "--index", index))
    assert report["citations"] > 0 and report["citation_validity"] == 0.0


@pytest.mark.slow
@pytest.mark.parametrize(("lines", "pattern"), [
    (['{"id": "a", "question": "What does the New START treaty limit?"}', "{not json"],
     r"qa\.jsonl:2 is not valid JSON"),
    (['{"id": "a", "answers": ["x"]}'], r"entry 1 has no \"question\" text"),
    (['["What does the New START treaty limit?"]'], r"entry 1 has no \"question\" text"),
    (['{"id": "blank", "question": "   "}'], r"question blank cannot be asked: The question is empty"),
])
def test_a_malformed_question_file_is_one_line(bundled_index: rag.Settings, tmp_path: Path, lines: list[str],
                                               pattern: str) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run("eval", qa, "--json", *paths(bundled_index))
    assert result.exit_code == 1 and result.stdout == "", result.output
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert re.search(pattern, result.stderr), result.stderr


@pytest.mark.slow
def test_answers_given_as_one_string_are_not_matched_letter_by_letter(bundled_index: rag.Settings,
                                                                       tmp_path: Path) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"id": "s", "question": "How many sets of Ukrainian remains were returned?",
                              "answers": "99,999"}) + "\n", encoding="utf-8")
    report = report_of(run("eval", qa, "--json", *paths(bundled_index)))
    assert report["supported_accuracy"] == 0.0 and report["answerable"] == 1


def test_eval_needs_a_file_or_a_beir_folder(tmp_path: Path) -> None:
    result = run("eval")
    assert result.exit_code == 1 and result.stderr.startswith("error: Give a question file")
    result = run("eval", tmp_path / "missing.jsonl", "--index", tmp_path / "no-index")
    assert result.exit_code == 1 and "missing.jsonl does not exist" in result.stderr
    result = run("eval", "--beir", tmp_path)
    assert result.exit_code == 1 and "is not a BEIR folder: corpus.jsonl is missing" in result.stderr
    assert len(result.stderr.splitlines()) == 1


# --- rag eval --beir -----------------------------------------------------------------------------------

@pytest.fixture
def beir(tmp_path: Path) -> Path:
    folder = tmp_path / "beir"
    shutil.copytree(BEIR, folder)
    return folder


@pytest.mark.slow
def test_beir_perfect_retrieval_scores_close_to_one(beir: Path) -> None:
    report = report_of(run("eval", "--beir", beir, "--json"))
    assert report["queries"] == 5 and report["documents"] == 8
    assert 0.0 <= report["ndcg@10"] <= 1.0 and 0.0 <= report["recall@100"] <= 1.0
    assert report["ndcg@10"] >= 0.99
    assert report["recall@100"] == 1.0
    assert report["fusion"] == "score"
    # the index lives in DIR/.rag and is reused by the next run
    again = run("eval", "--beir", beir)
    assert again.exit_code == 0, again.stderr
    assert "index: 8 documents, 0 chunks embedded, 8 reused" in again.stderr
    assert "nDCG@10     1.0000" in again.stdout and "Recall@100  1.0000" in again.stdout


@pytest.mark.slow
def test_beir_imperfect_judgements_score_between_zero_and_one(beir: Path) -> None:
    qrels = beir / "qrels" / "test.tsv"
    # q1 also counts an unrelated article as highly relevant; q9 is not among the queries and is ignored
    qrels.write_text(qrels.read_text(encoding="utf-8") + "q1\td-tram\t2\nq9\td-bees\t1\n", encoding="utf-8")
    report = report_of(run("eval", "--beir", beir, "--json"))
    assert report["queries"] == 5
    assert 0.5 < report["ndcg@10"] < 1.0  # only q1 falls short of perfect
    assert report["recall@100"] == 1.0  # eight documents: all of them are within the first hundred


def test_front_door_eval_without_arguments(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("rag")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "rag.cli"]
    proc = subprocess.run([*command, "eval"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "error: Give a question file (rag eval QA.jsonl), --dialogues FILE.jsonl, --attributions LABELS.jsonl, "
        "--squad FILE.json [--paragraph] or --beir DIR."]
