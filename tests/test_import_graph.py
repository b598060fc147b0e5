"""anygpt's and the benchmarks' modules form no import cycle, counting every import in a file (function-level and
TYPE_CHECKING ones too), few of those imports are function-level, and every anygpt module imports on its own."""

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import anygpt
import benchmarks

ROOT = Path(anygpt.__file__).parent
BENCHMARKS = Path(benchmarks.__file__).parent


def _modules(root: Path = ROOT) -> dict[str, Path]:
    found = {root.name: root / "__init__.py"}
    for info in pkgutil.walk_packages([str(root)], prefix=f"{root.name}."):
        spec = importlib.util.find_spec(info.name)
        found[info.name] = Path(spec.origin)
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """anygpt modules ``name`` imports anywhere in its file (``from pkg import sub`` counts as ``pkg.sub``)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in modules else base)
    return {t for t in targets if t in modules and t != name}


def lazy_own_imports(folders: list[Path], packages: tuple[str, ...] = ("anygpt", "benchmarks")) -> list[str]:
    """``path:line: statement`` for every import of ``packages`` (or relative import) below a module's top level:
    in a function, a method, a class or an ``if``/``try`` block (TYPE_CHECKING ones too)."""
    found = []
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            tree = ast.parse(path.read_text("utf-8"))
            top = {id(node) for node in tree.body}
            for node in ast.walk(tree):
                if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in top:
                    continue
                if isinstance(node, ast.ImportFrom):
                    own = bool(node.level) or (node.module or "").split(".")[0] in packages
                else:
                    own = any(alias.name.split(".")[0] in packages for alias in node.names)
                if own:
                    found.append(f"{path.relative_to(folder.parent)}:{node.lineno}: {ast.unparse(node)}")
    return found


def import_graph() -> dict[str, set[str]]:
    """Every import edge among anygpt's and the benchmarks' modules (the benchmarks import anygpt, never back)."""
    modules = {**_modules(ROOT), **_modules(BENCHMARKS)}
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_lazy_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_relative_and_submodule_imports_are_edges(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from anygpt.modalities import registry\n    from . import spec\n")
    modules = {"anygpt.modalities.registry": module, "anygpt.modalities.spec": module,
               "anygpt.modalities": module, "anygpt.modalities.m": module}
    assert _imports("anygpt.modalities.m", module, modules) == {"anygpt.modalities.registry",
                                                                 "anygpt.modalities.spec"}


def test_the_lazy_import_counter_sees_nested_and_relative_imports(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(
        "import anygpt\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from anygpt import vocab\n"
        "def f():\n    import torch\n    from . import spec\n    import benchmarks.stats\n")
    assert lazy_own_imports([tmp_path / "pkg"]) == [
        "pkg/m.py:4: from anygpt import vocab", "pkg/m.py:7: from . import spec", "pkg/m.py:8: import benchmarks.stats"]


# Lazy imports of the project's own modules hide the real dependency order (and the cycles they would close); the few
# left are deliberate: the CLI's fast start (`anygpt --help` imports no torch) and the serve command's optional stack.
MAX_LAZY_OWN_IMPORTS = 30


def test_few_function_level_imports_of_the_projects_own_modules():
    found = lazy_own_imports([ROOT, BENCHMARKS])
    assert len(found) <= MAX_LAZY_OWN_IMPORTS, "\n".join(found)


# No cycle may appear; a cycle listed here as known must go from the list when it is gone.
KNOWN_CYCLES: list[list[str]] = []


def test_no_import_cycle_among_anygpt_and_benchmark_modules():
    found = cycles(import_graph())
    assert [c for c in found if c not in KNOWN_CYCLES] == []
    assert [c for c in KNOWN_CYCLES if c not in found] == [], "a known cycle is gone: delete it from KNOWN_CYCLES"


def test_the_modality_modules_import_in_layers():
    """spec <- vocab, pretrained <- codec <- registry: nothing below imports what builds on it."""
    graph = import_graph()
    assert not {m for m in graph["anygpt.modalities.spec"]}
    assert "anygpt.modalities.registry" not in graph["anygpt.modalities.pretrained"] | graph["anygpt.modalities.codec"]
    assert graph["anygpt.vocab"] <= {"anygpt.modalities.spec", "anygpt.text_tokenizer"}
    assert not graph["anygpt.text_tokenizer"]


@pytest.mark.parametrize("name", sorted(_modules()))
def test_every_module_imports(name):
    importlib.import_module(name)
