"""The query side: a shared, thread-safe engine that serves the live index and follows rebuilds."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Callable, Sequence, TypeVar

from .answer import (ABSTAIN_TEXT, UNSURE_TEXT, Candidate, closest, closest_citations, compose, decide, read,
                     score_sentences, select)
from .dates import date_filter as _check_date
from .embedding import Embedder, load_embedder, model_identity
from .errors import BadQuestion, GenerationGone, LLMUnavailable, RagError, SettingsError
from .index import check_encoder
from .question import parts, reading_questions
from .records import Answer, Document, Hit
from .retrieval import retrieve
from .settings import Settings
from .store import Snapshot, Store, open_store

# control characters, and the bidirectional overrides that could make a question display as something else
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# what a byte that is not UTF-8 becomes in a command-line argument (surrogateescape), or a lone JSON escape
_SURROGATE = re.compile("[\ud800-\udfff]")
_RELOAD_EVERY = 1.0  # seconds between checks of which generation is live
T = TypeVar("T")


def clean_question(question: object, limit: int) -> str:
    """The question with control characters removed; BadQuestion when empty or too long."""
    if not isinstance(question, str):
        raise BadQuestion("The question must be text.")
    bad = _SURROGATE.search(question)
    if bad:
        raise BadQuestion(f"The question holds a byte that is not UTF-8 text (at character {bad.start() + 1}). "
                          "Retype it, or re-save the file it came from as UTF-8.")
    text = " ".join(_CONTROL.sub(" ", question).split())
    if not text:
        raise BadQuestion("The question is empty. Type a question about the archive.")
    if len(text) > limit:
        raise BadQuestion(f"The question is {len(text):,} characters long; the limit is {limit:,}. "
                          "Shorten it to the point you want answered.")
    return text


def _check_doc_ids(gen: Snapshot, doc_ids: Sequence[str]) -> None:
    """BadQuestion naming the article ids the index does not hold: a filter on them would match nothing."""
    for doc_id in doc_ids:
        if not isinstance(doc_id, str) or _SURROGATE.search(doc_id):
            raise BadQuestion(f"Article id {doc_id!r} is not text. List the ids with: rag corpus list")
    missing = [d for d in dict.fromkeys(doc_ids) if gen.document(d) is None]
    if missing:
        shown = ", ".join(repr(d) for d in missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise BadQuestion(f"The index holds no article with id {shown}. List the ids with: rag corpus list "
                          "(and rebuild with rag index build if the article is new).")


def load_answer_reader(setting: str):  # type: ignore[no-untyped-def]
    """The reader named by `answer.reader` ('bundled', a folder, or 'off' for None)."""
    if setting == "off":
        return None
    from .reader.runtime import load_reader

    if setting == "bundled":
        return load_reader()
    folder = Path(setting).expanduser()
    if not folder.is_dir():
        raise SettingsError(f"Setting answer.reader names {setting!r}, which is not a folder. Use 'bundled', "
                            "'off', or a folder holding reader.onnx and card.json.")
    return load_reader(folder)


class Served:
    """What is expensive to load for one index: the store, the encoder, the reader and the live generation.
    Shared by every engine over that index, whatever their retrieval and answer settings (threads included)."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.store: Store = open_store(settings)
        try:
            _name, manifest = self.store.live_manifest()  # a missing index is reported before the model loads
            if embedder is None:  # and so is one built with another model or backend
                check_encoder(self.store.where, manifest, model_identity(settings.embedding.model)[0],
                              settings.embedding.backend, self.store.rebuild)
            self.embedder = embedder or load_embedder(settings.embedding)
            self.reader = load_answer_reader(settings.answer.reader)
            self._lock = threading.Lock()
            self._gen = self._open()
        except BaseException:
            self.store.close()
            raise
        self._checked = time.monotonic()

    def _open(self) -> Snapshot:
        return self.store.open_live(self.embedder.model_id, self.embedder.backend)

    @property
    def generation(self) -> Snapshot:
        """The live generation, reopened when a build has made a new one live."""
        now = time.monotonic()
        if now - self._checked >= _RELOAD_EVERY:
            self._checked = now
            self.reload_if_changed()
        return self._gen

    def reload_if_changed(self, force: bool = False) -> bool:
        """Switch to a newly built generation if the live one changed; True when it did. The replaced one is
        closed, and its memory goes once the queries still reading it finish."""
        try:
            name = self.store.live_name()
        except RagError:  # keep serving the generation already open
            if not force:
                return False
            raise
        if name == self._gen.name and not force:
            return False
        with self._lock:
            if name != self._gen.name or force:
                old, self._gen = self._gen, self._open()
                old.close()
                return True
        return False

    def close(self) -> None:
        """Release the live generation and the store's connections."""
        self._gen.close()
        self.store.close()


class Engine:
    """Answers and searches over one index with one set of settings. The loaded parts (`Served`) are shared
    between engines of the same index, so an engine with another `k`, fusion or answer mode loads nothing."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None, served: Served | None = None) -> None:
        self.settings = settings
        self.served = served or Served(settings, embedder)

    @property
    def embedder(self) -> Embedder:
        return self.served.embedder

    @property
    def reader(self):  # type: ignore[no-untyped-def]
        return self.served.reader

    @property
    def store(self) -> Store:
        return self.served.store

    @property
    def generation(self) -> Snapshot:
        return self.served.generation

    def reload_if_changed(self, force: bool = False) -> bool:
        return self.served.reload_if_changed(force)

    def _retrying(self, call: Callable[[], T]) -> T:
        """Run a query; if a build removed its generation meanwhile, once more on the live one."""
        try:
            return call()
        except GenerationGone:
            self.reload_if_changed(force=True)
            return call()

    def close(self) -> None:
        self.served.close()

    def documents(self) -> list[Document]:
        """The articles of the live index, in index order."""
        return [row.document for row in self.generation.documents()]

    def _k(self, k: int | None, s: Settings) -> int:
        k = s.retrieval.k if k is None else k
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise BadQuestion(f"k must be a whole number of at least 1, got {k!r}.")
        return min(k, s.retrieval.max_k)

    def _hits(self, query: str, k: int | None, doc_ids: Sequence[str] | None, since: str | None,
              until: str | None, timings: dict[str, float], s: Settings, wider: int = 0
              ) -> tuple[Snapshot, str, list[Hit], object]:
        """(generation, cleaned query, hits, query vector), checking every argument first; at least `wider`
        hits when there are that many."""
        r = s.retrieval
        query = clean_question(query, s.answer.max_question_chars)
        k = max(self._k(k, s), wider)
        since, until = _check_date(since, "The 'since' date"), _check_date(until, "The 'until' date")
        if since and until and since[: len(until)] > until[: len(since)]:
            raise BadQuestion(f"The 'since' date {since} is after the 'until' date {until}: nothing can match. "
                              "Swap them or widen the range.")
        gen = self.generation
        if doc_ids:
            _check_doc_ids(gen, doc_ids)
        t0 = time.perf_counter()
        vector = self.embedder.encode_queries([query])[0]
        t1 = time.perf_counter()
        allowed = gen.allowed_rows(list(doc_ids) if doc_ids else None, since, until)
        hits = retrieve(gen, query, vector, k, max(r.candidates, k), r.fusion, r.dense_weight, r.rrf_k, allowed)
        t2 = time.perf_counter()
        timings.update(encode_ms=(t1 - t0) * 1000, retrieve_ms=(t2 - t1) * 1000)
        return gen, query, hits, vector

    def search(self, query: str, k: int | None = None, doc_ids: Sequence[str] | None = None,
               since: str | None = None, until: str | None = None) -> list[Hit]:
        """The best passages for `query`."""
        return self._retrying(lambda: self._hits(query, k, doc_ids, since, until, {}, self.settings)[2])

    def ask(self, question: str, k: int | None = None, doc_ids: Sequence[str] | None = None,
            since: str | None = None, until: str | None = None, mode: str | None = None,
            id: str | None = None) -> Answer:
        """An answer built from the archive's passages, with exact-span citations, or an abstention."""
        return self._retrying(lambda: self._ask(question, k, doc_ids, since, until, mode, id, self.settings))

    def _ask(self, question: str, k: int | None, doc_ids: Sequence[str] | None, since: str | None,
             until: str | None, mode: str | None, id: str | None, s: Settings) -> Answer:
        began = time.perf_counter()
        timings: dict[str, float] = {}
        a = s.answer
        shown_k = self._k(k, s)
        gen, text, wide, vector = self._hits(question, k, doc_ids, since, until, timings, s,
                                             a.read_passages if self.reader is not None else 0)
        hits = wide[:shown_k]
        mode = mode or a.mode
        t0 = time.perf_counter()
        notices: list[str] = []
        readings: dict[str, float] = {}
        confidence = None
        nearest: list[Candidate] = []  # with the reader, when it abstains: the sentences closest to answering
        if self.reader is None:
            scored = score_sentences(gen, text, vector, hits)  # type: ignore[arg-type]
            chosen = select(scored, a.max_sentences, a.abstain_threshold)
            abstained = not chosen or chosen[0].score < a.abstain_threshold
        else:
            scored = score_sentences(gen, text, vector, wide)  # type: ignore[arg-type]
            questions = parts(text)
            judged = []
            for part, reading in zip(questions, reading_questions(questions)):
                if len(questions) == 1:
                    candidates = scored
                else:
                    part_vector = self.embedder.encode_queries([reading])[0]
                    candidates = score_sentences(gen, reading, part_vector, wide)
                judged.append((part, read(self.reader, reading, candidates, a.read_sentences)))
            for _part, cands in judged:
                for c in cands:
                    key = c.hit.chunk.chunk_id
                    readings[key] = max(readings.get(key, 0.0), c.confidence or 0.0)
            decision = decide(judged, a.reader_threshold, a.max_sentences)
            chosen, abstained, confidence = list(decision.chosen), decision.abstained, decision.confidence
            notices += [f"The archive does not answer this part of the question: “{p}”"
                        for p in decision.unanswered_parts]
            if abstained:
                nearest = closest(judged)
            shown = {h.chunk.chunk_id for h in hits}
            for c in chosen + nearest:  # a cited (or closest) sentence's passage beyond the first k is shown too
                if c.hit.chunk.chunk_id not in shown:
                    shown.add(c.hit.chunk.chunk_id)
                    hits.append(c.hit)
        timings["read_ms"] = (time.perf_counter() - t0) * 1000
        if abstained:
            answer_text, citations = (UNSURE_TEXT if nearest else ABSTAIN_TEXT), []
        else:
            answer_text, citations = compose(chosen, gen)
        used_mode = "extractive"
        if mode == "llm" and not abstained:
            try:
                from .llm import ask_llm

                reply = ask_llm(text, hits, s.llm)
                notices += list(reply.notices)
                if reply.text:
                    answer_text, citations, used_mode = reply.text, list(reply.citations), "llm"
                else:
                    notices.append("The language model's answer had no supported sentence; "
                                   "showing the extractive answer instead.")
            except LLMUnavailable as exc:
                notices.append(str(exc))
        timings["answer_ms"] = (time.perf_counter() - t0) * 1000
        timings["total_ms"] = (time.perf_counter() - began) * 1000
        return Answer(question=text, text=answer_text, abstained=abstained, citations=tuple(citations),
                      passages=tuple(hits), timings=timings, mode=used_mode, notices=tuple(notices), id=id,
                      evidence=scored[0].score if scored else None, confidence=confidence, readings=readings,
                      closest=tuple(closest_citations(nearest)))


_SERVED: dict[tuple, Served] = {}
_ENGINES: dict[Settings, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def served_key(settings: Settings) -> tuple:
    """What decides which loaded index serves a call: the index, and the settings that load something (model,
    reader, store). Retrieval, answer and language-model settings do not."""
    where = (settings.store.url, settings.store.namespace) if settings.store.backend == "postgres" else \
        str(Path(settings.paths.index).resolve())
    return (settings.store.backend, where, settings.embedding, settings.store, settings.answer.reader)


def get_engine(settings: Settings) -> Engine:
    """The process-wide engine for these settings (created on first use, over the loaded index it shares with
    every engine of the same index)."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(settings)
        if engine is None:
            key = served_key(settings)
            served = _SERVED.get(key)
            if served is None:
                served = _SERVED[key] = Served(settings)
            engine = _ENGINES[settings] = Engine(settings, served=served)
        return engine
