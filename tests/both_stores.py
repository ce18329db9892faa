"""Fixtures for a test module that runs every test against both stores: the bundled archive in the folder
store and the same archive in PostgreSQL. Import them by name (`from both_stores import bundled_index, engine`)
and they override conftest's folder-only fixtures of the same names for that module."""

from __future__ import annotations

import pytest

import rag


@pytest.fixture(name="bundled_index", scope="module", params=["folder", "postgres"])
def bundled_in_both_stores(request: pytest.FixtureRequest) -> rag.Settings:
    return request.getfixturevalue("bundled_folder" if request.param == "folder" else "bundled_postgres")


@pytest.fixture(name="engine", scope="module")
def engine_in_both_stores(bundled_index: rag.Settings) -> rag.Engine:
    return rag.get_engine(bundled_index)
