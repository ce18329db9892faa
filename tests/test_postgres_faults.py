"""The PostgreSQL store under faults and hostile use (issue 22), against real servers: the session's `pg_url`
server, and a private one in a temporary folder for the cases that restart or reconfigure a server. Nothing
dropped that is not ours, tampering caught, passwords never shown, one bad record never blocks a build, and
every fault one line with its cause and fix."""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import uuid
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

import rag
import rag.index.postgres as P
from conftest import BUNDLED, ROOT, FakeEmbedder, corpus_of, make_settings, on_postgres
from rag.cli import app
from rag.common.secrets import mask_secrets
from rag.index.stores import open_store

pytestmark = pytest.mark.slow

sys.path.insert(0, str(ROOT / "scripts"))
import local_postgres  # noqa: E402

sys.path.remove(str(ROOT / "scripts"))


def namespace(prefix: str = "f") -> str:
    return prefix + "_" + uuid.uuid4().hex[:10]


def run_sql(url: str, *statements: str, args: tuple = ()) -> list:
    with psycopg.connect(url, autocommit=True) as conn:
        out: list = []
        for statement in statements:
            cur = conn.execute(statement, args or None)
            out = cur.fetchall() if cur.description else []
        return out


def pg_settings(tmp_path: Path, url: str, ns: str, *files: Path) -> rag.Settings:
    return on_postgres(make_settings(corpus_of(tmp_path, *(files or (BUNDLED,))), tmp_path / "unused"), url, ns)


def live_schema(url: str, ns: str) -> str:
    return run_sql(url, f'SELECT schema FROM "{ns}".generations WHERE state = \'live\'')[0][0]


def cli(settings: rag.Settings, *args: str) -> object:
    env = {"RAG_STORE_BACKEND": "postgres", "RAG_STORE_URL": settings.store.url,
           "RAG_STORE_NAMESPACE": settings.store.namespace, "RAG_CORPUS": str(settings.paths.corpus)}
    return CliRunner().invoke(app, list(args), env=env)


def verified(settings: rag.Settings) -> None:
    """The store's full check of the live generation (built here with the fake embedder, whatever the model)."""
    store = open_store(settings)
    try:
        store.verify_live()
    finally:
        store.close()


def one_line_error(result: object) -> str:
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    err = result.stderr  # type: ignore[attr-defined]
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


# ------------------------------------------------------------------------------- 1. only what the registry lists

def test_a_build_never_drops_a_schema_its_registry_does_not_list(tmp_path: Path, pg_url: str) -> None:
    ns = namespace()
    settings = pg_settings(tmp_path, pg_url, ns)
    role = "other_" + uuid.uuid4().hex[:8]
    run_sql(pg_url, f"CREATE SCHEMA {ns}_gen_budget", f"CREATE TABLE {ns}_gen_budget.invoices (id int, amount int)",
            f"INSERT INTO {ns}_gen_budget.invoices VALUES (1, 55000)", f"CREATE ROLE {role}",
            f"CREATE SCHEMA {ns}_gen_foreign AUTHORIZATION {role}")
    warnings: list[str] = []
    for _ in range(3):
        rag.build_index(settings, embedder=FakeEmbedder(), warn=warnings.append)
    assert run_sql(pg_url, f"SELECT amount FROM {ns}_gen_budget.invoices") == [(55000,)]
    assert run_sql(pg_url, "SELECT count(*) FROM pg_namespace WHERE nspname = %s", args=(f"{ns}_gen_foreign",)) \
        == [(1,)]
    assert warnings == []


def test_namespaces_that_share_a_prefix_never_touch_each_other(tmp_path: Path, pg_url: str) -> None:
    short = namespace("p")
    longer = short + "_gen"  # its schemas all start with "<short>_gen_"
    other = pg_settings(tmp_path / "b", pg_url, longer)
    rag.build_index(other, embedder=FakeEmbedder())
    mine = pg_settings(tmp_path / "a", pg_url, short)
    for _ in range(3):
        rag.build_index(mine, embedder=FakeEmbedder())
    engine = rag.Engine(other, embedder=FakeEmbedder())
    assert engine.ask("Where was the aviation show held?").citations
    engine.close()
    verified(other)
    assert rag.index_info(other)["problem"] is None


# ------------------------------------------------------------------------------- 2. a foreign schema is refused

FOREIGN = {
    "info-only": ["CREATE TABLE {ns}.info (key text PRIMARY KEY, value text)", "INSERT INTO {ns}.info VALUES ('a', 'b')"],
    "users": ["CREATE TABLE {ns}.users (id int, name text)"],
    "other-columns": ["CREATE TABLE {ns}.info (k int, v int)", "CREATE TABLE {ns}.generations (x int)",
                      "CREATE TABLE {ns}.live (y int)"],
}


@pytest.mark.parametrize("case", sorted(FOREIGN))
def test_a_foreign_namespace_schema_is_refused_in_one_line(tmp_path: Path, pg_url: str, case: str) -> None:
    ns = namespace("x")
    settings = pg_settings(tmp_path, pg_url, ns)
    run_sql(pg_url, f"CREATE SCHEMA {ns}", *(s.format(ns=ns) for s in FOREIGN[case]))
    before = run_sql(pg_url, "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                             "WHERE n.nspname = %s ORDER BY relname", args=(ns,))
    pattern = f"Schema '{ns}' in .* exists and is not a rag store .* Choose another store.namespace"
    with pytest.raises(rag.StoreUnavailable, match=pattern):
        rag.build_index(settings, embedder=FakeEmbedder())
    with pytest.raises(rag.StoreUnavailable, match=pattern):
        rag.Engine(settings, embedder=FakeEmbedder())
    assert ns in one_line_error(cli(settings, "index", "build"))
    one_line_error(cli(settings, "ask", "What happened?"))
    after = run_sql(pg_url, "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE n.nspname = %s ORDER BY relname", args=(ns,))
    assert after == before  # nothing created in it
    if case == "info-only":
        assert run_sql(pg_url, f"SELECT * FROM {ns}.info") == [("a", "b")]  # no ('format', '1') added
    assert run_sql(pg_url, "SELECT count(*) FROM pg_namespace WHERE starts_with(nspname, %s)",
                   args=(ns + "_",)) == [(0,)]


@pytest.mark.parametrize("name", ["pg_x", "pg_temp", "information_schema", "public"])
def test_system_schema_names_are_refused_as_namespaces(tmp_path: Path, pg_url: str, name: str) -> None:
    settings = pg_settings(tmp_path, pg_url, "rag").update("store", namespace=name)
    before = run_sql(pg_url, "SELECT count(*) FROM pg_class")
    with pytest.raises(rag.SettingsError, match=f"store.namespace '{name}' names a PostgreSQL system"):
        rag.build_index(settings, embedder=FakeEmbedder())
    one_line_error(cli(settings, "index", "build"))
    assert run_sql(pg_url, "SELECT count(*) FROM pg_class") == before


# ------------------------------------------------------------------------------- 3. integrity

TAMPER = {
    "text": "UPDATE {s}.chunks SET text = replace(text, 'the', 'THE') WHERE row = {row}",
    "vector": "UPDATE {s}.chunks SET embedding = (SELECT embedding FROM {s}.chunks WHERE row = {other}) "
              "WHERE row = {row}",
    "sentence": "UPDATE {s}.sentences SET doc_row = (SELECT max(row) FROM {s}.docs) "
                "WHERE row = (SELECT sent_lo FROM {s}.docs WHERE row = 0)",
    "terms": "DELETE FROM {s}.terms WHERE term IN (SELECT term FROM {s}.terms ORDER BY term LIMIT 50)",
    # who said what: a statement given to someone else
    "statement": "UPDATE {s}.statements SET speaker = 'Somebody Else' WHERE (doc_row, n) = "
                 "(SELECT doc_row, n FROM {s}.statements ORDER BY doc_row, n LIMIT 1)",
}


@pytest.mark.parametrize("case", sorted(TAMPER))
def test_changes_made_outside_rag_are_caught_and_never_carried(tmp_path: Path, pg_url: str, case: str) -> None:
    ns = namespace("i")
    settings = pg_settings(tmp_path, pg_url, ns)
    emb = FakeEmbedder()
    rag.build_index(settings, embedder=emb)
    schema = live_schema(pg_url, ns)
    row, text = run_sql(pg_url, f"SELECT row, text FROM {schema}.chunks WHERE text LIKE '% the %' ORDER BY row "
                                "LIMIT 1")[0]
    run_sql(pg_url, TAMPER[case].format(s=schema, row=row, other=row + 1))
    with pytest.raises(rag.IndexCorrupt, match="changed outside rag"):
        verified(settings)
    assert "changed outside rag" in one_line_error(cli(settings, "index", "verify"))
    if case in ("text", "vector"):  # serving refuses the altered row rather than cite it
        engine = rag.Engine(settings, embedder=emb)
        with pytest.raises(rag.IndexCorrupt, match="was changed outside rag"):
            engine.search(text, 3)
        engine.close()
    report = rag.build_index(settings, embedder=emb)  # incremental: the damaged article is embedded again
    # the damaged article is embedded again (a moved sentence damages the article it left and the one it joined);
    # BM25 postings are never carried: every build computes them from the texts
    assert report.changed == {"text": 1, "vector": 1, "sentence": 2, "terms": 0, "statement": 1}[case]
    assert (report.chunks_embedded > 0) == (case != "terms")
    assert run_sql(pg_url, f"SELECT count(*) FROM {live_schema(pg_url, ns)}.statements "
                           "WHERE speaker = 'Somebody Else'") == [(0,)]
    verified(settings)
    schema = live_schema(pg_url, ns)
    assert run_sql(pg_url, f"SELECT text FROM {schema}.chunks WHERE row = {row}") == [(text,)]


# ------------------------------------------------------------------------------- 4. secrets

def test_one_function_masks_every_password(pg_url: str) -> None:
    cases = {
        "postgresql://rag:SECRET%zz2@db:5432/rag": "SECRET",
        'invalid percent-encoded token: "SECRET%zz2"': "SECRET",
        "postgresql+psycopg://rag:MYSECRET@db/rag": "MYSECRET",
        "postgresql://rag:PWSECRET@[::1:P/rag": "PWSECRET",
        "postgresql://rag:SEC@RET3@db:1/rag": "RET3",
        "failed to resolve host 'RET3@db'": "RET3",
        "postgresql://rag@db:1/rag?password=QSECRET": "QSECRET",
        "postgresql://rag@db/rag?sslpassword=SSLSECRET&password=Q2SECRET": "SECRET",
        "host=db user=rag password='A SECRET' sslpassword=KSECRET dbname=rag": "SECRET",
    }
    urls = ["postgresql://rag:SECRET%zz2@db:5432/rag", "postgresql://rag:SEC@RET3@db:1/rag"]
    for text, secret in cases.items():
        masked = mask_secrets(text, *urls)
        assert secret not in masked and "***" in masked, (text, masked)
    assert mask_secrets("postgresql://rag@db:5432/news") == "postgresql://rag@db:5432/news"


def test_no_output_or_message_shows_a_password(tmp_path: Path, pg_url: str) -> None:
    parts = psycopg.conninfo.conninfo_to_dict(pg_url)
    host, port, password = parts["host"], parts["port"], parts["password"]
    query_form = f"postgresql://rag@{host}:{port}/rag?password={password}"
    settings = pg_settings(tmp_path, query_form, namespace("s"))
    report = rag.build_index(settings, embedder=FakeEmbedder())
    shown = [report.index, str(rag.index_info(settings)), str(rag.index_status(settings).to_dict()),
             cli(settings, "index", "info").output, cli(settings, "index", "info", "--json").output,
             cli(settings, "index", "verify", "--json").output]
    for text in shown:
        assert password not in text, text
    hostile = {
        f"postgresql://rag:SECRET%zz2@{host}:{port}/rag": "SECRET",
        f"postgresql+psycopg://rag:MYSECRET@{host}:{port}/rag": "MYSECRET",
        "postgresql://rag:PWSECRET@[::1:P/rag": "PWSECRET",
        f"postgresql://rag:SEC@RET3@{host}:{port}/rag": "RET3",
        f"postgresql://rag@{host}:{port}/rag?sslpassword=SSLSECRET&password=WRONGPW": "SSLSECRET",
        f"host={host} port={port} user=rag dbname=rag password=WRONGPW": "WRONGPW",
    }
    for url, secret in hostile.items():
        bad = settings.update("store", url=url)
        with pytest.raises(rag.StoreUnavailable) as info:
            rag.Engine(bad, embedder=FakeEmbedder())
        assert secret not in str(info.value) and "Cannot use the PostgreSQL store" in str(info.value), info.value
        for args in (["ask", "What happened?"], ["index", "build"], ["index", "info"]):
            result = cli(bad, *args)
            assert secret not in result.output and "WRONGPW" not in result.output, result.output
            one_line_error(result)


# ------------------------------------------------------------------------------- 5. bad records

def test_a_nul_byte_or_an_over_long_id_skips_that_record_in_both_stores(tmp_path: Path, pg_url: str) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    good = '{"id": "good", "title": "A quiet market day in the harbour town", "text": "The market opened at dawn."}'
    nul = '{"id": "nul", "title": "A record with a NUL byte inside its text", "text": "Bad \\u0000 text."}'
    long_id = '{"id": "%s", "title": "A record whose id is far too long to store", "text": "Long id."}' % ("x" * 20000)
    (corpus / "feed.jsonl").write_text("\n".join([good, nul, long_id]) + "\n", encoding="utf-8")
    folder = make_settings(corpus, tmp_path / "index")
    for settings in (folder, on_postgres(folder, pg_url, namespace("r"))):
        warnings: list[str] = []
        report = rag.build_index(settings, embedder=FakeEmbedder(), warn=warnings.append)
        assert report.documents == 1 and [d.doc_id for d in rag.indexed_documents(settings)] == ["good"]
        assert any(w.startswith("feed.jsonl:2: ") and "NUL" in w for w in warnings), warnings
        assert any(w.startswith("feed.jsonl:3: ") and "20,000 bytes" in w for w in warnings), warnings


# ------------------------------------------------------------------------------- 6. faults: one line, cause and fix

def test_a_failed_clean_up_after_publish_is_a_warning(tmp_path: Path, pg_url: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    settings = pg_settings(tmp_path, pg_url, namespace("c"))
    rag.build_index(settings, embedder=FakeEmbedder())
    publish = P.PostgresWriter.publish

    def publish_then_lose_the_connection(self: P.PostgresWriter) -> None:
        publish(self)
        run_sql(pg_url, "SELECT pg_terminate_backend(%s)", args=(self.conn.info.backend_pid,))

    monkeypatch.setattr(P.PostgresWriter, "publish", publish_then_lose_the_connection)
    (settings.paths.corpus / "more.txt").write_text("Barges return to the canal after the long winter\n\n"
                                                    "Barges returned to the canal on Friday.\n", encoding="utf-8")
    warnings: list[str] = []
    report = rag.build_index(settings, embedder=FakeEmbedder(), warn=warnings.append)
    assert report.added == 1 and report.index.endswith(rag.index_info(settings)["generation"])
    assert any("The new index is live, but removing old generations failed" in w and "server closed the "
               "connection" in w for w in warnings), warnings


def test_lock_and_statement_timeouts_are_named(tmp_path: Path, pg_url: str) -> None:
    ns = namespace("t")
    settings = pg_settings(tmp_path, pg_url, ns)
    rag.build_index(settings, embedder=FakeEmbedder())
    holder = psycopg.connect(pg_url)
    try:
        holder.execute(f'LOCK TABLE "{ns}".live IN ACCESS EXCLUSIVE MODE')  # held until the transaction ends
        sep = "?"
        for option, pattern in (("lock_timeout", "held a lock longer than lock_timeout"),
                                ("statement_timeout", "cancelled a statement after its statement_timeout")):
            url = f"{pg_url}{sep}options=-c%20{option}%3D300"
            with pytest.raises(rag.StoreUnavailable, match=pattern) as info:
                rag.Engine(settings.update("store", url=url), embedder=FakeEmbedder())
            assert "no PostgreSQL server answers" not in str(info.value)
            assert pattern in one_line_error(cli(settings.update("store", url=url), "ask", "What happened?"))
    finally:
        holder.close()


def test_two_first_builds_at_once_never_race(tmp_path: Path, pg_url: str) -> None:
    db = "race_" + uuid.uuid4().hex[:8]
    run_sql(pg_url, f"CREATE DATABASE {db}")  # no pgvector yet: the first build creates it
    fresh_db = pg_url.rsplit("/", 1)[0] + f"/{db}"
    for round_, url in enumerate([fresh_db, pg_url, pg_url]):
        settings = pg_settings(tmp_path / str(round_), url, namespace("q"))
        outcomes: list[object] = []
        barrier = threading.Barrier(4)

        def build() -> None:
            barrier.wait()
            try:
                outcomes.append(rag.build_index(settings, embedder=FakeEmbedder()))
            except Exception as exc:  # noqa: BLE001 - checked below
                outcomes.append(exc)

        threads = [threading.Thread(target=build) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert len(outcomes) == 4
        assert all(isinstance(o, (rag.BuildReport, rag.IndexLocked)) for o in outcomes), outcomes
        assert any(isinstance(o, rag.BuildReport) for o in outcomes)


# ------------------------------------------------------------------------------- 7-8. a private server

@pytest.fixture(scope="module")
def private_server() -> tuple[Path, str, int]:
    """A PostgreSQL server of this module's own, in a temporary folder, that the tests may restart."""
    folder = Path(tempfile.mkdtemp(prefix="rag-pgf-"))
    url = local_postgres.start(folder)
    yield folder, url, int(psycopg.conninfo.conninfo_to_dict(url)["port"])
    local_postgres.stop(folder)
    shutil.rmtree(folder, ignore_errors=True)


def test_an_engine_answers_the_next_question_after_a_server_restart(tmp_path: Path,
                                                                    private_server: tuple[Path, str, int]) -> None:
    folder, url, port = private_server
    settings = pg_settings(tmp_path, url, namespace("w"))
    emb = FakeEmbedder()
    rag.build_index(settings, embedder=emb)
    engine = rag.Engine(settings, embedder=emb)
    questions = ["Where was the aviation show held?", "What does the New START treaty limit?"]
    threads = [threading.Thread(target=engine.ask, args=(q,)) for q in questions * 3]  # several pooled connections
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    before = [engine.ask(q).text for q in questions]
    local_postgres.stop(folder)
    local_postgres.start(folder, port)
    assert [engine.ask(q).text for q in questions * 4][:2] == before  # eight questions, none failed
    engine.close()


def test_too_many_clients_is_named(tmp_path: Path, private_server: tuple[Path, str, int]) -> None:
    folder, url, port = private_server
    settings = pg_settings(tmp_path, url, namespace("m"))
    rag.build_index(settings, embedder=FakeEmbedder())
    local_postgres.stop(folder)
    local_postgres.start(folder, port, "-c max_connections=4 -c superuser_reserved_connections=0 "
                                       "-c reserved_connections=0")
    held = []
    try:
        while True:
            try:
                held.append(psycopg.connect(url))
            except psycopg.OperationalError:
                break
        with pytest.raises(rag.StoreUnavailable, match="no free connection slot .*too many clients already.* "
                                                       "max_connections") as info:
            rag.Engine(settings, embedder=FakeEmbedder())
        assert "Check store.url" not in str(info.value)
    finally:
        for conn in held:
            conn.close()
        local_postgres.stop(folder)
        local_postgres.start(folder, port)


def test_a_live_schema_dropped_by_hand_or_missing_rows_are_reported(tmp_path: Path, pg_url: str) -> None:
    ns = namespace("d")
    settings = pg_settings(tmp_path, pg_url, ns)
    rag.build_index(settings, embedder=FakeEmbedder())
    engine = rag.Engine(settings, embedder=FakeEmbedder())
    schema = live_schema(pg_url, ns)
    run_sql(pg_url, f"DELETE FROM {schema}.sentences WHERE row < 5")
    assert "its manifest says" in rag.index_info(settings)["problem"]
    result = cli(settings, "index", "info")
    assert result.exit_code == 1 and "Problem:    " in result.output and "its manifest says" in result.output
    run_sql(pg_url, f"DROP SCHEMA {schema} CASCADE")
    for attempt in (lambda: engine.ask("What does the New START treaty limit?"),
                    lambda: rag.Engine(settings, embedder=FakeEmbedder())):
        with pytest.raises(rag.IndexCorrupt, match=f"has lost its schema {schema} \\(dropped outside rag\\).* "
                                                   "rag index build --full") as info:
            attempt()
        assert "newer build" not in str(info.value)
    assert "lost its schema" in rag.index_info(settings)["problem"]
    assert "lost its schema" in cli(settings, "index", "info").output
    engine.close()
    rag.build_index(settings, embedder=FakeEmbedder())  # the next build rebuilds it in full
    verified(settings)
