"""The package's import graph: no cycles, and every arrow runs down the layers (DESIGN.md, issue 33).

Read from the sources with `ast` (every import statement, those inside functions too; relative imports resolved),
so an import hidden in a function to dodge a cycle still counts. Allowed order, lowest first; a module may import
its own room and any room below it, never one above:

    tokenization -> modeling -> dataset_builder -> training -> evaluation -> classifiers -> release
    -> toccata (the CLI, rendering, embedded checkpoints) -> demo

One exception, by name: `toccata.cli_demo` (the `toccata demo` command) starts the demo, so it imports demo.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # tests/cli/test_import_graph.py
LAYERS = (
    "toccata.tokenization",
    "toccata.modeling",
    "toccata.dataset_builder",
    "toccata.training",
    "toccata.evaluation",
    "toccata.classifiers",
    "toccata.release",
    "toccata",
    "toccata.demo",
)
LAUNCHERS = {"toccata.cli_demo": "toccata.demo"}  # the command that starts the app imports it


def package_modules() -> dict[str, Path]:
    """Installed module name -> source file, from pyproject.toml's package-dir (checkpoint folders are data)."""
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    modules = {}
    for package in setup["packages"]:
        folder = ROOT / setup["package-dir"][package]
        for path in folder.glob("*.py"):
            modules[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return modules


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules that module `name` (at `path`) imports anywhere in its body."""
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            # `from toccata.training import data` imports a module; `from .x import f` imports x
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import toccata.modeling.hub as h` -> that module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def layer(name: str) -> int:
    """Index in LAYERS of the room that holds module `name` (the longest matching prefix)."""
    rooms = [i for i, room in enumerate(LAYERS) if name == room or name.startswith(room + ".")]
    return max(rooms, key=lambda i: len(LAYERS[i]))


def graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {name: imports_of(name, path, set(modules)) for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan), as a path of module names."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read_from_the_sources():
    edges = graph()
    assert "toccata.modeling.pipeline" in edges and "toccata.cli" in edges
    assert "toccata.modeling.sampling" in edges["toccata.modeling.pipeline"]  # a relative import, resolved
    assert "toccata.evaluation.music_stats" in edges["toccata.evaluation.copy_index"]


def test_no_import_cycles():
    found = cycles(graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_arrows_run_down_the_layers():
    upward = [
        f"{source} -> {target}"
        for source, targets in graph().items()
        for target in sorted(targets)
        if layer(target) > layer(source) and not target.startswith(LAUNCHERS.get(source, "\0"))
    ]
    assert not upward, f"imports against the layer order {' -> '.join(LAYERS)}: " + ", ".join(upward)


def test_modeling_and_tokenization_never_import_each_other():
    """They agree on token ids and `vocab_size`, which the caller passes in, so the modeling file travels alone."""
    edges = graph()
    crossing = [
        f"{source} -> {target}"
        for source, targets in edges.items()
        for target in sorted(targets)
        for a, b in (("toccata.modeling", "toccata.tokenization"), ("toccata.tokenization", "toccata.modeling"))
        if source.startswith(a) and target.startswith(b)
    ]
    assert not crossing, crossing
