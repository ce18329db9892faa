"""Hybrid retrieval: dense + BM25 fused (`score` and `rrf`), BM25 read from the index, near-duplicate
suppression, and the doc / date filters. Fast tests use the fake embedder; `slow` ones the real model."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import BUNDLED, DATA, FakeEmbedder, corpus_of, make_settings

import rag
from rag.answer.retrieval import fuse, near_duplicate
from rag.engine import Engine
from rag.index.folder_files import BM25_DIR, live_generation, read_manifest
from rag.index.lexical import Lexical

try:  # every test here runs against both stores: the folder index and the same archive in PostgreSQL
    from both_stores import bundled_in_both_stores, engine_in_both_stores  # noqa: F401 (the fixtures)
except ImportError:  # --import-mode=importlib
    from tests.both_stores import bundled_in_both_stores, engine_in_both_stores  # noqa: F401


WIRE = DATA / "query" / "wire.jsonl"
RECORDS = [json.loads(line) for line in WIRE.read_text(encoding="utf-8").splitlines() if line.strip()]
DATES = {r["id"]: r.get("date") for r in RECORDS}
TWINS = {"gazette-barrier", "courier-barrier"}  # share one paragraph verbatim (most of each article)
# a passage may be left out as a near-duplicate only when the passage that holds most of its text is shown
COVERED_BY = {"gazette-barrier": "courier-barrier", "courier-barrier": "gazette-barrier",
              "lock-brief": "canal-freight"}
SHARED = "The barrier's twelve steel gates can close in eleven minutes"
LOCK_SENTENCE = "Officials confirmed that the Ostrava Lock will close to barges for six weeks from 1 April for repairs."


def wire_corpus(root: Path) -> Path:
    return corpus_of(root, WIRE)


def tree_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, by relative path."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def source_of(settings: rag.Settings, hit: rag.Hit) -> str:
    return rag.source_text(settings.paths.corpus, hit.source, hit.chunk.doc_id)


@pytest.fixture(scope="module")
def fake_wire(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """The dated JSON Lines corpus indexed with the fake embedder."""
    root = tmp_path_factory.mktemp("fake-wire")
    settings = make_settings(wire_corpus(root), root / "index")
    embedder = FakeEmbedder()
    rag.build_index(settings, embedder=embedder)
    return Engine(settings, embedder=embedder)


@pytest.fixture(scope="module")
def wire(tmp_path_factory: pytest.TempPathFactory) -> rag.Settings:
    """The dated JSON Lines corpus indexed with the real model."""
    root = tmp_path_factory.mktemp("wire")
    settings = make_settings(wire_corpus(root), root / "index")
    rag.build_index(settings)
    return settings


# --- fusion, exact numbers ------------------------------------------------------------------------------

DENSE = {0: 0.9, 1: 0.5, 2: 0.1}
LEXICAL = {1: 10.0, 3: 4.0, 2: 2.0}


def test_score_fusion_min_max_normalises_each_list_and_mixes_them() -> None:
    fused = fuse(DENSE, LEXICAL, "score", 0.5, 60)
    # dense -> {0: 1, 1: .5, 2: 0}; lexical -> {1: 1, 3: .25, 2: 0}
    assert [c.row for c in fused] == [1, 0, 3, 2]
    assert [c.score for c in fused] == pytest.approx([0.75, 0.5, 0.125, 0.0])
    by_row = {c.row: c for c in fused}
    assert (by_row[0].dense, by_row[0].lexical) == (0.9, None)
    assert (by_row[3].dense, by_row[3].lexical) == (None, 4.0)
    assert (by_row[1].dense, by_row[1].lexical) == (0.5, 10.0)


def test_score_fusion_weight_one_is_dense_only_and_zero_is_lexical_only() -> None:
    assert [c.row for c in fuse(DENSE, LEXICAL, "score", 1.0, 60)][:3] == [0, 1, 2]
    assert [c.row for c in fuse(DENSE, LEXICAL, "score", 0.0, 60)][:2] == [1, 3]


def test_rrf_fusion_sums_reciprocal_ranks() -> None:
    fused = fuse(DENSE, LEXICAL, "rrf", 0.5, 60)
    assert [c.row for c in fused] == [1, 2, 0, 3]
    assert [c.score for c in fused] == pytest.approx([1 / 62 + 1 / 61, 2 / 63, 1 / 61, 1 / 62])
    # a small constant favours the first places: 1/1 for row 0 beats 1/3 + 1/3 for row 2
    assert [c.row for c in fuse(DENSE, LEXICAL, "rrf", 0.5, 0)] == [1, 0, 2, 3]


def test_fusion_of_empty_lists_and_ties_is_deterministic() -> None:
    assert fuse({}, {}, "score", 0.5, 60) == []
    assert [c.row for c in fuse({5: 0.3, 2: 0.3}, {}, "score", 0.5, 60)] == [2, 5]  # ties: lower row first
    assert [c.row for c in fuse({}, {7: 1.0, 4: 1.0}, "rrf", 0.5, 60)] == [7, 4]  # rank order of its list


# --- near-duplicates, unit ------------------------------------------------------------------------------

def test_near_duplicate_spans_of_one_article() -> None:
    none: set = set()
    assert near_duplicate(("a", 0, 100), ("a", 40, 140), none, none)  # 60 of 100 shared
    assert not near_duplicate(("a", 0, 100), ("a", 50, 150), none, none)  # exactly half is not "more"
    assert not near_duplicate(("a", 0, 100), ("b", 0, 100), none, none)  # same offsets, other article
    assert near_duplicate(("a", 0, 1000), ("a", 10, 60), none, none)  # a short chunk inside a long one


def test_near_duplicate_trigrams_are_measured_on_the_candidate() -> None:
    a = {("w", str(i), "x") for i in range(10)}
    assert near_duplicate(("a", 0, 1), ("b", 0, 1), a, set(list(a)[:6]))
    assert not near_duplicate(("a", 0, 1), ("b", 0, 1), a, set(list(a)[:5]))
    # a long candidate quoting a short passage already shown is not a duplicate of it
    short = set(list(a)[:3])
    assert not near_duplicate(("a", 0, 1), ("b", 0, 1), a, short)
    assert near_duplicate(("b", 0, 1), ("a", 0, 1), short, a)


# --- filters, k and bad input (fake embedder) -----------------------------------------------------------

def docs(hits: list[rag.Hit]) -> list[str]:
    return [h.chunk.doc_id for h in hits]


def test_every_hit_is_an_exact_span_with_its_article(fake_wire: Engine) -> None:
    hits = fake_wire.search("flood gates storm surges homes", 5)
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for h in hits:
        assert source_of(fake_wire.settings, h)[h.chunk.start:h.chunk.end] == h.chunk.text
        assert h.chunk.chunk_id.startswith(h.chunk.doc_id + "#")
        record = next(r for r in RECORDS if r["id"] == h.chunk.doc_id)
        assert h.title == record["title"]
        assert h.source == WIRE.name
        assert h.metadata.get("date") == record.get("date")


def test_doc_ids_restrict_the_results(fake_wire: Engine) -> None:
    hits = fake_wire.search("flood gates storm surges", 10, doc_ids=["velo-race", "rail-strike"])
    assert sorted(docs(hits)) == ["rail-strike", "velo-race"]
    assert docs(fake_wire.search("anything at all", 10, doc_ids=["cheese-festival"])) == ["cheese-festival"]
    with pytest.raises(rag.BadQuestion, match=r"The index holds no article with id 'no-such-article'\. List the "
                                               r"ids with: rag corpus list"):
        fake_wire.search("flood gates", 10, doc_ids=["rail-strike", "no-such-article"])


def test_a_filter_that_matches_nothing_abstains_without_passages(fake_wire: Engine) -> None:
    answer = fake_wire.ask("How many homes will the barrier protect?", since="2030")
    assert answer.abstained and answer.citations == () and answer.passages == ()


@pytest.mark.parametrize(("since", "until", "expected"), [
    ("2025", None, {"library-reopens", "rail-strike", "lock-brief", "canal-freight"}),
    (None, "2024-03", {"velo-race", "gazette-barrier", "courier-barrier"}),
    ("2024-03-06", "2024-11-02", {"courier-barrier", "cheese-festival"}),
    ("2024-03-05", "2024-03-05", {"gazette-barrier"}),
    ("2024", "2024", {"gazette-barrier", "courier-barrier", "cheese-festival"}),
    ("2026", None, set()),
])
def test_since_and_until_restrict_by_article_date(fake_wire: Engine, since: str | None, until: str | None,
                                                  expected: set[str]) -> None:
    found = set(docs(fake_wire.search("news from the coast and the valley", 20, since=since, until=until)))
    assert found <= expected
    for missing in expected - found:
        assert COVERED_BY.get(missing) in found, (missing, found)
    assert not TWINS <= found
    assert "undated-dunes" not in found


def test_filters_combine(fake_wire: Engine) -> None:
    hits = fake_wire.search("trains barges cargo", 20, doc_ids=["rail-strike", "velo-race", "lock-brief"],
                            since="2025")
    assert sorted(docs(hits)) == ["lock-brief", "rail-strike"]


def test_no_filter_includes_undated_articles(fake_wire: Engine) -> None:
    assert "undated-dunes" in docs(fake_wire.search("marram grass dunes erosion", 3))


@pytest.mark.parametrize("bad", ["2024-13", "2024-02-30", "2024-1-5", "March 2024", "soon", "2024/03/05",
                                 "20240305", "2024-03-05junk", "２０２４"])
def test_a_bad_date_is_refused(fake_wire: Engine, bad: str) -> None:
    with pytest.raises(rag.BadQuestion, match="YYYY-MM-DD") as since:
        fake_wire.search("gates", 3, since=bad)
    assert repr(bad) in str(since.value)
    with pytest.raises(rag.BadQuestion, match="until"):
        fake_wire.ask("How many homes will the barrier protect?", until=bad)


def test_blank_dates_mean_no_filter(fake_wire: Engine) -> None:
    assert docs(fake_wire.search("marram grass dunes", 1, since="", until="  ")) == ["undated-dunes"]


@pytest.mark.parametrize("k", [0, -1, -100, True, 2.5, "3"])
def test_k_must_be_a_positive_whole_number(fake_wire: Engine, k: object) -> None:
    with pytest.raises(rag.BadQuestion, match="k must be a whole number of at least 1"):
        fake_wire.search("gates", k)  # type: ignore[arg-type]
    with pytest.raises(rag.BadQuestion, match="k must be"):
        fake_wire.ask("gates", k)  # type: ignore[arg-type]


def test_a_huge_k_is_clipped_to_max_k(fake_wire: Engine) -> None:
    settings = fake_wire.settings.update("retrieval", max_k=3)
    engine = Engine(settings, embedder=fake_wire.embedder)
    assert len(engine.search("news", 10 ** 9)) == 3
    assert fake_wire.search("news", 10 ** 9) == fake_wire.search("news", fake_wire.settings.retrieval.max_k)


@pytest.mark.parametrize("question", ["", "   ", "\n\t \r\n", "\x00\x01\x1b\x7f", None, 42])
def test_an_empty_or_non_text_question_is_refused(fake_wire: Engine, question: object) -> None:
    with pytest.raises(rag.BadQuestion):
        fake_wire.search(question, 3)  # type: ignore[arg-type]
    with pytest.raises(rag.BadQuestion):
        fake_wire.ask(question)  # type: ignore[arg-type]


def test_a_very_long_question_is_refused_with_its_length(fake_wire: Engine) -> None:
    with pytest.raises(rag.BadQuestion, match=r"100,000 characters long; the limit is 2,000"):
        fake_wire.ask("x" * 100_000)


def test_control_characters_are_removed_and_odd_scripts_are_answered(fake_wire: Engine) -> None:
    answer = fake_wire.ask("How many\x00 homes\x1b[31m will the\tbarrier\x07 protect?")
    assert answer.question == "How many homes [31m will the barrier protect?"
    for text in ("ما هو عدد المنازل التي يحميها الحاجز؟", "🌊🚧 barrier gates? 🏠🏠", "שלום \u202e gates \u202c"):
        result = fake_wire.ask(text)
        assert result.passages  # sane: the closest passages, no crash
        assert result.abstained or all(c.quote for c in result.citations)


def test_queries_leave_the_index_untouched(fake_wire: Engine) -> None:
    before = tree_hashes(fake_wire.settings.paths.index)
    fake_wire.search("gates", 5, since="2024")
    fake_wire.ask("How many homes will the barrier protect?", doc_ids=["gazette-barrier"])
    with pytest.raises(rag.BadQuestion):
        fake_wire.ask("", 3)
    assert tree_hashes(fake_wire.settings.paths.index) == before


def test_a_missing_index_is_reported(tmp_path: Path) -> None:
    settings = make_settings(wire_corpus(tmp_path), tmp_path / "no-index")
    with pytest.raises(rag.IndexMissing, match="rag index build"):
        Engine(settings, embedder=FakeEmbedder())
    assert not (tmp_path / "no-index").exists()


def test_the_public_api_reports_a_missing_index_without_loading_the_model(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import rag.index.encoders

    def no_model(*_a: object, **_k: object) -> None:
        raise AssertionError("the model was loaded for an index that does not exist")

    monkeypatch.setattr(rag.index.encoders, "_CACHE", {})
    monkeypatch.setattr(rag.index.encoders, "_create", no_model)
    for call in (rag.search, rag.ask):
        with pytest.raises(rag.IndexMissing, match=r"No index yet in .*nowhere\. Build one with: rag index build"):
            call("gates", index=tmp_path / "nowhere")  # type: ignore[operator]
    assert not (tmp_path / "nowhere").exists()


def test_overlapping_chunks_of_one_article_are_shown_once(tmp_path: Path) -> None:
    settings = make_settings(corpus_of(tmp_path, BUNDLED), tmp_path / "index",
                             chunking={"chunk_tokens": 64, "overlap_tokens": 32})
    embedder = FakeEmbedder()
    report = rag.build_index(settings, embedder=embedder)
    engine = Engine(settings, embedder=embedder)
    chunks = [c for _, (c, _) in sorted(engine.generation.chunks(list(range(report.chunks))).items())]
    pairs = [(a, b) for a, b in zip(chunks, chunks[1:]) if a.doc_id == b.doc_id
             and min(a.end, b.end) - max(a.start, b.start) > 0.5 * min(a.end - a.start, b.end - b.start)]
    assert pairs, "the small overlapping chunks should give some pairs that share most of their text"
    for a, b in pairs:
        shared = a.text[max(a.start, b.start) - a.start:min(a.end, b.end) - a.start]
        ids = [h.chunk.chunk_id for h in engine.search(shared, 10)]
        assert not (a.chunk_id in ids and b.chunk_id in ids), (a.chunk_id, b.chunk_id, ids)
        assert a.chunk_id in ids or b.chunk_id in ids  # the text itself is still found


# --- the real model ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_hybrid_hits_carry_dense_and_lexical_scores(engine: Engine, bundled_index: rag.Settings) -> None:
    hits = engine.search("Crocus Expo Center drone exhibition", 5)
    assert len(hits) == 5
    assert "Crocus Expo Center" in hits[0].chunk.text
    assert hits[0].dense is not None and hits[0].lexical is not None and hits[0].lexical > 0
    assert all(h.dense is not None for h in hits)  # dense candidates cover this small archive
    for h in hits:
        assert Path(bundled_index.paths.corpus, h.source).read_text(encoding="utf-8")[h.chunk.start:h.chunk.end] \
            == h.chunk.text
        assert h.metadata == {"category": "Russia"}
    assert hits[0].score == pytest.approx(1.0)  # score fusion: the best of both lists, normalised
    assert all(0.0 <= h.score <= 1.0 for h in hits)


@pytest.mark.slow
def test_dense_weight_moves_the_ranking_between_the_two_retrievers(engine: Engine,
                                                                    bundled_index: rag.Settings) -> None:
    query = "Kiev military fatalities repatriated remains"
    dense_only = rag.get_engine(bundled_index.update("retrieval", dense_weight=1.0)).search(query, 5)
    lexical_only = rag.get_engine(bundled_index.update("retrieval", dense_weight=0.0)).search(query, 5)
    assert [h.dense for h in dense_only] == sorted((h.dense for h in dense_only), reverse=True)
    assert all(h.lexical is not None for h in lexical_only)
    assert [h.lexical for h in lexical_only] == sorted((h.lexical for h in lexical_only), reverse=True)
    assert [h.chunk.chunk_id for h in dense_only] != [h.chunk.chunk_id for h in lexical_only]


@pytest.mark.slow
def test_rrf_fusion_is_a_setting_with_its_own_engine(engine: Engine, bundled_index: rag.Settings) -> None:
    rrf = bundled_index.update("retrieval", fusion="rrf")
    assert rrf != bundled_index and rrf.retrieval.fusion == "rrf"
    rrf_engine = rag.get_engine(rrf)
    assert rrf_engine is not engine and rrf_engine is rag.get_engine(rrf)
    assert rrf_engine.embedder is engine.embedder  # one model per process
    query = "Crocus Expo Center drone exhibition"
    fused = rrf_engine.search(query, 5)
    assert "Crocus Expo Center" in fused[0].chunk.text
    k = rrf.retrieval.rrf_k
    assert all(0 < h.score <= 2 / (k + 1) for h in fused)
    assert fused[0].score == pytest.approx(2 / (k + 1))  # first in both lists
    assert [h.score for h in engine.search(query, 5)] != [h.score for h in fused]
    via_api = rag.search(query, 3, settings=rrf)
    assert [h.chunk.chunk_id for h in via_api] == [h.chunk.chunk_id for h in fused[:3]]
    answer = rag.ask("Which venue near Moscow hosted the aviation exhibition?", settings=rrf)
    assert not answer.abstained and "Crocus Expo" in answer.text


@pytest.mark.slow
def test_bm25_is_loaded_from_the_index_not_rebuilt(bundled_folder: rag.Settings,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    gen = live_generation(bundled_folder.paths.index)
    assert (gen / BM25_DIR).is_dir()
    assert any(name.startswith(BM25_DIR + "/") for name in read_manifest(gen).files)
    loads = []
    real_load = Lexical.load.__func__  # type: ignore[attr-defined]

    def counting_load(cls: type[Lexical], folder: Path) -> Lexical:
        loads.append(Path(folder))
        return real_load(cls, folder)

    def no_build(*_a: object, **_k: object) -> Lexical:
        raise AssertionError("BM25 was rebuilt at query time")

    monkeypatch.setattr(Lexical, "load", classmethod(counting_load))
    monkeypatch.setattr(Lexical, "build", classmethod(no_build))
    fresh = Engine(bundled_folder)
    for query in ("nuclear treaty", "Crocus Expo", "Zelensky poll trust", "zzqx-unknown-term"):
        assert fresh.search(query, 3)
    fresh.ask("What does the New START treaty limit?")
    assert loads == [gen / BM25_DIR]


@pytest.mark.slow
def test_an_unknown_word_falls_back_to_dense_only(engine: Engine) -> None:
    hits = engine.search("qwxzyv", 3)
    assert len(hits) == 3 and all(h.lexical is None and h.dense is not None for h in hits)


@pytest.mark.slow
@pytest.mark.parametrize("query", [
    "How quickly can the barrier's steel gates close?",
    "Where were the hydraulic hinges tested?",
    "flood gates control room customs house",
    "How many homes will the barrier protect from storm surges?",
])
def test_a_syndicated_paragraph_is_shown_once(wire: rag.Settings, query: str) -> None:
    hits = rag.get_engine(wire).search(query, 5)
    assert len(hits) == 5
    assert sum(SHARED in h.chunk.text for h in hits) == 1, docs(hits)
    assert len(set(docs(hits))) == 5
    assert len(set(docs(hits)) & TWINS) == 1
    texts = [h.chunk.text for h in hits]
    for i, a in enumerate(texts):  # no sentence of one hit is repeated in another
        for b in texts[i + 1:]:
            assert not {s for s in a.split(". ") if len(s) > 30} & {s for s in b.split(". ") if len(s) > 30}


@pytest.mark.slow
def test_a_passage_quoting_a_shorter_one_is_not_suppressed(wire: rag.Settings) -> None:
    hits = rag.get_engine(wire).search("When will the Ostrava Lock close to barges?", 3)
    found = docs(hits)
    assert "canal-freight" in found and "lock-brief" in found, found
    assert sum(LOCK_SENTENCE in h.chunk.text for h in hits) == 2  # the longer article adds much more


@pytest.mark.slow
def test_syndicated_answer_quotes_the_shared_sentence_once(wire: rag.Settings) -> None:
    answer = rag.get_engine(wire).ask("How many homes will the barrier protect?")
    assert not answer.abstained
    quotes = [c.quote for c in answer.citations]
    assert len(quotes) == len(set(quotes))
    assert "4,200" in answer.text
    assert answer.citations[0].doc_id in TWINS
