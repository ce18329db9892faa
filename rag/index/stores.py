"""The store factory: the backend `store.backend` names. Only here, and in the two stores themselves, is the
backend's name asked; callers ask the store for what they need (`where`, `rebuild`, `excluded`, `key`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .store import Store

if TYPE_CHECKING:
    from ..settings import Settings


def _store_class(settings: "Settings") -> type[Store]:
    if settings.store.backend == "postgres":
        from .postgres import PostgresStore

        return PostgresStore
    from .folder import FolderStore

    return FolderStore


def open_store(settings: "Settings") -> Store:
    """The store named by `store.backend`."""
    return _store_class(settings).from_settings(settings)


def store_key(settings: "Settings") -> tuple:
    """What identifies the index these settings serve (a folder, or a database and namespace), without opening
    it: what the engine caches loaded indexes on."""
    return _store_class(settings).key(settings)


def excluded_paths(settings: "Settings") -> list[Path]:
    """Paths inside the corpus that a corpus walk must skip because the store keeps its own files there."""
    return _store_class(settings).excluded(settings)
