"""Web archives for the tests and the benchmark, written with warcio as a crawler writes them."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter


def page(title: str, paragraphs: list[str], date: str | None = None) -> bytes:
    meta = f'<meta property="article:published_time" content="{date}">' if date else ""
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (f"<!DOCTYPE html><html><head><title>{title}</title>{meta}</head><body><nav>Home | World | Sport</nav>"
            f"<article><h1>{title}</h1>{body}</article><footer>All rights reserved.</footer></body></html>"
            ).encode("utf-8")


def add(writer: WARCWriter, url: str, status: str, content_type: str, payload: bytes, captured: str,
        extra: list[tuple[str, str]] = ()) -> None:
    headers = StatusAndHeaders(status, [("Content-Type", content_type), *extra], protocol="HTTP/1.1")
    record = writer.create_warc_record(url, "response", payload=BytesIO(payload), http_headers=headers,
                                       warc_headers_dict={"WARC-Date": captured})
    writer.write_record(record)


def odd_archive(path: Path) -> Path:
    """HTML pages (one captured twice, one with no date of its own), a redirect, a PDF and a 404."""
    with open(path, "wb") as handle:
        writer = WARCWriter(handle, gzip=str(path).endswith(".gz"))
        add(writer, "https://news.example/dam", "200 OK", "text/html; charset=utf-8",
            page("Dam project approved", ["An early draft of the dam story, later replaced by the editors."],
                 "2025-11-02"), "2025-11-02T10:00:00Z")
        add(writer, "https://news.example/old-home", "301 Moved Permanently", "text/html", b"",
            "2025-11-02T10:01:00Z", [("Location", "https://news.example/")])
        add(writer, "https://news.example/report.pdf", "200 OK", "application/pdf", b"%PDF-1.4 fake",
            "2025-11-02T10:02:00Z")
        add(writer, "https://news.example/missing", "404 Not Found", "text/html",
            page("Not found", ["This page does not exist, sorry about that."]), "2025-11-02T10:03:00Z")
        add(writer, "https://news.example/lighthouse", "200 OK", "text/html",
            page("Lighthouse keeper retires", [
                "The last lighthouse keeper on the northern cape retired on Friday after forty-one years.",
                "Edda Sorensen kept the lamp burning through 300 winter storms, the maritime museum said."]),
            "2025-12-05T08:00:00Z")
        add(writer, "https://news.example/dam", "200 OK", "text/html; charset=utf-8",
            page("Dam project approved by the regional council", [
                "The regional council approved the new river dam on Thursday by 31 votes to 9.",
                "Construction of the 90-metre dam will begin next spring and take four years."],
                 "2025-11-03"), "2025-11-04T09:00:00Z")
    return path


def big_archive(path: Path, megabytes: float, paragraphs: int = 40) -> int:
    """A gzipped archive of about `megabytes` MB (compressed) of distinct news pages; the number of pages."""
    import random

    rng = random.Random(7)
    words = ("council harbour river storm election minister budget school hospital railway bridge farmers "
             "court police festival museum weather market energy village").split()
    pages = 0
    with open(path, "wb") as handle:
        writer = WARCWriter(handle, gzip=True)
        while handle.tell() < megabytes * 1e6:
            pages += 1
            paras = [" ".join(rng.choice(words) for _ in range(60)) + f" said official number {pages}."
                     for _ in range(paragraphs)]
            add(writer, f"https://big.example/story/{pages}", "200 OK", "text/html",
                page(f"Story {pages} about the {rng.choice(words)}", paras, f"2024-{1 + pages % 12:02d}-01"),
                "2025-01-01T00:00:00Z")
    return pages
