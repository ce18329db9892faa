"""Shared fixtures: an isolated environment per test, the real bundled index, and a small fake embedder."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

import rag
from rag.index.encoder import Passage, Pooled, Tokens
from rag.settings import EmbeddingSettings

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
BUNDLED = SEEDS / "000_258bcc79047f2b9b.txt"
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No RAG_* variable or rag.toml from the developer's shell leaks into a test."""
    import os

    for key in list(os.environ):
        if key.startswith("RAG_") or key == "OPENAI_API_KEY":
            monkeypatch.delenv(key)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)


def make_settings(corpus: Path, index: Path, **sections: dict) -> rag.Settings:
    return rag.load_settings(env={}, **sections).with_paths(corpus, index)


def corpus_of(root: Path, *files: Path) -> Path:
    """A corpus folder `root/corpus` holding copies of `files`."""
    corpus = root / "corpus"
    corpus.mkdir(parents=True)
    for f in files:
        shutil.copy(f, corpus / f.name)
    return corpus


def indexed(root: Path, *files: Path, **sections: dict) -> rag.Settings:
    """Settings of a corpus of copies of `files` under `root`, indexed with the real model."""
    settings = make_settings(corpus_of(root, *files), root / "index", **sections)
    rag.build_index(settings)
    return settings


@pytest.fixture(scope="session")
def bundled_folder(tmp_path_factory: pytest.TempPathFactory) -> rag.Settings:
    """The bundled archive indexed once with the real model (read-only for tests: copy it to change it)."""
    return indexed(tmp_path_factory.mktemp("bundled"), BUNDLED)


@pytest.fixture(scope="session")
def bundled_index(bundled_folder: rag.Settings) -> rag.Settings:
    """The bundled index in the folder store (test modules that run against both stores override this)."""
    return bundled_folder


@pytest.fixture(scope="session")
def engine(bundled_index: rag.Settings) -> rag.Engine:
    return rag.get_engine(bundled_index)


class FakeEmbedder:
    """Deterministic bag-of-words hashing encoder for fast unit tests; a 'token' is a word or punctuation. It
    stands in for the default backend, so that indexes it builds pass the default settings' checks."""

    _TOKEN = re.compile(r"\w+|[^\w\s]")

    def __init__(self, dimension: int = 64, max_tokens: int = 254, model_id: str = "fake-embedder",
                 backend: str = EmbeddingSettings().backend) -> None:
        self.dimension = dimension
        self.max_tokens = max_tokens
        self.model_id = model_id
        self.backend = backend
        self.calls = 0
        self.encoded = 0

    def count_tokens(self, text: str) -> int:
        return len(self._TOKEN.findall(text))

    def tokenize(self, text: str) -> Tokens:
        found = list(self._TOKEN.finditer(text))
        return Tokens(np.asarray([len(m.group()) for m in found], dtype=np.int64),
                      np.asarray([m.start() for m in found], dtype=np.int64),
                      np.asarray([m.end() for m in found], dtype=np.int64))

    def encode_passages(self, passages: Sequence[Passage]) -> Pooled:
        """Passage vectors from `encode_documents`; a span's 'pooled' vector is the bag of the words of the
        part of it inside the passage (zero, with no token counted, when no token lies inside)."""
        vectors = self.encode_documents([p.text for p in passages])
        sums, counts = [], []
        for p in passages:
            parts = [p.text[max(0, s - p.start):max(0, e - p.start)] for s, e in p.spans]
            n = np.asarray([p.tokens.count(s, e) for s, e in p.spans], dtype=np.int64)
            sums.append(np.stack([self._vec(t) * (k > 0) for t, k in zip(parts, n)]) if parts
                        else np.zeros((0, self.dimension), np.float32))
            counts.append(n)
        return Pooled(vectors, sums, counts)

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dimension, dtype=np.float32)
        for word in re.findall(r"\w+", text.lower()):
            h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
            v[h % self.dimension] += 1.0
        n = np.linalg.norm(v)
        return v / n if n else v + 1.0 / np.sqrt(self.dimension)

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.encoded += len(texts)
        return np.stack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dimension), np.float32)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode_documents(texts)


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


PG_NOT_RUN: list[str] = []  # why the PostgreSQL store's tests did not run, said at the end of the run


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One visible line when the served store went untested (a skip alone shows only with -rs)."""
    if PG_NOT_RUN:
        terminalreporter.write_line(f"PostgreSQL store NOT tested: {PG_NOT_RUN[0]}", yellow=True, bold=True)


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A real PostgreSQL server with pgvector on loopback, started for this test session (scripts/
    local_postgres.py); the tests that need it are skipped, with the reason, where none can be started."""
    import sys
    import tempfile

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import local_postgres
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    if local_postgres.binaries() is None:
        PG_NOT_RUN.append("no PostgreSQL with pgvector on this machine: pip install pgserver (the test extra does), "
                          "or install PostgreSQL with pgvector and put pg_config on PATH")
        pytest.skip(PG_NOT_RUN[-1])
    folder = Path(tempfile.mkdtemp(prefix="rag-pg-"))  # under /tmp: the server's own user must reach it
    try:
        url = local_postgres.start(folder)
    except Exception as exc:  # noqa: BLE001 - the reason is what the skip shows
        shutil.rmtree(folder, ignore_errors=True)
        PG_NOT_RUN.append(f"could not start PostgreSQL here ({exc}); see {folder}/run/server.log")
        pytest.skip(PG_NOT_RUN[-1])
    yield url
    local_postgres.stop(folder)
    shutil.rmtree(folder, ignore_errors=True)


def on_postgres(settings: rag.Settings, url: str, namespace: str, **store: object) -> rag.Settings:
    """The same settings with the index in the PostgreSQL database `url`, under its own namespace."""
    return settings.update("store", backend="postgres", url=url, namespace=namespace, **store)


@pytest.fixture(scope="session")
def bundled_postgres(bundled_folder: rag.Settings, pg_url: str) -> rag.Settings:
    """The bundled archive indexed with the real model into the PostgreSQL store (read-only for tests)."""
    settings = on_postgres(bundled_folder, pg_url, "bundled")
    rag.build_index(settings)
    return settings

