"""`rag ui` as a user runs it: the wheel carries the chat app, an installed (not editable) `rag ui` serves the
app from the installed package, and stopping `rag ui` (SIGTERM, Ctrl+C's SIGINT) stops the Streamlit server."""

from __future__ import annotations

import ast
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable, Iterator

import pytest
from conftest import make_settings

import rag
from rag.index.folder import build_lock

ROOT = Path(__file__).resolve().parent.parent
UI = ROOT / "ui"
STOP_S = 10  # how long a stopped `rag ui` may take to close its server
HEAVY = {"faiss", "sentence_transformers", "torch", "onnxruntime", "bm25s", "transformers"}
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="reads processes and sockets from /proc")


def rag_command() -> list[str]:
    script = Path(sys.executable).with_name("rag")
    return [str(script)] if script.exists() else [sys.executable, "-m", "rag.cli"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAG_", "STREAMLIT_")) and k != "OPENAI_API_KEY"}
    return env | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"} | extra


def ui_files() -> dict[str, bytes]:
    """The files of ui/ that belong in the distribution, by path relative to the repository."""
    return {p.relative_to(ROOT).as_posix(): p.read_bytes() for p in sorted(UI.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


# --- processes and sockets, from /proc ------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None for no such process."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _started(pid: int) -> tuple[int, str] | None:
    """The process as (pid, start time): a pid the system gives to another process later is not it."""
    fields = _stat(pid)
    return None if fields is None else (pid, fields[19])


def _alive(process: tuple[int, str]) -> bool:
    """Still running (a zombie nobody reaped yet counts as gone)."""
    fields = _stat(process[0])
    return fields is not None and fields[19] == process[1] and fields[0] != "Z"


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _listeners(port: int) -> set[int]:
    """The processes holding a socket that listens on `port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if os.path.exists(table):
            with open(table) as fh:
                for line in list(fh)[1:]:
                    fields = line.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(f"socket:[{fields[9]}]")
    pids = set()
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if os.readlink(fd) in inodes:
                pids.add(int(fd.parent.parent.name))
        except OSError:
            continue
    return pids


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


class Served:
    """A `rag ui` process started on a free loopback port, with its log."""

    def __init__(self, command: list[str], settings: rag.Settings, cwd: Path, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / "rag-ui.log"
        self.family: set[tuple[int, str]] = set()  # rag ui and the processes it started, once they are known
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [*command, "ui", "--corpus", str(settings.paths.corpus), "--index", str(settings.paths.index),
                 "--port", str(self.port)], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)

    def wait_page(self, timeout: float = 120) -> None:
        """Until the server says it is healthy and serves the page with HTTP 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"rag ui exited with {self.proc.returncode}:\n{_tail(self.log)}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as health:
                    if health.read().strip() == b"ok":
                        with urllib.request.urlopen(self.url, timeout=5) as page:
                            assert page.status == 200
                            return
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"rag ui did not serve {self.url} in {timeout:.0f} s:\n{_tail(self.log)}")

    def server(self) -> set[int]:
        """The processes listening on the port, which are `rag ui` itself or processes it started; `family`
        becomes `rag ui` and every process it started."""
        listeners = _listeners(self.port)
        pids = {self.proc.pid} | _descendants(self.proc.pid)
        assert listeners, f"nothing listens on {self.port}:\n{_tail(self.log)}"
        assert listeners <= pids, f"port {self.port} is held by {listeners}, not by rag ui ({pids})"
        self.family = {p for p in map(_started, pids) if p is not None}
        return listeners

    def stop_with(self, signum: int) -> None:
        """Send `signum` to `rag ui` alone and check that the server and every process it started are gone."""
        self.server()
        family = self.family
        self.proc.send_signal(signum)
        try:
            self.proc.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"rag ui still runs {STOP_S} s after {signal.Signals(signum).name}:\n"
                                 f"{_tail(self.log)}") from None
        deadline = time.monotonic() + STOP_S
        while time.monotonic() < deadline and ({p for p in family if _alive(p)} or _port_open(self.port)):
            time.sleep(0.1)
        left = {p[0] for p in family if _alive(p)}
        assert not left, f"processes {left} of rag ui outlive it after {signal.Signals(signum).name}"
        assert not _port_open(self.port), f"port {self.port} still answers after {signal.Signals(signum).name}"
        assert "Traceback" not in self.log.read_text(errors="replace"), _tail(self.log)

    def kill_all(self) -> None:
        """Kill what is left of this `rag ui` (only processes it started, checked by their start time)."""
        if self.proc.poll() is None:
            self.family |= {p for p in map(_started, {self.proc.pid} | _descendants(self.proc.pid)) if p}
        for process in self.family:
            if _alive(process):
                os.kill(process[0], signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture
def served_copy(bundled_index: rag.Settings, tmp_path: Path) -> rag.Settings:
    """A copy of the bundled corpus and index, so that `rag ui` finds an index that is ready."""
    shutil.copytree(bundled_index.paths.corpus, tmp_path / "corpus")
    shutil.copytree(bundled_index.paths.index, tmp_path / "index")
    return make_settings(tmp_path / "corpus", tmp_path / "index")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[list[str], rag.Settings, dict[str, str]], Served]]:
    """Starts `rag ui` processes; whatever is left of them is killed after the test."""
    started: list[Served] = []

    def start(command: list[str], settings: rag.Settings, env: dict[str, str]) -> Served:
        started.append(Served(command, settings, tmp_path, env))
        return started[-1]

    yield start
    for s in started:
        s.kill_all()


# --- the distribution -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built offline from a clean copy of the sources (no stale build/ folder can leak into it)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in ("rag", "ui"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "--disable-pip-version-check", "-q", "-w", str(out), str(src)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    (found,) = out.glob("rag_news-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed (not editable) into a folder of its own, as `pip install .` lays it out."""
    site = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(site),
                           "--disable-pip-version-check", "-q", str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return site


def installed_env(site: Path) -> dict[str, str]:
    """Imports from the installed folder first (and never from this checkout)."""
    return clean_env(PYTHONPATH=str(site))


def test_wheel_carries_the_chat_app(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        shipped = {n: whl.read(n) for n in whl.namelist() if n.startswith("ui/")}
        entry_points = next(whl.read(n).decode() for n in whl.namelist() if n.endswith(".dist-info/entry_points.txt"))
    assert set(shipped) == set(ui_files()), "the wheel's ui/ differs from the checkout's ui/"
    assert shipped == ui_files()
    assert {"ui/app.py", "ui/.streamlit/config.toml"} <= set(shipped)
    assert "rag = rag.cli:main" in entry_points


def test_installed_package_finds_the_app_in_its_own_folder(installed: Path, tmp_path: Path) -> None:
    probe = ("import rag, ui, rag.cli; print(rag.__file__); print(ui.__file__); print(rag.cli._chat_app())")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=installed_env(installed),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    rag_file, ui_file, app = done.stdout.split()
    assert Path(rag_file) == installed / "rag" / "__init__.py"
    assert Path(ui_file) == installed / "ui" / "__init__.py"
    assert Path(app) == installed / "ui" / "app.py"


@linux_only
@pytest.mark.slow
def test_installed_rag_ui_serves_the_installed_app_and_stops(installed: Path, served_copy: rag.Settings,
                                                             serve: Callable[..., Served]) -> None:
    script = installed / "bin" / "rag"
    assert script.is_file(), "pip did not install the rag command"
    served = serve([str(script)], served_copy, installed_env(installed))
    served.wait_page()
    (server,) = served.server()
    cmdline = Path(f"/proc/{server}/cmdline").read_bytes().split(b"\0")
    assert str(installed / "ui" / "app.py").encode() in cmdline, cmdline
    served.stop_with(signal.SIGTERM)


# --- stopping it ----------------------------------------------------------------------------------------------

@linux_only
@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopping_rag_ui_stops_the_server(signum: int, served_copy: rag.Settings, serve: Callable[..., Served]) -> None:
    served = serve(rag_command(), served_copy, clean_env())
    served.wait_page()
    served.stop_with(signum)
    assert served.proc.returncode in (0, -signum, 128 + signum), _tail(served.log)


# --- what the app imports -------------------------------------------------------------------------------------

def test_ui_imports_only_the_public_api() -> None:
    """The app and its helpers use `rag` through `from rag import ...` and `rag.NAME` of `rag.__all__` only."""
    public = set(rag.__all__)
    for path in sorted(UI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.name}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("rag."), f"{where} imports the submodule {alias.name}"
                    assert alias.name.split(".")[0] not in HEAVY, f"{where} imports {alias.name}"
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                assert not module.startswith("rag."), f"{where} imports from the submodule {module}"
                assert module.split(".")[0] not in HEAVY, f"{where} imports from {module}"
                if module == "rag":
                    assert {a.name for a in node.names} <= public, f"{where} imports private names of rag"
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "rag":
                assert node.attr in public, f"{where} uses rag.{node.attr}, which is not public"


def test_streamlit_is_imported_only_in_ui() -> None:
    for path in sorted((ROOT / "rag").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "streamlit" for n in names), f"{path.relative_to(ROOT)} imports streamlit"


@linux_only
@pytest.mark.slow
def test_a_second_instance_serves_the_live_index_while_another_builds(served_copy: rag.Settings,
                                                                      serve: Callable[..., Served]) -> None:
    """Several app instances share one index: one that finds the corpus changed while another process holds the
    build lock serves the live index instead of failing."""
    (served_copy.paths.corpus / "later.txt").write_text("A later headline about the harbour cranes\n\nThe harbour "
                                                         "bought three cranes on Monday.\n", encoding="utf-8")
    assert rag.index_status(served_copy).corpus_changed == ["later.txt"]
    with build_lock(served_copy.paths.index):
        served = serve(rag_command(), served_copy, clean_env())
        served.wait_page()
    assert "Another build is running; serving the live index" in served.log.read_text(errors="replace")
    served.stop_with(signal.SIGTERM)
