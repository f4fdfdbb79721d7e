"""The package's import graph: no cycles, and every arrow runs down the layers (DESIGN.md, issue 33).

Read from the sources with `ast` (every import statement, those inside functions too; relative imports resolved),
so an import hidden in a function to dodge a cycle still counts. Allowed order, lowest first; a module may import
its own room and any room below it, never one above:

    tokenization -> modeling -> dataset_builder -> training -> evaluation -> classifiers -> release
    -> toccata (the CLI, rendering, embedded checkpoints) -> demo

One exception, by name: `toccata.cli_demo` (the `toccata demo` command) starts the demo, so it imports demo.

Imports sit at the top of a module; one inside a function says why in a comment, on its line or the line above, naming
one of `REASONS` (an import right below such an import, in the same block, shares its comment).
"""

from __future__ import annotations

import ast
import io
import tokenize
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
# Why an import may sit inside a function: an optional dependency (`# optional: the ray extra`) or start-up time
# (`# start-up: music21 takes ~1 s to import`).
REASONS = ("optional", "start-up")


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


def unexplained_function_imports(path: Path) -> list[int]:
    """Lines of the imports inside functions of the module at `path` without a comment that gives one of `REASONS`:
    on the import's own lines, on the line right above it, or on the import just before it in the same block."""
    source = path.read_text()
    lines = source.splitlines()
    comments = {
        token.start[0]: token.string.lower()
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    }

    def says_why(line: int) -> bool:
        return any(reason in comments.get(line, "") for reason in REASONS)

    found = set()
    for function in ast.walk(ast.parse(source, str(path))):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            for _, block in ast.iter_fields(node):
                if not (isinstance(block, list) and block and isinstance(block[0], ast.stmt)):
                    continue
                explained = False  # the previous statement of the block: an import that says why
                for statement in block:
                    if not isinstance(statement, (ast.Import, ast.ImportFrom)):
                        explained = False
                        continue
                    above = statement.lineno - 1
                    explained = (
                        explained
                        or any(says_why(line) for line in range(statement.lineno, statement.end_lineno + 1))
                        or (above >= 1 and lines[above - 1].lstrip().startswith("#") and says_why(above))
                    )
                    if not explained:
                        found.add(statement.lineno)
    return sorted(found)


def test_the_import_rule_sees_a_bare_import_in_a_function_and_accepts_a_reason(tmp_path):
    module = tmp_path / "module.py"
    module.write_text(
        "import os\n\n\n"
        "def bare():\n    import json\n\n\n"
        "def optional():\n    try:\n        import ray  # optional: the ray extra\n    except ImportError:\n"
        "        import json\n\n\n"
        "def quick():\n    # start-up: music21 takes ~1 s to import\n    import music21\n\n    import numpy as np\n"
        "    x = 1\n    import torch\n\n\n"
        "def unrelated():\n    import sys  # noqa: F401\n"
    )
    assert unexplained_function_imports(module) == [5, 12, 21, 25]


def test_imports_inside_functions_say_why():
    """Imports sit at the top of a module except where an optional dependency or start-up time needs otherwise, and
    then a comment says which (issue 33)."""
    unexplained = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sorted(package_modules().values())
        for line in unexplained_function_imports(path)
    ]
    assert not unexplained, (
        f"imports inside functions without a comment naming one of {REASONS} (move them to the top, or say why): "
        + ", ".join(unexplained)
    )
