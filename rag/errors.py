"""The library's own exceptions. Each message names what is wrong and the next step."""

from __future__ import annotations


class RagError(Exception):
    """Base class for every error the library raises on purpose."""


class SettingsError(RagError):
    """A setting is unknown or has a value of the wrong kind."""


class CorpusMissing(RagError):
    """The corpus folder does not exist."""


class CorpusEmpty(RagError):
    """The corpus folder holds nothing that could be indexed."""


class IndexMissing(RagError):
    """No index has been built yet in the index folder."""


class IndexCorrupt(RagError):
    """An index file is missing, truncated or does not match its checksum."""


class IndexMismatch(RagError):
    """The index was built with other settings (model, chunking) than the ones in force."""


class IndexLocked(RagError):
    """Another build holds the index folder's lock."""


class StoreUnavailable(RagError):
    """The served store cannot be reached or used (down, refused, wrong password, pgvector missing)."""


class GenerationGone(RagError):
    """The generation a reader was using was removed by a later build; the live one must be reopened."""


class IndexFolderRefused(RagError):
    """The index folder is not empty and holds no index of ours, so nothing is written to it."""


class IndexWriteFailed(RagError):
    """The new index could not be written (a full disk, a read-only folder); the live index is unchanged."""


class BadQuestion(RagError):
    """A question or a search parameter cannot be used."""


class LLMUnavailable(RagError):
    """The configured language-model endpoint could not be used."""


class ExportError(RagError):
    """A citation export was asked for in an unknown format or could not be written."""


class ReaderError(RagError):
    """The answer reader's model files are missing, corrupted or from another version."""


class SpanError(RagError):
    """A citation whose quote is not the exact span of its source that it claims to be (a bug, never shown as
    an answer)."""
