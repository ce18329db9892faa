"""`rag reader train`: fine-tune the reader from the bundled MiniLM on SQuAD 2.0 files, validate it on held-out
articles, and write it as data files (ONNX, int8) with a JSON card. Seeded; CPU is enough (about 1.5 hours on
two cores in bf16), and an interrupted run resumes from its last checkpoint."""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..answer.reader_features import Encoded, PairEncoder, best_span, token_span
from .calibration import Judged, Log, auroc, best_threshold, combined, decision_curve, decision_figures, fit_decision
from .data import Pair, Pool, first_stage, make_pool, read_articles, split_articles, training_pairs


# Held-out SQuAD 2.0 articles (never trained on): half of dev-rest calibrates the decision, the other half and
# two dev-part articles measure it. Titles with a comma keep it ("Fresno,_California").
CALIBRATION_ARTICLES = ("Southern_California", "Sky_(United_Kingdom)", "Victoria_(Australia)", "Oxygen",
                        "Amazon_rainforest", "Ctenophora", "Black_Death", "Geology", "Pharmacy", "Civil_disobedience")
TEST_ARTICLES = ("Construction", "Private_school", "Jacksonville,_Florida", "Economic_inequality",
                 "University_of_Chicago", "Intergovernmental_Panel_on_Climate_Change", "Prime_number", "Rhine",
                 "Fresno,_California", "Warsaw", "Force")


@dataclass(frozen=True)
class TrainConfig:
    squad: tuple[str, ...]
    output: str
    calibration_articles: tuple[str, ...] = CALIBRATION_ARTICLES
    test_articles: tuple[str, ...] = TEST_ARTICLES
    epochs: float = 2.0
    batch_size: int = 32
    learning_rate: float = 8e-5
    warmup: float = 0.06
    weight_decay: float = 0.01
    max_length: int = 128
    max_question: int = 48
    ranked_negatives: int = 3
    swap_share: float = 1.0
    paraphrase_share: float = 0.6
    context: bool = True  # read each sentence with its article's title and the sentence before it
    news_corpus: str = "seeds"  # a news archive and questions of our own wording over it, to calibrate on
    news_questions: str = "benchmarks/questions/bundled_reader_questions.jsonl"
    candidates: int = 12  # first-stage sentences the reader reads per question at validation
    seed: int = 13
    threads: int = 2
    limit: int = 0  # questions per pool, for a quick trial; 0 = all
    max_questions: int = 0  # training questions: every unanswerable one, answerable ones sampled; 0 = all
    precision: str = "auto"  # "auto": bf16 where the CPU has it (or CUDA), else fp32; "fp32" forces fp32
    checkpoint_minutes: float = 15.0
    extra: dict = field(default_factory=dict)


def _encode_pairs(encoder: PairEncoder, pairs: Sequence[Pair], context: bool) -> tuple[list[Encoded], np.ndarray]:
    """Encoded pairs and their (label, start token, end token); positions are 0 ([CLS]) for no answer and -100
    (ignored) when the answer was cut off."""
    encoded = encoder.encode(encoder.questions([p.question for p in pairs]), [p.text for p in pairs],
                             [p.context for p in pairs] if context else None)
    targets = np.zeros((len(pairs), 3), dtype=np.int64)
    for i, (p, e) in enumerate(zip(pairs, encoded)):
        targets[i, 0] = p.label
        if p.label and p.span is not None:
            span = token_span(e, *p.span)
            targets[i, 1:] = span if span is not None else (-100, -100)
    return encoded, targets


def _pool_questions(pool: Pool, limit: int, seed: int, keep_unanswerable: bool = False) -> Pool:
    """At most `limit` questions of the pool, sampled (with every unanswerable one kept when asked: real
    no-answer questions are the scarce kind)."""
    if not limit or len(pool.questions) <= limit:
        return pool
    rng = random.Random(seed)
    kept = [q for q in pool.questions if keep_unanswerable and not q.answerable]
    rest = [q for q in pool.questions if not (keep_unanswerable and not q.answerable)]
    pool.questions = kept + rng.sample(rest, max(0, limit - len(kept)))
    order = {id(q): i for i, q in enumerate(pool.questions)}
    pool.questions.sort(key=lambda q: (q.paragraph, order[id(q)]))
    return pool


def score_pairs(run: Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray, np.ndarray]],
                encoder: PairEncoder, encoded: Sequence[Encoded], batch: int = 64
                ) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """(answer logits, span scores, character spans) of encoded pairs through a forward function."""
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].ids))
    logits = np.zeros(len(encoded), dtype=np.float32)
    spans = np.zeros(len(encoded), dtype=np.float32)
    where: list[tuple[int, int]] = [(0, 0)] * len(encoded)
    for lo in range(0, len(order), batch):
        idx = order[lo:lo + batch]
        start, end, logit = run(encoder.batch([encoded[i] for i in idx]))
        for row, i in enumerate(idx):
            logits[i] = logit[row]
            score, s, e = best_span(encoded[i], start[row], end[row])
            spans[i] = score
            where[i] = (s, e)
    return logits, spans, where


def validate(pool: Pool, ranked: list[list[int]], run, encoder: PairEncoder, log: Log,
             label: str, calibration: tuple[float, float] | None = None, context: bool = True
             ) -> dict[str, object]:
    """Reader metrics on a held-out pool: each question against its first-stage candidates."""
    from ..common.text import word_bounded

    pairs_q, pairs_s = [], []
    for qi, top in enumerate(ranked):
        for si in top:
            pairs_q.append(qi)
            pairs_s.append(si)
    qids = encoder.questions([q.text for q in pool.questions])
    encoded = encoder.encode([qids[q] for q in pairs_q], [pool.sentences[s].text for s in pairs_s],
                             [pool.sentences[s].context for s in pairs_s] if context else None)
    t0 = time.perf_counter()
    logits, spans, _ = score_pairs(run, encoder, encoded)
    seconds = time.perf_counter() - t0
    best_logit, best_span_score, right_logit, right_first = [], [], [], []
    answerable = []
    n = 0
    for qi, top in enumerate(ranked):
        k = len(top)
        lg, sp = logits[n:n + k], spans[n:n + k]
        n += k
        q = pool.questions[qi]
        answerable.append(q.answerable)

        def right(si: int) -> bool:
            return q.answerable and any(word_bounded(t, pool.sentences[si].text) for t in q.answer_texts)

        pick = int(np.argmax(lg))
        best_logit.append(float(lg[pick]))
        best_span_score.append(float(np.max(sp)))
        right_logit.append(right(top[pick]))
        right_first.append(right(top[0]))
    a = np.asarray(answerable)
    report: dict[str, object] = {"questions": len(ranked), "answerable": int(a.sum()),
                                 "pairs": len(encoded), "pairs_per_second": round(len(encoded) / seconds, 1)}
    for name, scores, right in (("reader", best_logit, right_logit), ("span", best_span_score, right_logit)):
        curve = decision_curve(scores, answerable, right)
        best = best_threshold(curve)
        report[name] = {
            "top1_answerable": round(float(np.mean([r for r, x in zip(right, a) if x])), 4),
            "auroc": round(auroc([s for s, x in zip(scores, a) if x], [s for s, x in zip(scores, a) if not x]), 4),
            "best": {k: round(v, 4) for k, v in best.items()},
        }
    report["first_stage_top1"] = round(float(np.mean([r for r, x in zip(right_first, a) if x])), 4)
    if calibration is not None:
        scale, bias = calibration
        confidence = 1 / (1 + np.exp(-(scale * np.asarray(best_logit) + bias)))
        curve = decision_curve(confidence, answerable, right_logit)
        at_half = min(curve, key=lambda p: abs(p["threshold"] - 0.5))
        report["at_threshold_0.5"] = {k: round(v, 4) for k, v in at_half.items()}
        report["best_confidence_threshold"] = round(best_threshold(curve)["threshold"], 4)
        report["curve"] = [{k: round(v, 4) for k, v in p.items()}
                           for p in curve[:: max(1, len(curve) // 20)]]
    log(f"{label}: {json.dumps({k: v for k, v in report.items() if k != 'curve'})}")
    report["_best_logits"] = best_logit
    report["_right"] = [r and x for r, x in zip(right_logit, a)]
    return report


def judge(pool: Pool, ranked: list[list[int]], scores: list[list[float]], run, encoder: PairEncoder,  # type: ignore[no-untyped-def]
          context: bool) -> list[Judged]:
    """Read every question's candidates."""
    from ..common.text import word_bounded

    qids = encoder.questions([q.text for q in pool.questions])
    pq = [qi for qi, top in enumerate(ranked) for _ in top]
    ps = [si for top in ranked for si in top]
    encoded = encoder.encode([qids[q] for q in pq], [pool.sentences[s].text for s in ps],
                             [pool.sentences[s].context for s in ps] if context else None)
    logits, spans, _ = score_pairs(run, encoder, encoded)
    out, n = [], 0
    for qi, top in enumerate(ranked):
        q, k = pool.questions[qi], len(top)
        right = np.array([q.answerable and any(word_bounded(t, pool.sentences[si].text) for t in q.answer_texts)
                          for si in top])
        out.append(Judged(q.answerable, logits[n:n + k], spans[n:n + k], np.asarray(scores[qi][:k]), right))
        n += k
    return out


@dataclass
class Prepared:
    """The pools and first-stage candidates (with their scores) a training run works on."""

    train: Pool
    calibration: Pool
    test: Pool
    news: Pool | None
    ranked: dict[str, list[list[int]]]
    scores: dict[str, list[list[float]]]


def prepare(config: TrainConfig, log: Log, training: bool = True) -> Prepared:
    from ..index.encoders import load_embedder
    from ..settings import EmbeddingSettings
    from .data import corpus_pool

    articles = read_articles(config.squad, log)
    train_articles, held = split_articles(articles, config.calibration_articles + config.test_articles)
    calibration = [a for a in held if a.get("title") in config.calibration_articles]
    test = [a for a in held if a.get("title") in config.test_articles]
    train_pool = _pool_questions(make_pool(train_articles if training else []), config.limit, config.seed)
    pools = {"train": _pool_questions(train_pool, config.max_questions, config.seed, keep_unanswerable=True),
             "calibration": _pool_questions(make_pool(calibration), config.limit // 4, config.seed),
             "test": _pool_questions(make_pool(test), config.limit // 4, config.seed)}
    news = None
    if config.news_questions and Path(config.news_questions).is_file() and Path(config.news_corpus).is_dir():
        news = pools["news"] = corpus_pool(Path(config.news_corpus), Path(config.news_questions))
    else:
        log(f"no news calibration questions ({config.news_questions} over {config.news_corpus}): "
            "calibrating on the held-out SQuAD articles alone")
    for name, pool in pools.items():
        if name == "train" and not training:
            continue
        log(f"{name}: {len(pool.articles)} articles, {len(pool.questions)} questions "
            f"({sum(not q.answerable for q in pool.questions)} unanswerable)")
    encode = load_embedder(EmbeddingSettings()).encode_documents
    ranked: dict[str, list[list[int]]] = {}
    scores: dict[str, list[list[float]]] = {}
    for name, pool in pools.items():
        scores[name] = []
        # training candidates come from the question's own article (cheap at any size); held-out questions
        # meet every sentence of their pool, as the answer step meets the whole archive
        ranked[name] = first_stage(pool, pool.questions, encode, 8 if name == "train" else config.candidates,
                                   scores[name], within_article=name == "train")
    return Prepared(pools["train"], pools["calibration"], pools["test"], news, ranked, scores)


def fit(config: TrainConfig, data: Prepared, log: Log):  # type: ignore[no-untyped-def]
    """The trained torch network (resumed from `<output>/checkpoint` when an interrupted run left one)."""
    import torch

    from ..index.encoder import bundled_model_path
    from .loop import Checkpoints, run_training
    from .network import ReaderNet, load_encoder
    from .wordnet import load_wordnet

    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    wordnet = load_wordnet()
    if wordnet is None:
        log("WordNet not found (Debian package wordnet-base; `make reader` installs it): training without "
            "paraphrased and antonym questions")
    pairs = training_pairs(data.train, data.ranked["train"], config.seed, config.ranked_negatives,
                           config.swap_share, config.paraphrase_share, wordnet)
    kinds: dict[str, int] = {}
    for p in pairs:
        kinds[p.kind] = kinds.get(p.kind, 0) + 1
    log(f"training pairs: {len(pairs)} {kinds}")
    if not pairs:
        raise ValueError("the training articles gave no question to learn from")
    model_path = str(bundled_model_path())
    pair_encoder = PairEncoder(Path(model_path) / "tokenizer.json", config.max_length, config.max_question)
    encoded, targets = _encode_pairs(pair_encoder, pairs, config.context)
    bert, hidden = load_encoder(model_path)
    net = ReaderNet(bert, hidden)
    bert.embeddings.word_embeddings.weight.requires_grad_(False)  # shipped from the bundled model as is
    fingerprint = hashlib.sha256(json.dumps(
        [{k: v for k, v in asdict(config).items() if k not in ("output", "threads", "precision",
                                                              "checkpoint_minutes")},
         len(pairs), kinds, wordnet is not None], sort_keys=True).encode()).hexdigest()
    checkpoints = Checkpoints(Path(config.output) / "checkpoint", fingerprint, config.checkpoint_minutes, log)
    net.device = run_training(net, encoded, targets, pair_encoder, config, checkpoints, log)  # type: ignore[attr-defined]
    net.pairs = kinds  # type: ignore[attr-defined]
    net.checkpoints = checkpoints  # type: ignore[attr-defined]
    return net


def onnx_runner(path: Path, threads: int):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda arrays: session.run(None, arrays)


def finish(config: TrainConfig, data: Prepared, net, log: Log, began: float) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Write the int8 model, fit the decision (how reader and first-stage scores combine, and the
    confidence's calibration) on the calibration articles and news questions, measure on the test articles,
    and write the card."""
    from ..common.files import sha256_file
    from ..index.encoder import bundled_model_path, model_identity
    from ..settings import BUNDLED_MODEL
    from .export import write_model

    model_path = Path(bundled_model_path())
    tokenizer = model_path / "tokenizer.json"
    card: dict[str, object] = {
        "name": "rag-news reader",
        "format": 1,
        "architecture": "MiniLM-L6 cross-encoder over (question, [title, previous sentence,] sentence), "
                        "span head + answer head; int8 ONNX",
        "source_model": {"id": model_identity(BUNDLED_MODEL)[0],
                         "sha256": sha256_file(model_path / "model.safetensors")},
        "data": {"files": [{"name": Path(f).name, "sha256": sha256_file(Path(f))} for f in config.squad],
                 "training_articles": data.train.articles, "calibration_articles": data.calibration.articles,
                 "test_articles": data.test.articles, "pairs": getattr(net, "pairs", {})},
        "settings": {k: v for k, v in asdict(config).items() if k not in ("squad", "output", "extra")},
        "device": getattr(net, "device", ""),  # where and in which precision it was trained
        "calibration": {"scale": 1.0, "bias": 0.0},
    }
    out = Path(config.output)
    write_model(net, out, tokenizer, card)
    card = calibrate_reader(config, data, out, log)
    card["seconds"] = round(time.time() - began, 1)
    write_card(out, card)
    if hasattr(net, "checkpoints"):
        net.checkpoints.clear()  # the reader is written: nothing left to resume
    log(f"reader written to {out} ({(out / 'reader.onnx').stat().st_size / 1e6:.1f} MB) in {time.time() - began:.0f}s")
    return card


def write_card(folder: Path, card: dict[str, object]) -> None:
    (folder / "card.json").write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def calibrate_reader(config: TrainConfig, data: Prepared, folder: Path, log: Log) -> dict[str, object]:
    """Fit the decision of the int8 reader in `folder` (how its outputs and the first-stage evidence combine,
    and the confidence's calibration) on the calibration articles and news questions, measure it on the test
    articles, and record both in its card."""
    from ..common.files import sha256_file
    from ..index.encoder import bundled_model_path

    card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
    context = bool(card.get("settings", {}).get("context", config.context))
    encoder = PairEncoder(Path(bundled_model_path()) / "tokenizer.json", config.max_length, config.max_question)
    int8 = onnx_runner(folder / "reader.onnx", config.threads)
    domains = {"squad": judge(data.calibration, data.ranked["calibration"], data.scores["calibration"], int8,
                              encoder, context)}
    if data.news is not None:
        domains["news"] = judge(data.news, data.ranked["news"], data.scores["news"], int8, encoder, context)
    decision = fit_decision(domains, log)
    test = judge(data.test, data.ranked["test"], data.scores["test"], int8, encoder, context)
    args = (decision["span_weight"], decision["first_stage_weight"], decision["scale"], decision["bias"])
    figures = {"test": decision_figures(test, *args), **{f"calibration_{k}": v
                                                         for k, v in decision["figures"].items()}}
    best = [float(np.max(combined(j, *args[:2]))) for j in test]
    figures["test"]["auroc"] = round(auroc([b for b, j in zip(best, test) if j.answerable],
                                           [b for b, j in zip(best, test) if not j.answerable]), 4)
    log(f"test articles ({', '.join(data.test.articles)}): {json.dumps(figures['test'])}")
    card["calibration"] = {k: v for k, v in decision.items() if k != "figures"} | {
        "threshold": 0.5, "fitted_on": "held-out calibration articles and news questions: P(the best candidate "
        "answers | its combined score), its bias shifted so that 0.5 falls at the threshold of highest overall "
        "correctness (fitted_threshold on the unshifted scale)"}
    card["validation"] = figures
    card.setdefault("data", {})["calibration_articles"] = data.calibration.articles
    card["data"]["test_articles"] = data.test.articles
    card["data"]["news_calibration"] = None if data.news is None else {
        "questions": Path(config.news_questions).name, "sha256": sha256_file(Path(config.news_questions)),
        "corpus": str(config.news_corpus), "count": len(data.news.questions)}
    return card


def recalibrate(config: TrainConfig, log: Log = print) -> dict[str, object]:
    """Fit the decision of the reader already in `config.output` again (on other news questions, say), and
    measure it on the test articles; its network is not touched."""
    from ..answer.reader_onnx import read_card

    read_card(Path(config.output))  # a clear error when there is no reader there
    data = prepare(config, log, training=False)
    card = calibrate_reader(config, data, Path(config.output), log)
    write_card(Path(config.output), card)
    return card


def train(config: TrainConfig, log: Log = print) -> dict[str, object]:
    """Train, calibrate, measure and write the reader; returns its card."""
    began = time.time()
    data = prepare(config, log)
    net = fit(config, data, log)
    return finish(config, data, net, log, began)
