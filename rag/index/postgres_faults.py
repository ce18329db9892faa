"""What a PostgreSQL error means for the user: one line naming the cause and the fix, with every password of
the connection string taken out (rag.common.secrets), whatever operation met it."""

from __future__ import annotations

import psycopg

from ..common.secrets import mask_secrets
from ..errors import IndexWriteFailed, StoreUnavailable


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def known_cause(exc: BaseException) -> str | None:
    """'cause. Fix' for the server-side faults whose fix does not depend on what was being done; None else."""
    low = str(exc).lower()
    if "too many clients" in low or "remaining connection slots are reserved" in low or \
            "too many connections for" in low:
        return ("the server has no free connection slot (too many clients already). Close idle clients, lower the "
                "number of processes using it, raise max_connections on the server (or the role's or database's "
                "CONNECTION LIMIT), or put a pooler such as PgBouncer in front")
    if "statement timeout" in low:
        return ("the server cancelled a statement after its statement_timeout. Raise statement_timeout for this "
                "role or database (ALTER ROLE name SET statement_timeout = '5min', or options=-c statement_timeout=0 "
                "in store.url)")
    if "lock timeout" in low or isinstance(exc, psycopg.errors.LockNotAvailable):
        return ("another session held a lock longer than lock_timeout. Find the session holding it "
                "(pg_stat_activity, pg_locks) and end it, or raise lock_timeout, then try again")
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return "the server cancelled a statement (pg_cancel_backend or a timeout). Try again"
    if isinstance(exc, psycopg.errors.DiskFull) or "no space left on device" in low or "could not extend" in low:
        return "the server's disk is full. Free disk space on the database server, then try again"
    if isinstance(exc, (psycopg.errors.AdminShutdown, psycopg.errors.CrashShutdown)) or \
            "terminating connection" in low or "server closed the connection" in low or \
            "the connection is closed" in low or "consuming input failed" in low:
        return ("the server closed the connection (it was restarted, shut down or crashed). Start the server or "
                "wait until it is back, then try again")
    return None


def connect_problem(url: str, exc: BaseException) -> StoreUnavailable:
    """The one-line StoreUnavailable for an error met while connecting to or reading from `url`."""
    text = first_line(exc)
    low = str(exc).lower()
    known = known_cause(exc)
    if known:
        why = known
    elif "password authentication failed" in low or "no password supplied" in low:
        why = ("the server refused the user name or password. Fix the user or password in store.url or "
               "RAG_STORE_URL (or in ~/.pgpass)")
    elif "does not exist" in low and "database" in low:
        why = "that database does not exist. Create it (createdb NAME) or name another one in store.url"
    elif "connection refused" in low or "no such file" in low or "could not connect" in low or "timeout" in low \
            or "could not translate host" in low or "network is unreachable" in low or "failed to resolve" in low:
        why = ("no PostgreSQL server answers there (it is down, or the host or port is wrong). Start the server "
               "or fix store.url / RAG_STORE_URL")
    else:
        why = f"{text}. Check store.url / RAG_STORE_URL"
    return StoreUnavailable(mask_secrets(f"Cannot use the PostgreSQL store at {url}: {why}.", url))


def write_problem(name: str, url: str, exc: BaseException) -> IndexWriteFailed:
    """The one-line IndexWriteFailed for an error met while writing generation `name`."""
    known = known_cause(exc)
    if known:
        message = f"Could not write the new generation {name} to {url}: {known}. The live index is unchanged."
    elif isinstance(exc, psycopg.OperationalError):
        message = (f"Could not write the new generation {name} to {url} ({first_line(exc)}). Check the server and "
                   "its free disk space, then run: rag index build. The live index is unchanged.")
    else:
        message = (f"The database refused the new generation {name} ({type(exc).__name__}: {first_line(exc)}). "
                   "The live index is unchanged; run: rag index build.")
    return IndexWriteFailed(mask_secrets(message, url))
