"""What the PostgreSQL store owns: its namespace schema (info, generations, live) and exactly the generation
schemas its generations table lists, by name recorded there, never by a name pattern. A namespace schema that
exists and is not ours is refused, as the folder store refuses a folder that is not its own; system schema
names are refused as namespaces; the first build of a database or namespace creates what it needs under an
advisory lock, so two first builds never race."""

from __future__ import annotations

import hashlib
import re
from typing import Callable

import psycopg
from psycopg import sql

from ..common.secrets import mask_secrets
from ..errors import IndexCorrupt, SettingsError, StoreUnavailable

NAMESPACE = re.compile(r"[a-z_][a-z0-9_]{0,19}")
OUR_TABLES = {"info", "generations", "live"}
RESERVED = ("information_schema", "public")


def check_namespace(namespace: str) -> None:
    """SettingsError for a namespace that is not a plain name of ours (system and shared schemas included)."""
    if not NAMESPACE.fullmatch(namespace):
        raise SettingsError(f"Setting store.namespace must be 1 to 20 lower-case letters, digits or _, starting "
                            f"with a letter or _; got {namespace!r}.")
    if namespace.startswith("pg_") or namespace in RESERVED:
        raise SettingsError(f"Setting store.namespace {namespace!r} names a PostgreSQL system or shared schema "
                            "(pg_*, information_schema, public), where rag never writes. Choose another name, e.g. "
                            "store.namespace = \"rag\".")


def lock_key(purpose: str, namespace: str = "") -> int:
    """A stable signed 64-bit advisory-lock key."""
    return int.from_bytes(hashlib.sha256(f"rag-{purpose}:{namespace}".encode()).digest()[:8], "big", signed=True)


def foreign_tables(conn: psycopg.Connection, namespace: str) -> list[str] | None:
    """None when schema `namespace` does not exist; else the relations in it that are not the store's own
    (none: it is ours, or empty and ours to fill)."""
    found = conn.execute("SELECT n.oid, c.relname, c.relkind FROM pg_namespace n LEFT JOIN pg_class c ON "
                         "c.relnamespace = n.oid AND c.relkind IN ('r', 'v', 'm', 'f', 'p', 'S') "
                         "WHERE n.nspname = %s", (namespace,)).fetchall()
    if not found:
        return None
    tables = {name for _oid, name, _kind in found if name is not None}
    if not tables:
        return []
    if tables != OUR_TABLES:
        return sorted(tables)
    columns = conn.execute("SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                           "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND a.attnum > 0 "
                           "AND NOT a.attisdropped", (namespace,)).fetchall()
    have = {(t, c) for t, c in columns}
    need = {("info", "key"), ("info", "value"), ("generations", "name"), ("generations", "schema"),
            ("generations", "state"), ("generations", "manifest"), ("live", "id"), ("live", "name")}
    if not need <= have:
        return sorted(tables)
    (marked,), = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE key = 'format'").format(
        sql.Identifier(namespace, "info"))).fetchall()
    return [] if marked else ["info"]


def refuse_foreign(where: str, namespace: str, tables: list[str]) -> StoreUnavailable:
    return StoreUnavailable(
        f"Schema {namespace!r} in {where} exists and is not a rag store (it holds {', '.join(tables[:5])}"
        f"{' ...' if len(tables) > 5 else ''} of another application); nothing was written to it. Choose another "
        "store.namespace, or drop or rename that schema if it is yours.")


def check_ours(conn: psycopg.Connection, where: str, namespace: str) -> None:
    tables = foreign_tables(conn, namespace)
    if tables:
        raise refuse_foreign(where, namespace, tables)


def setup(conn: psycopg.Connection, url: str, namespace: str, where: str, create: Callable[[], None]) -> None:
    """Create pgvector (when missing) and the namespace's tables (when missing) under one advisory lock held by
    the transaction, so that two first builds do not race; refuse a namespace schema that is not ours."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("setup"),))
        if conn.execute("SELECT 1 FROM pg_type WHERE typname = 'vector'").fetchone() is None:
            try:
                with conn.transaction():
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except psycopg.Error as exc:
                if isinstance(exc, psycopg.OperationalError):
                    raise
                raise StoreUnavailable(mask_secrets(
                    f"pgvector is not available in {url} ({str(exc).strip().splitlines()[0]}). Install pgvector on "
                    "the server and run `CREATE EXTENSION vector;` in that database as a superuser or its owner, "
                    "then build again.", url)) from None
        check_ours(conn, where, namespace)
        create()


def registered(rows: list[tuple[str, str]], namespace: str) -> list[tuple[str, str]]:
    """The (name, schema) rows of the generations table that name one of this namespace's generation schemas; a
    row naming any other schema (edited by hand) is ignored rather than dropped."""
    return [(name, schema) for name, schema in rows
            if schema == f"{namespace}_{name.lower().replace('-', '_')}"]


def live_schema_missing(where: str, name: str, schema: str) -> IndexCorrupt:
    return IndexCorrupt(f"The live generation {name} in {where} has lost its schema {schema} (dropped outside "
                        "rag). Rebuild it with: rag index build --full")
