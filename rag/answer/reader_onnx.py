"""The trained reader at query time: an int8 ONNX graph run by ONNX Runtime, its JSON card checked first.

    rag/answer/model/
      reader.onnx   the network (MiniLM cross-encoder with span and answer heads), dynamic int8
      card.json     identity: source model, training data and settings, validation figures, calibration,
                    sha256 of reader.onnx and of the tokenizer it was trained with
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Any, Sequence

from ..common.files import sha256_file
from ..errors import ReaderError
from .reader import Reading
from .reader_features import PairEncoder, best_span

MODEL_DIR = Path(__file__).resolve().parent / "model"
MODEL_FILE = "reader.onnx"
CARD_FILE = "card.json"
FIX = "Reinstall the package (make setup) or retrain it with: rag reader train; or set answer.reader = \"off\"."


def read_card(folder: Path) -> dict[str, Any]:
    path = folder / CARD_FILE
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReaderError(f"Reader card {path} is missing. {FIX}") from None
    except (OSError, ValueError) as exc:
        raise ReaderError(f"Reader card {path} cannot be read ({exc}). {FIX}") from None
    if not isinstance(card, dict) or not isinstance(card.get("files"), dict) \
            or not isinstance(card.get("calibration"), dict):
        raise ReaderError(f"Reader card {path} lacks its files or calibration. {FIX}")
    return card


class OnnxReader:
    """The `Reader` of the shipped model: scores (question, sentence) pairs; thread-safe."""

    def __init__(self, folder: Path | None = None, tokenizer_file: Path | None = None, threads: int = 0) -> None:
        import onnxruntime as ort

        from ..index.encoder import bundled_model_path

        self.folder = Path(folder or MODEL_DIR)
        self.card = read_card(self.folder)
        model = self.folder / MODEL_FILE
        tokenizer = Path(tokenizer_file or bundled_model_path() / "tokenizer.json")
        for path, key in ((model, MODEL_FILE), (tokenizer, "tokenizer.json")):
            expected = self.card["files"].get(key)
            if not path.is_file():
                raise ReaderError(f"Reader file {path} is missing. {FIX}")
            if sha256_file(path) != expected:
                raise ReaderError(f"Reader file {path} does not match the sha256 in its card (corrupted, or "
                                  f"another version). {FIX}")
        settings = self.card.get("settings", {})
        self.encoder = PairEncoder(tokenizer, int(settings.get("max_length", 128)),
                                   int(settings.get("max_question", 48)))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own types for a bad graph
            raise ReaderError(f"Reader file {model} cannot be loaded ({str(exc).splitlines()[0]}). {FIX}") from None
        calibration = self.card["calibration"]
        self._a = float(calibration.get("scale", 1.0))
        self._b = float(calibration.get("bias", 0.0))
        self._span_weight = float(calibration.get("span_weight", 0.0))
        self._first_stage_weight = float(calibration.get("first_stage_weight", 0.0))
        self._span_margin = float(calibration.get("span_margin", 0.0))
        self.context = bool(settings.get("context", False))  # reads each sentence with its title and the one before
        self._lock = threading.Lock()

    @property
    def identity(self) -> dict[str, Any]:
        """What `rag settings` and `rag index info` show about the reader."""
        data = self.card.get("data") if isinstance(self.card.get("data"), dict) else {}
        return {"name": self.card.get("name"), "sha256": self.card["files"].get(MODEL_FILE),
                "source_model": self.card.get("source_model"),
                "trained_on": [str(f.get("name")) for f in data.get("files", []) if isinstance(f, dict)],
                "training_articles": data.get("training_articles"), "test_articles": data.get("test_articles"),
                "device": self.card.get("device"),
                "validation": self.card.get("validation"), "calibration": self.card.get("calibration")}

    def confidence(self, logit: float, span_score: float = 0.0, first_stage: float = 0.0) -> float:
        """The calibrated probability that a candidate answers, from the reader's outputs and the candidate's
        first-stage evidence, combined as the card's calibration says."""
        score = logit + self._span_weight * span_score + self._first_stage_weight * first_stage
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, self._a * score + self._b))))

    def read(self, question: str, texts: Sequence[str], contexts: Sequence[tuple[str, str]] | None = None,
             first_stage: Sequence[float] | None = None) -> list[Reading]:
        """One reading per text, in order; `contexts` gives each text's (article title, previous sentence) and
        `first_stage` its first-stage evidence score."""
        if not texts:
            return []
        q = self.encoder.questions([question])[0]
        if self.context and contexts is None:
            contexts = [("", "")] * len(texts)
        encoded = self.encoder.encode([q] * len(texts), texts, contexts if self.context else None)
        arrays = self.encoder.batch(encoded)
        with self._lock:  # one run at a time: ONNX Runtime already uses every thread it was given
            start, end, logit = self._session.run(None, arrays)
        out = []
        for i, e in enumerate(encoded):
            score, s, t = best_span(e, start[i], end[i])
            span = (s, t) if score > self._span_margin and t > s else None
            fs = float(first_stage[i]) if first_stage is not None else 0.0
            out.append(Reading(float(logit[i]), self.confidence(float(logit[i]), float(score), fs), float(score),
                               span))
        return out
