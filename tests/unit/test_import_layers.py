"""The import rules of ARCHITECTURE.md, checked by walking every module's imports."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "pouw": {"asyncio", "aiohttp", "plyvel", "libp2p", "trio", "cupy", "node", "p2p", "consensus", "wallet",
             "kernels", "logging", "time", "random", "socket", "os"},
    "kernels": {"asyncio", "aiohttp", "plyvel", "libp2p", "trio", "node", "p2p", "consensus", "wallet"},
    "consensus": {"asyncio", "aiohttp", "plyvel", "libp2p", "trio", "cupy", "node", "p2p", "wallet", "kernels"},
    "p2p": {"node", "wallet", "plyvel", "aiohttp"},
    "wallet": {"node", "p2p", "plyvel", "libp2p", "trio"},
    "miner": {"node", "p2p", "plyvel", "libp2p", "trio"},
}
# The `python -m pouw` entry point is application code, not the protocol library:
# it may reach the backends (lazily, through importlib) and the clock.
EXEMPT = {Path("pouw/__main__.py")}


def imports_of(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_import_rules(package):
    bad = []
    for f in sorted((ROOT / package).rglob("*.py")):
        if f.relative_to(ROOT) in EXEMPT:
            continue
        for line, mod in imports_of(f):
            if mod.split(".")[0] in FORBIDDEN[package]:
                bad.append(f"{f.relative_to(ROOT)}:{line} imports {mod}")
    assert not bad, "\n".join(bad)
