"""Reading a corpus folder into articles (`Document`s) with exact offsets into each source text.

A source text is what every offset indexes: a text or Markdown file's decoded contents, a JSON Lines
record's `text`, or the main text that trafilatura extracts from an HTML page."""

from __future__ import annotations

import json
import re
import tomllib
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from .errors import CorpusEmpty, CorpusMissing
from .files import sha256_file
from .records import METADATA_KEYS, Document

TEXT_SUFFIXES = {".txt", ".text", ".md", ".markdown"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
HTML_SUFFIXES = {".html", ".htm"}
SUPPORTED = TEXT_SUFFIXES | JSONL_SUFFIXES | HTML_SUFFIXES
SIDECAR = ".meta.toml"
SIDECAR_KEYS = ("publisher", "url", "date", "author", "language")

Warn = Callable[[str], None]

_PARAGRAPH = re.compile(r"\S(?:.*?\S)?(?=[^\S\n]*\n[^\S\n]*\n|\s*\Z)", re.S)
_HEADER = re.compile(r"^(?:(?P<kind>[A-Za-z][\w ]{0,30}?)\s+)?Archives?\s*[:\-–—]\s*(?P<name>\S.{0,80})$")
_READ_MORE = re.compile(r"^(?:read|see)\s+(?:more|also)\s*[.…]*$", re.I)
_READ_MORE_LINE = re.compile(r"^(?:read|see)\s+(?:more|also)\s*:", re.I)
_END_PUNCT = re.compile(r"[.!?:;,\"”’)\]…]$")
_MD_H1 = re.compile(r"^#(?!#)\s*(\S.*?)\s*#*\s*$")
_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Article:
    """A document together with the source text its offsets index."""

    document: Document
    source_text: str
    position: float = 1.0  # share of its file read once this article is produced (for progress bars)


def _warn_default(message: str) -> None:
    import warnings

    warnings.warn(message, stacklevel=3)


def slugify(text: str, limit: int = 60) -> str:
    """ASCII slug for readable ids."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    slug = _SLUG.sub("-", ascii_text).strip("-")
    return slug[:limit].rstrip("-") or "article"


def corpus_files(corpus: Path) -> list[Path]:
    """Every file under `corpus` that is not hidden and not a sidecar, sorted."""
    if not corpus.exists():
        raise CorpusMissing(
            f"Corpus folder {corpus} does not exist. Create it and put articles in it, or pass --corpus DIR."
        )
    if not corpus.is_dir():
        raise CorpusMissing(f"Corpus path {corpus} is not a folder. Pass a folder with --corpus DIR.")
    files = []
    for path in sorted(corpus.rglob("*")):
        rel = path.relative_to(corpus)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.name.endswith(SIDECAR):
            continue
        files.append(path)
    return files


def _sidecar(path: Path, warn: Warn) -> dict[str, str]:
    for candidate in (path.with_name(path.name + SIDECAR), path.with_suffix(SIDECAR)):
        if candidate.exists():
            try:
                data = tomllib.loads(candidate.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                warn(f"{candidate}: metadata sidecar is not valid TOML ({exc}); its metadata is ignored. Fix it.")
                return {}
            meta = {}
            for key, value in data.items():
                if key not in SIDECAR_KEYS:
                    warn(f"{candidate}: unknown metadata key {key!r} ignored; known: {', '.join(SIDECAR_KEYS)}.")
                elif str(value).strip():
                    meta[key] = str(value).strip()
            return meta
    return {}


def _decode(path: Path, rel: str, warn: Warn) -> str | None:
    data = path.read_bytes()
    if not data.strip():
        warn(f"{rel}: empty file, skipped. Add text to it or remove it.")
        return None
    if b"\x00" in data[:8192]:
        warn(f"{rel}: binary file, skipped. Only text, Markdown, JSON Lines and HTML files are indexed.")
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        warn(
            f"{rel}: not UTF-8 (byte {exc.start}), skipped. Re-save it as UTF-8, "
            f"e.g. iconv -f latin1 -t utf-8 {rel} > fixed.txt."
        )
        return None


def paragraphs(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Spans of blank-line separated paragraphs, trimmed of surrounding whitespace."""
    end = len(text) if end is None else end
    if start == 0 and text.startswith("\ufeff"):  # a UTF-8 byte order mark is not text
        start = 1
    return [(m.start(), m.end()) for m in _PARAGRAPH.finditer(text[:end], start)]


def _is_title(para: str, min_words: int) -> bool:
    return "\n" not in para and not _END_PUNCT.search(para) and len(para.split()) >= min_words


def _excluded(text: str, paras: list[tuple[int, int]]) -> set[int]:
    """Indexes of paragraphs that are related-link blocks, not article text."""
    out: set[int] = set()
    for i, (s, e) in enumerate(paras):
        para = text[s:e]
        if _READ_MORE.match(para):
            out.add(i)
            if i + 1 < len(paras):
                ns, ne = paras[i + 1]
                follow = text[ns:ne]
                # caption + headline, or a lone headline without end punctuation
                if "\n" in follow.strip() and follow.count("\n") <= 3 or not _END_PUNCT.search(follow):
                    out.add(i + 1)
        elif _READ_MORE_LINE.match(para):
            out.add(i)
    return out


def _merge(spans: list[tuple[int, int]], text: str) -> tuple[tuple[int, int], ...]:
    """Join neighbouring paragraph spans into maximal runs with nothing excluded between them."""
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and not text[merged[-1][1]:s].strip():  # only whitespace between: one run
            merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return tuple(merged)


def segment_text(
    text: str, markdown: bool = False, min_title_words: int = 8
) -> tuple[dict[str, str], list[tuple[str, list[tuple[int, int]]]]]:
    """Split an archive page into articles: (file metadata, [(title, paragraph spans)])."""
    paras = paragraphs(text)
    meta: dict[str, str] = {}
    if paras:
        first = text[paras[0][0]:paras[0][1]]
        header = _HEADER.match(first) if "\n" not in first else None
        if header:
            meta["category"] = header.group("name").strip()
            paras = paras[1:]
    skip = _excluded(text, paras)
    kept = [p for i, p in enumerate(paras) if i not in skip]
    h1 = [p for p in kept if markdown and _MD_H1.match(text[p[0]:p[1]].split("\n", 1)[0])]
    articles: list[tuple[str, list[tuple[int, int]]]] = []
    for s, e in kept:
        para = text[s:e]
        if h1:
            match = _MD_H1.match(para.split("\n", 1)[0])
            starts = match is not None
            title = match.group(1) if match else ""
        else:
            starts = _is_title(para, min_title_words) and not para.lstrip().startswith("#")
            title = para
        if starts or not articles:
            if not starts:  # leading text with no headline: title from the first line
                first_line = para.split("\n", 1)[0].lstrip("# ").strip()
                title = first_line if len(first_line) <= 160 else first_line[:157].rsplit(" ", 1)[0] + "…"
            articles.append((title.strip(), [(s, e)]))
        else:
            articles[-1][1].append((s, e))
    return meta, articles


def _text_articles(rel: str, text: str, meta: dict[str, str], min_title_words: int) -> Iterator[Article]:
    page_meta, found = segment_text(text, rel.lower().endswith((".md", ".markdown")), min_title_words)
    stem = rel.rsplit(".", 1)[0]
    seen: dict[str, int] = {}
    for title, spans in found:
        base = f"{stem}/{slugify(title)}"
        seen[base] = seen.get(base, 0) + 1
        doc_id = base if seen[base] == 1 else f"{base}-{seen[base]}"
        metadata = {**page_meta, **meta}
        doc = Document(doc_id, title, rel, spans[0][0], spans[-1][1], _merge(spans, text), metadata)
        yield Article(doc, text, doc.end / max(1, len(text)))


def _jsonl_articles(rel: str, text: str, meta: dict[str, str], warn: Warn, ids: set[str]) -> Iterator[Article]:
    # split on "\n" only: str.splitlines() also breaks at U+2028, U+0085 and others, which JSON strings may hold raw
    read = 0
    for lineno, line in enumerate(text.split("\n"), 1):
        read += len(line) + 1
        if not line.strip():
            continue
        try:
            record = json.loads(line.lstrip("\ufeff") if lineno == 1 else line)
        except json.JSONDecodeError as exc:
            warn(f"{rel}:{lineno}: not valid JSON ({exc.msg}), line skipped. Fix the line.")
            continue
        if not isinstance(record, dict):
            warn(f"{rel}:{lineno}: not a JSON object, line skipped. Each line must be an object with 'text'.")
            continue
        body = record.get("text")
        if not isinstance(body, str) or not body.strip():
            warn(f"{rel}:{lineno}: no 'text' field with text, line skipped. Add a non-empty 'text'.")
            continue
        raw_id = record.get("id", record.get("_id"))
        doc_id = str(raw_id) if raw_id is not None and str(raw_id).strip() else f"{rel.rsplit('.', 1)[0]}/line-{lineno}"
        if doc_id in ids:
            warn(f"{rel}:{lineno}: duplicate id {doc_id!r}, line skipped. Give every record its own id.")
            continue
        ids.add(doc_id)
        metadata = dict(meta)
        for key in METADATA_KEYS:
            value = record.get(key)
            if value is not None and str(value).strip():
                metadata[key] = str(value).strip()
        lead = len(body) - len(body.lstrip())
        span = (lead, len(body.rstrip()))
        title = str(record.get("title") or "").strip() or doc_id
        yield Article(Document(doc_id, title, rel, 0, len(body), (span,), metadata), body, read / max(1, len(text)))


def extract_html(html: str) -> tuple[str, dict[str, str]]:
    """Main text and metadata of an HTML page, via trafilatura."""
    import trafilatura

    result = trafilatura.bare_extraction(html, with_metadata=True, include_comments=False)
    if result is None:
        return "", {}
    get = (lambda k: getattr(result, k, None)) if not isinstance(result, dict) else result.get
    meta = {}
    for key, field in (("title", "title"), ("author", "author"), ("date", "date"),
                       ("publisher", "sitename"), ("url", "url"), ("language", "language")):
        value = get(field)
        if value and str(value).strip():
            meta[key] = str(value).strip()
    return get("text") or "", meta


def _html_articles(rel: str, html: str, meta: dict[str, str], warn: Warn) -> Iterator[Article]:
    try:
        body, found = extract_html(html)
    except ImportError as exc:  # a broken trafilatura install must not stop the other files
        warn(f"{rel}: HTML pages cannot be read here ({exc}), skipped. Reinstall the dependencies (make setup).")
        return
    if not body.strip():
        warn(f"{rel}: no article text found in the HTML page, skipped.")
        return
    title = found.pop("title", "") or rel
    metadata = {**found, **meta}
    spans = _merge(paragraphs(body), body)
    doc_id = rel.rsplit(".", 1)[0]
    yield Article(Document(doc_id, title, rel, 0, len(body), spans, metadata), body)


def iter_articles(corpus: Path, warn: Warn | None = None, min_title_words: int = 8,
                  files: list[Path] | None = None) -> Iterator[Article]:
    """Stream the articles of every supported file under `corpus` (or of `files` only); a bad file is skipped
    with a warning."""
    warn = warn or _warn_default
    ids: set[str] = set()
    for path in corpus_files(corpus) if files is None else files:
        rel = path.relative_to(corpus).as_posix()
        suffix = path.suffix.lower()
        if suffix not in SUPPORTED:
            warn(f"{rel}: unsupported file type {suffix or '(none)'}, skipped. Supported: "
                 f"{', '.join(sorted(SUPPORTED))}.")
            continue
        text = _decode(path, rel, warn)
        if text is None:
            continue
        meta = _sidecar(path, warn)
        if suffix in JSONL_SUFFIXES:
            produced = _jsonl_articles(rel, text, meta, warn, ids)
        elif suffix in HTML_SUFFIXES:
            produced = _html_articles(rel, text, meta, warn)
        else:
            produced = _text_articles(rel, text, meta, min_title_words)
        count = 0
        for article in produced:
            count += 1
            if suffix not in JSONL_SUFFIXES:
                if article.document.doc_id in ids:
                    warn(f"{rel}: duplicate article id {article.document.doc_id!r} skipped.")
                    continue
                ids.add(article.document.doc_id)
            yield article
        if count == 0 and suffix in TEXT_SUFFIXES:
            warn(f"{rel}: no article text found (only a header or related links), skipped. Add articles to it.")


def load_documents(corpus: Path, warn: Warn | None = None, min_title_words: int = 8) -> list[Document]:
    """All articles of a corpus; raises CorpusEmpty when there are none."""
    docs = [a.document for a in iter_articles(corpus, warn, min_title_words)]
    if not docs:
        raise CorpusEmpty(
            f"Corpus folder {corpus} holds no articles. Add .txt, .md, .jsonl or .html files to it."
        )
    return docs


def source_text(corpus: Path, source: str, doc_id: str, min_title_words: int = 8) -> str:
    """The text that the offsets of `doc_id` (from file `source`, relative to `corpus`) index."""
    path = corpus / source
    if path.is_file():
        for article in iter_articles(corpus, lambda _m: None, min_title_words, files=[path]):
            if article.document.doc_id == doc_id:
                return article.source_text
    raise KeyError(f"{doc_id!r} not found in {source}")


def fingerprint(corpus: Path) -> dict[str, dict[str, int | str]]:
    """Size, modification time and sha256 of every file of the corpus, by relative path."""
    out: dict[str, dict[str, int | str]] = {}
    for path in corpus_files(corpus):
        stat = path.stat()
        out[path.relative_to(corpus).as_posix()] = {
            "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256_file(path),
        }
    return out


def changed_files(corpus: Path, recorded: dict[str, dict[str, int | str]]) -> list[str]:
    """Files added, removed or changed since `recorded` (a `fingerprint`); contents are hashed only when the
    size or modification time differ."""
    if not corpus.is_dir():
        return sorted(recorded)
    changed = []
    present = set()
    for path in corpus_files(corpus):
        rel = path.relative_to(corpus).as_posix()
        present.add(rel)
        old = recorded.get(rel)
        stat = path.stat()
        if old is None or old["bytes"] != stat.st_size:
            changed.append(rel)
        elif old["mtime_ns"] != stat.st_mtime_ns and old["sha256"] != sha256_file(path):
            changed.append(rel)
    changed += [rel for rel in recorded if rel not in present]
    return sorted(changed)
