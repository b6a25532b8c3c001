"""The layout's rules, checked: the import-linter contracts hold and can fail, no import
cycles, no module imports another module's private name (docs/architecture.md)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "eventlake"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"),
                           "--no-cache"],
                          cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)


def test_the_contracts_hold() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("handlers/ingest.py", "import duckdb", "Handlers never import"),
    ("handlers/stream.py", "import prefect", "Handlers never import"),
    ("events/model.py", "import boto3", "events/ knows no storage"),
    ("lake/store.py", "from eventlake.archive import sweep", "Layers"),
    ("hot/store.py", "import flows.archive", "never imports its faces"),
])
def test_breaking_a_contract_fails_the_lint(tmp_path: Path, module: str, line: str,
                                            contract: str) -> None:
    for name in ("eventlake", "flows"):
        shutil.copytree(ROOT / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "eventlake" / module
    target.write_text(target.read_text() + f"\n{line}  # the rule broken on purpose\n")

    result = lint_imports(tmp_path)

    assert result.returncode != 0
    broken = [ln for ln in result.stdout.splitlines() if ln.endswith("BROKEN")]
    assert any(contract in ln for ln in broken), result.stdout


def _modules_graph() -> grimp.ImportGraph:
    return grimp.build_graph("eventlake", cache_dir=None)


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles() -> None:
    """Every import counts, also one inside a function or under TYPE_CHECKING."""
    assert _cycles(_modules_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for name in ("a", "b", "c"):
        graph.add_module(name)
    graph.add_import(importer="a", imported="b")
    graph.add_import(importer="b", imported="a")
    graph.add_import(importer="b", imported="c")
    assert _cycles(graph) == [["a", "b"]]


def private_imports(path: Path, base: Path = ROOT) -> list[str]:
    """`from eventlake.x import _name` and `eventlake.x._name` in one file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("eventlake"):
            found += [f"{path.relative_to(base)}:{node.lineno} imports {node.module}.{a.name}"
                      for a in node.names if a.name.startswith("_") and a.name != "__version__"]
        elif (isinstance(node, ast.Attribute) and node.attr.startswith("_")
              and not node.attr.startswith("__") and ast.unparse(node.value).startswith(
                  "eventlake.")):
            found.append(f"{path.relative_to(base)}:{node.lineno} uses {ast.unparse(node)}")
    return found


def test_no_module_imports_another_modules_private_name() -> None:
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in private_imports(path)]
    assert found == []


def test_the_private_import_check_sees_one(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from eventlake.lake.fs import _vanished\nimport eventlake.lake\n"
                      "x = eventlake.lake.store._map\n")
    assert len(private_imports(sample, tmp_path)) == 2
