"""Under load: one engine shared by many threads gives the serial answers, with no errors, while an
incremental rebuild runs beside it and is swapped in mid-run.

32 threads x 25 questions by default; RAG_LOAD_FULL=1 runs the issue's full 32 x 200 (a few minutes on two
cores). Read at import: the autouse fixture clears RAG_* variables before each test."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from conftest import BUNDLED

import rag
from rag.index.folder_files import live_generation
from rag.ingest.sentences import sentence_spans

pytestmark = pytest.mark.slow

FULL = os.environ.get("RAG_LOAD_FULL") == "1"
THREADS = 32
PER_THREAD = 200 if FULL else 25

QUESTIONS = [
    "How many military fatalities has Kiev recorded since February 2022?",
    "Which venue near Moscow hosted the aviation and drone exhibition?",
    "What share of Ukraine's soldiers fight of their own free will?",
    "How many sets of Ukrainian remains were returned?",
    "What does the New START treaty limit?",
    "Which institute carried out the poll about trust in Zelensky?",
    "Who warned about foreign troops in Ukraine?",
    "Where are Russia, the US and Ukraine holding trilateral talks?",
    "Who is the prime minister of Japan?",
    "What is the boiling point of water at sea level?",
    "How do I bake sourdough bread?",
]
NEW_ARTICLE = """Volcano erupts on Isla Ceniza, forcing two fishing villages to evacuate by boat

The volcano on the northern tip of Isla Ceniza erupted before dawn on Friday, sending ash four kilometres into the sky.

About 900 people left the villages of Ponta and Serra by boat, and no injuries were reported.
"""
NEW_QUESTION = "How many people left Ponta and Serra after the eruption on Isla Ceniza?"

Signature = tuple[str, bool, tuple[tuple[int, str, str, int, int, str], ...]]


def signature(answer: rag.Answer) -> Signature:
    """What must not change: the text, the abstention and every citation."""
    return answer.text, answer.abstained, tuple((c.n, c.doc_id, c.chunk_id, c.start, c.end, c.quote)
                                                for c in answer.citations)


def test_threads_share_one_engine_through_a_rebuild(bundled_index: rag.Settings, tmp_path: Path) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(bundled_index.paths.corpus, corpus)
    shutil.copytree(bundled_index.paths.index, index)
    settings = bundled_index.with_paths(corpus, index)
    engine = rag.get_engine(settings)
    old = engine.generation.path.name
    old_chunks = engine.generation.manifest.counts.chunks
    serial = {q: signature(engine.ask(q)) for q in QUESTIONS}
    assert sum(not s[1] for s in serial.values()) >= 6  # mostly answered: citations get compared too

    total = THREADS * PER_THREAD
    halfway = PER_THREAD // 2
    lock = threading.Lock()
    done = [0]
    start_build, swapped = threading.Event(), threading.Event()
    results: list[list[tuple[int, str, str, Signature]]] = [[] for _ in range(THREADS)]
    errors: list[str] = []
    built: dict[str, object] = {}
    barrier = threading.Barrier(THREADS + 1)

    def worker(t: int) -> None:
        try:
            barrier.wait()
            for i in range(PER_THREAD):
                if i == halfway and not swapped.wait(timeout=300):
                    raise TimeoutError("the rebuild did not finish")
                question = QUESTIONS[(t * 7 + i) % len(QUESTIONS)]
                seen = engine.generation.path.name
                results[t].append((i, question, seen, signature(engine.ask(question))))
                with lock:
                    done[0] += 1
                    if done[0] == total // 4:
                        start_build.set()
        except BaseException as exc:  # noqa: BLE001 - every failure is reported by the test
            errors.append(f"thread {t}: {type(exc).__name__}: {exc}")
            start_build.set()
            swapped.set()

    def builder() -> None:
        try:
            barrier.wait()
            start_build.wait(timeout=300)
            (corpus / "zz_isla_ceniza.txt").write_text(NEW_ARTICLE, encoding="utf-8")
            built["report"] = rag.build_index(settings)
            time.sleep(1.1)  # past the engine's once-a-second look at CURRENT: the next ask switches ...
            engine.generation  # noqa: B018 - ... and this one does, before the workers go on (a worker that
            # reached the switch first would open the new generation while others still got the old one)
        except BaseException as exc:  # noqa: BLE001
            errors.append(f"builder: {type(exc).__name__}: {exc}")
        finally:
            swapped.set()

    threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(THREADS)]
    threads.append(threading.Thread(target=builder, daemon=True))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=540)
    assert not any(thread.is_alive() for thread in threads), "threads still running"
    assert errors == []

    report = built["report"]
    assert isinstance(report, rag.BuildReport)
    assert (report.added, report.changed, report.removed) == (1, 0, 0)
    assert report.chunks_reused == old_chunks and report.chunks_embedded >= 1  # incremental
    new = live_generation(index).name
    assert new != old and Path(report.index).name == new

    asks = [row for rows in results for row in rows]
    assert len(asks) == total
    for _i, question, _seen, sig in asks:
        assert sig == serial[question], question
    before = {seen for i, _q, seen, _s in asks if i < halfway}
    after = {seen for i, _q, seen, _s in asks if i >= halfway}
    assert old in before
    assert after == {new}, "the engine did not follow the rebuild"
    assert engine.generation.path.name == new

    answer = engine.ask(NEW_QUESTION)
    assert not answer.abstained and "900" in answer.text
    assert answer.citations[0].source == "zz_isla_ceniza.txt"
    text = (corpus / "zz_isla_ceniza.txt").read_text(encoding="utf-8")
    assert all(text[c.start:c.end] == c.quote for c in answer.citations)


def test_sentence_spans_are_thread_safe() -> None:
    """pysbd keeps the text it is segmenting on the segmenter: threads (model-reply checks, a build beside
    them) must not share one."""
    paragraphs = [p for p in BUNDLED.read_text(encoding="utf-8").split("\n\n") if p.count(". ") >= 2][:40]
    serial = [sentence_spans(p) for p in paragraphs]
    wrong: list[int] = []

    def worker() -> None:
        for _ in range(20):
            wrong.extend(i for i, p in enumerate(paragraphs) if sentence_spans(p) != serial[i])

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert wrong == []
