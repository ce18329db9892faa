"""The shape of the package: stages import downwards only, with no circle; nothing but the command line imports the
package root; and answering a question loads neither torch nor the training code."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "rag"
# Each stage may import the ones listed after it (and the shared vocabulary), never one listed before it.
LAYERS = ["rag.cli", "rag.evaluation", "rag.training", "rag.export", "rag.engine", "rag.answer", "rag.index",
          "rag.ingest"]
SHARED = ("rag.common", "rag.errors", "rag.records", "rag.settings", "rag.version")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node, less the bodies of `if TYPE_CHECKING:` (imports for annotations only, never run)."""
    out, todo = [], [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING":
            todo += node.orelse
            continue
        todo += list(ast.iter_child_nodes(node))
    return out


def imports(name: str) -> set[str]:
    """Every module of the package that `name` imports at run time, at the top or inside a function alike."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in MODULES}
    return found - {name}


GRAPH = {name: imports(name) for name in MODULES}


def layer(name: str) -> int | None:
    for i, prefix in enumerate(LAYERS):
        if name == prefix or name.startswith(prefix + "."):
            return i
    return None


def test_the_walk_sees_the_real_imports() -> None:
    """A check of the checker: known edges are found, lazy ones included."""
    assert "rag.index.store" in GRAPH["rag.index.folder"]
    assert "rag.index.encoder_torch" in GRAPH["rag.index.encoders"]  # imported inside a function
    assert "rag.answer.respond" in GRAPH["rag.engine"]


def test_no_import_cycle() -> None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)


def test_only_the_command_line_imports_the_package_root() -> None:
    """The root is the public API over everything; a module inside it that imports it reaches upwards. The
    command line (rag.cli) is the front door over that API, as the app is."""
    offenders = sorted(n for n, deps in GRAPH.items() if "rag" in deps and layer(n) != 0)
    assert offenders == []


def test_stages_import_downwards_only() -> None:
    upward = []
    for name, deps in GRAPH.items():
        mine = layer(name)
        if mine is None:
            assert name == "rag" or name.startswith(SHARED), f"{name} belongs to no stage"
            if name != "rag":
                upward += [f"{name} -> {d}" for d in deps if not d.startswith(SHARED)]
            continue
        upward += [f"{name} -> {d}" for d in deps if (layer(d) is not None and layer(d) < mine)]
    assert upward == []


def test_query_path_stays_clear_of_training() -> None:
    """Nothing the engine or the answer stage imports is training code (which needs torch)."""
    reach, todo = set(), ["rag.engine", "rag"]
    while todo:
        for dep in GRAPH[todo.pop()]:
            if dep not in reach:
                reach.add(dep)
                todo.append(dep)
    assert not [m for m in reach if m.startswith("rag.training") or m == "rag.evaluation"]


def test_modules_fit_in_a_sitting() -> None:
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > 450}
    assert long == {}


@pytest.mark.slow
def test_answering_a_question_loads_neither_torch_nor_training(bundled_index) -> None:  # type: ignore[no-untyped-def]
    """In a fresh process, with the derived encoder already cached (the session's index build made it)."""
    script = f"""
import json, sys
import rag
settings = rag.load_settings().with_paths({str(bundled_index.paths.corpus)!r}, {str(bundled_index.paths.index)!r})
answer = rag.ask("Where was the aviation show held?", settings=settings)
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith(("torch.", "rag.training", "sentence_transformers")))
print(json.dumps({{"cited": len(answer.citations), "loaded": loaded, "reader": "rag.answer.reader_onnx" in sys.modules}}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["loaded"] == [] and report["reader"] and report["cited"] >= 1
