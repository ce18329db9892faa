"""The reader's network: the bundled MiniLM encoder read as a cross-encoder over (question, sentence), with a
span head (start and end logits per token; the [CLS] token stands for "no answer here") and an answer head
(a logit on [CLS]: does this sentence answer the question). Used for training and for the ONNX export."""

from __future__ import annotations

import torch
from torch import nn


class ReaderNet(nn.Module):
    def __init__(self, encoder: nn.Module, hidden: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.span = nn.Linear(hidden, 2)
        self.answer = nn.Linear(hidden, 1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        start, end = self.span(states).unbind(-1)
        return start, end, self.answer(states[:, 0]).squeeze(-1)


def load_encoder(path: str) -> tuple[nn.Module, int]:
    """The transformer of the sentence-transformers model folder at `path` (no pooling), and its width."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        encoder = AutoModel.from_pretrained(path, local_files_only=True)
    finally:
        hf_logging.enable_progress_bar()
    return encoder, int(encoder.config.hidden_size)
