"""The PostgreSQL tests wherever the clone lives: a server whose binaries sit under a private (0700) folder,
as in a virtual environment inside a clone in a user's home, still starts, run as root (the server then runs
as its own system user, which cannot enter that folder) or as an ordinary user."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import local_postgres  # noqa: E402

sys.path.remove(str(ROOT / "scripts"))


@pytest.mark.slow
def test_server_starts_with_its_binaries_under_a_0700_folder(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    installed = local_postgres.binaries()
    assert installed is not None, "the test extra installs pgserver"
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    site = private / "venv" / "site-packages"  # the install as it sits in a virtual environment
    package = installed.parent.parent
    shutil.copytree(package / installed.parent.name, site / package.name / installed.parent.name, symlinks=True)
    for libs in package.parent.glob(f"{package.name}*.libs"):
        shutil.copytree(libs, site / libs.name, symlinks=True)
    bindir = site / package.name / installed.parent.name / "bin"
    monkeypatch.setattr(local_postgres, "binaries", lambda: bindir)
    folder = Path(tempfile.mkdtemp(prefix="rag-pg-private-"))
    try:
        url = local_postgres.start(folder)
        used = local_postgres._reachable(bindir, local_postgres._as_server_user())
        if os.geteuid() == 0:  # the server user cannot enter the 0700 folder: a readable copy is used
            assert used != bindir and not str(used).startswith(str(private))
            assert (private.stat().st_mode & 0o777) == 0o700  # the private folder was not opened up
        else:
            assert used == bindir
        with psycopg.connect(url, connect_timeout=10) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            assert conn.execute("SELECT '[1,2]'::vector <#> '[3,4]'::vector").fetchone() == (-11.0,)
    finally:
        local_postgres.stop(folder)
        shutil.rmtree(folder, ignore_errors=True)
    assert not (folder / "data" / "postmaster.pid").exists()
