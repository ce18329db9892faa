"""Training and validation data for the reader, derived from SQuAD 2.0 files.

Each question is paired with candidate sentences the way the answer step will meet them: the sentences a
first-stage ranking (embedding cosine and weighted term overlap, as in `rag.answer`) puts on top (across the
whole pool for held-out questions; within the question's own article for training questions, which keeps the
cost flat over hundreds of articles), plus sentences of the question's own paragraph. A pair is positive when
its sentence holds the question's answer span. Hard negatives come from three places: the plausible-answer sentences of
unanswerable questions, the top-ranked sentences that do not hold the answer, and questions derived from
answerable ones by swapping one name, number or year for another of the same article (the sentence that
answered the original no longer answers the swapped question: "another country's figure")."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..answer.first_stage import DENSE_WEIGHT, LEXICAL_WEIGHT
from ..common.text import STOPWORDS, content_terms, word_bounded
from ..ingest.sentences import sentence_spans
from ..settings import CorpusSettings


@dataclass(frozen=True)
class Sentence:
    article: str
    paragraph: int  # index into the pool's paragraphs
    start: int  # offsets in the paragraph's context
    end: int
    text: str
    previous: str = ""  # the sentence before it in its paragraph, for context

    @property
    def context(self) -> tuple[str, str]:
        return self.article.replace("_", " "), self.previous


@dataclass(frozen=True)
class Question:
    qid: str
    text: str
    article: str
    paragraph: int
    answers: tuple[tuple[int, int], ...]  # answer spans in the paragraph's context (empty when impossible)
    answer_texts: tuple[str, ...]
    plausible: tuple[tuple[int, int], ...]

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


@dataclass(frozen=True)
class Pair:
    """One (question, sentence) example; `span` is the answer's character span inside `text`, if any."""

    question: str
    text: str
    label: int
    span: tuple[int, int] | None
    kind: str  # "gold", "paraphrased", "ranked", "paragraph", "plausible", "swapped", "antonym"
    context: tuple[str, str] = ("", "")  # (title, previous sentence)


@dataclass
class Pool:
    """Paragraphs, their sentences and the questions of a set of SQuAD articles."""

    articles: list[str]
    contexts: list[str]  # one per paragraph
    sentences: list[Sentence]
    questions: list[Question]
    by_paragraph: dict[int, list[int]]  # paragraph -> sentence indexes

    def gold_sentences(self, q: Question) -> set[int]:
        """Sentences of the question's paragraph that hold one of its answer spans whole."""
        out = set()
        for i in self.by_paragraph.get(q.paragraph, []):
            s = self.sentences[i]
            if any(s.start <= a and b <= s.end for a, b in q.answers):
                out.add(i)
        return out


def read_squad(path: Path | str) -> list[dict]:
    """The `data` list of a SQuAD 2.0 JSON file."""
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise ValueError(f"{path} is not a SQuAD 2.0 file (no top-level 'data' list)")
    return data["data"]


def read_articles(paths: Sequence[Path | str], log=None) -> list[dict]:  # type: ignore[no-untyped-def]
    """The articles of several SQuAD files, each title once: where files share an article (SQuAD 1.1 train
    holds the SQuAD 2.0 training articles without their unanswerable questions) the version with more
    questions wins, in the place of the first."""
    articles: dict[str, dict] = {}

    def size(article: dict) -> int:
        return sum(len(p.get("qas", [])) for p in article.get("paragraphs", []))

    dropped = 0
    for path in paths:
        for article in read_squad(path):
            title = str(article.get("title", ""))
            if title in articles:
                dropped += 1
                if size(article) <= size(articles[title]):
                    continue
            articles[title] = article
    if dropped and log is not None:
        log(f"{dropped} articles appear in more than one file: each kept once, in its version with most questions")
    return list(articles.values())


def make_pool(articles: Iterable[dict]) -> Pool:
    pool = Pool([], [], [], [], {})
    for article in articles:
        title = str(article.get("title", ""))
        pool.articles.append(title)
        for para in article.get("paragraphs", []):
            p = len(pool.contexts)
            context = para["context"]
            pool.contexts.append(context)
            idx = []
            previous = ""
            for s, e in sentence_spans(context):
                idx.append(len(pool.sentences))
                pool.sentences.append(Sentence(title, p, s, e, context[s:e], previous))
                previous = context[s:e]
            pool.by_paragraph[p] = idx
            for qa in para.get("qas", []):
                answers = tuple((a["answer_start"], a["answer_start"] + len(a["text"]))
                                for a in qa.get("answers", []) if a.get("text"))
                plausible = tuple((a["answer_start"], a["answer_start"] + len(a["text"]))
                                  for a in qa.get("plausible_answers", []) if a.get("text"))
                impossible = bool(qa.get("is_impossible")) or not answers
                pool.questions.append(Question(
                    str(qa.get("id", len(pool.questions))), qa["question"].strip(), title, p,
                    () if impossible else answers,
                    () if impossible else tuple(a["text"] for a in qa.get("answers", []) if a.get("text")),
                    plausible))
    return pool


class TermShare:
    """For a question, the IDF-weighted share of its terms that each of `texts` holds: the lexical half."""

    def __init__(self, texts: Sequence[str]) -> None:
        postings: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            for t in set(content_terms(text)):
                postings.setdefault(t, []).append(i)
        self.index, self.n = {t: np.asarray(rows) for t, rows in postings.items()}, len(texts)

    def __call__(self, question: str) -> np.ndarray:
        lexical, total = np.zeros(self.n), 0.0
        for t in set(content_terms(question)):
            rows = self.index.get(t)
            df = 0 if rows is None else len(rows)
            idf = float(np.log(1 + (self.n - df + 0.5) / (df + 0.5)))
            total += idf
            if rows is not None:
                lexical[rows] += idf
        return lexical / (total or 1.0)


def first_stage_score(cosine: np.ndarray, share: np.ndarray) -> np.ndarray:
    """A sentence's first-stage evidence, mixed as the answer step mixes it (`rag.answer.first_stage`)."""
    return DENSE_WEIGHT * cosine + LEXICAL_WEIGHT * share


def first_stage(pool: Pool, questions: Sequence[Question], encode, top: int,
                scores: list[list[float]] | None = None, within_article: bool = False) -> list[list[int]]:
    """For each question, the `top` sentences of the whole pool ranked by `first_stage_score` (their scores are
    appended to `scores` when it is given). With `within_article`, only the sentences of the question's own
    article compete (hard negatives for training, at a cost that stays flat as the pool grows); only the
    sentences of articles that have questions are embedded then."""
    asked = {q.article for q in questions}
    wanted = [i for i, s in enumerate(pool.sentences) if not within_article or s.article in asked]
    sent_vecs = np.zeros((len(pool.sentences), 1), dtype=np.float32)
    if wanted:
        vecs = encode([pool.sentences[i].text for i in wanted])
        sent_vecs = np.zeros((len(pool.sentences), vecs.shape[1]), dtype=np.float32)
        sent_vecs[wanted] = vecs
    q_vecs = encode([q.text for q in questions])
    grouped: dict[str, list[int]] = {}
    for i, s in enumerate(pool.sentences if within_article else ()):
        grouped.setdefault(s.article, []).append(i)
    rows_of = {a: np.asarray(r) for a, r in grouped.items()}
    share = TermShare([s.text for s in pool.sentences])
    all_rows, ranked = np.arange(len(pool.sentences)), []
    for qi, q in enumerate(questions):
        lexical = share(q.text)
        if within_article:
            rows = rows_of.get(q.article, np.zeros(0, dtype=np.int64))
            local = first_stage_score(sent_vecs[rows] @ q_vecs[qi], lexical[rows])
        else:
            rows, local = all_rows, first_stage_score(sent_vecs @ q_vecs[qi], lexical)
        best = np.argsort(-local, kind="stable")[:top]
        ranked.append([int(rows[i]) for i in best])
        if scores is not None:
            scores.append([float(local[i]) for i in best])
    return ranked


# --- derived negatives: one name, number or year of the question swapped ----------------------------------

_NAME = re.compile(r"(?<!^)(?<![.?!]\s)\b([A-Z][a-z’'\-]+(?:\s+(?:of\s+|de\s+|the\s+)?[A-Z][a-z’'\-]+)*)")
_YEAR = re.compile(r"\b(1[5-9]\d\d|20\d\d)\b")
_NUMBER = re.compile(r"\b\d[\d,]*(?:\.\d+)?\b")


def _names(text: str) -> list[str]:
    return [m.group(1) for m in _NAME.finditer(text)]


# Small closed classes whose members are easy to confuse: a question about one member is not answered by a
# sentence about another ("Russian remains" / "Ukrainian remains", "the second year" / "the first year").
CATEGORIES = [
    ("American British Chinese French German Russian Ukrainian Polish Japanese Indian Italian Spanish Turkish "
     "Iranian Israeli Canadian Mexican Brazilian Australian Korean Dutch Swedish Norwegian Belarusian Greek "
     "Egyptian Syrian Iraqi Saudi Pakistani Afghan Soviet European African Asian").split(),
    ("America Britain China France Germany Russia Ukraine Poland Japan India Italy Spain Turkey Iran Israel Canada "
     "Mexico Brazil Australia Korea Netherlands Sweden Norway Belarus Greece Egypt Syria Iraq Pakistan "
     "Afghanistan Europe Africa Asia London Paris Berlin Moscow Kiev Beijing Washington Tokyo Rome").split(),
    "January February March April May June July August September October November December".split(),
    "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split(),
    "first second third fourth fifth sixth last".split(),
    "two three four five six seven eight nine ten twelve hundred thousand million billion".split(),
    "north south east west northern southern eastern western".split(),
    "men women children".split(),
    "increase decrease rise fall".split(),
]
_CATEGORY_OF = {w: c for c in CATEGORIES for w in c}


def category_options(question: str, sentence: str) -> list[tuple[str, list[str]]]:
    """Words of the question that the sentence holds too and that belong to a closed class, each with the other
    members of its class that the sentence does not hold."""
    present = set(re.findall(r"\w+", sentence))
    out = []
    for word in set(re.findall(r"\w+", question)):
        members = _CATEGORY_OF.get(word)
        if members and word in present:
            others = [m for m in members if m != word and m not in present]
            if others:
                out.append((word, others))
    return out


def swapped_question(q: Question, sentence: str, article_text: str, rng: random.Random) -> str | None:
    """`q` with one name, year, number or member of a closed class (a nationality, a month, an ordinal) that
    its answer sentence also holds replaced by another of the same kind (from the article, for names and
    numbers) that the sentence does not hold; None when no such swap exists."""
    closed = category_options(q.text, sentence)
    if closed and rng.random() < 0.6:
        old, candidates = rng.choice(closed)
        swapped = re.sub(rf"(?<!\w){re.escape(old)}(?!\w)", rng.choice(candidates), q.text, count=1)
        if swapped != q.text:
            return swapped
    options: list[tuple[str, list[str]]] = list(closed)
    years = [y for y in _YEAR.findall(q.text) if y in sentence]
    if years:
        others = sorted({y for y in _YEAR.findall(article_text) if y not in sentence})
        if others:
            options += [(y, others) for y in years]
        else:
            options += [(y, [str(int(y) + d) for d in (-7, -3, 2, 5, 11)]) for y in years]
    numbers = [x for x in _NUMBER.findall(q.text) if x in sentence and not _YEAR.fullmatch(x)]
    if numbers:
        pool = sorted({x for x in _NUMBER.findall(article_text) if x not in sentence and not _YEAR.fullmatch(x)})
        options += [(x, pool) for x in numbers if pool]
    names = [m for m in _names(q.text) if m in sentence]
    if names:
        pool = sorted({m for m in _names(article_text) if m not in sentence and m not in q.text
                       and m.lower() not in sentence.lower()})
        options += [(m, pool) for m in names if pool]
    if not options:
        return None
    old, candidates = rng.choice(options)
    new = rng.choice(candidates)
    swapped = re.sub(rf"(?<!\w){re.escape(old)}(?!\w)", new, q.text, count=1)
    return swapped if swapped != q.text else None


_ORDINALS = ["first", "second", "third", "fourth", "fifth", "last"]
_AUXILIARIES = {"have", "does", "make", "made", "take", "took", "give", "gave", "come", "came", "become", "became",
                "used", "known", "called", "name", "named", "part", "kind", "type", "year", "years", "time"}
_WORD = re.compile(r"[A-Za-z][a-z]+")


def antonym_question(q: Question, sentence: str, wordnet, rng: random.Random) -> str | None:  # type: ignore[no-untyped-def]
    """`q` with one word that its answer sentence also holds replaced by an antonym (or another ordinal)."""
    lowered = sentence.lower()
    options = []
    for m in _WORD.finditer(q.text):
        word = m.group()
        if not word.islower() or word in STOPWORDS or word not in re.findall(r"\w+", lowered):
            continue  # names are swapped by swapped_question; function words carry no fact
        if word in _ORDINALS:
            options.append((m, [o for o in _ORDINALS if o != word]))
        elif wordnet is not None and word in wordnet.antonyms:
            options.append((m, sorted(set(wordnet.antonyms[word]))))
    if not options:
        return None
    m, choices = rng.choice(options)
    new = rng.choice(choices)
    if m.group()[0].isupper():
        new = new[0].upper() + new[1:]
    return q.text[:m.start()] + new + q.text[m.end():]


def paraphrased_question(q: Question, sentence: str, wordnet, rng: random.Random, most: int = 3) -> str | None:  # type: ignore[no-untyped-def]
    """`q` with up to `most` of the words it shares with its answer sentence replaced by a synonym of their most
    common sense: a question that matches its answer by meaning more than by wording."""
    if wordnet is None:
        return None
    shared = set(re.findall(r"\w+", sentence.lower()))
    options = [m for m in _WORD.finditer(q.text)
               if m.group().islower() and len(m.group()) > 3 and m.group() in shared
               and m.group() not in STOPWORDS and m.group() not in _AUXILIARIES
               and not m.group().endswith(("ed", "ing", "s")) and m.group() in wordnet.synonyms]
    if not options:
        return None
    rng.shuffle(options)
    chosen = sorted(options[:rng.randint(1, most)], key=lambda m: m.start())
    out, cursor = [], 0
    for m in chosen:
        out += [q.text[cursor:m.start()], rng.choice(wordnet.synonyms[m.group()])]
        cursor = m.end()
    out.append(q.text[cursor:])
    return "".join(out)


_LEADS = ["According to the article, ", "According to reports, ", "In the article about {title}, ",
          "As reported, "]


def with_lead(question: str, title: str, rng: random.Random) -> str:
    """The question with an attribution lead ("According to the article, ...") of the kind readers write."""
    lead = rng.choice(_LEADS).format(title=title.replace("_", " "))
    return lead + question[0].lower() + question[1:] if question[:1].isupper() and not question[1:2].isupper() \
        else lead + question


def training_pairs(pool: Pool, ranked: list[list[int]], seed: int, ranked_negatives: int = 3,
                   swap_share: float = 1.0, paraphrase_share: float = 0.6, wordnet=None,  # type: ignore[no-untyped-def]
                   lead_share: float = 0.15) -> list[Pair]:
    """Positive and hard-negative pairs for every question of the pool (see the module docstring)."""
    rng = random.Random(seed)
    article_text: dict[str, str] = {}
    for s in pool.sentences:
        article_text[s.article] = article_text.get(s.article, "") + " " + s.text
    pairs: list[Pair] = []
    for q, top in zip(pool.questions, ranked):
        gold = pool.gold_sentences(q)
        own = pool.by_paragraph.get(q.paragraph, [])

        def holds_answer(i: int) -> bool:
            return any(word_bounded(t, pool.sentences[i].text) for t in q.answer_texts)

        if q.answerable:
            if not gold:
                continue  # the answer crosses a sentence boundary: no clean sentence label
            g = min(gold)
            s = pool.sentences[g]
            a, b = next((a, b) for a, b in q.answers if s.start <= a and b <= s.end)
            span = (a - s.start, b - s.start)
            pairs.append(Pair(q.text, s.text, 1, span, "gold", s.context))
            if rng.random() < swap_share:
                swapped = swapped_question(q, s.text, article_text[q.article], rng)
                if swapped:
                    pairs.append(Pair(swapped, s.text, 0, None, "swapped", s.context))
                else:
                    opposite = antonym_question(q, s.text, wordnet, rng)
                    if opposite:
                        pairs.append(Pair(opposite, s.text, 0, None, "antonym", s.context))
            if rng.random() < paraphrase_share:
                paraphrase = paraphrased_question(q, s.text, wordnet, rng)
                if paraphrase:
                    pairs.append(Pair(paraphrase, s.text, 1, span, "paraphrased", s.context))
        else:
            for a, b in q.plausible[:1]:
                for i in own:
                    s = pool.sentences[i]
                    if s.start <= a < s.end:
                        pairs.append(Pair(q.text, s.text, 0, None, "plausible", s.context))
                        break
        negatives = [i for i in top if i not in gold and not holds_answer(i)][:ranked_negatives]
        pairs += [Pair(q.text, pool.sentences[i].text, 0, None, "ranked", pool.sentences[i].context)
                  for i in negatives]
        rest = [i for i in own if i not in gold and i not in negatives and not holds_answer(i)]
        if rest:
            i = rng.choice(rest)
            pairs.append(Pair(q.text, pool.sentences[i].text, 0, None, "paragraph", pool.sentences[i].context))
    # the same attribution lead on positives and negatives alike, so that it is never a cue for either
    pairs = [replace(p, question=with_lead(p.question, p.context[0], rng)) if rng.random() < lead_share else p
             for p in pairs]
    rng.shuffle(pairs)
    return pairs


def split_articles(articles: list[dict], held_out: Sequence[str]) -> tuple[list[dict], list[dict]]:
    """(training articles, held-out articles) by title; never split by question."""
    held = set(held_out)
    missing = held - {a.get("title") for a in articles}
    if missing:
        raise ValueError(f"held-out articles not found: {', '.join(sorted(missing))}")
    train = [a for a in articles if a.get("title") not in held]
    if not train:
        raise ValueError("every article is held out, none is left to learn from; give a file with more articles "
                         "or hold out fewer (--calibration, --test)")
    return train, [a for a in articles if a.get("title") in held]


def corpus_pool(corpus: Path, questions_file: Path, options: CorpusSettings | None = None) -> Pool:
    """A pool of every sentence of the articles in a corpus folder, with questions from a JSON Lines file of
    {id, question, groups | answers} (an answer must appear, word-bounded, in the sentence)."""
    from ..ingest.corpus import iter_articles

    pool = Pool([], [], [], [], {})
    for article in iter_articles(Path(corpus), options, lambda _m: None):
        doc, text = article.document, article.source_text
        p = len(pool.contexts)
        pool.articles.append(doc.title)
        pool.contexts.append(text)
        idx = []
        for s0, e0 in doc.spans:
            previous = ""
            for s, e in sentence_spans(text, s0, e0):
                idx.append(len(pool.sentences))
                pool.sentences.append(Sentence(doc.title, p, s, e, text[s:e], previous))
                previous = text[s:e]
        pool.by_paragraph[p] = idx
    for n, line in enumerate(Path(questions_file).read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        row = json.loads(line)
        groups = row.get("groups") or ([row["answers"]] if row.get("answers") else [])
        alternatives = tuple(str(a) for g in groups for a in g)
        pool.questions.append(Question(str(row.get("id", n)), row["question"], "", -1,
                                       ((0, 0),) if alternatives else (), alternatives, ()))
    return pool
