"""The files of a corpus folder: a walk that stays inside the folder, bounded reads, and fingerprints of
exactly the bytes that were read (so the manifest records what was indexed, not what a later look found)."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Mapping

from ..common.files import sha256_file
from ..errors import CorpusMissing

TEXT_SUFFIXES = {".txt", ".text", ".md", ".markdown"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
HTML_SUFFIXES = {".html", ".htm"}
FEED_SUFFIXES = {".rss", ".atom", ".xml"}  # .xml only when its content is a feed (rag/feeds.py)
WARC_SUFFIXES = {".warc", ".warc.gz"}  # read as a stream (rag/warc.py)
SUPPORTED = TEXT_SUFFIXES | JSONL_SUFFIXES | HTML_SUFFIXES | FEED_SUFFIXES | WARC_SUFFIXES
SIDECAR = ".meta.toml"
SIDECAR_MAX_BYTES = 1_000_000  # metadata, not articles

Warn = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


@dataclass(frozen=True)
class SourceFile:
    """The fingerprint of one corpus file as it was read: `sha256` is "" when it was not read (too large)."""

    bytes: int
    mtime_ns: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_sidecar(path: Path | str) -> bool:
    return str(path).endswith(SIDECAR)


def suffix_of(path: Path | str) -> str:
    """The file type: its last suffix, lower case, or `.warc.gz` for a compressed web archive."""
    name = str(path).lower()
    return ".warc.gz" if name.endswith(".warc.gz") else Path(name).suffix


def byte_limit(rel: str, max_bytes: int) -> int | None:
    """The most bytes read of this file; None for JSON Lines and web archives, read a record at a time
    (records have the limit)."""
    if is_sidecar(rel):
        return min(max_bytes, SIDECAR_MAX_BYTES)
    return None if suffix_of(rel) in JSONL_SUFFIXES | WARC_SUFFIXES else max_bytes


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "an entry of unknown kind"


class Walk:
    """Which paths of a corpus folder may be read: not hidden, not the index folder, and not outside the
    folder through a symbolic link (unless `follow_outside_links`)."""

    def __init__(self, corpus: Path, follow_outside_links: bool = False, exclude: Iterable[Path] = ()) -> None:
        self.corpus = corpus
        self.root = os.path.realpath(corpus)
        self.follow = follow_outside_links
        self.exclude = {os.path.realpath(p) for p in exclude}

    def inside(self, real: str) -> bool:
        return real == self.root or real.startswith(self.root.rstrip(os.sep) + os.sep)

    def rel(self, path: Path) -> str:
        return path.relative_to(self.corpus).as_posix() if path.is_relative_to(self.corpus) else str(path)

    def refusal(self, path: Path, real: str | None = None) -> tuple[str, str] | None:
        """(why, what to do) when `path` (whose resolved form is `real`, when known) may not be read as a file
        of this corpus, else None."""
        if not path.is_relative_to(self.corpus) or ".." in path.relative_to(self.corpus).parts:
            return f"not inside the corpus folder {self.corpus}", "Give a path inside it."
        real = real or os.path.realpath(path)
        if not self.inside(real):
            if not os.path.exists(real):
                return f"a broken link (to {real})", "Fix or remove the link."
            if not self.follow:
                return (f"a link to {real}, outside the corpus folder",
                        "Copy the file into the corpus, or set corpus.follow_outside_links = true to read what "
                        "links point to.")
        try:
            mode = os.stat(path).st_mode
        except OSError as exc:
            if not os.path.exists(real):
                return f"a broken link (to {real})", "Fix or remove the link."
            return f"cannot be read ({exc.strerror or exc})", "Fix its permissions."
        if not stat.S_ISREG(mode):
            return f"{_kind(mode)}, not a regular file", "Only regular files are read; move it out of the corpus."
        return None

    def files(self, warn: Warn | None = None) -> list[Path]:
        """Every readable regular file under the folder (sidecars included), sorted; iterative, so any depth
        of nesting is fine, and each real folder is read once, so link loops end."""
        warn = warn or _quiet
        corpus = self.corpus
        if not corpus.exists():
            raise CorpusMissing(
                f"Corpus folder {corpus} does not exist. Create it and put articles in it, or pass --corpus DIR."
            )
        if not corpus.is_dir():
            raise CorpusMissing(f"Corpus path {corpus} is not a folder. Pass a folder with --corpus DIR.")
        found: list[Path] = []
        seen = {self.root}
        stack = [(corpus, self.root)]  # (folder, where it really is): resolving each path anew is quadratic
        while stack:
            folder, folder_real = stack.pop()
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                warn(f"{self.rel(folder)}/: folder cannot be read ({exc.strerror or exc}), skipped. "
                     "Fix its permissions.")
                continue
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                path = Path(entry.path)
                if not _utf8(entry.name):  # its bytes were decoded with surrogateescape: no id can hold it
                    warn(f"{self.rel(path)}: file name is not UTF-8, skipped. Rename it in UTF-8, e.g. with "
                         "convmv -f latin1 -t utf8 --notest.")
                    continue
                try:
                    is_dir = entry.is_dir()  # follows links
                    link = entry.is_symlink()
                except OSError:
                    is_dir, link = False, True
                real = os.path.realpath(path) if link else os.path.join(folder_real, entry.name)
                if not is_dir:
                    problem = self.refusal(path, real)
                    if problem:
                        warn(f"{self.rel(path)}: {problem[0]}, skipped. {problem[1]}")
                    else:
                        found.append(path)
                    continue
                if real in self.exclude or real in seen:
                    continue  # the index folder, or a folder already read (a link back into the corpus)
                if link:
                    if self.inside(real):
                        continue  # read where it really is
                    if not self.follow:
                        warn(f"{self.rel(path)}: a link to the folder {real}, outside the corpus folder, skipped. "
                             "Copy it into the corpus, or set corpus.follow_outside_links = true.")
                        continue
                seen.add(real)
                stack.append((path, real))
        return sorted(found, key=lambda p: p.relative_to(corpus).parts)


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def open_source(path: Path) -> tuple[BinaryIO, SourceFile]:
    """The file opened for reading, with its size and modification time taken before any byte is read (so
    that an edit during the read shows as a change later). Refuses anything but a regular file without
    blocking on it (a named pipe put in place of a file)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, f"{_kind(info.st_mode)}, not a regular file", str(path))
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    return handle, SourceFile(info.st_size, info.st_mtime_ns, "")


def read_bounded(path: Path, limit: int) -> tuple[bytes | None, SourceFile]:
    """The file's bytes (None when it holds more than `limit`) and the fingerprint of what was read."""
    handle, info = open_source(path)
    with handle:
        if info.bytes > limit:
            return None, info
        data = handle.read(limit + 1)
    if len(data) > limit:  # it grew while we read it
        return None, SourceFile(len(data), info.mtime_ns, "")
    return data, SourceFile(len(data), info.mtime_ns, hashlib.sha256(data).hexdigest())


def changed_files(walk: Walk, recorded: Mapping[str, Mapping[str, Any]], max_bytes: int) -> list[str]:
    """Files added, removed or changed since they were read for the index (`recorded`); contents are hashed
    only when the size or modification time differ. Unsupported file types never count."""
    if not walk.corpus.is_dir():
        return sorted(recorded)
    changed = []
    present = set()
    for path in walk.files():
        rel = walk.rel(path)
        if not is_sidecar(rel) and suffix_of(path) not in SUPPORTED:
            continue
        present.add(rel)
        old = recorded.get(rel)
        try:
            now = os.stat(path)
        except OSError:
            changed.append(rel)
            continue
        if old is None or old.get("bytes") != now.st_size:
            changed.append(rel)
        elif not old.get("sha256"):  # skipped as too large: changed when it moved or now fits the limit
            limit = byte_limit(rel, max_bytes)
            if old.get("mtime_ns") != now.st_mtime_ns or limit is None or now.st_size <= limit:
                changed.append(rel)
        elif old.get("mtime_ns") != now.st_mtime_ns and old.get("sha256") != _sha256(path):
            changed.append(rel)
    changed += [rel for rel in recorded if rel not in present]
    return sorted(changed)


def _sha256(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None
