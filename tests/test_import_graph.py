"""anygpt's modules form no import cycle, counting every import in a file (function-level and TYPE_CHECKING ones
too), and every module imports on its own."""

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import anygpt

ROOT = Path(anygpt.__file__).parent


def _modules() -> dict[str, Path]:
    found = {"anygpt": ROOT / "__init__.py"}
    for info in pkgutil.walk_packages([str(ROOT)], prefix="anygpt."):
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


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
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


# No cycle may appear; a cycle listed here as known must go from the list when it is gone.
KNOWN_CYCLES: list[list[str]] = []


def test_no_import_cycle_among_anygpt_modules():
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
