"""The reader interface: a model that reads a question against candidate sentences and judges whether and
where each one answers it. `readers.load_reader` picks the one `answer.reader` names; the shipped one is an
int8 ONNX graph (`reader_onnx`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence


@dataclass(frozen=True)
class Reading:
    """The reader's verdict on one (question, sentence) pair."""

    logit: float  # answer head: does this sentence answer the question
    confidence: float  # calibrated probability that it does
    span_score: float  # best answer span against the no-answer position
    span: tuple[int, int] | None  # the answer span's character offsets in the sentence, when one stands out


class Reader(Protocol):
    """Judges candidate sentences for a question; thread-safe."""

    folder: Path

    @property
    def identity(self) -> dict[str, Any]:
        """What `rag reader info`, `rag settings` and `rag index info` show: name, sha256, data, figures."""
        ...

    def read(self, question: str, texts: Sequence[str], contexts: Sequence[tuple[str, str]] | None = None,
             first_stage: Sequence[float] | None = None) -> list[Reading]:
        """One reading per text, in order; `contexts` gives each text's (article title, previous sentence) and
        `first_stage` its first-stage evidence score."""
        ...
