"""Web archives (`.warc`, `.warc.gz`) read as a stream with warcio: each HTML response record is an article.

Memory stays bounded whatever the file's size: a first pass reads only record headers (which capture of each
URL is the latest, what is skipped and why) and hashes every byte; a second pass extracts the chosen pages one
record at a time through trafilatura, as HTML files are. A page's URL is its article id; its date is the page's
own, else the capture date, and `date_source` says which ("page" or "capture"). Redirects, non-HTML and error
responses are skipped and counted, and so are older captures of a URL captured again.

An incremental build does not re-read a web archive whose size and modification time are those recorded
(`rag.index.unchanged`): its articles are carried from the live generation as they are."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator

from .pages import Article, extract_html, valid_text
from ..common.dates import normalise_date
from ..records import Document
from .segment import merge_spans, paragraphs
from .sources import SourceFile, open_source

if TYPE_CHECKING:
    from .formats import CorpusParser

_HTML_TYPES = ("text/html", "application/xhtml+xml")
_SKIPPED = {"unreadable": "record(s) with no readable HTTP response", "redirect": "redirect(s)", "non-html": "non-HTML response(s)", "error": "error response(s) (4xx/5xx)",
            "older": "older capture(s) of a URL captured again (the latest is kept)",
            "large": "page(s) over the size limit (corpus.max_file_mb)", "empty": "page(s) with no article text",
            "repeated": "page(s) already read from another file"}


class _Hashing:
    """A read-only file wrapper that hashes every byte read through it."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle, self.digest, self.read_bytes = handle, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        self.read_bytes += len(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        data = self.handle.readline(size)
        self.digest.update(data)
        self.read_bytes += len(data)
        return data


@dataclass(frozen=True)
class _Capture:
    ordinal: int  # the record's place among the file's records
    captured: str  # WARC-Date


def _http(record: Any) -> tuple[int, str]:
    """(status code, media type) of a response record."""
    headers = record.http_headers
    if headers is None:
        return 0, ""
    try:
        status = int(headers.get_statuscode() or 0)
    except ValueError:
        status = 0
    return status, (headers.get_header("Content-Type") or "").split(";")[0].strip().lower()


def _charset(record: Any) -> str:
    value = (record.http_headers.get_header("Content-Type") or "").lower()
    return value.split("charset=", 1)[1].split(";")[0].strip(" \"'") if "charset=" in value else "utf-8"


def _survey(handle: BinaryIO, limit: int) -> tuple[dict[str, _Capture], Counter[str], int]:
    """First pass: the latest capture of each HTML page, counts of what is skipped, the number of records."""
    from warcio.archiveiterator import ArchiveIterator

    latest: dict[str, _Capture] = {}
    skipped: Counter[str] = Counter()
    ordinal = -1
    for ordinal, record in enumerate(ArchiveIterator(handle)):
        if record.rec_type != "response":
            continue
        url = record.rec_headers.get_header("WARC-Target-URI") or ""
        status, media = _http(record)
        if status == 0:
            skipped["unreadable"] += 1
        elif 300 <= status < 400:
            skipped["redirect"] += 1
        elif status >= 400 or not 200 <= status < 300:
            skipped["error"] += 1
        elif media not in _HTML_TYPES:
            skipped["non-html"] += 1
        elif int(record.rec_headers.get_header("Content-Length") or 0) > limit + 65536:
            skipped["large"] += 1
        else:
            captured = record.rec_headers.get_header("WARC-Date") or ""
            old = latest.get(url)
            if old is not None:
                skipped["older"] += 1
                if old.captured > captured:
                    continue
            latest[url] = _Capture(ordinal, captured)
    return latest, skipped, ordinal + 1


def warc_articles(reader: "CorpusParser", path: Path, rel: str, meta: dict[str, str]) -> Iterator[Article]:
    """The articles of one web archive, read as a stream."""
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed

    try:
        handle, info = open_source(path)
    except OSError as exc:
        reader.warn(f"{rel}: cannot be read ({exc.strerror or exc}), skipped. Fix its permissions.")
        return
    hashing = _Hashing(handle)
    try:
        with handle:
            latest, skipped, total = _survey(hashing, reader.max_bytes)  # type: ignore[arg-type]
            hashing.read()  # anything after the last record is part of what was read
    except (ArchiveLoadFailed, ValueError, EOFError, OSError) as exc:
        reader.sources[rel] = SourceFile(hashing.read_bytes, info.mtime_ns, hashing.digest.hexdigest())
        reader.warn(f"{rel}: not a readable web archive ({' '.join(str(exc).split())[:200]}), skipped. "
                    "Check that it is a WARC file (gzip per record or uncompressed).")
        return
    reader.sources[rel] = SourceFile(hashing.read_bytes, info.mtime_ns, hashing.digest.hexdigest())
    chosen = {capture.ordinal: url for url, capture in latest.items()}
    made = 0
    try:
        handle, _ = open_source(path)
    except OSError as exc:
        reader.warn(f"{rel}: cannot be read ({exc.strerror or exc}), skipped. Fix its permissions.")
        return
    with handle:
        for ordinal, record in enumerate(ArchiveIterator(handle)):
            url = chosen.get(ordinal)
            if url is None:
                continue
            article = _article(reader, rel, url, record, meta, skipped, ordinal / max(1, total))
            if article is not None:
                made += 1
                yield article
    counted = [f"{skipped[key]} {label}" for key, label in _SKIPPED.items() if skipped[key]]
    if counted or not made:
        reader.warn(f"{rel}: {made} page(s) read as articles; skipped: {'; '.join(counted) or 'nothing'}."
                    + ("" if made else " The archive holds no HTML page with article text."))


def _article(reader: "CorpusParser", rel: str, url: str, record: Any, meta: dict[str, str], skipped: Counter[str],
             position: float) -> Article | None:
    raw = record.content_stream().read(reader.max_bytes + 1)
    if len(raw) > reader.max_bytes:
        skipped["large"] += 1
        return None
    if url in reader.owners:
        skipped["repeated"] += 1
        return None
    try:
        html = raw.decode(_charset(record), errors="replace")
    except LookupError:
        html = raw.decode("utf-8", errors="replace")
    try:
        body, found = extract_html(html)
    except ImportError as exc:
        reader.warn(f"{rel}: HTML pages cannot be read here ({exc}), skipped. Reinstall the dependencies.")
        skipped["empty"] += 1
        return None
    body = valid_text(body)[0]
    if not body.strip():
        skipped["empty"] += 1
        return None
    captured = record.rec_headers.get_header("WARC-Date") or ""
    title = valid_text(found.pop("title", "") or url)[0]
    found["url"] = url
    page_date = normalise_date(found.get("date"))
    found["date"] = page_date or normalise_date(captured)
    if found["date"]:
        found["date_source"] = "page" if page_date else "capture"
    if captured:
        found["captured"] = captured
    doc_id = reader.claim(url, rel, derived=False)
    if doc_id is None:
        return None
    metadata = {**reader.metadata(found, list(found), rel), **meta}
    spans = merge_spans(paragraphs(body), body)
    return Article(Document(doc_id, title, rel, 0, len(body), spans, metadata), body, position)


# ------------------------------------------------------------------------------------------ incremental builds
