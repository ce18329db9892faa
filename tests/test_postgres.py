"""The PostgreSQL store against a real server (PostgreSQL 16 with pgvector, started by the `pg_url` fixture):
the same answers as the folder store, transactional builds, many readers, and one clear message per fault."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from conftest import BUNDLED, DATA, ROOT, FakeEmbedder, corpus_of, make_settings, on_postgres
from typer.testing import CliRunner

import rag
from rag.cli import app
from rag.index.stores import open_store

pytestmark = pytest.mark.slow

QUESTIONS = [
    "Where was the aviation show held?",
    "How many sets of Ukrainian remains were returned?",
    "What does the New START treaty limit?",
    "Who won the presidential election in Poland?",
    "Kiev military fatalities repatriated remains",
    "Crocus Expo",
    "How much trust do Ukrainians have in Zelensky?",
    "What did Lavrov say about the negotiations?",
    "What is the population of Mars?",
]


def namespace() -> str:
    return "t_" + uuid.uuid4().hex[:12]


@pytest.fixture(scope="module")
def both(bundled_index: rag.Settings, pg_url: str) -> tuple[rag.Settings, rag.Settings]:
    """The bundled archive indexed with the real model in the folder store and in PostgreSQL (exact search)."""
    pg = on_postgres(bundled_index, pg_url, namespace())
    rag.build_index(pg)
    return bundled_index, pg


def test_both_stores_return_the_same_top_10_and_the_same_answers(both: tuple[rag.Settings, rag.Settings]) -> None:
    folder, pg = both
    assert rag.index_status(pg).ready and rag.index_status(pg).store_backend == "postgres"
    for question in QUESTIONS:
        a, b = rag.search(question, 10, settings=folder), rag.search(question, 10, settings=pg)
        assert [h.chunk.chunk_id for h in a] == [h.chunk.chunk_id for h in b], question
        assert [h.chunk for h in a] == [h.chunk for h in b]
        for x, y in zip(a, b):
            assert x.dense == pytest.approx(y.dense, abs=1e-5) if x.dense is not None else y.dense is None
            assert x.lexical == pytest.approx(y.lexical, rel=1e-5) if x.lexical is not None else y.lexical is None
        one, two = rag.ask(question, settings=folder), rag.ask(question, settings=pg)
        assert (one.text, one.abstained, one.citations) == (two.text, two.abstained, two.citations), question
        assert one.confidence == pytest.approx(two.confidence, abs=1e-4) if one.confidence is not None else True
    docs = rag.indexed_documents(folder)
    assert rag.indexed_documents(pg) == docs
    some = [docs[0].doc_id, docs[3].doc_id]
    for kwargs in ({"doc_ids": some}, {"since": "2024"}, {"until": "2023-12"}, {"doc_ids": some, "since": "2020"}):
        a, b = rag.search("Russia", 10, settings=folder, **kwargs), rag.search("Russia", 10, settings=pg, **kwargs)
        assert [h.chunk.chunk_id for h in a] == [h.chunk.chunk_id for h in b], kwargs


def test_hnsw_finds_what_exact_search_finds(both: tuple[rag.Settings, rag.Settings], pg_url: str) -> None:
    _folder, exact = both
    approximate = on_postgres(exact, pg_url, namespace(), type="hnsw")
    rag.build_index(approximate)
    found = total = 0
    for question in QUESTIONS:
        truth = {h.chunk.chunk_id for h in rag.search(question, 10, settings=exact.update("retrieval",
                                                                                            dense_weight=1.0))}
        got = {h.chunk.chunk_id for h in rag.search(question, 10, settings=approximate.update("retrieval",
                                                                                               dense_weight=1.0))}
        found, total = found + len(truth & got), total + len(truth)
    assert found / total >= 0.95
    assert rag.index_info(approximate)["store"]["type"] == "hnsw"


def test_info_verify_and_settings_name_the_database_without_its_password(both: tuple[rag.Settings, rag.Settings]
                                                                         ) -> None:
    _folder, pg = both
    info = rag.index_info(pg)
    password = psycopg.conninfo.conninfo_to_dict(pg.store.url)["password"]
    assert info["store"]["backend"] == "postgres" and info["counts"]["documents"] == 10
    assert password not in str(info) and ":***@" in info["where"]
    assert rag.verify_index(pg)["ok"] is True
    env = {"RAG_STORE_BACKEND": "postgres", "RAG_STORE_URL": pg.store.url, "RAG_STORE_NAMESPACE": pg.store.namespace}
    result = CliRunner().invoke(app, ["index", "info"], env=env)
    assert result.exit_code == 0 and "postgres" in result.stdout and password not in result.stdout


def test_incremental_builds_re_embed_only_what_changed_and_keep_one_old_generation(tmp_path: Path, pg_url: str
                                                                                    ) -> None:
    corpus = corpus_of(tmp_path, DATA / "corpus" / "records.jsonl", BUNDLED)
    settings = on_postgres(make_settings(corpus, tmp_path / "unused"), pg_url, namespace())
    emb = FakeEmbedder()
    first = rag.build_index(settings, embedder=emb)
    again = rag.build_index(settings, embedder=emb)
    assert (again.unchanged, again.chunks_embedded, again.chunks_reused) == (first.documents, 0, first.chunks)
    (corpus / "records.jsonl").unlink()  # four articles removed ...
    shutil.copy(DATA / "corpus" / "volcano.md", corpus / "volcano.md")  # ... one added
    third = rag.build_index(settings, embedder=emb)
    volcano = {d.doc_id for d in rag.indexed_documents(settings) if d.source == "volcano.md"}
    assert (third.added, third.removed, third.changed, third.unchanged) == (len(volcano), 4, 0, 10) and volcano
    assert 0 < third.chunks_embedded == third.chunks - third.chunks_reused
    engine = rag.Engine(settings, embedder=emb)
    assert engine.search("volcano erupts island evacuate villages", 1)[0].chunk.doc_id in volcano
    engine.close()
    with psycopg.connect(pg_url) as conn:  # the live generation and the one before it; nothing else
        schemas = [s for (s,) in conn.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)",
                                              (settings.store.namespace + "_gen_",))]
        states = sorted(s for (s,) in conn.execute(f'SELECT state FROM "{settings.store.namespace}".generations'))
    assert len(schemas) == 2 and states == ["live", "retired"]


def test_many_readers_see_one_whole_generation_while_a_build_runs(tmp_path: Path, pg_url: str) -> None:
    corpus = corpus_of(tmp_path, BUNDLED)
    settings = on_postgres(make_settings(corpus, tmp_path / "unused"), pg_url, namespace())
    emb = FakeEmbedder()
    rag.build_index(settings, embedder=emb)
    engine = rag.Engine(settings, embedder=emb)
    questions = QUESTIONS * 4
    def signature(answer: rag.Answer) -> tuple:
        return answer.text, answer.abstained, answer.citations

    serial_old = {q: signature(engine.ask(q)) for q in QUESTIONS}
    errors: list[BaseException] = []
    seen: list[tuple[str, tuple]] = []
    done = threading.Event()

    def reader() -> None:
        try:
            while not done.is_set():
                for q in questions:
                    seen.append((q, signature(engine.ask(q))))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for t in threads:
        t.start()
    extra = corpus / "unrelated.txt"
    extra.write_text("A quiet day in the village\n\nNothing of note happened in the village on Tuesday, "
                     "the mayor said after the market closed early.\n", encoding="utf-8")
    before = engine.generation.name
    for _ in range(2):  # two builds while the readers read: each old generation is retired, then dropped
        report = rag.build_index(settings, embedder=emb)
        assert report.added + report.unchanged == report.documents
    time.sleep(1.5)
    done.set()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    serial_new = {q: signature(engine.ask(q)) for q in QUESTIONS}
    # every answer is the old generation's or the new one's, never a mix of the two
    assert [q for q, sig in seen if sig not in (serial_old[q], serial_new[q])] == []
    assert len(seen) >= 8 * len(QUESTIONS)
    assert engine.generation.name != before
    engine.close()


def test_a_second_build_fails_fast_while_one_holds_the_lock(tmp_path: Path, pg_url: str) -> None:
    settings = on_postgres(make_settings(corpus_of(tmp_path, BUNDLED), tmp_path / "unused"), pg_url, namespace())
    rag.build_index(settings, embedder=FakeEmbedder())
    store = open_store(settings)
    with store.build_lock():
        began = time.monotonic()
        with pytest.raises(rag.IndexLocked, match="a build is already running"):
            rag.build_index(settings, embedder=FakeEmbedder())
        assert time.monotonic() - began < 5
    store.close()
    rag.build_index(settings, embedder=FakeEmbedder())  # released with its session


KILLED_BUILD = textwrap.dedent("""
    import sys, time
    sys.path[:0] = [{root!r}, {tests!r}]
    import rag, rag.index.postgres as P
    from conftest import FakeEmbedder
    add = P.PostgresWriter.add
    def slow_add(self, batch):
        add(self, batch)
        print("ADDED", flush=True)
        time.sleep(0.5)
    P.PostgresWriter.add = slow_add
    import rag.index.build
    rag.index.build._EMBED_BATCH = 1
    settings = rag.load_settings(env={{}}).with_paths(sys.argv[1], sys.argv[2]).update(
        "store", backend="postgres", url=sys.argv[3], namespace=sys.argv[4])
    rag.build_index(settings, embedder=FakeEmbedder())
    print("DONE", flush=True)
""")


def test_a_build_killed_midway_leaves_the_old_generation_serving(tmp_path: Path, pg_url: str) -> None:
    corpus = corpus_of(tmp_path, BUNDLED)
    settings = on_postgres(make_settings(corpus, tmp_path / "unused"), pg_url, namespace())
    rag.build_index(settings, embedder=FakeEmbedder())
    live = open_store(settings)
    old = live.live_name()
    (corpus / "more.txt").write_text("Another headline about the canal barges\n\nBarges returned to the canal "
                                     "on Friday, the port authority said.\n", encoding="utf-8")
    script = tmp_path / "killed_build.py"
    script.write_text(KILLED_BUILD.format(root=str(ROOT), tests=str(ROOT / "tests")))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    proc = subprocess.Popen([sys.executable, str(script), str(corpus), str(tmp_path / "unused"), pg_url,
                             settings.store.namespace], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("ADDED"):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert live.live_name() == old
    engine = rag.Engine(settings, embedder=FakeEmbedder())
    assert engine.ask(QUESTIONS[0]).citations  # the old generation answers, complete
    report = rag.build_index(settings, embedder=FakeEmbedder())  # the lock died with the killed session
    assert report.added == 1 and live.live_name() != old
    with psycopg.connect(pg_url) as conn:
        left = conn.execute("SELECT count(*) FROM pg_namespace WHERE starts_with(nspname, %s)",
                            (settings.store.namespace + "_gen_",)).fetchone()[0]
    assert left == 2  # the killed build's schema was dropped; the live one and the one before it remain
    engine.close()
    live.close()


def refused(settings: rag.Settings, kind: type, pattern: str) -> str:
    """The library raises `kind` matching `pattern`; the CLI prints the same on one line and exits 1."""
    with pytest.raises(kind, match=pattern) as info:
        rag.Engine(settings, embedder=FakeEmbedder())
    env = {"RAG_STORE_BACKEND": "postgres", "RAG_STORE_URL": settings.store.url,
           "RAG_STORE_NAMESPACE": settings.store.namespace, "RAG_EMBEDDING_MODEL": "bundled"}
    result = CliRunner().invoke(app, ["ask", "What happened?"], env=env)
    assert result.exit_code == 1 and result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert rag.index_status(settings, deep=True).problem == str(info.value)
    return str(info.value)


def test_each_connection_fault_gets_one_message_naming_the_fix(tmp_path: Path, pg_url: str) -> None:
    base = make_settings(corpus_of(tmp_path, BUNDLED), tmp_path / "unused")
    parts = psycopg.conninfo.conninfo_to_dict(pg_url)
    down = on_postgres(base, f"postgresql://rag:x@127.0.0.1:{free_port()}/rag", "rag")
    message = refused(down, rag.StoreUnavailable, "no PostgreSQL server answers")
    assert "RAG_STORE_URL" in message and ":x@" not in message
    wrong = on_postgres(base, pg_url.replace(parts["password"], "not-the-password"), "rag")
    message = refused(wrong, rag.StoreUnavailable, "refused the user name or password")
    assert "not-the-password" not in message
    keywords = on_postgres(base, f"host=127.0.0.1 port={parts['port']} dbname=rag user=rag password=not-the-password",
                           "rag")  # the key=value form of a connection string
    message = refused(keywords, rag.StoreUnavailable, "refused the user name or password")
    assert "not-the-password" not in message and "password=***" in message
    missing = on_postgres(base, pg_url.rsplit("/", 1)[0] + "/nosuchdb", "rag")
    refused(missing, rag.StoreUnavailable, "database does not exist. Create it")
    with pytest.raises(rag.SettingsError, match="RAG_STORE_URL"):
        rag.build_index(base.update("store", backend="postgres"))
    with pytest.raises(rag.SettingsError, match="store.namespace"):
        rag.build_index(on_postgres(base, pg_url, "Bad-Name"))


def test_a_database_without_pgvector_or_rights_to_add_it_is_named(tmp_path: Path, pg_url: str) -> None:
    base = make_settings(corpus_of(tmp_path, BUNDLED), tmp_path / "unused")
    db, role = "novector_" + uuid.uuid4().hex[:8], "plain_" + uuid.uuid4().hex[:8]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(db)))
        conn.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'pw'").format(psycopg.sql.Identifier(role)))
    url = pg_url.rsplit("/", 1)[0] + f"/{db}"
    refused(on_postgres(base, url, "rag"), rag.StoreUnavailable, "no pgvector extension")
    parts = psycopg.conninfo.conninfo_to_dict(pg_url)
    plain = f"postgresql://{role}:pw@{parts['host']}:{parts['port']}/{db}"
    with pytest.raises(rag.StoreUnavailable, match="pgvector is not available .*permission denied.*CREATE EXTENSION vector"):
        rag.build_index(on_postgres(base, plain, "rag"), embedder=FakeEmbedder())


def test_a_damaged_or_foreign_store_is_refused(tmp_path: Path, pg_url: str) -> None:
    settings = on_postgres(make_settings(corpus_of(tmp_path, BUNDLED), tmp_path / "unused"), pg_url, namespace())
    rag.build_index(settings, embedder=FakeEmbedder())
    ns = settings.store.namespace
    with psycopg.connect(pg_url, autocommit=True) as conn:
        schema = conn.execute(f'SELECT schema FROM "{ns}".generations WHERE state = %s', ("live",)).fetchone()[0]
        conn.execute(f'DELETE FROM "{schema}".chunks WHERE row = 0')
    refused(settings, rag.IndexCorrupt, "its manifest says .* rag index build --full")
    with pytest.raises(rag.IndexCorrupt):
        rag.verify_index(settings)
    rag.build_index(settings, embedder=FakeEmbedder(), full=True)
    rag.Engine(settings, embedder=FakeEmbedder()).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:  # an edited row that keeps every count right
        schema = conn.execute(f'SELECT schema FROM "{ns}".generations WHERE state = %s', ("live",)).fetchone()[0]
        conn.execute(f"UPDATE \"{schema}\".docs SET hash = 'edited' WHERE row = 0")
    with pytest.raises(rag.IndexCorrupt, match="does not match the manifest's record"):
        rag.verify_index(settings)
    rag.build_index(settings, embedder=FakeEmbedder(), full=True)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"UPDATE \"{ns}\".info SET value = '0' WHERE key = 'format'")
    refused(settings, rag.IndexMismatch, "schema format '0'; this version reads format 1")
    with pytest.raises(rag.IndexMismatch):
        rag.build_index(settings, embedder=FakeEmbedder())
    fresh = on_postgres(settings, pg_url, namespace())
    refused(fresh, rag.IndexMissing, "No index yet .* rag index build")


def test_user_input_never_becomes_sql(both: tuple[rag.Settings, rag.Settings], pg_url: str) -> None:
    _folder, pg = both
    hostile = "x'); DROP SCHEMA rag CASCADE; --"
    with pytest.raises(rag.BadQuestion, match="no article with id"):
        rag.search("Russia", 5, doc_ids=[hostile], settings=pg)
    for question in (hostile, "'; SELECT pg_sleep(5); --", "Robert'); DROP TABLE docs;--"):
        rag.search(question, 5, settings=pg)
    assert rag.verify_index(pg)["ok"]


def test_a_new_k_or_answer_mode_reuses_the_loaded_index(both: tuple[rag.Settings, rag.Settings]) -> None:
    for settings in both:
        base = rag.get_engine(settings)
        other = rag.get_engine(settings.update("retrieval", k=3).update("answer", max_sentences=1))
        assert other is not base and other.served is base.served
        assert len(other.search("Russia")) == 3


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_local_server_script_starts_and_stops_a_server(tmp_path: Path, pg_url: str) -> None:
    """What the README tells a user to run works as shown (the tests' own server came from it too)."""
    folder = Path("/tmp") / f"rag-pg-{uuid.uuid4().hex[:8]}"
    try:
        out = subprocess.run([sys.executable, str(ROOT / "scripts" / "local_postgres.py"), "start", str(folder)],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        url = out.stdout.strip().splitlines()[-1]
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        subprocess.run([sys.executable, str(ROOT / "scripts" / "local_postgres.py"), "stop", str(folder)],
                       capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
