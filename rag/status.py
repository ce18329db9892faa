"""What is in an index, whether it is sound, and whether the corpus moved on since it was built."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .embedding import model_identity
from .errors import IndexMismatch, RagError
from .index import (Generation, check_encoder, check_files, index_backend, live_generation, open_live,
                    read_manifest)
from .records import Document
from .settings import Settings
from .sources import Walk, changed_files


@dataclass(frozen=True)
class IndexStatus:
    """The state of the index folder as a user wants to see it; `problem` is set when it cannot serve."""

    path: str
    ready: bool
    documents: int = 0
    chunks: int = 0
    model: str | None = None
    backend: str | None = None
    built_at: str | None = None
    store: str | None = None
    corpus_changed: list[str] = field(default_factory=list)
    settings_changed: bool = False
    problem: str | None = None
    problem_kind: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def index_status(settings: Settings, deep: bool = False) -> IndexStatus:
    """Status of the live index; `deep` also verifies every checksum (slow for large indexes)."""
    root = settings.paths.index
    try:
        gen = live_generation(root)
        manifest = read_manifest(gen)
        if deep:
            check_files(gen, manifest)
    except RagError as exc:
        return IndexStatus(str(root), False, problem=str(exc), problem_kind=type(exc).__name__)
    model_id = None
    try:
        model_id = model_identity(settings.embedding.model)[0]
    except RagError as exc:
        return IndexStatus(str(root), False, problem=str(exc), problem_kind=type(exc).__name__)
    counts = manifest["counts"]
    store = manifest.get("store")
    base = dict(path=str(root), documents=counts["documents"], chunks=counts["chunks"], model=manifest["model"],
                backend=index_backend(manifest),
                built_at=str(manifest.get("built_at") or "") or None,
                store=str(store.get("type")) if isinstance(store, dict) else None,
                corpus_changed=corpus_changes(settings, manifest.get("sources", {})),
                settings_changed=manifest.get("settings_hash") != settings.index_hash(model_id))
    try:
        check_encoder(gen, manifest, model_id, settings.embedding.backend)
    except IndexMismatch as exc:
        return IndexStatus(ready=False, problem=str(exc), problem_kind="IndexMismatch", **base)
    return IndexStatus(ready=True, **base)


def corpus_changes(settings: Settings, recorded: dict[str, Any]) -> list[str]:
    """Corpus files added, removed or edited since they were read for the index."""
    walk = Walk(settings.paths.corpus, settings.corpus.follow_outside_links, [settings.paths.index])
    try:
        return changed_files(walk, recorded, settings.corpus.max_bytes)
    except (OSError, RagError):  # the corpus went away or became unreadable while we looked
        return sorted(recorded)


def index_info(settings: Settings) -> dict[str, Any]:
    """The live generation's manifest, without the per-document and per-file tables."""
    gen = live_generation(settings.paths.index)
    manifest = read_manifest(gen)
    info = {k: v for k, v in manifest.items() if k not in ("documents", "files", "sources")}
    info["generation"] = gen.name
    info["files"] = {name: f["bytes"] for name, f in manifest["files"].items()}
    info["sources"] = len(manifest.get("sources", {}))
    return info


def verify_index(settings: Settings) -> dict[str, Any]:
    """Check manifest, checksums, counts, dimensions and model; raises the matching RagError on a problem."""
    gen: Generation = open_live(settings.paths.index, model_identity(settings.embedding.model)[0],
                                backend=settings.embedding.backend)
    try:
        counts = dict(gen.manifest["counts"])
        return {"ok": True, "generation": gen.path.name, **counts, "dimension": gen.store.dimension}
    finally:
        gen.close()


def indexed_documents(settings: Settings) -> list[Document]:
    """The documents of the live index, in index order."""
    gen = open_live(settings.paths.index)
    try:
        return [row.document for row in gen.documents()]
    finally:
        gen.close()
