"""Token-aware chunking with langchain-text-splitters; every chunk is a verbatim slice of its source."""

from __future__ import annotations

import re
from typing import Callable, Iterator

from langchain_text_splitters import RecursiveCharacterTextSplitter

from .records import Chunk, Document

# Paragraphs first, then lines, sentences, clauses, words; the separator stays with the text before it.
SEPARATORS = ["\n\n", "\n", ". ", "? ", "! ", "… ", "; ", ": ", ", ", " ", ""]
_NONBLANK = re.compile(r"\S")


class Chunker:
    """Splits a document's indexed spans into chunks of at most `max_tokens` word pieces."""

    def __init__(self, count_tokens: Callable[[str], int], chunk_tokens: int, overlap_tokens: int,
                 max_tokens: int) -> None:
        self.count_tokens = count_tokens
        self.size = max(8, min(chunk_tokens, max_tokens))
        self.max_tokens = max_tokens
        self.overlap = max(0, min(overlap_tokens, self.size // 2))

    def _splitter(self, size: int, overlap: int) -> RecursiveCharacterTextSplitter:
        return RecursiveCharacterTextSplitter(
            chunk_size=size,
            chunk_overlap=min(overlap, size // 2),
            length_function=self.count_tokens,
            separators=SEPARATORS,
            keep_separator="end",
            strip_whitespace=True,
        )

    @staticmethod
    def _place(text: str, pieces: list[str], overlapping: bool) -> list[int] | None:
        """Offset of each piece in `text`: each after the one before, leaving no non-blank text uncovered.
        Without overlap a piece must start where the text resumes after the one before. None when the
        pieces cannot be placed so (a long repeated run makes the place of an overlapping piece ambiguous)."""
        offsets: list[int] = []
        cursor, reach = -1, 0
        for piece in pieces:
            if overlapping:
                found = text.find(piece, cursor + 1)
            else:
                resume = m.start() if (m := _NONBLANK.search(text, reach)) else len(text)
                found = resume if text.startswith(piece, resume) else -1
            if found < 0 or text[reach:found].strip():
                return None
            offsets.append(found)
            cursor, reach = found, max(reach, found + len(piece))
        return offsets if not text[reach:].strip() else None

    def _pieces(self, text: str, size: int) -> Iterator[tuple[int, str]]:
        """(offset, piece) of each chunk of `text`, re-splitting any piece over the limit."""
        pieces = self._splitter(size, self.overlap).split_text(text)
        offsets = self._place(text, pieces, overlapping=self.overlap > 0)
        if offsets is None:  # repeated text: split again without overlap, where every piece's place is certain
            pieces = self._splitter(size, 0).split_text(text)
            offsets = self._place(text, pieces, overlapping=False)
        if offsets is None:  # cannot happen with keep_separator="end"; kept as a guard on the contract
            raise AssertionError(f"chunks not found verbatim in their source: {text[:60]!r}")
        for found, piece in zip(offsets, pieces):
            if self.count_tokens(piece) > self.max_tokens and size > 8:
                for offset, sub in self._pieces(piece, size * 3 // 4):
                    yield found + offset, sub
            else:
                yield found, piece

    def chunk(self, doc: Document, source_text: str) -> list[Chunk]:
        """The chunks of `doc`, numbered `doc_id#0`, `doc_id#1`, ... in source order."""
        chunks: list[Chunk] = []
        for s, e in doc.spans:
            for offset, piece in self._pieces(source_text[s:e], self.size):
                start = s + offset
                chunks.append(Chunk(f"{doc.doc_id}#{len(chunks)}", doc.doc_id, start, start + len(piece), piece))
        return chunks
