"""The file formats: one pass over corpus files that parses each (text and Markdown pages, JSON Lines records,
HTML pages, with their sidecar metadata) into articles with exact offsets into its source text.

A source text is what every offset indexes: a text or Markdown file's decoded contents, a JSON Lines
record's `text`, or the main text that trafilatura extracts from an HTML page. A file that cannot be used is
skipped with a warning naming it and the fix; the rest of the corpus is still read."""

from __future__ import annotations

import datetime
import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator

from ..common.dates import normalise_date
from ..records import METADATA_KEYS, Document
from ..settings import CorpusSettings
from .pages import Article, extract_html, valid_text
from .limits import line_of, record_problem
from .segment import merge_spans, paragraphs, segment_text, slugify
from .sources import (FEED_SUFFIXES, HTML_SUFFIXES, JSONL_SUFFIXES, SIDECAR, SIDECAR_MAX_BYTES, SUPPORTED,
                      TEXT_SUFFIXES, WARC_SUFFIXES, SourceFile, Walk, is_sidecar, open_source, read_bounded,
                      suffix_of)

SIDECAR_KEYS = ("publisher", "url", "date", "author", "language")

Warn = Callable[[str], None]



def default_warn(message: str) -> None:
    import warnings

    warnings.warn(message, stacklevel=3)


def _human(size: int) -> str:
    return f"{size / 1e6:,.1f} MB" if size >= 1e6 else f"{size / 1e3:,.0f} kB" if size >= 1e3 else f"{size} bytes"


def _kind_of(value: object) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"a value of type {type(value).__name__}"


def metadata_value(key: str, value: object) -> str | None:
    """A metadata value as text (a list of authors joined with "; "); ValueError with the reason when it is
    of a kind that cannot be one, or an impossible date."""
    if value is None:
        return None
    if key == "author" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        text = "; ".join(" ".join(v.split()) for v in value if v.strip())
    elif isinstance(value, str):
        text = value.strip()
    elif isinstance(value, (datetime.date, datetime.datetime)) and key == "date":
        text = value.isoformat()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        text = str(value)
    else:
        allowed = "text or a list of text" if key == "author" else "a date" if key == "date" else "text"
        raise ValueError(f"must be {allowed}, not {_kind_of(value)}")
    text = valid_text(text)[0]
    if key == "date" and text and normalise_date(text) is None:
        raise ValueError(f"{text!r} is not a date; use YYYY-MM-DD")
    return text or None


class CorpusParser:
    """One pass over corpus files: the warnings, the ids taken so far (by file and line), and the
    fingerprints of what was read."""

    def __init__(self, corpus: Path, warn: Warn, options: CorpusSettings,
                 exclude: Iterable[Path], sources: dict[str, SourceFile] | None) -> None:
        self.walk = Walk(corpus, options.follow_outside_links, exclude)
        self.warn = warn
        self.min_title_words = options.min_title_words
        self.max_bytes = options.max_bytes
        self.max_mb = options.max_file_mb
        self.sidecar_limit = min(self.max_bytes, SIDECAR_MAX_BYTES)
        self.owners: dict[str, str] = {}  # doc_id -> where it was read ("file" or "file:line")
        self.sources = sources if sources is not None else {}

    # --- ids -------------------------------------------------------------------------------------------------

    def claim(self, doc_id: str, where: str, derived: bool) -> str | None:
        """`doc_id` for the article read at `where`, or, when another file already uses it, a numbered variant
        (ids made from titles and line numbers) or None (ids given in the data: the record is refused)."""
        owner = self.owners.get(doc_id)
        if owner is None:
            self.owners[doc_id] = where
            return doc_id
        if not derived:
            self.warn(f"{where}: duplicate id {doc_id!r} (already used by {owner}), line skipped. "
                      "Give every record its own id.")
            return None
        n = 2
        while f"{doc_id}-{n}" in self.owners:
            n += 1
        new = f"{doc_id}-{n}"
        self.owners[new] = where
        self.warn(f"{where}: article id {doc_id!r} is already used by {owner}; this article is indexed as "
                  f"{new!r}. Rename one of the two so that each keeps an id of its own.")
        return new

    # --- files -----------------------------------------------------------------------------------------------

    def _too_large(self, where: str, size: int, what: str = "file") -> None:
        fix = "Split it into smaller files" if what == "file" else "Shorten the record"
        self.warn(f"{where}: {what} of {_human(size)} is over the {self.max_mb:g} MB limit "
                  f"(corpus.max_file_mb), skipped. {fix} or raise corpus.max_file_mb.")

    def _read(self, path: Path, rel: str, limit: int) -> bytes | None:
        try:
            data, info = read_bounded(path, limit)
        except OSError as exc:
            self.warn(f"{rel}: cannot be read ({exc.strerror or exc}), skipped. Fix its permissions.")
            return None
        self.sources[rel] = info
        if data is None:
            self._too_large(rel, info.bytes)
        return data

    def _decode(self, data: bytes, rel: str) -> str | None:
        if not data.strip():
            self.warn(f"{rel}: empty file, skipped. Add text to it or remove it.")
            return None
        if b"\x00" in data[:8192]:
            self.warn(f"{rel}: binary file, skipped. Only text, Markdown, JSON Lines and HTML files are indexed.")
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.warn(f"{rel}: not UTF-8 (byte {exc.start}), skipped. Re-save it as UTF-8, "
                      f"e.g. iconv -f latin1 -t utf-8 {rel} > fixed.txt.")
            return None

    def metadata(self, values: dict[str, Any], keys: Iterable[str], where: str) -> dict[str, str]:
        meta = {}
        for key in keys:
            try:
                value = metadata_value(key, values.get(key))
            except ValueError as exc:
                self.warn(f"{where}: metadata {key!r} {exc}; it is ignored. Fix the value.")
                continue
            if value:
                meta[key] = value
        return meta

    def sidecar(self, path: Path) -> dict[str, str]:
        for candidate in (path.with_name(path.name + SIDECAR), path.with_suffix(SIDECAR)):
            if not (candidate.exists() or candidate.is_symlink()):
                continue
            rel = self.walk.rel(candidate)
            problem = self.walk.refusal(candidate)
            if problem:
                self.warn(f"{rel}: metadata sidecar ignored: {problem[0]}. {problem[1]}")
                return {}
            data = self._read_sidecar(candidate, rel)
            if data is None:
                return {}
            unknown = [key for key in data if key not in SIDECAR_KEYS]
            for key in unknown:
                self.warn(f"{rel}: unknown metadata key {key!r} ignored; known: {', '.join(SIDECAR_KEYS)}.")
            return self.metadata(data, [k for k in data if k in SIDECAR_KEYS], rel)
        return {}

    def _read_sidecar(self, candidate: Path, rel: str) -> dict[str, Any] | None:
        try:
            raw, info = read_bounded(candidate, self.sidecar_limit)
        except OSError as exc:
            self.warn(f"{rel}: metadata sidecar cannot be read ({exc.strerror or exc}); its metadata is ignored. "
                      "Fix its permissions.")
            return None
        self.sources[rel] = info
        if raw is None:
            self.warn(f"{rel}: metadata sidecar over {_human(self.sidecar_limit)}; its metadata is ignored. "
                      "A sidecar holds a few lines of metadata.")
            return None
        try:
            return tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as exc:
            why = "nested too deeply" if isinstance(exc, RecursionError) else exc
            self.warn(f"{rel}: metadata sidecar is not valid TOML ({why}); its metadata is ignored. Fix it.")
            return None

    # --- articles --------------------------------------------------------------------------------------------

    def articles(self, files: list[Path]) -> Iterator[Article]:
        owned = {f.name for f in files} | {f.with_suffix("").name for f in files}
        for path in files:
            rel = self.walk.rel(path)
            if is_sidecar(rel):
                if path.name[: -len(SIDECAR)] not in owned:
                    self.warn(f"{rel}: metadata sidecar of no file (no {path.name[: -len(SIDECAR)]}.* beside it), "
                              "ignored. Name it after its file, e.g. story.txt.meta.toml.")
                if rel not in self.sources:  # fingerprinted even when unused, so it does not count as new later
                    try:
                        self.sources[rel] = read_bounded(path, self.sidecar_limit)[1]
                    except OSError:
                        pass
                continue
            suffix = suffix_of(path)
            if suffix not in SUPPORTED:
                self.warn(f"{rel}: unsupported file type {suffix or '(none)'}, skipped. Supported: "
                          f"{', '.join(sorted(SUPPORTED))}.")
                continue
            problem = self.walk.refusal(path)
            if problem:
                self.warn(f"{rel}: {problem[0]}, skipped. {problem[1]}")
                continue
            if suffix in JSONL_SUFFIXES:
                yield from self.jsonl(path, rel, self.sidecar(path))
                continue
            if suffix in WARC_SUFFIXES:
                from .warc import warc_articles
                yield from self._checked(rel, warc_articles(self, path, rel, self.sidecar(path)))
                continue
            data = self._read(path, rel, self.max_bytes)
            if data is not None and suffix in FEED_SUFFIXES:
                from .feeds import feed_articles, looks_like_feed
                if suffix != ".xml" or looks_like_feed(data):
                    yield from self._checked(rel, feed_articles(self, rel, data, self.sidecar(path)))
                else:
                    self.warn(f"{rel}: an XML file that is not an RSS or Atom feed, skipped.")
                continue
            text = None if data is None else self._decode(data, rel)
            if text is None:
                continue
            meta = self.sidecar(path)
            produced = self.html(rel, text, meta) if suffix in HTML_SUFFIXES else self.text(rel, text, meta)
            count = 0
            for article in self._checked(rel, produced):
                count += 1
                yield article
            if count == 0 and suffix in TEXT_SUFFIXES:
                self.warn(f"{rel}: no article text found (only a header or related links), skipped. "
                          "Add articles to it.")

    def _checked(self, rel: str, produced: Iterable[Article]) -> Iterator[Article]:
        """`produced` less the articles no store can hold (a NUL character, an over-long id), each skipped with a
        warning naming its file and line: one rule for every format and both stores."""
        for article in produced:
            problem = record_problem(article.document, article.source_text)
            if problem:
                self.warn(f"{rel}:{line_of(article.source_text, article.document.start)}: article "
                          f"{article.document.title[:80]!r} {problem}.")
                continue
            yield article

    def text(self, rel: str, text: str, meta: dict[str, str]) -> Iterator[Article]:
        page_meta, found = segment_text(text, rel.lower().endswith((".md", ".markdown")), self.min_title_words)
        stem = rel.rsplit(".", 1)[0]
        seen: dict[str, int] = {}
        for title, spans in found:
            base = f"{stem}/{slugify(title)}"
            seen[base] = seen.get(base, 0) + 1
            doc_id = self.claim(base if seen[base] == 1 else f"{base}-{seen[base]}", rel, derived=True)
            assert doc_id is not None
            metadata = {**page_meta, **meta}
            doc = Document(doc_id, title, rel, spans[0][0], spans[-1][1], merge_spans(spans, text), metadata)
            yield Article(doc, text, doc.end / max(1, len(text)))

    def html(self, rel: str, html: str, meta: dict[str, str]) -> Iterator[Article]:
        try:
            body, found = extract_html(html)
        except ImportError as exc:  # a broken trafilatura install must not stop the other files
            self.warn(f"{rel}: HTML pages cannot be read here ({exc}), skipped. Reinstall the dependencies "
                      "(make setup).")
            return
        body = valid_text(body)[0]
        if not body.strip():
            self.warn(f"{rel}: no article text found in the HTML page, skipped.")
            return
        title = valid_text(found.pop("title", "") or rel)[0]
        metadata = {**self.metadata(found, list(found), rel), **meta}
        spans = merge_spans(paragraphs(body), body)
        doc_id = self.claim(rel.rsplit(".", 1)[0], rel, derived=True)
        assert doc_id is not None
        yield Article(Document(doc_id, title, rel, 0, len(body), spans, metadata), body)

    def jsonl(self, path: Path, rel: str, meta: dict[str, str]) -> Iterator[Article]:
        """The records of a JSON Lines file, read a line at a time: the file may be of any size, each record
        has the size limit. Lines end at "\\n" only: JSON strings may hold U+2028 and the like raw."""
        try:
            handle, info = open_source(path)
        except OSError as exc:
            self.warn(f"{rel}: cannot be read ({exc.strerror or exc}), skipped. Fix its permissions.")
            return
        digest = hashlib.sha256()
        read = 0
        found = False
        with handle:
            if b"\x00" in handle.peek(8192)[:8192]:
                self.warn(f"{rel}: binary file, skipped. Only text, Markdown, JSON Lines and HTML files are indexed.")
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
                    read += len(block)
                self.sources[rel] = SourceFile(read, info.mtime_ns, digest.hexdigest())
                return
            for lineno, (raw, size) in enumerate(_lines(handle, self.max_bytes, digest), 1):
                read += size
                if raw is None:
                    found = True
                    self._too_large(f"{rel}:{lineno}", size, "record")
                    continue
                if not raw.strip():
                    continue
                found = True
                article = self.record(rel, lineno, raw, meta, read / max(1, info.bytes))
                if article is not None:
                    yield article
        self.sources[rel] = SourceFile(read, info.mtime_ns, digest.hexdigest())
        if not found:
            self.warn(f"{rel}: empty file, skipped. Add text to it or remove it.")

    def record(self, rel: str, lineno: int, raw: bytes, meta: dict[str, str], position: float) -> Article | None:
        where = f"{rel}:{lineno}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.warn(f"{where}: not UTF-8 (byte {exc.start} of the line), line skipped. Re-save the file as UTF-8.")
            return None
        try:
            record = json.loads(line.lstrip("\ufeff") if lineno == 1 else line)
        except json.JSONDecodeError as exc:
            self.warn(f"{where}: not valid JSON ({exc.msg}), line skipped. Fix the line.")
            return None
        except RecursionError:
            self.warn(f"{where}: not valid JSON (nested too deeply), line skipped. Fix the line.")
            return None
        if not isinstance(record, dict):
            self.warn(f"{where}: not a JSON object, line skipped. Each line must be an object with 'text'.")
            return None
        body = record.get("text")
        if not isinstance(body, str) or not body.strip():
            self.warn(f"{where}: no 'text' field with text, line skipped. Add a non-empty 'text'.")
            return None
        raw_id = record.get("id", record.get("_id"))
        if raw_id is not None and (isinstance(raw_id, bool) or not isinstance(raw_id, (str, int))):
            self.warn(f"{where}: 'id' must be text or a whole number, not {_kind_of(raw_id)}; the line number is "
                      "used instead. Fix the id.")
            raw_id = None
        title = record.get("title")
        if title is not None and not isinstance(title, str):
            self.warn(f"{where}: 'title' must be text, not {_kind_of(title)}; it is ignored. Fix the title.")
            title = None
        body, bad = valid_text(body)
        given = raw_id is not None and str(raw_id).strip() != ""
        doc_id, bad_id = valid_text(str(raw_id)) if given else (f"{rel.rsplit('.', 1)[0]}/line-{lineno}", 0)
        title, bad_title = valid_text(title or "")
        if bad + bad_id + bad_title:
            self.warn(f"{where}: {bad + bad_id + bad_title} lone surrogate escape(s) (such as \\ud800, which are "
                      "not characters) replaced with U+FFFD. Fix the escapes in the line.")
        claimed = self.claim(doc_id, where, derived=not given)
        if claimed is None:
            return None
        metadata = {**meta, **self.metadata(record, METADATA_KEYS, where)}
        lead = len(body) - len(body.lstrip())
        span = (lead, len(body.rstrip()))
        document = Document(claimed, title.strip() or claimed, rel, 0, len(body), (span,), metadata)
        problem = record_problem(document, body)
        if problem:
            self.warn(f"{where}: the record {problem}.")
            return None
        return Article(document, body, position)


def _lines(handle: BinaryIO, limit: int, digest: Any) -> Iterator[tuple[bytes | None, int]]:
    """(line without its "\\n", bytes read) for each line; None for a line over `limit` bytes, which is
    read past without being kept. Every byte read goes into `digest`."""
    while raw := handle.readline(limit + 1):
        digest.update(raw)
        size = len(raw)
        if size <= limit or raw.endswith(b"\n"):
            yield raw.removesuffix(b"\n"), size
            continue
        while raw and not raw.endswith(b"\n"):
            raw = handle.readline(1 << 20)
            digest.update(raw)
            size += len(raw)
        yield None, size
