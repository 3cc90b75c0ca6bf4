"""The engine's layers point one way, down (ARCHITECTURE.md): a lower layer never imports a higher one.

The import graph is read from the source (``ast``), so nothing is imported and
the check costs milliseconds. Imports inside functions count too (they still
tie the modules together); those under ``if TYPE_CHECKING:`` do not (never run).
Importing ``a.b.c`` from outside ``a.b`` also runs ``a.b/__init__.py``, so it
counts as importing the package too.

Run ``python tests/test_layers.py`` to print the cycles and upward imports.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Top first. A module may import its own layer or any layer below it, never one above.
# A module of the engine that is in no layer fails the test: place new modules on purpose.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("workbench.ui", "workbench.commands", "workbench.cli", "workbench.__main__", "workbench.api"),
    ("workbench.predict", "workbench.explain", "workbench.cull", "workbench.labelling", "workbench.describe",
     "workbench.scale"),
    ("workbench.training",),
    ("workbench.runs",),
    ("workbench.models",),
    ("workbench.features", "workbench.onnx_runtime", "workbench.backbones", "workbench.dataset", "workbench.multimodal"),
    ("workbench.images", "workbench.faces", "workbench.metrics", "workbench.errors", "workbench.config", "workbench.events",
     "workbench.fsutil", "workbench.compat", "workbench"),
)


def modules(root: Path = ROOT) -> dict[str, Path]:
    found = {}
    for path in sorted((root / "workbench").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _executed_imports(tree: ast.Module):
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """module -> the workbench modules (and packages) importing it runs."""
    mods = modules(root)

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in _executed_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative import
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
                names = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for name in names:
                target = owner(name) if name.startswith("workbench") else None
                if target is None or target == mod:
                    continue
                graph[mod].add(target)
                parts = target.split(".")
                for k in range(2, len(parts)):  # parent packages' __init__ run first
                    parent = ".".join(parts[:k])
                    if parent in mods and not (mod == parent or mod.startswith(parent + ".")):
                        graph[mod].add(parent)
    return graph


def layer_of(module: str) -> int | None:
    best, best_len = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
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
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [f"{mod} (layer {layer_of(mod)}) imports {dep} (layer {layer_of(dep)})"
            for mod, deps in sorted(graph.items()) for dep in sorted(deps)
            if layer_of(mod) is not None and layer_of(dep) is not None and layer_of(dep) < layer_of(mod)]


def test_every_module_has_a_layer():
    assert [m for m in modules() if layer_of(m) is None] == []


def test_no_module_imports_a_higher_layer():
    assert upward_imports(import_graph()) == []


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_check_sees_an_upward_import_and_a_cycle(tmp_path):
    # the checks above can fail: a models module importing training, and training importing it back
    (tmp_path / "workbench" / "models").mkdir(parents=True)
    (tmp_path / "workbench" / "training").mkdir()
    for name in ("workbench/__init__.py", "workbench/models/__init__.py", "workbench/training/__init__.py"):
        (tmp_path / name).write_text("")
    (tmp_path / "workbench/models/loop.py").write_text("def f():\n    from workbench.training.train import X\n")
    (tmp_path / "workbench/training/train.py").write_text("from workbench.models.loop import f\nX = 1\n")
    graph = import_graph(tmp_path)
    assert upward_imports(graph) == ["workbench.models.loop (layer 4) imports workbench.training (layer 2)",
                                     "workbench.models.loop (layer 4) imports workbench.training.train (layer 2)"]
    assert cycles(graph) == [["workbench.models.loop", "workbench.training.train"]]


if __name__ == "__main__":
    graph = import_graph()
    found = cycles(graph)
    print(f"{len(found)} import cycle(s), {sum(map(len, found))} module(s) in them")
    for group in found:
        print("  cycle:", ", ".join(group))
    for line in upward_imports(graph):
        print("  upward:", line)
    print("  no layer:", [m for m in modules() if layer_of(m) is None])
