"""Retrieval-augmented question answering over news archives, with exact-span citations.

The public API; the command line and the Streamlit app use nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .answer.citations import quote_in_passage
from .answer.compose import CLOSEST_HEADING, POSSIBLE_LEAD
from .answer.coverage import coverage
from .answer.speech import statements_answer
from .answer.conversation import Conversation, ConversationError, Turn
from .answer.readers import load_reader
from .engine import Engine, get_engine
from .errors import (BadQuestion, CorpusEmpty, CorpusMissing, ExportError, IndexCorrupt, IndexFolderRefused,
                     IndexLocked, IndexMismatch, IndexMissing, IndexWriteFailed, LLMUnavailable, RagError, ReaderError,
                     SettingsError, SpanError, StoreUnavailable)
from .export import EXPORTS, ExportFormat
from .export import FORMATS as EXPORT_FORMATS
from .export import export_answers, format_for_path, write_export
from .export.styles import STYLES as CITATION_STYLES
from .export.styles import Reference, style_file
from .export.styles import references as format_references
from .index.build import BuildReport, build_index, read_corpus
from .index.encoders import encoder_info
from .index.status import IndexStatus, index_info, index_status, indexed_documents, verify_index
from .ingest.corpus import iter_articles, load_documents, no_articles, source_text
from .ingest.formats import Article
from .records import Answer, AttributedStatement, Chunk, Citation, Document, Hit, Speaker
from .settings import Settings, describe_settings, load_settings
from .version import __version__


def _settings(settings: Settings | None, corpus: Path | str | None, index: Path | str | None) -> Settings:
    return (settings or load_settings()).with_paths(corpus, index)


def search(query: str, k: int | None = None, *, doc_ids: Sequence[str] | None = None, since: str | None = None,
           until: str | None = None, settings: Settings | None = None, index: Path | str | None = None
           ) -> list[Hit]:
    """The best passages of the live index for `query`."""
    return get_engine(_settings(settings, None, index)).search(query, k, doc_ids, since, until)


def reader_info(settings: Settings | None = None) -> dict | None:
    """Identity and held-out figures of the answer reader in force (None when `answer.reader` is off)."""
    reader = load_reader((settings or load_settings()).answer.reader)
    return None if reader is None else {**reader.identity, "folder": str(reader.folder)}


def ask(question: str, k: int | None = None, *, doc_ids: Sequence[str] | None = None, since: str | None = None,
        until: str | None = None, mode: str | None = None, settings: Settings | None = None,
        index: Path | str | None = None, conversation: Conversation | None = None) -> Answer:
    """A cited answer (or an abstention) from the live index. With the `conversation` so far, a follow-up is
    first resolved into a standalone question (`Answer.standalone`); add the answer with
    `conversation.then(answer)`."""
    return get_engine(_settings(settings, None, index)).ask(question, k, doc_ids, since, until, mode,
                                                            conversation=conversation)


def statements(speaker: str | None = None, *, doc_ids: Sequence[str] | None = None, since: str | None = None,
               until: str | None = None, settings: Settings | None = None, index: Path | str | None = None
               ) -> list[AttributedStatement]:
    """Who said what: the attributed statements of the live index (of one speaker, matched against the names
    merged across the archive: "Lavrov" finds Sergey Lavrov's), in date order, with exact offsets."""
    return get_engine(_settings(settings, None, index)).statements(speaker, doc_ids, since, until)


def speakers(*, doc_ids: Sequence[str] | None = None, since: str | None = None, until: str | None = None,
             settings: Settings | None = None, index: Path | str | None = None) -> list[Speaker]:
    """The speakers of the live index with their numbers of statements and articles, most statements first."""
    return get_engine(_settings(settings, None, index)).speakers(doc_ids, since, until)


def statement_citations(selected: Sequence[AttributedStatement], title: str = "Selected statements") -> Answer:
    """Statements as an `Answer` of citations (numbered in order), for the exporters (`export_answers`)."""
    return statements_answer(selected, title)


__all__ = [
    "Answer", "Article", "ask", "AttributedStatement", "BadQuestion", "build_index", "BuildReport", "Chunk",
    "Citation", "CITATION_STYLES", "CLOSEST_HEADING", "Conversation", "ConversationError", "CorpusEmpty",
    "CorpusMissing", "coverage", "describe_settings", "Document", "encoder_info", "Engine", "export_answers",
    "EXPORT_FORMATS", "ExportError", "ExportFormat", "EXPORTS", "format_for_path", "format_references",
    "get_engine", "Hit", "index_info", "index_status", "IndexCorrupt", "indexed_documents", "IndexFolderRefused",
    "IndexLocked", "IndexMismatch", "IndexMissing", "IndexStatus", "IndexWriteFailed", "iter_articles",
    "LLMUnavailable", "load_documents", "load_settings", "no_articles", "POSSIBLE_LEAD", "quote_in_passage", "RagError",
    "read_corpus", "reader_info", "ReaderError", "Reference", "search", "Settings", "SettingsError", "source_text",
    "SpanError", "Speaker", "speakers", "statement_citations", "statements", "StoreUnavailable", "style_file",
    "Turn", "verify_index", "write_export", "__version__",
]
