"""The folder store's files: the names inside an index folder, which folders are generations of ours, the
`CURRENT` pointer, the manifest, and every data file checked against it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from ..common.files import sha256_file
from ..errors import IndexCorrupt, IndexFolderRefused, IndexMissing
from .manifest import REBUILD, Manifest

CURRENT = "CURRENT"
MANIFEST = "manifest.json"
DB = "chunks.sqlite"
CHUNK_VECTORS = "chunk_vectors.f32"
SENTENCE_VECTORS = "sentence_vectors.f32"
FAISS_FILE = "vectors.faiss"
BM25_DIR = "bm25"
LOCK = "build.lock"
MARK = ".rag-generation"  # written first into every generation a build makes: clean-up removes only those


def data_files(gen: Path) -> Iterator[Path]:
    """Every data file of a generation except the manifest, sorted."""
    for path in sorted(gen.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            yield path


def is_generation(path: Path) -> bool:
    """Whether `path` is a generation folder a build of ours made (its mark or our manifest is in it)."""
    if not path.name.startswith("gen-") or path.is_symlink() or not path.is_dir():
        return False
    if (path / MARK).is_file():
        return True
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(manifest, dict) and "format_version" in manifest and "files" in manifest


def check_utf8_path(root: Path) -> None:
    """SQLite opens files by UTF-8 names: an index folder whose path is not UTF-8 cannot hold an index."""
    try:
        str(root).encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(root).decode("utf-8", "backslashreplace")
        raise IndexFolderRefused(f"Index folder {shown} has a name that is not UTF-8, which SQLite cannot open. "
                                 "Rename it or pass another folder with --index DIR.") from None


def check_index_folder(root: Path) -> None:
    """Refuse to build into a folder that holds anything but an index of ours (hidden files aside)."""
    check_utf8_path(root)
    if not root.exists() and not root.is_symlink():
        return
    if not root.is_dir():
        raise IndexFolderRefused(f"Index path {root} is not a folder. Pass a folder with --index DIR.")
    try:
        names = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise IndexFolderRefused(f"Index folder {root} cannot be read ({exc.strerror or exc}). "
                                 "Fix its permissions or pass another folder with --index DIR.") from None
    if not names or CURRENT in names or LOCK in names or any(is_generation(root / n) for n in names):
        return
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    raise IndexFolderRefused(
        f"Index folder {root} is not empty and holds no index ({shown}); nothing was written to it. "
        "Pass a new or empty folder with --index DIR (or set RAG_INDEX)."
    )


def live_generation(root: Path) -> Path:
    """The folder of the live generation; IndexMissing when none was ever completed."""
    check_utf8_path(root)
    pointer = root / CURRENT
    if not pointer.exists() and not pointer.is_symlink():
        raise IndexMissing(f"No index yet in {root}. Build one with: rag index build --index {root}")
    if pointer.is_symlink() or not pointer.is_file():
        raise IndexCorrupt(pointer_problem(pointer))
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        raise IndexCorrupt(f"{pointer} is not a generation name (not text). {REBUILD}") from None
    except OSError as exc:
        raise IndexCorrupt(f"{pointer} cannot be read ({exc.strerror or exc}). Fix its permissions, or "
                           f"{REBUILD[0].lower()}{REBUILD[1:]}") from None
    gen = root / name
    if not name.startswith("gen-") or "/" in name or not gen.is_dir():
        raise IndexCorrupt(f"{pointer} names generation {name!r}, which does not exist. {REBUILD}")
    return gen


def pointer_problem(pointer: Path) -> str:
    """The message for a `CURRENT` that is not a plain file, which no build can replace."""
    kind = "a link" if pointer.is_symlink() else "a folder" if pointer.is_dir() else "a special file"
    return (f"{pointer} is {kind}, not the file naming the live generation. Move it out of the way "
            f"(mv {pointer} {pointer}.old), then rebuild with: rag index build --index {pointer.parent}")


def read_manifest(gen: Path) -> Manifest:
    path = gen / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise IndexCorrupt(f"Index manifest {path} is missing. {REBUILD}") from None
    except UnicodeDecodeError as exc:
        raise IndexCorrupt(f"Index manifest {path} does not parse ({exc}). {REBUILD}") from None
    except OSError as exc:
        raise IndexCorrupt(f"Index manifest {path} cannot be read ({exc.strerror or exc}). {REBUILD}") from None
    return Manifest.parse(text, str(path))


def check_files(gen: Path, manifest: Manifest, checksums: bool = True) -> None:
    """Every data file exists with the size and sha256 the manifest records (the sha256 unless `checksums` is
    False: a cheap look), and no other file is there."""
    present = {p.relative_to(gen).as_posix() for p in data_files(gen)}
    for name, info in manifest.files.items():
        path = gen / name
        if name not in present:
            raise IndexCorrupt(f"Index file {path} is missing. {REBUILD}")
        size = path.stat().st_size
        if size != info.get("bytes"):
            raise IndexCorrupt(f"Index file {path} has {size} bytes, the manifest says {info.get('bytes')} "
                               f"(truncated or overwritten). {REBUILD}")
        if not checksums:
            continue
        try:
            digest = sha256_file(path)
        except OSError as exc:
            raise IndexCorrupt(f"Index file {path} cannot be read ({exc.strerror or exc}). {REBUILD}") from None
        if digest != info.get("sha256"):
            raise IndexCorrupt(f"Index file {path} does not match its checksum (corrupted). {REBUILD}")
    extra = present - set(manifest.files)
    if extra:
        raise IndexCorrupt(f"Index folder {gen} holds files its manifest does not list: "
                           f"{', '.join(sorted(extra))}. {REBUILD}")


def map_vectors(path: Path, rows: int, dim: int) -> np.ndarray:
    if rows == 0:
        return np.zeros((0, dim), dtype=np.float32)
    expected = rows * dim * 4
    if path.stat().st_size != expected:
        raise IndexCorrupt(f"{path} holds {path.stat().st_size} bytes, {rows} vectors of {dim} need {expected}. "
                           f"{REBUILD}")
    return np.memmap(path, dtype=np.float32, mode="r", shape=(rows, dim))
