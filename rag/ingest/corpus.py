"""Reading a corpus folder into articles (`Document`s) with exact offsets into each source text: the walk
(`sources`), then each file parsed by its format (`formats`)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

from ..errors import CorpusEmpty
from ..records import Document
from ..settings import CorpusSettings
from .formats import Article, CorpusParser, Warn, default_warn
from .sources import SourceFile, Walk

__all__ = ["Article", "corpus_files", "iter_articles", "load_documents", "no_articles", "source_text"]


def no_articles(corpus: Path, then: str = "", indexed: bool = False) -> CorpusEmpty:
    """The one message for a corpus that yields no article (`indexed`: none that a build could index); `then`
    continues the sentence with what happens next."""
    return CorpusEmpty(f"Corpus folder {corpus} holds no articles{' that could be indexed' if indexed else ''}. "
                       f"Add .txt, .md, .jsonl or .html files to it{then}.")


def _options(options: CorpusSettings | None) -> CorpusSettings:
    return options if options is not None else CorpusSettings()


def corpus_files(corpus: Path, warn: Warn | None = None, *, options: CorpusSettings | None = None,
                 exclude: Iterable[Path] = ()) -> list[Path]:
    """Every file under `corpus` that may be read (sidecars included), sorted: hidden files, the folders in
    `exclude` (the index) and, unless allowed, whatever links point to outside the folder are left out."""
    return Walk(corpus, _options(options).follow_outside_links, exclude).files(warn)


def iter_articles(corpus: Path, options: CorpusSettings | None = None, warn: Warn | None = None, *,
                  files: list[Path] | None = None, exclude: Iterable[Path] = (),
                  sources: dict[str, SourceFile] | None = None) -> Iterator[Article]:
    """Stream the articles of every supported file under `corpus` (or of `files` only); a bad file or record is
    skipped with a warning. `sources` (when given) receives the fingerprint of every file read, taken from
    exactly the bytes that were read."""
    warn = warn or default_warn
    parser = CorpusParser(corpus, warn, _options(options), exclude, sources)
    yield from parser.articles(parser.walk.files(warn) if files is None else files)


def load_documents(corpus: Path, options: CorpusSettings | None = None, warn: Warn | None = None, *,
                   exclude: Iterable[Path] = ()) -> list[Document]:
    """All articles of a corpus; raises CorpusEmpty when there are none."""
    docs = [a.document for a in iter_articles(corpus, options, warn, exclude=exclude)]
    if not docs:
        raise no_articles(corpus)
    return docs


def source_text(corpus: Path, source: str, doc_id: str, options: CorpusSettings | None = None, *,
                exclude: Iterable[Path] = ()) -> str:
    """The text that the offsets of `doc_id` (from file `source`, relative to `corpus`) index."""
    path = corpus / source
    quiet: Warn = lambda _m: None  # noqa: E731
    if path.is_file():
        for article in iter_articles(corpus, options, quiet, files=[path]):
            if article.document.doc_id == doc_id:
                return article.source_text
        # an id numbered because another file took it first: read the corpus as a build does
        for article in iter_articles(corpus, options, quiet, exclude=exclude):
            if article.document.doc_id == doc_id and article.document.source == source:
                return article.source_text
    raise KeyError(f"{doc_id!r} not found in {source}")
