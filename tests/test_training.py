"""Reader training at scale: several SQuAD files read as one set of articles, sampling that keeps the scarce
unanswerable questions, training candidates from the question's own article, and checkpoints that an
interrupted run resumes from to the same weights."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import DATA

from rag.answer.reader_features import PairEncoder
from rag.cli.tools import _titles
from rag.index.encoder import bundled_model_path
from rag.index.encoders import load_embedder
from rag.settings import EmbeddingSettings
from rag.training.data import Pair, first_stage, make_pool, read_articles, read_squad
from rag.training.train import TEST_ARTICLES, _pool_questions

SQUAD = DATA / "query" / "squad_tiny.json"
SQUAD_TRAIN = DATA / "query" / "squad_train_tiny.json"


def test_articles_shared_by_two_files_are_read_once_in_their_fuller_version(tmp_path: Path) -> None:
    articles = read_squad(SQUAD)
    first = articles[0]
    slim = json.loads(json.dumps(first))
    for para in slim["paragraphs"]:
        para["qas"] = [qa for qa in para["qas"] if not qa.get("is_impossible")]  # as SQuAD 1.1 holds it
    assert sum(len(p["qas"]) for p in slim["paragraphs"]) < sum(len(p["qas"]) for p in first["paragraphs"])
    one = tmp_path / "v11.json"
    one.write_text(json.dumps({"data": [slim]}), encoding="utf-8")
    said: list[str] = []
    read = read_articles([one, SQUAD, SQUAD_TRAIN], said.append)
    titles = [a["title"] for a in read]
    assert len(titles) == len(set(titles)) == len({a["title"] for a in articles + read_squad(SQUAD_TRAIN)})
    assert titles[0] == first["title"] and read[0] == first  # the place of the first, the version with more
    assert said and "1 articles appear in more than one file" in said[0]
    assert read_articles([SQUAD, one], said.append)[0] == first  # whichever comes first


def test_sampling_keeps_every_unanswerable_question() -> None:
    pool = make_pool(read_squad(SQUAD) + read_squad(SQUAD_TRAIN))
    unanswerable = [q.qid for q in pool.questions if not q.answerable]
    assert unanswerable and len(unanswerable) < len(pool.questions) - 2
    limit = len(unanswerable) + 2
    kept = _pool_questions(make_pool(read_squad(SQUAD) + read_squad(SQUAD_TRAIN)), limit, 13, keep_unanswerable=True)
    assert len(kept.questions) == limit
    assert set(unanswerable) <= {q.qid for q in kept.questions}
    assert [q.paragraph for q in kept.questions] == sorted(q.paragraph for q in kept.questions)
    plain = _pool_questions(make_pool(read_squad(SQUAD) + read_squad(SQUAD_TRAIN)), 3, 13)
    assert len(plain.questions) == 3


def test_training_candidates_come_from_the_questions_own_article() -> None:
    pool = make_pool(read_squad(SQUAD) + read_squad(SQUAD_TRAIN))
    assert len(pool.articles) >= 2
    encode = load_embedder(EmbeddingSettings()).encode_documents
    scores: list[list[float]] = []
    own = first_stage(pool, pool.questions, encode, 4, scores, within_article=True)
    every = first_stage(pool, pool.questions, encode, 4)
    assert any(pool.sentences[i].article != q.article for q, top in zip(pool.questions, every) for i in top)
    for q, top, sc in zip(pool.questions, own, scores):
        assert top and all(pool.sentences[i].article == q.article for i in top)
        assert sc == sorted(sc, reverse=True) and np.isfinite(sc).all()
    # a question whose answer sentence is in its article finds it among its own article's candidates
    found = [bool(pool.gold_sentences(q) & set(top)) for q, top in zip(pool.questions, own) if q.answerable]
    assert np.mean(found) > 0.6


def test_titles_with_a_comma_stay_whole() -> None:
    assert _titles("Warsaw,Fresno,_California,Force") == ("Warsaw", "Fresno,_California", "Force")
    assert _titles(",".join(TEST_ARTICLES)) == TEST_ARTICLES


def _tiny_run(folder: Path, fingerprint: str = "run-a", stop_at: int | None = None):  # type: ignore[no-untyped-def]
    """Four fp32 training steps of the real network on a few pairs; `stop_at`: the run dies right after its
    checkpoint at that step (a checkpoint every step)."""
    import torch

    from rag.training.loop import Checkpoints, run_training
    from rag.training.network import ReaderNet, load_encoder

    torch.manual_seed(5)
    encoder = PairEncoder(bundled_model_path() / "tokenizer.json", 64, 24)
    pairs = [Pair("Where was the show held?", "The show opened at the Crocus Expo Center.", 1, (24, 42), "gold"),
             Pair("Where was the show held?", "Cats sleep a lot.", 0, None, "ranked"),
             Pair("Who won?", "The home team won the final.", 1, (0, 13), "gold"),
             Pair("Who won?", "Rain fell all day.", 0, None, "ranked")]
    encoded = encoder.encode(encoder.questions([p.question for p in pairs]), [p.text for p in pairs])
    from rag.answer.reader_features import token_span

    targets = np.zeros((len(pairs), 3), dtype=np.int64)
    for i, (p, e) in enumerate(zip(pairs, encoded)):
        targets[i, 0] = p.label
        if p.span:
            targets[i, 1:] = token_span(e, *p.span)
    bert, hidden = load_encoder(str(bundled_model_path()))
    net = ReaderNet(bert, hidden)
    bert.embeddings.word_embeddings.weight.requires_grad_(False)
    config = SimpleNamespace(precision="fp32", weight_decay=0.01, learning_rate=5e-5, batch_size=2, epochs=2.0,
                             warmup=0.25, seed=3)
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        if stop_at is not None and line.startswith(f"checkpoint at step {stop_at} "):
            raise KeyboardInterrupt  # killed right after writing it

    checkpoints = Checkpoints(folder, fingerprint, 0.0, log)
    random.seed(1)
    described = run_training(net, encoded, targets, encoder, config, checkpoints, log)
    return net, lines, described


@pytest.mark.slow
def test_an_interrupted_training_resumes_from_its_checkpoint_to_the_same_weights(tmp_path: Path) -> None:
    straight, _lines, described = _tiny_run(tmp_path / "straight")
    assert described.startswith("cpu") and described.endswith("fp32")
    with pytest.raises(KeyboardInterrupt):
        _tiny_run(tmp_path / "cut", stop_at=2)
    assert (tmp_path / "cut" / "state.safetensors").is_file()
    assert json.loads((tmp_path / "cut" / "state.json").read_text())["step"] == 2
    resumed, lines, _ = _tiny_run(tmp_path / "cut")
    assert any("resuming from the checkpoint at step 2" in line for line in lines)
    for (name, a), (_, b) in zip(straight.named_parameters(), resumed.named_parameters()):
        assert np.allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-6), name
    # a checkpoint written for other settings or data is refused, not resumed
    with pytest.raises(ValueError, match="other settings or data"):
        _tiny_run(tmp_path / "cut", fingerprint="run-b")


def test_the_fitted_decision_puts_the_best_threshold_at_half() -> None:
    """Confidence 0.5 is where answering starts to be right more often than abstaining: the fitted threshold,
    shifted there, gives the best overall correctness any threshold gives on the calibration questions."""
    from rag.training.calibration import Judged, decision_curve, decision_figures, fit_decision

    rng = np.random.default_rng(4)
    judged = []
    for n in range(300):
        answerable = n % 3 != 0
        logit = rng.normal(1.5 if answerable else -0.5, 1.2, 4)
        right = np.zeros(4, dtype=bool)
        if answerable:
            right[int(np.argmax(logit)) if rng.random() < 0.8 else 0] = True
        judged.append(Judged(answerable, logit, np.zeros(4), np.zeros(4), right))
    lines: list[str] = []
    decision = fit_decision({"squad": judged}, lines.append)
    assert lines and 0.05 <= decision["fitted_threshold"] <= 0.95
    at_half = decision_figures(judged, decision["span_weight"], decision["first_stage_weight"], decision["scale"],
                               decision["bias"])
    best = [float(np.max(j.logit)) for j in judged]
    right = [bool(j.right[int(np.argmax(j.logit))]) for j in judged]
    curve = decision_curve(best, [j.answerable for j in judged], right)
    assert at_half["overall"] >= max(p["overall"] for p in curve) - 0.01
