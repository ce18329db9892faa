"""The torch backend (`embedding.backend = "torch"`): the sentence-transformers model as it is, and the export of
its transformer to ONNX for `encoder_onnx`. The only module that imports torch and sentence-transformers."""

from __future__ import annotations

import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import SettingsError
from ..settings import EmbeddingSettings
from .encoder import TokenEncoder, mean_pooling_model, model_identity


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    """transformers' weight-loading bar would break our own output."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()


class TorchEmbedder(TokenEncoder):
    """A sentence-transformers model run by torch; any pooling the model declares."""

    backend = "torch"

    def __init__(self, settings: EmbeddingSettings) -> None:
        import torch
        from sentence_transformers import SentenceTransformer
        from tokenizers import Tokenizer

        self.model_id, target, local = model_identity(settings.model)
        try:
            with _no_progress_bars():
                self._model = SentenceTransformer(target, device=settings.device, local_files_only=local)
        except Exception as exc:  # noqa: BLE001 - any load failure is a settings problem for the user
            raise SettingsError(f"Could not load embedding model {settings.model!r}: {exc}. "
                                "Check embedding.model (a model folder, or 'bundled').") from None
        if settings.threads > 0:
            torch.set_num_threads(settings.threads)
        backend_tokenizer = getattr(self._model.tokenizer, "backend_tokenizer", None)
        if backend_tokenizer is None:
            raise SettingsError(f"Embedding model {settings.model!r} has no fast tokenizer (tokenizer.json); "
                                "rag needs the character span of every word piece. Pick another embedding.model.")
        super().__init__(Tokenizer.from_str(backend_tokenizer.to_str()), int(self._model.max_seq_length),
                         settings.batch_size)
        dimension = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension
        self.dimension = int(dimension() or 0)
        folder = Path(target)
        self.pools_spans = mean_pooling_model(folder) if folder.is_dir() else True
        self._device = settings.device
        self._lock = threading.Lock()  # torch modules are not documented as safe to call from many threads at once

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        import torch

        features = {"input_ids": torch.from_numpy(ids).to(self._device),
                    "attention_mask": torch.from_numpy(mask).to(self._device)}
        with self._lock, torch.inference_mode():
            if self.pools_spans:  # mean pooling: the transformer alone, pooled by the caller
                hidden = self._model[0](features)["token_embeddings"]
                return hidden.float().cpu().numpy(), None
            out = self._model(features)
            return out["token_embeddings"].float().cpu().numpy(), out["sentence_embedding"].float().cpu().numpy()


def export_onnx(folder: Path, target: Path, opset: int = 17) -> None:
    """Write the transformer of the model in `folder` as an ONNX graph: (input_ids, attention_mask) -> token
    vectors, batch and length dynamic. Eager attention exports the pattern ONNX Runtime fuses."""
    import torch
    from transformers import AutoModel

    class TokenVectors(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    with _no_progress_bars():
        model = TokenVectors(AutoModel.from_pretrained(str(folder), attn_implementation="eager")).eval()
    sample = torch.ones((2, 16), dtype=torch.int64)
    axes = {0: "batch", 1: "length"}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # tracer notes about Python values in the attention-mask code
        torch.onnx.export(model, (sample, sample), str(target), input_names=["input_ids", "attention_mask"],
                          output_names=["token_vectors"], opset_version=opset, do_constant_folding=True,
                          dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_vectors": axes},
                          dynamo=False)


def versions() -> dict[str, str]:
    import sentence_transformers
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "sentence-transformers": sentence_transformers.__version__}
