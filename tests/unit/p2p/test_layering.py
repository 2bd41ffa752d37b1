"""Where trio and libp2p may appear: only inside p2p/, and only in the modules that need them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_the_node_side_of_networking_is_asyncio_only():
    for path in (ROOT / "node" / "netadapter.py", ROOT / "p2p" / "network.py", ROOT / "p2p" / "headersync.py"):
        assert not _imports(path) & {"trio", "libp2p", "multiaddr"}, path.name


def test_only_the_host_and_the_bridge_touch_trio_or_libp2p():
    for path in sorted((ROOT / "p2p").glob("*.py")):
        if path.name in {"host.py", "bridge.py"}:
            continue
        assert not _imports(path) & {"trio", "libp2p", "multiaddr"}, path.name


def test_the_light_p2p_modules_do_not_load_libp2p():
    code = ("import sys, p2p.protocol, p2p.scoring, p2p.types, p2p.errors, p2p.requests, p2p.network, node.netadapter; "
            "print('libp2p' in sys.modules, 'trio' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
