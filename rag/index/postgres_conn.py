"""The PostgreSQL store's connections: the pgvector type for psycopg, the pool of connections (a dead one is
retried once), and the names and SQL composition every part of the store shares."""

from __future__ import annotations

import hashlib
import struct
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import psycopg
from psycopg import sql
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format
from psycopg.types import TypeInfo

from ..common.secrets import mask_secrets
from ..errors import StoreUnavailable
from .postgres_faults import connect_problem as _connect_problem

if TYPE_CHECKING:
    pass

STORE_FORMAT = "1"



# ------------------------------------------------------------------------------------- the vector type

class VectorDumper(Dumper):
    """numpy float vectors in pgvector's binary form: dimension, unused, then big-endian float32s."""

    format = Format.BINARY

    def dump(self, obj: np.ndarray) -> bytes:
        values = np.asarray(obj, dtype=">f4").ravel()
        return struct.pack(">HH", len(values), 0) + values.tobytes()


class VectorLoader(Loader):
    format = Format.BINARY

    def load(self, data: Any) -> np.ndarray:
        return np.frombuffer(bytes(data), dtype=">f4", offset=4).astype(np.float32)


def register_vector(conn: psycopg.Connection) -> None:
    info = TypeInfo.fetch(conn, "vector")
    if info is None:
        raise StoreUnavailable(
            f"The database {mask_secrets(conn.info.dsn)} has no pgvector extension. Install pgvector on the server "
            "(https://github.com/pgvector/pgvector) and run `CREATE EXTENSION vector;` in that database as its "
            "owner, or let `rag index build` create it.")
    info.register(conn)  # COPY ... set_types() finds it by name
    dumper = type("VectorDumper", (VectorDumper,), {"oid": info.oid})
    conn.adapters.register_dumper(np.ndarray, dumper)
    conn.adapters.register_loader(info.oid, VectorLoader)


# ------------------------------------------------------------------------------------- connections

class Pool:
    """Idle connections kept for reuse; each thread takes its own while it works."""

    def __init__(self, url: str, register: bool = True) -> None:
        self.url = url
        self.register = register
        self._idle: list[psycopg.Connection] = []
        self._lock = threading.Lock()

    def open(self) -> psycopg.Connection:
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise _connect_problem(self.url, exc) from None
        if self.register:
            try:
                register_vector(conn)
            except BaseException as exc:
                conn.close()
                if isinstance(exc, psycopg.Error):  # a statement_timeout, a server going away
                    raise _connect_problem(self.url, exc) from None
                raise
        return conn

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is not None:
            conn.__dict__["_rag_reused"] = True
        if conn is None or conn.closed:
            conn = self.open()
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.close()
        else:
            with self._lock:
                self._idle.append(conn)

    def run(self, fn: Callable[[psycopg.Connection], Any]) -> Any:
        """fn(connection); once more on a new connection when a pooled one turns out dead (the server restarted
        since it was last used: the other idle ones died with it and are dropped too)."""
        with self.connection() as conn:
            try:
                return fn(conn)
            except psycopg.OperationalError:
                if not conn.__dict__.get("_rag_reused") or not conn.broken:
                    raise
        self.close()
        with self.connection() as conn:
            return fn(conn)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def lock_key(namespace: str) -> int:
    """A stable signed 64-bit advisory-lock key for builds of this namespace."""
    return int.from_bytes(hashlib.sha256(f"rag-build:{namespace}".encode()).digest()[:8], "big", signed=True)


def schema_of(namespace: str, name: str) -> str:
    return f"{namespace}_{name.lower().replace('-', '_')}"


def compose(text: str, *args: Any, **names: Any) -> sql.Composed:
    """A statement with identifiers or literals of our own put in by psycopg's quoting (never user input)."""
    return sql.SQL(text).format(*args, **names)
