"""No import cycles inside ``node/`` or ``p2p/``, and no function-local imports of their own modules.

A function-local import is the usual way to dodge a cycle; with none left, the
graph of module-level imports (``TYPE_CHECKING`` blocks included) must be acyclic.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """Absolute names an ``ImportFrom`` may refer to (the module and ``module.name`` for each name)."""
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [target] + [f"{target}.{a.name}" for a in node.names]


def imports(package: str) -> tuple[dict[str, set[str]], list[str]]:
    """``module -> imported modules of package`` (module level), and the function-local imports found."""
    files = {module_name(p): p for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    local: list[str] = []
    for mod, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        in_function = {id(n) for f in funcs for n in ast.walk(f)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = resolve(mod, path.name == "__init__.py", node)
            else:
                continue
            ours = {n for n in names if n in files}
            if not ours:
                continue
            if id(node) in in_function:
                local.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {sorted(ours)} inside a function")
            else:
                graph[mod] |= ours - {mod}
    return graph, local


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for dep in sorted(graph[m]):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


@pytest.mark.parametrize("package", ["node", "p2p"])
def test_no_import_cycle(package):
    graph, _ = imports(package)
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


@pytest.mark.parametrize("package", ["node", "p2p"])
def test_no_function_local_imports_of_the_package_itself(package):
    _, local = imports(package)
    assert not local, "\n".join(local)


def test_the_checker_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_nothing_in_node_imports_the_composition_root():
    graph, _ = imports("node")
    importers = sorted(m for m, deps in graph.items() if "node.app" in deps)
    assert importers == ["node.daemon"]
