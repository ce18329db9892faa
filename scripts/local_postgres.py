#!/usr/bin/env python3
"""Start (or stop) a real PostgreSQL server with pgvector on loopback, for the tests and for trying the
postgres store on one machine. The server comes from the PyPI package `pgserver` (PostgreSQL 16 with pgvector
bundled; `pip install pgserver`) or from a local PostgreSQL whose `pg_config` is on PATH and has pgvector.

    python scripts/local_postgres.py start DIR [--port N]   prints the URL to put in RAG_STORE_URL
    python scripts/local_postgres.py stop DIR

The server listens on 127.0.0.1 only and checks passwords (scram-sha-256). Run as root, it runs as the system
user `ragpg` (created when missing), because PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

USER, DATABASE = "rag", "rag"
SYSTEM_USER = "ragpg"


def binaries() -> Path | None:
    """The folder of initdb and pg_ctl: pgserver's bundled build, else a local one with pgvector."""
    spec = importlib.util.find_spec("pgserver")  # found, not imported: importing it starts nothing, but warns
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "pginstall" / "bin" / "pg_ctl").exists():
            return Path(location) / "pginstall" / "bin"
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir", "--sharedir"], capture_output=True, text=True)
        bindir, sharedir = out.stdout.split()[:2] if out.returncode == 0 else ("", "")
        if bindir and (Path(sharedir) / "extension" / "vector.control").exists():
            return Path(bindir)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user() -> dict:
    """subprocess arguments that run a command as the server's system user (only when we are root)."""
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True, capture_output=True)
    return {"user": SYSTEM_USER}


def _reachable(bindir: Path, as_user: dict) -> Path:
    """`bindir`, or, when the server's system user cannot run what is in it (the install sits in a virtual
    environment inside a private folder, such as a clone in a 0700 home), the same install copied once to a
    world-readable place under the temporary folder (PostgreSQL finds its libraries relative to its binaries)."""
    if not as_user or subprocess.run(["test", "-x", str(bindir / "pg_ctl")], **as_user).returncode == 0:
        return bindir
    install = bindir.parent
    package = install.parent  # pgserver's binaries find their libraries in ../../../pgserver.libs (a wheel's)
    stamp = f"{install.resolve()}:{(bindir / 'postgres').stat().st_mtime_ns}"
    target = Path(tempfile.gettempdir()) / f"rag-pginstall-{hashlib.sha256(stamp.encode()).hexdigest()[:12]}"
    if not (target / package.name / install.name / "bin" / "pg_ctl").exists():
        staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
        shutil.copytree(install, staging / "install" / package.name / install.name, symlinks=True)
        for libs in package.parent.glob(f"{package.name}*.libs"):
            shutil.copytree(libs, staging / "install" / libs.name, symlinks=True)
        for root, dirs, names in os.walk(staging):
            for name in dirs + names:
                path = os.path.join(root, name)
                if not os.path.islink(path):
                    os.chmod(path, os.stat(path).st_mode | 0o444 | (0o111 if os.stat(path).st_mode & 0o100 else 0))
        os.chmod(staging, 0o755)
        try:
            os.rename(staging / "install", target)
        except OSError:  # another run copied it first
            pass
        shutil.rmtree(staging, ignore_errors=True)
    _open_up(target)
    return target / package.name / install.name / "bin"


def _open_up(path: Path) -> None:
    """Let the server's system user reach `path` (its parents need search permission)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o001 == 0:
            parent.chmod(mode | 0o011)


def start(folder: Path, port: int | None = None, options: str = "") -> str:
    """Initialise (once) and start a server whose data lives in `folder`; the connection URL. `options`: more
    server settings (`-c name=value ...`), after the defaults."""
    bindir = binaries()
    if bindir is None:
        raise SystemExit("No PostgreSQL with pgvector here: pip install pgserver (bundles both), or install "
                         "PostgreSQL and pgvector and put pg_config on PATH.")
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    data, run = folder / "data", folder / "run"
    as_user = _as_server_user()
    bindir = _reachable(bindir, as_user)
    password_file = folder / "password"
    if not (data / "PG_VERSION").exists():
        password_file.write_text(secrets.token_urlsafe(16) + "\n")
        password_file.chmod(0o644 if as_user else 0o600)
        data.mkdir(exist_ok=True)
        if as_user:
            _open_up(folder)
            shutil.chown(data, SYSTEM_USER)
        subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", USER, "--auth-host=scram-sha-256",
                        "--auth-local=trust", "--encoding=UTF8", f"--pwfile={password_file}"],
                       check=True, capture_output=True, **as_user)
    run.mkdir(exist_ok=True)
    if as_user:
        shutil.chown(run, SYSTEM_USER)
    port = port or _free_port()
    settings = f"-c listen_addresses=127.0.0.1 -p {port} -k {run} -c fsync=off -c max_connections=200 {options}"
    subprocess.run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(run / "server.log"), "-o", settings.strip(),
                    "-w", "-t", "60", "start"], check=True, capture_output=True, **as_user)
    (folder / "port").write_text(f"{port}\n")
    password = password_file.read_text().strip()
    for _ in range(100):  # the database the URL names
        made = subprocess.run([str(bindir / "psql"), "-h", str(run), "-p", str(port), "-U", USER, "-d", "postgres",
                               "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"],
                              capture_output=True, text=True)
        if made.returncode == 0:
            if made.stdout.strip() != "1":
                subprocess.run([str(bindir / "createdb"), "-h", str(run), "-p", str(port), "-U", USER, DATABASE],
                               check=True, capture_output=True)
            break
        time.sleep(0.1)
    return f"postgresql://{USER}:{password}@127.0.0.1:{port}/{DATABASE}"


def stop(folder: Path) -> None:
    bindir = binaries()
    data = folder.resolve() / "data"
    if bindir and (data / "postmaster.pid").exists():
        as_user = _as_server_user()
        subprocess.run([str(_reachable(bindir, as_user) / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True, **as_user)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.action == "start":
        print(start(args.folder, args.port))
    else:
        stop(args.folder)


if __name__ == "__main__":
    sys.exit(main())
