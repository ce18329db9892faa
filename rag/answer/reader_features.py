"""(question, sentence) pairs as token ids, with each sentence token's exact character span in the original
sentence, so that an answer span the reader finds maps back to exact source offsets. Uses only the
`tokenizers` library: training and the ONNX runtime share it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..common.text import normalise, normalise_with_map


@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    type_ids: list[int]
    context_start: int  # index of the first sentence token
    spans: list[tuple[int, int]]  # character span in the original sentence of each sentence token


class PairEncoder:
    """Tokenises (question, sentence) pairs as `[CLS] question [SEP] sentence [SEP]`, or with context as
    `[CLS] question [SEP] title [SEP] previous sentence [SEP] sentence [SEP]` (the answer is looked for in the
    sentence only)."""

    max_title = 16
    max_previous = 32

    def __init__(self, tokenizer_file: Path | str, max_length: int = 128, max_question: int = 48) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.cls = self.tokenizer.token_to_id("[CLS]")
        self.sep = self.tokenizer.token_to_id("[SEP]")
        self.pad = self.tokenizer.token_to_id("[PAD]") or 0
        self.max_length = max_length
        self.max_question = max_question

    def questions(self, questions: Sequence[str]) -> list[list[int]]:
        return [e.ids[: self.max_question]
                for e in self.tokenizer.encode_batch([normalise(q) for q in questions], add_special_tokens=False)]

    def _ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch([normalise(t) for t in texts], add_special_tokens=False)]

    def encode(self, question_ids: Sequence[list[int]], texts: Sequence[str],
               contexts: Sequence[tuple[str, str]] | None = None) -> list[Encoded]:
        """One `Encoded` per (question ids, sentence) pair, with its (title, previous sentence) context when
        `contexts` is given; the context and then the sentence are cut to fit `max_length`."""
        normalised = [normalise_with_map(t) for t in texts]
        encodings = self.tokenizer.encode_batch([n for n, _ in normalised], add_special_tokens=False)
        if contexts is not None:
            titles = self._ids([c[0] for c in contexts])
            previous = self._ids([c[1] for c in contexts])
        out = []
        for i, (q, enc, (_norm, where)) in enumerate(zip(question_ids, encodings, normalised)):
            lead = [self.cls, *q, self.sep]
            if contexts is not None:
                title = titles[i][: self.max_title]
                before = previous[i][-self.max_previous:] if previous[i] else []
                lead += [*title, self.sep, *before, self.sep]
            room = max(1, self.max_length - len(lead) - 1)
            ids = enc.ids[:room]
            spans = [(where[s], where[e - 1] + 1) if e > s else (where[s] if s < len(where) else 0,) * 2
                     for s, e in enc.offsets[:room]]
            out.append(Encoded([*lead, *ids, self.sep], [0] * (len(q) + 2) + [1] * (len(lead) - len(q) - 2
                                                                                    + len(ids) + 1),
                               len(lead), spans))
        return out

    @staticmethod
    def span_mask(items: Sequence[Encoded], width: int) -> np.ndarray:
        """True where an answer may start or end: [CLS] (no answer) and the sentence's own tokens."""
        mask = np.zeros((len(items), width), dtype=bool)
        mask[:, 0] = True
        for i, e in enumerate(items):
            mask[i, e.context_start:e.context_start + len(e.spans)] = True
        return mask

    def batch(self, items: Sequence[Encoded]) -> dict[str, np.ndarray]:
        """Padded int64 arrays `input_ids`, `attention_mask`, `token_type_ids`."""
        width = max(len(e.ids) for e in items)
        ids = np.full((len(items), width), self.pad, dtype=np.int64)
        mask = np.zeros((len(items), width), dtype=np.int64)
        types = np.zeros((len(items), width), dtype=np.int64)
        for i, e in enumerate(items):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
            types[i, : len(e.type_ids)] = e.type_ids
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def token_span(e: Encoded, start: int, end: int) -> tuple[int, int] | None:
    """Token indexes (first, last) of the character span [start, end) of the sentence, or None when the span
    was cut off."""
    first = last = None
    for i, (s, t) in enumerate(e.spans):
        if t > start and s < end:
            if first is None:
                first = i
            last = i
    if first is None or last is None:
        return None
    return e.context_start + first, e.context_start + last


def best_span(e: Encoded, start_logits: np.ndarray, end_logits: np.ndarray, max_tokens: int = 30
              ) -> tuple[float, int, int]:
    """(score, character start, character end) of the best span inside the sentence, its score measured
    against the no-answer score (start and end on [CLS])."""
    lo, hi = e.context_start, e.context_start + len(e.spans)
    s = start_logits[lo:hi]
    t = end_logits[lo:hi]
    null = float(start_logits[0] + end_logits[0])
    best, bi, bj = -np.inf, 0, 0
    # running best start for each end within max_tokens: O(n * max_tokens), n <= max_length
    for j in range(len(t)):
        window = s[max(0, j - max_tokens + 1): j + 1]
        i = int(np.argmax(window)) + max(0, j - max_tokens + 1)
        score = float(s[i] + t[j])
        if score > best:
            best, bi, bj = score, i, j
    if not np.isfinite(best):
        return -np.inf, 0, 0
    return best - null, e.spans[bi][0], e.spans[bj][1]
