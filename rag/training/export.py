"""Writing a trained reader as shipped data files: an ONNX graph (int8 weights) and its card."""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

from ..answer.reader_onnx import CARD_FILE, MODEL_FILE
from ..common.files import sha256_file

WORD_EMBEDDINGS = "encoder.embeddings.word_embeddings.weight"


def rebuild(weights: Path, source_model: Path):  # type: ignore[no-untyped-def]
    """The torch network from the fine-tuned weights (every tensor but the word embeddings, which come from
    the bundled model unchanged)."""
    from safetensors.torch import load_file

    from .network import ReaderNet, load_encoder

    encoder, hidden = load_encoder(str(source_model))
    net = ReaderNet(encoder, hidden)
    state = load_file(str(weights))
    state[WORD_EMBEDDINGS] = encoder.embeddings.word_embeddings.weight.detach().clone()
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"reader weights do not fit the network: missing {missing}, unexpected {unexpected}")
    return net.eval()


def to_onnx(net, path: Path) -> None:  # type: ignore[no-untyped-def]
    """Export the network as an fp32 ONNX graph with dynamic batch and length."""
    import torch

    ids = torch.ones((2, 16), dtype=torch.long)
    dynamic = {"input_ids": {0: "batch", 1: "length"}, "attention_mask": {0: "batch", 1: "length"},
               "token_type_ids": {0: "batch", 1: "length"}, "start": {0: "batch", 1: "length"},
               "end": {0: "batch", 1: "length"}, "answer": {0: "batch"}}
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on the terminal, about code paths the reader never takes
        torch.onnx.export(net, (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(path), dynamo=False,
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["start", "end", "answer"], dynamic_axes=dynamic, opset_version=17,
                          do_constant_folding=True)


def quantise(fp32: Path, out: Path) -> None:
    """Dynamic int8 quantisation, per channel, of the matrix products and the embedding lookups."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from ..index.encoder_onnx import quiet_logging

    with quiet_logging():  # its advice to pre-process the graph goes to the root logger as a warning
        quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Gather"])


def write_model(net, folder: Path, tokenizer: Path, card: dict[str, Any]) -> Path:  # type: ignore[no-untyped-def]
    """`reader.onnx` (int8) and `card.json` in `folder`; the card records both files' sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "reader-fp32.onnx"
        to_onnx(net, fp32)
        quantise(fp32, folder / MODEL_FILE)
    card = dict(card)
    card["files"] = {MODEL_FILE: sha256_file(folder / MODEL_FILE), "tokenizer.json": sha256_file(tokenizer)}
    card["bytes"] = (folder / MODEL_FILE).stat().st_size
    (folder / CARD_FILE).write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return folder / MODEL_FILE
