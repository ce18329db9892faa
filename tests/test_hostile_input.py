"""Careless and hostile input around the index (issue 10): folders that are not ours, links out of the corpus,
files edited during a build, clashing ids, huge lines and files, odd names and types, a full disk. Each case
asserts what the user sees: one line that names the file and the fix, the rest of the corpus indexed, no
traceback, nothing deleted that is not ours, nothing read from outside the corpus."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import DATA, ROOT, FakeEmbedder, make_settings
from typer.testing import CliRunner

import rag
from rag.cli import app
from rag.index.encoder import model_identity
from rag.index.folder_files import CURRENT, MARK, live_generation
from rag.ingest.segment import slugify

CORPUS = DATA / "corpus"
SECRET = "ZEBRAFISH-7731 root:x:0:0 the outside secret"
GOOD = ("Harbour cranes stand idle as the dock workers strike for a third day\n\n"
        "The dock workers' union said the strike would go on until the port authority met its demands. "
        "Ships queued outside the harbour.\n")


@pytest.fixture(scope="module")
def fake_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder of our own, so that indexes built with the fake encoder are checked like real ones."""
    folder = tmp_path_factory.mktemp("fake-model")
    (folder / "config.json").write_text("{}")
    return folder


class Built:
    """Settings for a corpus and an index under one folder, built with the fake encoder."""

    def __init__(self, root: Path, fake_model: Path, **sections: dict) -> None:
        self.corpus, self.index = root / "corpus", root / "index"
        self.corpus.mkdir(parents=True, exist_ok=True)
        self.settings = rag.load_settings(env={}, embedding={"model": str(fake_model)}, **sections).with_paths(
            self.corpus, self.index)
        self.model_id = model_identity(str(fake_model))[0]
        self.warnings: list[str] = []

    def embedder(self) -> FakeEmbedder:
        return FakeEmbedder(model_id=self.model_id)

    def build(self, embedder: FakeEmbedder | None = None, **kwargs) -> rag.BuildReport:  # noqa: ANN003
        self.warnings = []
        return rag.build_index(self.settings, warn=self.warnings.append, embedder=embedder or self.embedder(),
                               **kwargs)

    def docs(self) -> dict[str, rag.Document]:
        return {d.doc_id: d for d in rag.indexed_documents(self.settings)}

    def chunk_texts(self) -> str:
        gen = live_generation(self.index)
        with sqlite3.connect(gen / "chunks.sqlite") as db:
            return "\n".join(t for (t,) in db.execute("SELECT text FROM chunks"))

    def engine(self) -> rag.Engine:
        return rag.Engine(self.settings, embedder=self.embedder())


@pytest.fixture
def built(tmp_path: Path, fake_model: Path) -> Built:
    b = Built(tmp_path, fake_model)
    (b.corpus / "good.txt").write_text(GOOD, encoding="utf-8")
    return b


def cli(*args: object, env: dict[str, str] | None = None):  # noqa: ANN201
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def one_line_error(result, *fragments: str) -> str:  # noqa: ANN001
    """The CLI failed with status 1 and exactly one line on stderr, holding every fragment, no traceback."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert result.stdout == "" and "Traceback" not in result.output, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def warned(warnings: list[str], name: str, *fragments: str) -> str:
    """The one warning about `name`: a single line that starts with it and holds every fragment."""
    found = [w for w in warnings if w.startswith(name)]
    assert len(found) == 1, (name, warnings)
    assert "\n" not in found[0]
    for fragment in fragments:
        assert fragment in found[0], (fragment, found[0])
    return found[0]


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- item 1: an index folder that is not ours --------------------------------------------------------------------

def test_a_folder_holding_something_else_is_refused_and_left_alone(built: Built, tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    (projects / "gen-2025-budget").mkdir(parents=True)
    (projects / "gen-2025-budget" / "plan.xlsx").write_bytes(b"budget figures")
    (projects / "notes.txt").write_text("my notes")
    before = tree(projects)
    result = cli("index", "build", "--corpus", built.corpus, "--index", projects)
    one_line_error(result, f"Index folder {projects} is not empty and holds no index", "gen-2025-budget",
                   "nothing was written to it", "--index DIR")
    assert sorted(p.name for p in projects.iterdir()) == ["gen-2025-budget", "notes.txt"]
    with pytest.raises(rag.IndexFolderRefused):
        rag.build_index(built.settings.with_paths(index=projects), embedder=built.embedder())
    assert tree(projects) == before


def test_an_index_path_that_is_a_file_is_refused(built: Built, tmp_path: Path) -> None:
    target = tmp_path / "index.txt"
    target.write_text("not a folder")
    one_line_error(cli("index", "build", "--corpus", built.corpus, "--index", target),
                   f"Index path {target} is not a folder", "--index DIR")
    assert target.read_text() == "not a folder"


def test_clean_up_removes_only_generations_a_build_made(built: Built, tmp_path: Path) -> None:
    outside = tmp_path / "outside-folder"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep me")
    built.build()
    # things a user (or another tool) put beside our generations: none is ours to delete
    (built.index / "gen-2025-budget").mkdir()
    (built.index / "gen-2025-budget" / "plan.txt").write_text("budget")
    (built.index / "gen-link").symlink_to(outside, target_is_directory=True)
    (built.index / f".{CURRENT}.backup").write_text("a copy")
    (built.index / ".gitkeep").write_text("")
    for _ in range(3):
        built.build()
    names = sorted(p.name for p in built.index.iterdir())
    assert "gen-2025-budget" in names and (built.index / "gen-2025-budget" / "plan.txt").read_text() == "budget"
    assert (built.index / "gen-link").is_symlink() and (outside / "keep.txt").read_text() == "keep me"
    assert (built.index / f".{CURRENT}.backup").exists() and (built.index / ".gitkeep").exists()
    made = [n for n in names if (built.index / n / MARK).is_file()]
    assert len(made) == 2 and live_generation(built.index).name in made  # the live one and the one before


def test_a_folder_with_only_hidden_files_is_used(built: Built) -> None:
    built.index.mkdir()
    (built.index / ".gitkeep").write_text("")
    built.build()
    assert rag.index_status(built.settings).ready


# --- item 9: CURRENT replaced by a folder -----------------------------------------------------------------------

def test_current_replaced_by_a_folder_is_reported_with_a_fix_that_works(built: Built) -> None:
    built.build()
    pointer = built.index / CURRENT
    name = pointer.read_text().strip()
    pointer.unlink()
    pointer.mkdir()
    (pointer / "something").write_text("x")
    status = rag.index_status(built.settings)  # the page's first call: no exception
    assert not status.ready and status.problem_kind == "IndexCorrupt"
    fix = f"mv {pointer} {pointer}.old"
    assert "is a folder, not the file naming the live generation" in status.problem and fix in status.problem
    one_line_error(cli("index", "verify", "--index", built.index, env={"RAG_EMBEDDING_MODEL": str(built.settings.embedding.model)}),
                   "is a folder", fix)
    gens = sorted(p.name for p in built.index.iterdir())
    one_line_error(cli("index", "build", "--corpus", built.corpus, "--index", built.index), "is a folder", fix)
    assert sorted(p.name for p in built.index.iterdir()) == gens  # the build wrote nothing
    os.rename(pointer, f"{pointer}.old")  # the fix, as the message gives it
    report = built.build()
    assert report.full and rag.verify_index(built.settings)["ok"] and Path(report.index).name != name
    assert (Path(f"{pointer}.old") / "something").read_text() == "x"


# --- item 2: links out of the corpus ------------------------------------------------------------------------------

@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    (folder / "private").mkdir(parents=True)
    (folder / "passwd.txt").write_text(f"A secret line that is long enough to be a title\n\n{SECRET}.\n")
    (folder / "private" / "diary.md").write_text(f"# Dear diary, the outside world was busy today\n\n{SECRET}.\n")
    return folder


def test_links_out_of_the_corpus_are_skipped_and_never_served(built: Built, outside: Path) -> None:
    corpus = built.corpus
    (corpus / "leak.txt").symlink_to(outside / "passwd.txt")
    (corpus / "private").symlink_to(outside / "private", target_is_directory=True)
    (corpus / "sub").mkdir()
    (corpus / "sub" / "loop").symlink_to("..", target_is_directory=True)  # a loop back into the corpus
    (corpus / "sub" / "alias.txt").symlink_to("../good.txt")  # inside: read
    (corpus / "dangling.txt").symlink_to(outside / "gone.txt")
    began = time.monotonic()
    report = built.build()
    assert time.monotonic() - began < 60
    warned(built.warnings, "leak.txt", f"a link to {outside / 'passwd.txt'}, outside the corpus folder, skipped",
           "corpus.follow_outside_links = true")
    warned(built.warnings, "private", f"a link to the folder {outside / 'private'}, outside the corpus folder",
           "corpus.follow_outside_links = true")
    warned(built.warnings, "dangling.txt", "a broken link", "Fix or remove the link")
    assert len(built.warnings) == 3, built.warnings
    assert sorted(d.source for d in built.docs().values()) == ["good.txt", "sub/alias.txt"]
    assert report.documents == 2
    assert "ZEBRAFISH" not in built.chunk_texts()
    assert all("ZEBRAFISH" not in h.chunk.text for h in built.engine().search("ZEBRAFISH secret root", 10))
    listed = cli("corpus", "list", "--corpus", corpus, "--index", built.index)
    assert listed.exit_code == 0 and "ZEBRAFISH" not in listed.output and "leak" not in listed.stdout
    assert "warning: leak.txt: a link to" in listed.stderr
    with pytest.raises(KeyError):
        rag.source_text(corpus, "leak.txt", "leak/a-secret-line-that-is-long-enough-to-be-a-title")
    with pytest.raises(KeyError):
        rag.source_text(corpus, "../elsewhere/passwd.txt", "anything")
    assert rag.index_status(built.settings).corpus_changed == []


def test_links_out_are_read_when_the_setting_allows_them(built: Built, outside: Path, fake_model: Path) -> None:
    (built.corpus / "leak.txt").symlink_to(outside / "passwd.txt")
    (built.corpus / "private").symlink_to(outside / "private", target_is_directory=True)
    allowed = Built(built.corpus.parent, fake_model, corpus={"follow_outside_links": True})
    allowed.build()
    assert sorted(d.source for d in allowed.docs().values()) == ["good.txt", "leak.txt", "private/diary.md"]
    assert allowed.warnings == [] and "ZEBRAFISH" in allowed.chunk_texts()


def test_a_named_pipe_is_skipped_without_hanging(built: Built) -> None:
    os.mkfifo(built.corpus / "pipe.txt")
    began = time.monotonic()
    built.build()
    assert time.monotonic() - began < 60
    warned(built.warnings, "pipe.txt", "a named pipe, not a regular file, skipped")
    assert [d.source for d in built.docs().values()] == ["good.txt"]


# --- item 3: a file edited while the build reads it ---------------------------------------------------------------

class EditsDuringBuild(FakeEmbedder):
    """An encoder that, the first time it is called (after the corpus file was read), edits that file."""

    def __init__(self, path: Path, new: str, **kwargs) -> None:  # noqa: ANN003
        super().__init__(**kwargs)
        self.path, self.new = path, new

    def encode_documents(self, texts):  # noqa: ANN001, ANN201
        if self.new is not None:
            self.path.write_text(self.new, encoding="utf-8")
            self.new = None
        return super().encode_documents(texts)


def test_a_file_edited_during_the_build_shows_as_changed_and_is_indexed_next(built: Built) -> None:
    path = built.corpus / "good.txt"
    edited = GOOD.replace("its demands", "its request")
    assert len(edited) == len(GOOD)  # same size: only the contents tell
    built.build(embedder=EditsDuringBuild(path, edited, model_id=built.model_id))
    assert path.read_text() == edited
    assert "its demands" in built.chunk_texts() and "its request" not in built.chunk_texts()
    manifest = json.loads((live_generation(built.index) / "manifest.json").read_text())
    assert manifest["sources"]["good.txt"]["sha256"] == hashlib.sha256(GOOD.encode()).hexdigest()
    assert rag.index_status(built.settings).corpus_changed == ["good.txt"]  # the app offers a rebuild
    report = built.build()
    assert report.changed == 1 and "its request" in built.chunk_texts()
    assert rag.index_status(built.settings).corpus_changed == []


# --- item 4: an id that another file already uses -----------------------------------------------------------------

def test_a_record_cannot_take_over_an_article_id(built: Built) -> None:
    (built.corpus / "a_news.txt").write_text(GOOD, encoding="utf-8")  # read first: its id is taken
    taken = f"a_news/{slugify(GOOD.splitlines()[0])}"
    (built.corpus / "z_feed.jsonl").write_text(
        json.dumps({"id": taken, "title": "Hijack", "text": "A record that claims the article's id."}) + "\n"
        + json.dumps({"id": "own", "text": "A record with an id of its own."}) + "\n", encoding="utf-8")
    built.build()
    docs = built.docs()
    assert docs[taken].source == "a_news.txt" and docs["own"].source == "z_feed.jsonl"
    warned(built.warnings, "z_feed.jsonl:1", f"duplicate id {taken!r} (already used by a_news.txt), line skipped",
           "Give every record its own id")


def test_an_article_whose_id_a_record_took_first_is_kept_under_a_numbered_id(built: Built) -> None:
    taken = f"news/{slugify(GOOD.splitlines()[0])}"
    (built.corpus / "feed.jsonl").write_text(
        json.dumps({"id": taken, "title": "Early", "text": "A record read before the article."}) + "\n",
        encoding="utf-8")
    (built.corpus / "news.txt").write_text(GOOD, encoding="utf-8")
    built.build()
    docs = built.docs()
    assert docs[taken].source == "feed.jsonl" and docs[f"{taken}-2"].source == "news.txt"
    warned(built.warnings, "news.txt", f"article id {taken!r} is already used by feed.jsonl:1",
           f"indexed as '{taken}-2'", "Rename one of the two")
    text = rag.source_text(built.corpus, "news.txt", f"{taken}-2")
    doc = docs[f"{taken}-2"]
    assert text[doc.start:doc.end].startswith("Harbour cranes stand idle")


# --- item 5: work per input is bounded -----------------------------------------------------------------------------

def long_line(chars: int) -> str:
    words = "the port authority said on monday that ships queued outside the harbour as talks stalled".split()
    out, n = [], 0
    while n < chars:
        word = words[len(out) % len(words)] + ("." if len(out) % 23 == 22 else "")
        out.append(word)
        n += len(word) + 1
    return " ".join(out)


@pytest.mark.slow
def test_a_megabyte_line_builds_in_bounded_time_with_exact_offsets(built: Built) -> None:
    text = long_line(1_400_000)
    (built.corpus / "long.txt").write_text(text, encoding="utf-8")
    began = time.process_time()  # CPU time: a busy machine does not make it look slow
    report = built.build()
    assert time.process_time() - began < 120, "sentence splitting must stay linear in the line length"
    assert report.documents == 2 and report.sentences > 1000 and built.warnings == []
    gen = live_generation(built.index)
    with sqlite3.connect(gen / "chunks.sqlite") as db:
        (row,) = db.execute("SELECT row FROM docs WHERE source = 'long.txt'").fetchone()
        for start, end in db.execute("SELECT start, end FROM sentences WHERE doc_row = ?", (row,)):
            assert text[start:end] == text[start:end].strip() and 0 < end - start <= 2000
        for start, end, chunk in db.execute("SELECT start, end, text FROM chunks WHERE doc_row = ?", (row,)):
            assert text[start:end] == chunk


def test_files_and_records_over_the_size_limit_are_skipped_with_a_warning(tmp_path: Path, fake_model: Path) -> None:
    b = Built(tmp_path, fake_model, corpus={"max_file_mb": 0.01})  # 10 kB
    (b.corpus / "good.txt").write_text(GOOD, encoding="utf-8")
    (b.corpus / "huge.txt").write_text(long_line(30_000), encoding="utf-8")
    (b.corpus / "feed.jsonl").write_text(
        json.dumps({"id": "small", "text": "A small record."}) + "\n"
        + json.dumps({"id": "big", "text": long_line(20_000)}) + "\n"
        + json.dumps({"id": "after", "text": "A record after the big one."}) + "\n", encoding="utf-8")
    b.build()
    assert sorted(b.docs()) == ["after", f"good/{slugify(GOOD.splitlines()[0])}", "small"]
    warned(b.warnings, "huge.txt", "file of 30 kB is over the 0.01 MB limit (corpus.max_file_mb), skipped",
           "Split it into smaller files or raise corpus.max_file_mb")
    warned(b.warnings, "feed.jsonl:2", "record of 20 kB is over the 0.01 MB limit", "Shorten the record")
    assert len(b.warnings) == 2
    assert rag.index_status(b.settings).corpus_changed == []  # skipped, not forever "changed"
    raised = b.settings.update("corpus", max_file_mb=1.0)
    assert rag.index_status(raised).corpus_changed == ["huge.txt"]  # now it would be read: offer a rebuild


# --- item 9: odd input that used to stop the build ---------------------------------------------------------------

@pytest.fixture
def deep_folders(built: Built):  # noqa: ANN201
    """1,100 nested folders in the corpus, made and removed one level at a time (os.makedirs and
    shutil.rmtree recurse, and pytest's own clean-up of old temporary folders would fail on them)."""
    levels = [built.corpus / "d"]
    for _ in range(1099):
        levels.append(levels[-1] / "d")
    for level in levels:
        level.mkdir()
    yield levels[-1]
    for level in reversed(levels):
        for path in level.iterdir():
            if not path.is_dir():
                path.unlink()
        level.rmdir()


def test_any_depth_of_nesting_is_read(built: Built, deep_folders: Path) -> None:
    (deep_folders / "bottom.txt").write_text(GOOD.replace("Harbour", "Deep harbour"), encoding="utf-8")
    built.build()
    assert sorted(d.source.rsplit("/", 1)[-1] for d in built.docs().values()) == ["bottom.txt", "good.txt"]
    assert rag.index_status(built.settings).corpus_changed == []


def test_odd_files_are_skipped_one_warning_each(built: Built) -> None:
    c = built.corpus
    (c / "good.txt.meta.toml").mkdir()  # a sidecar that is a folder
    (c / "nested.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n"
                                    + json.dumps({"id": "ok", "text": "Still read."}) + "\n")
    (c / "binary.jsonl").write_bytes(b'{"id": "x"\x00\x01\x02}\n')
    (c / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (c / "image.txt.meta.toml").write_text('publisher = "Unused"\n')  # its file is skipped: never read
    (c / "deep.meta.toml").write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    (c / "deep.txt").write_text(GOOD.replace("Harbour", "Deep"), encoding="utf-8")
    (c / "orphan.txt.meta.toml").write_text('publisher = "Nobody"\n')
    (c / "types.jsonl").write_text(json.dumps({"id": {"a": 1}, "title": ["x"], "text": "Odd types.",
                                               "author": ["A. One", "B. Two"], "url": {"x": 1},
                                               "date": "2026-13-45", "publisher": True}) + "\n")
    built.build()
    w = built.warnings
    warned(w, "good.txt.meta.toml", "metadata sidecar ignored: a folder, not a regular file")
    warned(w, "nested.jsonl:1", "not valid JSON (nested too deeply), line skipped", "Fix the line")
    warned(w, "binary.jsonl", "binary file, skipped")
    warned(w, "image.txt", "binary file, skipped")
    warned(w, "deep.meta.toml", "not valid TOML (nested too deeply)")
    warned(w, "orphan.txt.meta.toml", "metadata sidecar of no file", "Name it after its file")
    types = [x for x in w if x.startswith("types.jsonl:1")]
    assert len(types) == 5 and all("\n" not in x for x in types), types
    assert any("'id' must be text or a whole number, not a table" in x for x in types)
    assert any("'title' must be text, not a list" in x for x in types)
    assert any("metadata 'url' must be text, not a table" in x for x in types)
    assert any("metadata 'date' '2026-13-45' is not a date; use YYYY-MM-DD" in x for x in types)
    assert any("metadata 'publisher' must be text, not true or false" in x for x in types)
    assert len(w) == 11, w
    assert rag.index_status(built.settings).corpus_changed == []  # sidecars read or not, all fingerprinted
    docs = built.docs()
    odd = docs["types/line-1"]
    assert dict(odd.metadata) == {"author": "A. One; B. Two"} and odd.title == "types/line-1"
    assert "ok" in docs and {d.source for d in docs.values()} == {"deep.txt", "good.txt", "nested.jsonl",
                                                                   "types.jsonl"}


def test_a_file_name_that_is_not_utf8_is_skipped_with_a_warning(built: Built) -> None:
    name = os.fsdecode(b"caf\xe9 news.txt")
    (built.corpus / name).write_text(GOOD, encoding="utf-8")
    built.build()
    warned(built.warnings, "caf", "file name is not UTF-8", "Rename it")
    assert [d.source for d in built.docs().values()] == ["good.txt"]
    result = cli("corpus", "list", "--corpus", built.corpus)
    assert result.exit_code == 0 and "Traceback" not in result.output
    assert "warning: caf\\udce9 news.txt: file name is not UTF-8" in result.stderr


def test_folders_whose_names_are_not_utf8(tmp_path: Path, fake_model: Path) -> None:
    b = Built(tmp_path, fake_model)
    b.corpus = tmp_path / os.fsdecode(b"caf\xe9")  # a corpus folder so named: read
    b.corpus.mkdir()
    b.settings = b.settings.with_paths(corpus=b.corpus)
    (b.corpus / "good.txt").write_text(GOOD, encoding="utf-8")
    b.build()
    assert len(b.docs()) == 1 and rag.index_status(b.settings).corpus_changed == []
    index = tmp_path / os.fsdecode(b"ind\xe9x")  # an index there cannot be opened by SQLite: refused, in one line
    with pytest.raises(rag.IndexFolderRefused, match=r"ind\\xe9x has a name that is not UTF-8"):
        rag.build_index(b.settings.with_paths(index=index), embedder=b.embedder())
    one_line_error(cli("search", "strike", "--index", index), "ind\\xe9x has a name that is not UTF-8")
    assert not index.exists()


def test_sidecar_values_of_the_wrong_kind_are_refused_and_a_list_of_authors_accepted(built: Built) -> None:
    (built.corpus / "good.meta.toml").write_text('author = ["Ann Lee", "Bo Chan"]\nurl = { x = 1 }\n'
                                                 'date = "2026-13-45"\npublisher = "Daily"\n'
                                                 'language = ["en", "fr"]\n', encoding="utf-8")
    built.build()
    (doc,) = built.docs().values()
    assert dict(doc.metadata) == {"author": "Ann Lee; Bo Chan", "publisher": "Daily"}
    assert sorted(built.warnings) == [
        "good.meta.toml: metadata 'date' '2026-13-45' is not a date; use YYYY-MM-DD; it is ignored. Fix the value.",
        "good.meta.toml: metadata 'language' must be text, not a list; it is ignored. Fix the value.",
        "good.meta.toml: metadata 'url' must be text, not a table; it is ignored. Fix the value.",
    ]


@pytest.mark.parametrize(("env", "message"), [
    ({"RAG_LLM_TIMEOUT": "-1"}, "Setting llm.timeout (from environment) must be between 0.001 and 86400; got '-1'."),
    ({"RAG_LLM_TIMEOUT": "nan"}, "Setting llm.timeout (from environment) must be a finite number, got 'nan'."),
    ({"RAG_LLM_TIMEOUT": "inf"}, "Setting llm.timeout (from environment) must be a finite number, got 'inf'."),
    ({"RAG_EMBEDDING_BATCH_SIZE": "0"}, "Setting embedding.batch_size (from environment) must be between 1 and "),
    ({"RAG_RETRIEVAL_K": "-3"}, "Setting retrieval.k (from environment) must be at least 1; got '-3'."),
    ({"RAG_RETRIEVAL_DENSE_WEIGHT": "1.5"}, "Setting retrieval.dense_weight (from environment) must be between 0 "
                                            "and 1"),
    ({"RAG_CORPUS_MAX_FILE_MB": "0"}, "Setting corpus.max_file_mb (from environment) must be at least 0.001"),
    ({"RAG_CORPUS_FOLLOW_OUTSIDE_LINKS": "perhaps"}, "Setting corpus.follow_outside_links (from environment) "
                                                     "must be true or false, got 'perhaps'."),
    ({"RAG_CHUNKING_CHUNK_TOKENS": "12.5"}, "Setting chunking.chunk_tokens (from environment) must be int"),
])
def test_settings_out_of_range_are_one_line_on_load(built: Built, env: dict[str, str], message: str) -> None:
    with pytest.raises(rag.SettingsError) as info:
        rag.load_settings(env=env)
    assert str(info.value).startswith(message)
    one_line_error(cli("index", "build", "--corpus", built.corpus, "--index", built.index, env=env), message)
    one_line_error(cli("ask", "Who struck?", "--index", built.index, env=env), message)
    assert not built.index.exists()


def test_settings_file_that_is_a_folder_or_nested_too_deeply(tmp_path: Path) -> None:
    (tmp_path / "folder.toml").mkdir()
    with pytest.raises(rag.SettingsError, match="cannot be read"):
        rag.load_settings(tmp_path / "folder.toml", env={})
    (tmp_path / "deep.toml").write_text("a = " + "[" * 5000 + "]" * 5000)
    with pytest.raises(rag.SettingsError, match="is not valid TOML: nested too deeply"):
        rag.load_settings(tmp_path / "deep.toml", env={})


# --- item 14: an index folder inside the corpus -----------------------------------------------------------------

def test_an_index_inside_the_corpus_is_not_read_as_articles(tmp_path: Path, fake_model: Path) -> None:
    b = Built(tmp_path, fake_model)
    (b.corpus / "good.txt").write_text(GOOD, encoding="utf-8")
    b.index = b.corpus / "index"
    b.settings = b.settings.with_paths(index=b.index)
    b.build()
    second = b.build()
    assert b.warnings == [] and (second.added, second.changed, second.unchanged) == (0, 0, 1)
    assert rag.index_status(b.settings).corpus_changed == []
    listed = cli("corpus", "list", "--corpus", b.corpus, "--index", b.index)
    assert listed.exit_code == 0 and listed.stderr == "" and len(listed.stdout.splitlines()) == 1


# --- a full disk ------------------------------------------------------------------------------------------------

DISK_RUNNER = textwrap.dedent("""
    import resource, signal, sys
    sys.path[:0] = [{root!r}, {tests!r}]
    import rag.index.build
    from conftest import FakeEmbedder
    from rag.index.encoder import model_identity
    from rag.cli import main

    limit, dim, model = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    rag.index.build.load_embedder = lambda *_a: FakeEmbedder(dimension=dim, model_id=model_identity(model)[0])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    sys.argv = ["rag"] + sys.argv[4:]
    main()
""")


@pytest.mark.parametrize(("dim", "limit", "where"), [
    (4, 12_000, "sqlite"),         # tiny vectors: the SQLite file is the first to outgrow the limit
    (1024, 80 * 4096 + 20, "faiss"),  # the vector files just fit; the FAISS file (same vectors + header) does not
])
def test_a_full_disk_is_one_line_and_the_live_index_keeps_serving(tmp_path: Path, fake_model: Path, dim: int,
                                                                  limit: int, where: str) -> None:
    b = Built(tmp_path, fake_model)
    lines = [json.dumps({"id": f"r{i}", "text": f"Record number {i} tells of boat {i}"}) for i in range(80)]
    (b.corpus / "records.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    b.build(embedder=FakeEmbedder(dimension=dim, model_id=b.model_id))
    live = live_generation(b.index).name
    script = tmp_path / "runner.py"
    script.write_text(DISK_RUNNER.format(root=str(ROOT), tests=str(ROOT / "tests")))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    proc = subprocess.run([sys.executable, str(script), str(limit), str(dim), str(fake_model), "index", "build",
                           "--full", "--corpus", str(b.corpus), "--index", str(b.index)],
                          capture_output=True, text=True, env={**env, "RAG_EMBEDDING_MODEL": str(fake_model)},
                          timeout=120)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: ") and "Free some disk space" in line and "live index is unchanged" in line
    assert ("vectors.faiss" in line) == (where == "faiss")
    assert live_generation(b.index).name == live
    assert rag.verify_index(b.settings)["documents"] == 80
    assert sorted(p.name for p in b.index.iterdir() if p.name.startswith("gen-")) == [live]


# --- through the front door, with the real model ---------------------------------------------------------------

def rag_command() -> list[str]:
    script = Path(sys.executable).with_name("rag")
    return [str(script)] if script.exists() else [sys.executable, "-m", "rag.cli"]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RAG_") and k != "OPENAI_API_KEY"}


HOSTILE_TITLE = "Ferry \x1b]0;owned\x07 strike \x1b[31mends\x1b[0m after the union \u202eaccepts\u202c the offer"
HOSTILE_BODY = ("The ferry strike ended on Tuesday \x1b]8;;http://evil.example\x07after talks\x1b]8;;\x07, the union "
                "said.\x9b31m Boats sailed again at noon.\r\n")


@pytest.fixture(scope="module")
def kitchen_sink(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A corpus with every kind of bad input beside three good articles, and a folder outside it."""
    root = tmp_path_factory.mktemp("sink")
    corpus, outside = root / "corpus", root / "outside"
    corpus.mkdir()
    outside.mkdir()
    (outside / "passwd.txt").write_text(f"A secret line that is long enough to be a title\n\n{SECRET}.\n")
    shutil.copy(CORPUS / "with_meta.txt", corpus / "with_meta.txt")
    (corpus / "hostile.txt").write_text(f"{HOSTILE_TITLE}\n\n{HOSTILE_BODY}", encoding="utf-8")
    (corpus / "feed.jsonl").write_text(
        json.dumps({"id": "surrogate", "title": "Lone \ud800 surrogate",
                    "text": "The harbour reopened \ud800 on Monday after repairs. Ferries resumed."}) + "\n"
        + "{not json\n" + json.dumps({"id": "surrogate", "text": "A second record with a taken id."}) + "\n",
        encoding="utf-8")
    (corpus / "leak.txt").symlink_to(outside / "passwd.txt")
    (corpus / "empty.txt").write_text("")
    (corpus / "latin1.txt").write_bytes("Caf\xe9 prices rise again in the old town this winter".encode("latin-1"))
    (corpus / "picture.txt").write_bytes(b"\x89PNG\x00\x00\x00")
    (corpus / "report.pdf").write_bytes(b"%PDF-1.4")
    (corpus / "with_meta.meta.toml").write_text('author = ["Ann Lee", "Bo Chan"]\ndate = "2026-02-30"\n')
    (corpus / "deep.jsonl").write_text("[" * 50_000 + "]" * 50_000 + "\n")
    (corpus / os.fsdecode(b"na\xefve.txt")).write_text(GOOD)
    os.mkfifo(corpus / "pipe.md")
    return corpus, root / "index", outside


@pytest.mark.slow
def test_every_bad_input_is_one_warning_and_the_good_articles_are_indexed(kitchen_sink) -> None:  # noqa: ANN001
    corpus, index, _outside = kitchen_sink
    result = cli("index", "build", "--corpus", corpus, "--index", index, "--json")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    report = json.loads(result.stdout)
    assert report["documents"] == 3 and len(report["warnings"]) == 12, report["warnings"]
    shown = [line for line in result.stderr.splitlines()]
    assert len(shown) == 12 and all(line.startswith("warning: ") for line in shown)
    for name in ("feed.jsonl:1", "feed.jsonl:2", "feed.jsonl:3", "leak.txt", "empty.txt", "latin1.txt",
                 "picture.txt", "report.pdf", "with_meta.meta.toml", "deep.jsonl:1", "na\\udcefve.txt", "pipe.md"):
        assert sum(line.startswith(f"warning: {name}") for line in shown) == 1, (name, shown)
    assert "\x1b" not in result.output and "\udcef" not in result.output
    settings = make_settings(corpus, index)
    docs = {d.doc_id: d for d in rag.indexed_documents(settings)}
    assert sorted(d.source for d in docs.values()) == ["feed.jsonl", "hostile.txt", "with_meta.txt"]
    assert dict(next(d for d in docs.values() if d.source == "with_meta.txt").metadata)["author"] == "Ann Lee; Bo Chan"
    assert docs["surrogate"].title == "Lone \ufffd surrogate"
    assert rag.source_text(corpus, "feed.jsonl", "surrogate") == \
        "The harbour reopened \ufffd on Monday after repairs. Ferries resumed."
    hits = rag.search("harbour reopened after repairs", settings=settings)
    assert hits and hits[0].chunk.doc_id == "surrogate"
    assert all("ZEBRAFISH" not in h.chunk.text for h in rag.search("ZEBRAFISH secret root", 10, settings=settings))
    assert rag.index_status(settings).corpus_changed == []


@pytest.mark.slow
def test_terminal_output_never_carries_escape_sequences(kitchen_sink) -> None:  # noqa: ANN001
    corpus, index, _outside = kitchen_sink
    if not (index / CURRENT).exists():
        rag.build_index(make_settings(corpus, index), warn=lambda _m: None)
    paths = ["--corpus", corpus, "--index", index]
    outputs = [cli("search", "ferry strike union", *paths), cli("ask", "When did the ferry strike end?", *paths),
               cli("corpus", "list", *paths), cli("search", "ferry strike union", "--json", *paths),
               cli("ask", "When did the ferry strike end?", "--json", *paths)]
    for result in outputs:
        assert result.exit_code == 0 and "Traceback" not in result.output, result.output
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", result.output), result.output
    assert "\\x1b]0;owned\\x07" in outputs[0].stdout and "\\u202e" in outputs[0].stdout
    assert "\\x1b]8;;http://evil.example\\x07" in outputs[0].stdout
    passage = json.loads(outputs[3].stdout)["passages"][0]
    assert "\x1b]8;;http://evil.example\x07" in passage["text"]  # JSON keeps the data, as escapes
    assert passage["text"] == rag.source_text(corpus, passage["source"], passage["doc_id"])[
        passage["start"]:passage["end"]]


@pytest.mark.slow
def test_a_question_or_filter_that_is_not_utf8_or_names_no_article_is_one_line(bundled_index: rag.Settings,
                                                                               tmp_path: Path) -> None:
    paths = ["--index", str(bundled_index.paths.index), "--corpus", str(bundled_index.paths.corpus)]
    message = ("The question holds a byte that is not UTF-8 text (at character 23). Retype it, or re-save the "
               "file it came from as UTF-8.")
    proc = subprocess.run([*rag_command(), "ask", b"Who signed the treaty \xff?", *paths],  # real argv bytes
                          capture_output=True, cwd=tmp_path, env=clean_env(), timeout=300)
    assert proc.returncode == 1 and b"Traceback" not in proc.stderr
    assert proc.stderr.decode().strip() == f"error: {message}"
    one_line_error(cli("search", os.fsdecode(b"Who signed the treaty \xff?"), *paths), message)
    one_line_error(cli("ask", "Who signed the treaty?", "--doc", "NO_SUCH_ID", *paths),
                   "The index holds no article with id 'NO_SUCH_ID'", "rag corpus list")
    one_line_error(cli("search", "treaty", "--doc", "caf\udce9", *paths), "is not text")
