"""The package's import rules, checked from its source."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sk_fibinet"


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path, ast.parse(path.read_text())


def _target(module: str, path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = module.split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def test_no_function_level_import_of_the_package():
    # deferred imports used to close a loop (checkpointing reaching up into
    # persistence, persistence importing the package for __version__)
    found = []
    for module, path, tree in _modules():
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.ImportFrom):
                    if _target(module, path, node).startswith("sk_fibinet"):
                        found.append(f"{module}:{node.lineno}")
                elif isinstance(node, ast.Import):
                    if any(a.name.startswith("sk_fibinet") for a in node.names):
                        found.append(f"{module}:{node.lineno}")
    assert found == []


def test_module_imports_form_no_cycle():
    graph = {}
    for module, path, tree in _modules():
        graph[module] = set()
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                target = _target(module, path, node)
                names = [f"{target}.{a.name}" for a in node.names]
                for name in [target, *names]:
                    graph[module].add(name)
    graph = {m: {t for t in ts if t in graph and t != m} for m, ts in graph.items()}
    graph["sk_fibinet"] = set()  # the package re-exports; nothing imports it
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                raise AssertionError(" -> ".join([*stack, node, nxt]))
            if nxt not in state:
                visit(nxt, [*stack, node])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_version_lives_in_a_leaf_module():
    tree = ast.parse((PACKAGE / "_version.py").read_text())
    assert not [
        n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
    ]


# Each layer may import only the layers after it in this order (and the leaves):
# io -> estimators -> data -> training -> nn, with preprocessing below data.
LAYERS = ["io", "estimators", "data", "training", "preprocessing", "nn"]
LEAVES = {"_version", "_serialization"}


def test_layers_import_one_way():
    wrong = []
    for module, path, tree in _modules():
        parts = module.split(".")
        if len(parts) < 3 or parts[1] not in LAYERS:
            continue
        layer = parts[1]
        below = set(LAYERS[LAYERS.index(layer) + 1 :]) | LEAVES | {layer}
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                target = _target(module, path, node).split(".")
                if target[0] == "sk_fibinet" and len(target) > 1:
                    if target[1] not in below:
                        wrong.append(f"{module} imports {'.'.join(target)}")
    assert wrong == []


def test_no_module_is_over_500_lines():
    # one job per module: a module past this has more than one
    long = {}
    for module, path, _ in _modules():
        n_lines = len(path.read_text().splitlines())
        if n_lines > 500:
            long[module] = n_lines
    assert long == {}
