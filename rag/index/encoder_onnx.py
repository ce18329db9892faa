"""ONNX Runtime: session creation, the encoders derived from the embedding model, and the ONNX backends
(`embedding.backend = "onnx-int8"` or `"onnx"`). The only module that imports onnxruntime and onnx.

The derived encoders are made once per model and cached in `embedding.cache`/encoders/<key>/: the model's
transformer exported to ONNX (`encoder_torch`), fused by ONNX Runtime's transformer optimizer
(`model.onnx`, fp32), and that graph with int8 weights (`model-int8.onnx`, dynamic quantisation: weights
int8 per output channel, activations uint8 per tensor, computed at run time). `card.json` records the source
model and its sha256, the recipe, the tool versions, the sha256 of each file and the check: cosine of each
encoder's vectors to torch's on probe texts. Loading verifies the hashes; an encoder whose check fails is
refused with the figures and the fix. Nothing is unpickled."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..common.files import atomic_write_text, sha256_file
from ..errors import SettingsError
from ..settings import EmbeddingSettings
from .encoder import TokenEncoder, load_tokenizer, max_seq_length, mean_pooling_model, model_identity, threads

CARD = "card.json"
FILES = {"onnx": "model.onnx", "onnx-int8": "model-int8.onnx"}
# Nodes kept in fp32 in the int8 encoder (regular expressions on ONNX node names): the first layer's matrix
# products, the most sensitive to int8 (mean cosine to fp32 on real text 0.9950 with them in fp32, 0.9933 without).
FP32_NODES: tuple[str, ...] = (r"/layer\.0/",)
RECIPE = {
    "version": 1,
    "export": "torch.onnx.export (TorchScript), opset 17, eager attention, token vectors out",
    "optimise": "onnxruntime.transformers optimize_model, model_type bert, opt_level 1 (fused attention, "
                "embedding and skip layer norms, bias GELU)",
    "quantise": "onnxruntime.quantization.quantize_dynamic: weights int8 symmetric per output channel, "
                "activations uint8 per tensor at run time",
    "fp32_nodes": list(FP32_NODES),
}
# The int8 encoder is refused when its vectors stray further than this from torch's, on average.
MIN_COSINE = {"onnx": 0.9999, "onnx-int8": 0.99}
WEIGHTS = ("model.safetensors", "pytorch_model.bin")

# Probe texts for the check made when an encoder is derived: short and long, plain and awkward.
PROBES = (
    "Officials confirmed the agreement late on Friday.",
    "How many people were evacuated after the flood?",
    "The central bank raised its key interest rate by 0.25 percentage points to 4.5%, the highest since 2008.",
    "“We will not accept this,” the minister told reporters in Kyiv — adding that talks would resume in May.",
    "Shares in the company fell 12% after it cut its forecast for the second time this year.",
    "Where was the aviation show held?",
    "Residents of the coastal town were told to leave their homes as the storm approached; about 3,000 did.",
    "The committee's report, published on 14 March 2024, runs to 312 pages and makes 41 recommendations.",
    "nuclear arms treaty",
    "Café owners in Zürich say the new rules on outdoor seating are unworkable.",
    "A spokesperson for the ministry declined to comment on the report, citing an ongoing investigation into "
    "the contract awarded in 2021 to a consortium of three regional construction firms.",
    "Researchers at the university found that the vaccine reduced hospital admissions by roughly a third among "
    "people over 65, although the effect faded after six months. The study, which followed 48,000 patients in "
    "four countries, has not yet been peer reviewed. Its authors said further work was needed to confirm the "
    "result in younger groups and to understand why protection waned faster in men than in women.",
    "The opposition leader called the budget 'a missed opportunity' and promised to vote against it.",
    "Who won the election?",
    "Negotiators from both sides met in Geneva for a third round of talks, which ended without agreement on "
    "the border, the exchange of prisoners or the return of displaced families. A fourth round is planned.",
    "Temperatures are expected to reach 41 °C in Seville on Tuesday, breaking the record set in 2017.",
)


def create_session(path: Path | str, n_threads: int = 0, spinning: bool = True) -> Any:
    """An ONNX Runtime CPU session for `path`: `n_threads` compute threads (0: every core this process may use),
    one inter-op thread, every graph optimisation. `spinning` keeps idle threads spinning between runs, which
    lowers latency when runs follow one another closely."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads(n_threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: the library does not print
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _weights(folder: Path) -> Path:
    for name in WEIGHTS:
        if (folder / name).exists():
            return folder / name
    raise SettingsError(f"Embedding model folder {folder} holds no model.safetensors or pytorch_model.bin to "
                        "derive an ONNX encoder from. Set embedding.backend = 'torch' or pick another model.")


def encoder_folder(folder: Path, cache: Path) -> tuple[Path, dict[str, Any]]:
    """Where the encoders derived from the model in `folder` live, and what they are derived from."""
    weights = _weights(folder)
    source = {"weights": weights.name, "sha256": sha256_file(weights),
              "tokenizer_sha256": sha256_file(folder / "tokenizer.json")}
    key = hashlib.sha256(json.dumps([RECIPE, source], sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache).expanduser() / "encoders" / key, source


def read_card(where: Path, source: dict[str, Any]) -> dict[str, Any] | None:
    """The card of a complete, intact encoder folder made from `source`, or None."""
    try:
        card = json.loads((where / CARD).read_text(encoding="utf-8"))
        intact = card["source"]["sha256"] == source["sha256"] and card["recipe"] == RECIPE and all(
            (where / name).stat().st_size == info["bytes"] and sha256_file(where / name) == info["sha256"]
            for name, info in card["files"].items())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return card if intact else None


@contextmanager
def _locked(where: Path) -> Iterator[None]:
    where.mkdir(parents=True, exist_ok=True)
    fd = os.open(where / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another process deriving the same encoder: wait for it
        yield
    finally:
        os.close(fd)


@contextmanager
def quiet_logging() -> Iterator[None]:
    """The quantiser and optimizer log advice through the root logger; none of it is for our user."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def prepare_encoder(model: str, cache: Path, progress: Callable[[str, int, int], None] | None = None
                    ) -> tuple[Path, dict[str, Any]]:
    """The folder and card of the ONNX encoders derived from `model` (an embedding.model value), made now if
    the cache lacks them or they do not match their card."""
    model_id, target, local = model_identity(model)
    folder = Path(target)
    if not local or not folder.is_dir():
        raise SettingsError(f"embedding.backend 'onnx' and 'onnx-int8' need a model folder; {model!r} is a hub "
                            "name. Download the model to a folder and name that, or set embedding.backend = "
                            "'torch'.")
    if not mean_pooling_model(folder):
        raise SettingsError(f"Embedding model {model!r} does not pool its token vectors by their mean, which the "
                            "ONNX backends assume. Set embedding.backend = 'torch' for this model.")
    where, source = encoder_folder(folder, cache)
    card = read_card(where, source)
    if card is not None:
        return where, card
    try:
        where.mkdir(parents=True, exist_ok=True)
        (where / ".lock").touch()
    except OSError as exc:
        raise SettingsError(f"Cannot write the encoder derived from the model to {where} "
                            f"({exc.strerror or exc}). Point embedding.cache (RAG_EMBEDDING_CACHE) at a writable "
                            "folder, or set embedding.backend = 'torch'.") from None
    with _locked(where):
        card = read_card(where, source)  # made by another process while we waited
        if card is None:
            if progress:
                progress("encoder", 0, 1)
            card = _derive(model_id, folder, where, source)
            if progress:
                progress("encoder", 1, 1)
    return where, card


def _derive(model_id: str, folder: Path, where: Path, source: dict[str, Any]) -> dict[str, Any]:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    from .encoder_torch import export_onnx, versions

    began = time.monotonic()
    (where / CARD).unlink(missing_ok=True)  # no card until every file is complete
    work = where / f"work-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        export_onnx(folder, work / "exported.onnx")
        with quiet_logging():
            fused = optimize_model(str(work / "exported.onnx"), model_type="bert", opt_level=1,
                                   num_heads=int(config.get("num_attention_heads", 0)),
                                   hidden_size=int(config.get("hidden_size", 0)))
            fused.save_model_to_file(str(work / FILES["onnx"]))
            import onnx

            names = [n.name for n in onnx.load(str(work / FILES["onnx"])).graph.node]
            keep = [n for n in names if any(re.search(p, n) for p in FP32_NODES)]
            quantize_dynamic(work / FILES["onnx"], work / FILES["onnx-int8"], weight_type=QuantType.QInt8,
                             per_channel=True, nodes_to_exclude=keep,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        checks = _check(model_id, folder, work)
        for name in FILES.values():
            os.replace(work / name, where / name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    import onnx
    import onnxruntime

    card = {
        "source": {"model": model_id, "folder": str(folder), **source},
        "recipe": RECIPE,
        "made_with": {**versions(), "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
        "made_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - began, 1),
        "files": {name: {"bytes": (where / name).stat().st_size, "sha256": sha256_file(where / name)}
                  for name in FILES.values()},
        "check": checks,
    }
    atomic_write_text(where / CARD, json.dumps(card, indent=1))
    return card


def _check(model_id: str, folder: Path, work: Path) -> dict[str, Any]:
    """Cosine of each derived encoder's vectors to torch's on the probe texts."""
    from .encoder_torch import TorchEmbedder

    reference = TorchEmbedder(EmbeddingSettings(model=str(folder), backend="torch")).encode_documents(PROBES)
    out: dict[str, Any] = {"probes": len(PROBES), "reference": "torch fp32 (sentence-transformers)"}
    for backend, name in FILES.items():
        encoder = _SessionEncoder(folder, work / name, model_id, backend, EmbeddingSettings())
        cosines = np.sum(encoder.encode_documents(PROBES) * reference, axis=1)
        out[backend] = {"mean_cosine": round(float(cosines.mean()), 5), "min_cosine": round(float(cosines.min()), 5)}
    return out


class _SessionEncoder(TokenEncoder):
    """An encoder that runs an ONNX graph of token vectors; mean pooling."""

    def __init__(self, folder: Path, path: Path, model_id: str, backend: str, settings: EmbeddingSettings) -> None:
        super().__init__(load_tokenizer(folder), max_seq_length(folder), settings.batch_size)
        self.model_id, self.backend = model_id, backend
        self._session = create_session(path, settings.threads)
        self.dimension = int(self._session.get_outputs()[0].shape[-1])

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, None]:
        return self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0], None


class OnnxEmbedder(_SessionEncoder):
    """The model's transformer run by ONNX Runtime, int8 or fp32, from the cached, checked encoder."""

    def __init__(self, settings: EmbeddingSettings,
                 progress: Callable[[str, int, int], None] | None = None) -> None:
        model_id = model_identity(settings.model)[0]
        where, card = prepare_encoder(settings.model, settings.cache, progress)
        check = card["check"][settings.backend]
        if check["mean_cosine"] < MIN_COSINE[settings.backend]:
            raise SettingsError(
                f"The {settings.backend} encoder of {settings.model!r} strays from the model: mean cosine "
                f"{check['mean_cosine']} (min {check['min_cosine']}) to torch's vectors, under "
                f"{MIN_COSINE[settings.backend]}. Set embedding.backend = "
                f"'{'onnx' if settings.backend == 'onnx-int8' else 'torch'}'.")
        super().__init__(Path(model_identity(settings.model)[1]), where / FILES[settings.backend], model_id,
                         settings.backend, settings)
        self.card = card


def describe(settings: EmbeddingSettings,
             progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """The card of the ONNX encoders for `settings` (derived first if needed), with their folder and the file
    the backend runs."""
    where, card = prepare_encoder(settings.model, settings.cache, progress)
    return {**card, "folder": str(where), "file": str(where / FILES[settings.backend])}
