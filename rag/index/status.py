"""What is in an index, whether it is sound, and whether the corpus moved on since it was built."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import IndexMismatch, RagError
from ..ingest.sources import Walk, changed_files
from ..records import Document
from ..settings import Settings
from .encoder import model_identity
from .manifest import check_encoder
from .stores import excluded_paths, open_store


@dataclass(frozen=True)
class IndexStatus:
    """The state of the index as a user wants to see it; `problem` is set when it cannot serve."""

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
    store_backend: str = "folder"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def index_status(settings: Settings, deep: bool = False) -> IndexStatus:
    """Status of the live index; `deep` also verifies all its data (checksums: slow for large indexes)."""
    where, kind = str(settings.paths.index), settings.store.backend
    try:
        store = open_store(settings)
    except RagError as exc:
        return IndexStatus(where, False, problem=str(exc), problem_kind=type(exc).__name__, store_backend=kind)
    try:
        where, rebuild = store.where, store.rebuild
        _name, manifest = store.live_manifest()
        if deep:
            store.verify_live()
        model_id = model_identity(settings.embedding.model)[0]
    except RagError as exc:
        return IndexStatus(where, False, problem=str(exc), problem_kind=type(exc).__name__, store_backend=kind)
    finally:
        store.close()
    base = dict(path=where, documents=manifest.counts.documents, chunks=manifest.counts.chunks,
                model=manifest.model, backend=manifest.backend, built_at=manifest.built_at or None,
                store=str(manifest.store.get("type")) if manifest.store else None,
                corpus_changed=corpus_changes(settings, manifest.sources),
                settings_changed=manifest.settings_hash != settings.index_hash(model_id), store_backend=kind)
    try:
        check_encoder(where, manifest, model_id, settings.embedding.backend, rebuild)
    except IndexMismatch as exc:
        return IndexStatus(ready=False, problem=str(exc), problem_kind="IndexMismatch", **base)
    return IndexStatus(ready=True, **base)


def corpus_changes(settings: Settings, recorded: dict[str, Any]) -> list[str]:
    """Corpus files added, removed or edited since they were read for the index."""
    walk = Walk(settings.paths.corpus, settings.corpus.follow_outside_links, excluded_paths(settings))
    try:
        return changed_files(walk, recorded, settings.corpus.max_bytes)
    except (OSError, RagError):  # the corpus went away or became unreadable while we looked
        return sorted(recorded)


def index_info(settings: Settings) -> dict[str, Any]:
    """The live generation's manifest, without the per-document, per-source and per-file tables."""
    store = open_store(settings)
    problem = None
    try:
        name, manifest = store.live_manifest()
        try:  # the data behind the manifest is there and counts what it says (cheap: no checksums)
            store.check_live()
        except RagError as exc:
            problem = str(exc)
    finally:
        store.close()
    info = manifest.summary()
    info["problem"] = problem
    info["generation"] = name
    info["where"] = store.where
    if manifest.files:
        info["files"] = {file: f["bytes"] for file, f in manifest.files.items()}
    return info


def verify_index(settings: Settings) -> dict[str, Any]:
    """Check manifest, stored data (checksums or counts), dimensions and model; raises the matching RagError on
    a problem."""
    store = open_store(settings)
    try:
        store.verify_live()
        gen = store.open_live(model_identity(settings.embedding.model)[0], settings.embedding.backend)
        try:
            return {"ok": True, "generation": gen.name, **asdict(gen.manifest.counts),
                    "dimension": gen.manifest.dimension, "store": store.backend, "checked": store.verified}
        finally:
            gen.close()
    finally:
        store.close()


def indexed_documents(settings: Settings) -> list[Document]:
    """The documents of the live index, in index order."""
    store = open_store(settings)
    try:
        gen = store.open_live()
        try:
            return [row.document for row in gen.documents()]
        finally:
            gen.close()
    finally:
        store.close()
