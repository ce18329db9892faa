"""News feeds (RSS 2.0, RSS 1.0 and Atom) read with feedparser: one article per item.

An item's source text is its full content (`content:encoded` or Atom `content`, else the summary) with the HTML
cleaned to text by trafilatura, as an HTML page's is; offsets index that text. An item's id (`guid`, Atom `id`)
or else its link is its stable article id, so the same item in two feed files (snapshots of one feed that
overlap) is one article, read from the first file that holds it."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any, Iterator

from .pages import Article, extract_html, valid_text
from ..records import Document
from .segment import merge_spans, paragraphs, slugify

if TYPE_CHECKING:
    from .formats import CorpusParser

# The root element of a feed, after the XML declaration, comments and a doctype.
_ROOT = re.compile(rb"\s*<(?:[\w.-]+:)?(rss|feed|RDF)[\s>/]")
_SKIP = re.compile(rb"\s*(?:<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>|\xef\xbb\xbf)", re.S)
_AUTHOR_EMAIL = re.compile(r"^\s*\S+@\S+\s*\((.+)\)\s*$")  # RSS 2.0 "jo@example.com (Jo Smith)"
_TAG = re.compile(r"<[^>]*>")


def looks_like_feed(data: bytes) -> bool:
    """Whether an `.xml` file is a feed: its root element is `rss`, Atom's `feed` or RSS 1.0's `rdf:RDF`."""
    head = data[:8192]
    at = 0
    while match := _SKIP.match(head, at):
        if match.end() == at:
            break
        at = match.end()
    root = _ROOT.match(head, at)
    return bool(root) and (root.group(1) != b"RDF" or b"purl.org/rss/1.0" in head)


def _plain(html: str) -> str:
    """Text of a title or author that may hold markup: tags dropped, entities read, spaces collapsed."""
    import html as html_lib

    return " ".join(html_lib.unescape(_TAG.sub(" ", html)).split())


def _content(entry: Any) -> tuple[str, bool]:
    """(full content, whether it is HTML): the longest content element, else the summary."""
    best = ("", "text/plain")
    for part in entry.get("content") or []:
        value = part.get("value") or ""
        if len(value) > len(best[0]):
            best = (value, part.get("type") or "text/html")
    if not best[0].strip():
        detail = entry.get("summary_detail") or {}
        best = (entry.get("summary") or "", detail.get("type") or "text/html")
    return best[0], "html" in best[1]


def _text(value: str, is_html: bool) -> str:
    """An item's content as text: HTML through trafilatura (as HTML pages are), falling back to the markup's
    own text when trafilatura keeps nothing of a short fragment."""
    if not is_html:
        return value.strip()
    body = extract_html(f"<html><body><article>{value}</article></body></html>")[0] if value.strip() else ""
    if body.strip():
        return body
    blocks = re.split(r"(?i)<\s*(?:br|/p|/div|/li|/h\d|/blockquote)\s*/?>", value)
    return "\n".join(line for line in (_plain(b) for b in blocks) if line)


def _date(entry: Any) -> str | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        stamp = entry.get(key)
        if isinstance(stamp, time.struct_time):
            return f"{stamp.tm_year:04d}-{stamp.tm_mon:02d}-{stamp.tm_mday:02d}"
    return None


def _authors(entry: Any) -> list[str]:
    # feedparser splits RSS 2.0's "jo@example.com (Jo Smith)" badly for some addresses: read it whole
    if match := _AUTHOR_EMAIL.match(_plain(str(entry.get("author") or ""))):
        return [match.group(1).strip()]
    names = []
    for person in entry.get("authors") or ([{"name": entry["author"]}] if entry.get("author") else []):
        name = _plain(str(person.get("name") or ""))
        if name and "@" not in name and name not in names:
            names.append(name)
    return names


def feed_articles(reader: "CorpusParser", rel: str, data: bytes, meta: dict[str, str]) -> Iterator[Article]:
    """The articles of one feed file (already read, within the size limit)."""
    import feedparser

    parsed = feedparser.parse(data)  # bytes, never a path or URL: feedparser fetches nothing
    entries = parsed.get("entries") or []
    if parsed.get("bozo"):
        why = " ".join(str(parsed.get("bozo_exception") or "malformed XML").split())[:200]
        if not entries:
            reader.warn(f"{rel}: not a readable RSS or Atom feed ({why}), skipped. Fix the file.")
            return
        reader.warn(f"{rel}: the feed is not well-formed ({why}); its items were read leniently. Check the "
                    "articles it gave, or fix the file.")
    elif not entries:
        reader.warn(f"{rel}: a feed with no items, skipped.")
        return
    channel = parsed.get("feed") or {}
    feed_meta = {"publisher": _plain(channel.get("title") or ""), "language": channel.get("language")}
    stem = rel.rsplit(".", 1)[0]
    repeated: list[str] = []
    for n, entry in enumerate(entries, 1):
        where = f"{rel}: item {n}"
        title = valid_text(_plain(entry.get("title") or ""))[0]
        link = str(entry.get("link") or "").strip()
        given = str(entry.get("id") or "").strip() or link
        if given and given in reader.owners:
            repeated.append(f"{given} (in {reader.owners[given]})")
            continue
        value, is_html = _content(entry)
        body = valid_text(_text(value, is_html))[0]
        if not body.strip():
            reader.warn(f"{where} ({title or link or 'untitled'}) has no text, skipped.")
            continue
        doc_id = reader.claim(given, rel, derived=False) if given else \
            reader.claim(f"{stem}/{slugify(title or 'item')}", rel, derived=True)
        if doc_id is None:
            continue
        authors = _authors(entry)
        found = {"url": link or None, "date": _date(entry), "author": authors or None}
        # the feed's own values < the sidecar's < the item's
        metadata = {**reader.metadata(feed_meta, list(feed_meta), rel), **meta,
                    **reader.metadata(found, list(found), where)}
        spans = merge_spans(paragraphs(body), body)
        document = Document(doc_id, title or link or doc_id, rel, 0, len(body), spans, metadata)
        yield Article(document, body, n / len(entries))
    if repeated:
        reader.warn(f"{rel}: {len(repeated)} item(s) already read (the same id or link), kept once: "
                    f"{', '.join(repeated[:3])}{' …' if len(repeated) > 3 else ''}.")
