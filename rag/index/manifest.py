"""The manifest: one typed record of what a generation holds and how it was made, written, validated and read
here only. The folder store keeps it as `manifest.json` beside the data files (with their checksums); the
PostgreSQL store keeps the same JSON in its generations table."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import IndexCorrupt, IndexMismatch

FORMAT_VERSION = 1
REBUILD = "Rebuild it with: rag index build --full"


@dataclass(frozen=True)
class Counts:
    documents: int
    chunks: int
    sentences: int
    statements: int = 0  # attributed statements (who said what)
    speakers: int = 0  # speakers merged across the archive


@dataclass(frozen=True)
class Manifest:
    """Identity, settings, counts and contents of one index generation."""

    model: str
    dimension: int
    counts: Counts
    settings_hash: str = ""
    backend: str = "torch"  # the embedding backend; indexes from before it was recorded used torch
    sentence_vectors: str = "encoded"
    max_seq_length: int = 0
    chunking: dict[str, Any] = field(default_factory=dict)
    store: dict[str, Any] = field(default_factory=dict)
    bm25: dict[str, Any] = field(default_factory=dict)
    corpus: str = ""
    built_at: str = ""
    package_version: str = ""
    format_version: int = FORMAT_VERSION
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)  # corpus file -> bytes, mtime_ns, sha256
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)  # doc id -> content hash, chunk range
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # folder store: data file -> bytes, sha256
    attribution: str = ""  # the statement extractor's version (`rag.ingest.attribution.VERSION`); "": none stored

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1)

    def summary(self) -> dict[str, Any]:
        """The manifest without its per-document, per-source and per-file tables (what `rag index info` shows)."""
        data = asdict(self)
        for name in ("documents", "sources", "files"):
            data.pop(name)
        data["sources"] = len(self.sources)
        return data

    @classmethod
    def parse(cls, text: str, where: str) -> "Manifest":
        """Read a manifest; IndexCorrupt naming `where` when it does not parse or lacks what readers rely on,
        IndexMismatch when it is of another format."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise IndexCorrupt(f"Index manifest {where} does not parse ({exc}). {REBUILD}") from None
        except RecursionError:
            raise IndexCorrupt(f"Index manifest {where} does not parse (nested too deeply). {REBUILD}") from None
        return cls.from_dict(data, where)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> "Manifest":
        if not isinstance(data, dict) or "files" not in data or "counts" not in data:
            raise IndexCorrupt(f"Index manifest {where} lacks its files or counts. {REBUILD}")
        if data.get("format_version") != FORMAT_VERSION:
            raise IndexMismatch(f"Index {where} has format {data.get('format_version')!r}; this version reads "
                                f"format {FORMAT_VERSION}. {REBUILD}")
        problem = _problem(data)
        if problem:
            raise IndexCorrupt(f"Index manifest {where} is malformed: {problem}. {REBUILD}")
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        values["counts"] = Counts(**{k: data["counts"][k] for k in ("documents", "chunks", "sentences")},
                                  **{k: data["counts"][k] for k in ("statements", "speakers")
                                     if _count(data["counts"].get(k))})
        return cls(**values)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _problem(data: dict[str, Any]) -> str | None:
    """What is wrong with the shape of a parsed manifest, or None: readers rely on it without checks."""
    files, counts = data["files"], data["counts"]
    if not isinstance(files, dict) or not all(
        isinstance(info, dict) and _count(info.get("bytes")) and isinstance(info.get("sha256"), str)
        for info in files.values()
    ):
        return "'files' must map each file to its bytes and sha256"
    if not isinstance(counts, dict) or not all(_count(counts.get(k)) for k in ("documents", "chunks", "sentences")):
        return "'counts' must hold whole numbers of documents, chunks and sentences"
    if not _count(data.get("dimension")) or not data["dimension"]:
        return "'dimension' must be a positive whole number"
    if not isinstance(data.get("model"), str):
        return "'model' must name the embedding model"
    for name in ("backend", "settings_hash", "sentence_vectors", "corpus", "built_at", "package_version",
                 "attribution"):
        if not isinstance(data.get(name, ""), str):
            return f"'{name}' must be text"
    for name in ("chunking", "store", "bm25", "documents"):
        if not isinstance(data.get(name, {}), dict):
            return f"'{name}' must be an object"
    if not _count(data.get("max_seq_length", 0)):
        return "'max_seq_length' must be a whole number"
    sources = data.get("sources", {})
    if not isinstance(sources, dict) or not all(
        isinstance(f, dict) and {"bytes", "mtime_ns", "sha256"} <= set(f) for f in sources.values()
    ):
        return "'sources' must map each corpus file to its bytes, mtime_ns and sha256"
    return None


def encoder_change(manifest: Manifest, model_id: str | None, backend: str | None) -> str | None:
    """What about the encoder differs between the index and the settings in force: "model", "backend", or None
    when the index can serve them (None arguments are not compared). The one compatibility rule: builds use it
    to decide on a full rebuild, loading and status to refuse an index."""
    if model_id is not None and manifest.model != model_id:
        return "model"
    if backend is not None and manifest.backend != backend:
        return "backend"
    return None


def check_encoder(where: str, manifest: Manifest, model_id: str | None, backend: str | None,
                  rebuild: str = "rag index build") -> None:
    """IndexMismatch unless the index was built with this model and this backend (None: not checked);
    `rebuild` is the command that rebuilds it."""
    change = encoder_change(manifest, model_id, backend)
    if change == "model":
        raise IndexMismatch(
            f"Index in {where} was built with model {manifest.model!r} but the settings use {model_id!r}. "
            f"Rebuild it with: {rebuild} (or set embedding.model back)."
        )
    if change == "backend":
        raise IndexMismatch(
            f"Index in {where} was built with embedding backend {manifest.backend!r} but the settings use "
            f"{backend!r}; its vectors would not match the questions'. Rebuild it with: {rebuild} "
            f"(or set embedding.backend = {manifest.backend!r})."
        )
