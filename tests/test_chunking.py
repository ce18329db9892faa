"""Chunking measured with the real tokenizer of the bundled model: the limit, the overlap, sentence boundaries,
exact offsets and full coverage, on the bundled archive and on pathological articles."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from conftest import BUNDLED, FakeEmbedder

import rag
from rag.index.chunking import Chunker
from rag.index.encoders import load_embedder
from rag.records import Chunk, Document
from rag.settings import ChunkingSettings, EmbeddingSettings

SENTENCE_END = re.compile(r"[.!?…][\"”’)]*$")
DEFAULTS = ChunkingSettings()


@pytest.fixture(scope="module")
def embedder():
    return load_embedder(EmbeddingSettings())


@pytest.fixture(scope="module")
def bundled() -> list[rag.Article]:
    return list(rag.iter_articles(BUNDLED.parent))


def chunker(emb, chunk_tokens: int = DEFAULTS.chunk_tokens, overlap_tokens: int = DEFAULTS.overlap_tokens) -> Chunker:
    return Chunker(emb.tokenize, chunk_tokens, overlap_tokens, emb.max_tokens)


def whole(text: str, doc_id: str = "doc") -> Document:
    return Document(doc_id, doc_id, "x.txt", 0, len(text), ((0, len(text)),))


def check_exact_and_covering(doc: Document, text: str, chunks: list[Chunk]) -> None:
    """Every chunk is the verbatim slice its offsets name, lies in one span, and together they leave no
    non-blank character of any span uncovered; ids run doc_id#0, #1, ... in source order."""
    assert [c.chunk_id for c in chunks] == [f"{doc.doc_id}#{i}" for i in range(len(chunks))]
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)
    for c in chunks:
        assert c.doc_id == doc.doc_id
        assert text[c.start:c.end] == c.text and c.text == c.text.strip() and c.text
        assert any(s <= c.start and c.end <= e for s, e in doc.spans), c.chunk_id
    for s, e in doc.spans:
        cursor = s
        for c in (c for c in chunks if s <= c.start < e):
            assert not text[cursor:c.start].strip(), f"uncovered text: {text[cursor:c.start][:80]!r}"
            cursor = max(cursor, c.end)
        assert not text[cursor:e].strip(), f"uncovered text: {text[cursor:e][:80]!r}"


def overlaps(text: str, chunks: list[Chunk], count) -> list[int]:
    """Word pieces shared by each pair of neighbouring chunks (0 where they do not overlap)."""
    return [count(text[b.start:a.end]) if b.start < a.end else 0 for a, b in zip(chunks, chunks[1:])]


def random_words(n: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 11))) for _ in range(900)]
    return " ".join(rng.choice(vocab) for _ in range(n))


# --- with the real tokenizer ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_bundled_model_reads_254_word_pieces(embedder) -> None:
    assert embedder.max_tokens == 254
    assert chunker(embedder).size == 200 and chunker(embedder).overlap == 32
    assert chunker(embedder, 5000, 400).size == 254  # capped at what the model reads
    assert embedder.count_tokens("Kiev\u00a0“bubble”") == embedder.count_tokens('Kiev "bubble"')


@pytest.mark.slow
def test_bundled_chunks_fit_are_exact_and_end_on_sentences(embedder, bundled) -> None:
    ch = chunker(embedder)
    all_chunks = []
    for article in bundled:
        chunks = ch.chunk(article.document, article.source_text)
        check_exact_and_covering(article.document, article.source_text, chunks)
        assert max(embedder.count_tokens(c.text) for c in chunks) <= embedder.max_tokens
        all_chunks += chunks
    assert len(all_chunks) >= 30
    ends = sum(bool(SENTENCE_END.search(c.text)) for c in all_chunks)
    assert ends >= 0.9 * len(all_chunks), [c.text[-40:] for c in all_chunks if not SENTENCE_END.search(c.text)]


@pytest.mark.slow
def test_long_prose_paragraphs_are_cut_at_sentence_ends(embedder, bundled) -> None:
    # every article of the bundled archive as one huge paragraph: the splitter must fall back to sentences
    text = "\n\n".join(" ".join(a.source_text[s:e].replace("\n", " ") for s, e in a.document.spans)
                       for a in bundled)
    doc = whole(text)
    chunks = chunker(embedder).chunk(doc, text)
    check_exact_and_covering(doc, text, chunks)
    counts = [embedder.count_tokens(c.text) for c in chunks]
    assert max(counts) <= embedder.max_tokens
    assert sum(counts) / len(counts) > 120  # chunks are filled, not cut into slivers
    ends = sum(bool(SENTENCE_END.search(c.text)) for c in chunks)
    assert ends >= 0.9 * len(chunks)
    assert all(0 <= n <= DEFAULTS.overlap_tokens + 2 for n in overlaps(text, chunks, embedder.count_tokens))


@pytest.mark.slow
def test_five_thousand_words_without_punctuation(embedder) -> None:
    text = "A pathological article\n\n" + random_words(5000)
    doc = whole(text)
    chunks = chunker(embedder).chunk(doc, text)
    check_exact_and_covering(doc, text, chunks)
    counts = [embedder.count_tokens(c.text) for c in chunks]
    assert max(counts) <= embedder.max_tokens
    assert max(counts) <= DEFAULTS.chunk_tokens
    body = chunks[1:]  # chunks[0] is the short title paragraph
    assert embedder.count_tokens(text) / DEFAULTS.chunk_tokens < len(body) < 2 * embedder.count_tokens(text) / 150
    shared = overlaps(text, body, embedder.count_tokens)
    assert all(DEFAULTS.overlap_tokens // 2 <= n <= DEFAULTS.overlap_tokens for n in shared), shared


@pytest.mark.slow
@pytest.mark.parametrize("chunk_tokens,overlap_tokens", [(100, 20), (254, 0), (400, 64)])
def test_overlap_setting_is_honoured(embedder, chunk_tokens: int, overlap_tokens: int) -> None:
    text = random_words(2500, seed=chunk_tokens)
    doc = whole(text)
    ch = chunker(embedder, chunk_tokens, overlap_tokens)
    chunks = ch.chunk(doc, text)
    check_exact_and_covering(doc, text, chunks)
    assert max(embedder.count_tokens(c.text) for c in chunks) <= min(chunk_tokens, embedder.max_tokens)
    shared = overlaps(text, chunks, embedder.count_tokens)
    if overlap_tokens == 0:
        assert set(shared) == {0}
    else:
        assert all(overlap_tokens // 2 <= n <= overlap_tokens for n in shared), shared


@pytest.mark.slow
def test_very_long_url_like_token(embedder) -> None:
    rng = random.Random(3)
    url = "https://news.example.org/archive/" + "/".join(
        f"{rng.randrange(10**6)}-{random_words(1, seed=i)}" for i in range(300)) + "?utm=" + "%2F".join(
        str(rng.randrange(10**9)) for _ in range(150))
    assert len(url) > 5_000 and " " not in url
    text = f"Headline about a link\n\nThe source is {url} as cited."
    doc = whole(text)
    chunks = chunker(embedder).chunk(doc, text)
    check_exact_and_covering(doc, text, chunks)
    assert max(embedder.count_tokens(c.text) for c in chunks) <= embedder.max_tokens
    assert len(chunks) > embedder.count_tokens(url) / embedder.max_tokens


@pytest.mark.slow
@pytest.mark.parametrize("text", [
    "word " * 5000,
    "ha" * 3000,
    ("The same sentence again. " * 800).strip(),
    "Intro line.\n\n" + "x" * 3000 + "\n\nThe end.",
], ids=["same-word", "same-syllable", "same-sentence", "long-run-between-text"])
def test_repeated_text_is_fully_covered(embedder, text: str) -> None:
    # identical pieces cannot be told apart by searching for them: every offset must still be right
    doc = Document("rep", "rep", "x.txt", 0, len(text), ((0, len(text.rstrip())),))
    chunks = chunker(embedder).chunk(doc, text)
    check_exact_and_covering(doc, text, chunks)
    assert max(embedder.count_tokens(c.text) for c in chunks) <= embedder.max_tokens
    assert all(a.start < b.start for a, b in zip(chunks, chunks[1:]))


# --- the same contract with the fast fake tokenizer ------------------------------------------------------------

def test_chunks_never_cross_an_excluded_block(bundled) -> None:
    fake = FakeEmbedder()
    ch = Chunker(fake.tokenize, 40, 8, fake.max_tokens)  # small chunks: many cuts near the gaps
    raw = bundled[0].source_text
    for article in bundled:
        doc = article.document
        chunks = ch.chunk(doc, raw)
        check_exact_and_covering(doc, raw, chunks)
        for c in chunks:
            assert "Read more" not in c.text and "READ MORE" not in c.text
            assert max(fake.count_tokens(c.text) for c in chunks) <= 40


def test_chunking_keeps_nbsp_and_crlf_in_chunk_text() -> None:
    corpus = Path(__file__).resolve().parent / "data" / "corpus"
    fake = FakeEmbedder()
    ch = Chunker(fake.tokenize, 20, 4, fake.max_tokens)
    for article in rag.iter_articles(corpus, warn=lambda _m: None):
        chunks = ch.chunk(article.document, article.source_text)
        check_exact_and_covering(article.document, article.source_text, chunks)
    text = (corpus / "archive_crlf.txt").read_bytes().decode("utf-8")
    art = next(a for a in rag.iter_articles(corpus, warn=lambda _m: None) if a.document.source == "archive_crlf.txt")
    joined = "".join(c.text for c in Chunker(fake.tokenize, 500, 0, 500).chunk(art.document, text))
    assert "\u00a0" in joined and "\r\n" in joined and "“" in joined
