"""The query side: a shared, thread-safe engine that serves the live index and follows rebuilds."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import replace
from typing import Callable, Sequence, TypeVar

from .answer.reader import Reader
from .answer.readers import load_reader
from .answer.respond import Retrieved, answer
from .answer.retrieval import retrieve
from .answer.conversation import Conversation
from .answer.speech import speaker_plan
from .answer.turns import clarification, plan_turn
from .common.dates import date_filter as _check_date
from .errors import BadQuestion, GenerationGone, RagError
from .index.encoder import Embedder, model_identity
from .index.encoders import load_embedder
from .index.manifest import check_encoder
from .index.store import Snapshot, Store
from .index.stores import open_store, store_key
from .records import Answer, AttributedStatement, Document, Hit, Speaker
from .settings import Settings

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
            self.reader = load_reader(settings.answer.reader)
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
    def reader(self) -> Reader | None:
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

    def _retrieve(self, query: str, k: int | None, doc_ids: Sequence[str] | None, since: str | None,
                  until: str | None, s: Settings, wider: int = 0, boost: Sequence[str] = ()) -> Retrieved:
        """The passages for `query`, checking every argument first: the first k shown, and at least `wider`
        for the reader when there are that many."""
        began = time.perf_counter()
        query = clean_question(query, s.answer.max_question_chars)
        k = self._k(k, s)
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
        favoured = gen.allowed_rows(list(boost), None, None) if boost else None
        wide = retrieve(gen, query, vector, s.retrieval, allowed, k=max(k, wider), boost=favoured)
        t2 = time.perf_counter()
        return Retrieved(gen, query, vector, wide[:k], wide,
                         {"encode_ms": (t1 - t0) * 1000, "retrieve_ms": (t2 - t1) * 1000}, began)

    def search(self, query: str, k: int | None = None, doc_ids: Sequence[str] | None = None,
               since: str | None = None, until: str | None = None) -> list[Hit]:
        """The best passages for `query`."""
        return self._retrying(lambda: self._retrieve(query, k, doc_ids, since, until, self.settings).hits)

    def ask(self, question: str, k: int | None = None, doc_ids: Sequence[str] | None = None,
            since: str | None = None, until: str | None = None, mode: str | None = None,
            id: str | None = None, conversation: Conversation | None = None) -> Answer:
        """An answer built from the archive's passages, with exact-span citations, or an abstention. With a
        `conversation`, the question is first resolved against it (`Answer.standalone`), retrieval favours the
        articles the last answer cited, and a reference that points at nothing gets a request to name it."""
        s = self.settings
        if conversation is None:
            return self._answer(question, k, doc_ids, since, until, mode, id)
        typed = clean_question(question, s.answer.max_question_chars)
        turn = plan_turn(typed, conversation, mode or s.answer.mode, s.llm)
        if turn.unresolved:
            return clarification(turn, id)
        found = self._answer(turn.standalone, k, doc_ids, since, until, mode, id, turn.boost_doc_ids)
        return replace(found, question=typed, standalone=turn.standalone, notices=turn.notices + found.notices,
                       timings={"resolve_ms": turn.resolve_ms, **found.timings})

    def _answer(self, question: str, k: int | None, doc_ids: Sequence[str] | None, since: str | None,
                until: str | None, mode: str | None, id: str | None, boost: Sequence[str] = ()) -> Answer:
        """Retrieve (favouring the `boost` articles) and answer; the speaker's statements lead for "What did X
        say about Y?", looked for in the articles that quote X."""
        s = self.settings

        def run() -> Answer:
            wider = s.answer.read_passages if self.reader is not None else 0
            plan = speaker_plan(self.generation, question if isinstance(question, str) else "",
                                list(doc_ids) if doc_ids else None, since, until)
            retrieved = self._retrieve(question, k, plan.doc_ids if plan else doc_ids, since, until, s, wider,
                                       boost)
            return answer(retrieved, s.answer, s.llm, self.reader,
                          lambda text: self.embedder.encode_queries([text])[0], mode, id, plan)

        return self._retrying(run)

    # --- who said what ------------------------------------------------------------------------------------

    def _filtered(self, doc_ids: Sequence[str] | None, since: str | None, until: str | None
                  ) -> tuple[list[str] | None, str | None, str | None]:
        since, until = _check_date(since, "The 'since' date"), _check_date(until, "The 'until' date")
        if doc_ids:
            _check_doc_ids(self.generation, doc_ids)
        return (list(doc_ids) if doc_ids else None), since, until

    def statements(self, speaker: str | None = None, doc_ids: Sequence[str] | None = None,
                   since: str | None = None, until: str | None = None) -> list[AttributedStatement]:
        """The attributed statements of the archive (of one speaker: "Lavrov" finds Sergey Lavrov's), in date
        order."""
        ids, since, until = self._filtered(doc_ids, since, until)
        return self._retrying(lambda: self.generation.statements(speaker, ids, since, until))

    def speakers(self, doc_ids: Sequence[str] | None = None, since: str | None = None,
                 until: str | None = None) -> list[Speaker]:
        """The archive's speakers with their numbers of statements and articles, most statements first."""
        ids, since, until = self._filtered(doc_ids, since, until)
        return self._retrying(lambda: self.generation.speakers(ids, since, until))


_SERVED: dict[tuple, Served] = {}
_ENGINES: dict[Settings, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def served_key(settings: Settings) -> tuple:
    """What decides which loaded index serves a call: the index, and the settings that load something (model,
    reader, store). Retrieval, answer and language-model settings do not."""
    return (store_key(settings), settings.embedding, settings.store, settings.answer.reader)


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
