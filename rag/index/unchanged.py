"""Web archives that did not change since the live generation was built are not read again: their articles
are carried from it as they are (a multi-gigabyte capture is not re-parsed to find nothing new)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

from ..ingest.pages import Article
from ..ingest.sources import SIDECAR, WARC_SUFFIXES, SourceFile, suffix_of
from .store import DocRow, Snapshot


def _same(recorded: dict[str, Any] | None, path: Path) -> bool:
    try:
        now = path.stat()
    except OSError:
        return False
    return bool(recorded and recorded.get("sha256") and recorded.get("bytes") == now.st_size
                and recorded.get("mtime_ns") == now.st_mtime_ns)


def reuse_unchanged(corpus: Path, files: list[Path], previous: Snapshot | None
                    ) -> tuple[list[Path], list[DocRow], dict[str, SourceFile]]:
    """The files still to read, the live generation's articles of the web archives that did not change
    since it was built (same size and modification time, sidecar included), and those files' fingerprints."""
    if previous is None:
        return files, [], {}
    recorded = previous.manifest.sources
    rels = {f: f.relative_to(corpus).as_posix() for f in files}
    kept: dict[str, SourceFile] = {}
    for path, rel in rels.items():
        if suffix_of(path) not in WARC_SUFFIXES or not _same(recorded.get(rel), path):
            continue
        sidecars = [s for s in (path.with_name(path.name + SIDECAR), path.with_suffix(SIDECAR)) if s in rels]
        side_rels = [rels[s] for s in sidecars]
        recorded_sides = [r for r in recorded if r in {p.relative_to(corpus).as_posix() for p in
                                                       (path.with_name(path.name + SIDECAR),
                                                        path.with_suffix(SIDECAR))}]
        if sorted(side_rels) != sorted(recorded_sides) or not all(_same(recorded[r], s)
                                                                  for r, s in zip(side_rels, sidecars)):
            continue
        for name in [rel, *side_rels]:
            kept[name] = SourceFile(**{k: recorded[name][k] for k in ("bytes", "mtime_ns", "sha256")})
    if not any(suffix_of(r) in WARC_SUFFIXES for r in kept):
        return files, [], {}
    rows = [row for row in previous.documents() if row.document.source in kept]
    return [f for f in files if rels[f] not in kept], rows, kept


def without_ids(articles: Iterable[Article], taken: set[str], warn: Any) -> Iterator[Article]:
    """`articles` less those whose id an unchanged web archive already gives (each id is one article)."""
    for article in articles:
        if article.document.doc_id in taken:
            warn(f"{article.document.source}: article id {article.document.doc_id!r} is already given by a web "
                 "archive, skipped.")
            continue
        yield article

