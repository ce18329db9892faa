"""The encoder factory: the backend `embedding.backend` names, loaded once per process and shared."""

from __future__ import annotations

import threading
from typing import Any, Callable

from ..settings import EmbeddingSettings
from .encoder import Embedder, model_identity


def _create(settings: EmbeddingSettings, progress: Callable[[str, int, int], None] | None) -> Embedder:
    if settings.backend == "torch":
        from .encoder_torch import TorchEmbedder

        return TorchEmbedder(settings)
    from .encoder_onnx import OnnxEmbedder

    return OnnxEmbedder(settings, progress)


def encoder_info(settings: EmbeddingSettings,
                 progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """The encoder `settings` select: backend, model and, for the ONNX backends, the card of the encoder derived
    from the model (derived now when not cached yet) with its folder."""
    info: dict[str, Any] = {"backend": settings.backend, "model": model_identity(settings.model)[0]}
    if settings.backend != "torch":
        from .encoder_onnx import describe

        info.update(describe(settings, progress))
    return info


_CACHE: dict[EmbeddingSettings, Embedder] = {}
_CACHE_LOCK = threading.Lock()


def load_embedder(settings: EmbeddingSettings, progress: Callable[[str, int, int], None] | None = None) -> Embedder:
    """The encoder for `settings`, loaded once per process and shared. Deriving an ONNX encoder the first time
    reports to `progress` as stage "encoder"."""
    with _CACHE_LOCK:
        if settings not in _CACHE:
            _CACHE[settings] = _create(settings, progress)
        return _CACHE[settings]
