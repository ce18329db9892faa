"""The `rag` command: a thin layer over the public API, one module per group of commands. Library errors become
one-line messages."""

from __future__ import annotations

from . import chat, indexing, querying, tools  # noqa: F401 - each registers its commands on `app`
from .base import app
from .tools import _chat_app

__all__ = ["app", "main", "_chat_app"]


def main() -> None:
    app()
