"""The house's wiring: every DVC stage depends on the code it runs, packages import without cycles,
and no import of a sibling module hides inside a function without a stated reason."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.name for p in (REPO / "pipeline").iterdir() if (p / "__init__.py").exists())


def _module_file(dotted: str) -> Path | None:
    base = REPO.joinpath(*dotted.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _imports(path: Path, top_level_only: bool = False, tree: ast.Module | None = None) -> list[tuple[str, ast.AST]]:
    """Dotted names of the project modules ``path`` imports (``from a.b import c``: a.b.c if that is a
    module, else a.b), with the import node."""
    tree = tree or ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(a.name, node) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = [f"{node.module}.{a.name}" for a in node.names]
            mods = [s for s in subs if _module_file(s)]
            found += [(m, node) for m in mods] or [(node.module, node)]
    return [(n, node) for n, node in found if n.split(".")[0] in ("pipeline", "stages")]


def _with_parents(dotted: str) -> list[str]:
    parts = dotted.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def closure(module: str) -> set[Path]:
    """Files Python executes when it imports ``module`` (package __init__ files included)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        for n in _with_parents(name):
            if n in seen or _module_file(n) is None:
                continue
            seen.add(n)
            todo += [m for m, _ in _imports(_module_file(n))]
    return {_module_file(n).relative_to(REPO) for n in seen}


def dvc_stages() -> dict[str, tuple[str, list[str]]]:
    """stage -> (module its cmd runs, its deps), from dvc.yaml (foreach stages once)."""
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, st in spec.items():
        st = st.get("do", st)
        words = st["cmd"].split()
        module = words[words.index("-m") + 1]
        out[name] = (module, [d if isinstance(d, str) else next(iter(d)) for d in st.get("deps", [])])
    return out


def uncovered(module: str, deps: list[str]) -> list[str]:
    """Files ``module`` runs that no dep (a file, or a folder above it) covers."""
    roots = [Path(d) for d in deps if "${" not in d]
    return sorted(str(f) for f in closure(module) - TOP_INITS if not any(f == r or r in f.parents for r in roots))


# the stages package marker runs with every stage and stays empty (a test says so); each stage lists its own script
TOP_INITS = {Path("stages/__init__.py")}


def test_top_level_package_markers_are_empty():
    assert all(not (REPO / p).read_text().strip() for p in TOP_INITS)


@pytest.mark.parametrize("stage", sorted(dvc_stages()))
def test_stage_deps_cover_every_module_it_imports(stage):
    module, deps = dvc_stages()[stage]
    missing = uncovered(module, deps)
    assert not missing, f"dvc.yaml stage {stage!r} runs {missing} but does not depend on them: add their folder to its deps"


def test_the_deps_check_fails_without_a_folder():
    """Drop one folder from a stage's deps: the check above names what it no longer covers."""
    module, deps = dvc_stages()["train"]
    assert "pipeline/gan/train.py" in uncovered(module, [d for d in deps if d != "pipeline/gan"])
    module, deps = dvc_stages()["evaluate"]
    assert "pipeline/core/config.py" in uncovered(module, [d for d in deps if d != "pipeline/core"])


def _graph() -> dict[str, set[str]]:
    mods = {".".join(p.relative_to(REPO).with_suffix("").parts): p for p in (REPO / "pipeline").rglob("*.py")}
    return {m: {n for n, _ in _imports(p, top_level_only=True) if n in mods and n != m} for m, p in mods.items()}


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(n):] + [n]))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_packages_depend_one_way():
    """Package level: core imports no other package; no two packages import each other."""
    deps: dict[str, set[str]] = {}
    for m, targets in _graph().items():
        if m.count(".") < 2:
            continue
        deps.setdefault(m.split(".")[1], set()).update(t.split(".")[1] for t in targets if t.count(".") >= 2)
    assert deps.get("core", set()) <= {"core"}, deps["core"]
    for a, targets in deps.items():
        for b in targets - {a}:
            assert a not in deps.get(b, set()), f"pipeline.{a} and pipeline.{b} import each other"


def test_no_hidden_sibling_imports():
    """An import of a project module inside a function needs a comment on its line saying why."""
    hidden = []
    for p in list((REPO / "pipeline").rglob("*.py")) + list((REPO / "stages").glob("*.py")):
        lines = p.read_text().splitlines()
        tree = ast.parse(p.read_text())
        top = {id(n) for n in tree.body}
        for name, node in _imports(p, tree=tree):
            if id(node) not in top and "#" not in lines[node.lineno - 1]:
                hidden.append(f"{p.relative_to(REPO)}:{node.lineno} {name}")
    assert not hidden, hidden


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_alone(package):
    mods = sorted(".".join(p.relative_to(REPO).with_suffix("").parts)
                  for p in (REPO / "pipeline" / package).glob("*.py") if p.name != "__init__.py")
    code = "import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in mods)
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
