"""Token-aware chunking: every chunk is a verbatim slice of its source and holds at most `size` word pieces.

Each indexed span is tokenized once, with the character span of every word piece; every length the splitter
needs is then a count of pieces between two offsets, and each chunk's word pieces (what the encoder reads)
are a slice of the span's. The splitting follows langchain's RecursiveCharacterTextSplitter (separators from
paragraphs down to words, each separator kept at the end of the text before it, whitespace stripped from
chunk ends, neighbouring chunks sharing up to `overlap` pieces); a run with no separator left is cut between
word pieces."""

from __future__ import annotations

from typing import Callable, Sequence

from ..records import Chunk, Document
from .encoder import Tokens

# Paragraphs first, then lines, sentences, clauses, words; the separator stays with the text before it.
SEPARATORS = ["\n\n", "\n", ". ", "? ", "! ", "… ", "; ", ": ", ", ", " ", ""]

Range = tuple[int, int]


class Chunker:
    """Splits a document's indexed spans into chunks of at most `size` word pieces."""

    def __init__(self, tokenize: Callable[[str], Tokens], chunk_tokens: int, overlap_tokens: int,
                 max_tokens: int) -> None:
        self.tokenize = tokenize
        self.size = max(8, min(chunk_tokens, max_tokens))
        self.max_tokens = max_tokens
        self.overlap = max(0, min(overlap_tokens, self.size // 2))

    def chunk(self, doc: Document, source_text: str) -> list[Chunk]:
        """The chunks of `doc`, numbered `doc_id#0`, `doc_id#1`, ... in source order."""
        return [chunk for chunk, _tokens in self.chunk_tokens(doc, source_text)]

    def chunk_tokens(self, doc: Document, source_text: str,
                     span_tokens: Sequence[Tokens] | None = None) -> list[tuple[Chunk, Tokens]]:
        """The chunks of `doc` with their word pieces (offsets into `source_text`). `span_tokens`, the word
        pieces of each of the document's spans, saves tokenizing them again."""
        out: list[tuple[Chunk, Tokens]] = []
        for n, (s, e) in enumerate(doc.spans):
            tokens = span_tokens[n] if span_tokens is not None else self.tokenize(source_text[s:e]).shifted(s)
            for a, b in _Split(source_text, tokens, self.size, self.overlap).split(s, e, SEPARATORS):
                out.append((Chunk(f"{doc.doc_id}#{len(out)}", doc.doc_id, a, b, source_text[a:b]),
                            tokens.between(a, b)))
        return out


class _Split:
    """One span's recursive split, in offsets of `text`."""

    def __init__(self, text: str, tokens: Tokens, size: int, overlap: int) -> None:
        self.text, self.tokens, self.size, self.overlap = text, tokens, size, overlap

    def count(self, r: Range) -> int:
        return self.tokens.count(*r)

    def split(self, lo: int, hi: int, separators: list[str]) -> list[Range]:
        separator, rest = separators[-1], []
        for i, sep in enumerate(separators):
            if not sep or self.text.find(sep, lo, hi) >= 0:
                separator, rest = sep, separators[i + 1:]
                break
        pieces = self._pieces(lo, hi, separator)
        chunks: list[Range] = []
        good: list[Range] = []
        for piece in pieces:
            if self.count(piece) < self.size:
                good.append(piece)
                continue
            if good:
                chunks += self._merge(good)
                good = []
            if rest:
                chunks += self.split(*piece, rest)
            else:  # one word piece longer than a chunk: cannot happen (size >= 8); kept whole rather than lost
                chunks += [r for r in [self._strip(piece)] if r]
        if good:
            chunks += self._merge(good)
        return chunks

    def _pieces(self, lo: int, hi: int, separator: str) -> list[Range]:
        """`[lo, hi)` cut after each occurrence of `separator`, or between word pieces when it is empty."""
        if separator:
            cuts, at = [], self.text.find(separator, lo, hi)
            while at >= 0:
                cuts.append(at + len(separator))
                at = self.text.find(separator, at + len(separator), hi)
        else:
            first, last = self.tokens.index_range(lo, hi)
            cuts = [int(x) for x in self.tokens.starts[first + 1:last]]
        bounds = [lo] + [c for c in cuts if lo < c < hi] + [hi]
        return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]

    def _strip(self, r: Range) -> Range | None:
        piece = self.text[r[0]:r[1]]
        stripped = piece.strip()
        if not stripped:
            return None
        start = r[0] + len(piece) - len(piece.lstrip())
        return start, start + len(stripped)

    def _merge(self, splits: list[Range]) -> list[Range]:
        """Neighbouring pieces joined into chunks of at most `size` word pieces, each chunk starting with up to
        `overlap` pieces' worth of the end of the one before."""
        chunks: list[Range] = []
        current: list[Range] = []
        counts: list[int] = []
        total = 0
        for piece in splits:
            n = self.count(piece)
            if total + n > self.size and current:
                chunk = self._strip((current[0][0], current[-1][1]))
                if chunk:
                    chunks.append(chunk)
                while total > self.overlap or (total + n > self.size and total > 0):
                    total -= counts.pop(0)
                    current.pop(0)
            current.append(piece)
            counts.append(n)
            total += n
        if current:
            chunk = self._strip((current[0][0], current[-1][1]))
            if chunk:
                chunks.append(chunk)
        return chunks
