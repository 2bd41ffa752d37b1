"""The composition root with real LevelDB and a real HTTP server: a start that fails half-way leaves nothing open."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from node.app import open_node
from node.config import load_config
from node.errors import StartupError
from node.store import LevelDBStore

SERVICE_THREADS = ("pouw-chain", "pouw-work", "pouw-miner")
GOLDEN_METHODS = Path(__file__).with_name("openrpc_methods.json")
"""``rpc.discover``'s methods as served before the RPC methods were regrouped: clients see no change."""


@pytest.fixture
def taken_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def config_for(tmp_path, port):
    argv = ["--network", "regtest", "--datadir", str(tmp_path), "--rpc-port", str(port), "--no-p2p"]
    return load_config(argv, environ={})


async def test_a_start_that_fails_at_rpc_closes_the_databases_and_threads(tmp_path, taken_port):
    with pytest.raises(StartupError) as e:
        async with open_node(config_for(tmp_path, taken_port)):
            pytest.fail("the node started on a port in use")
    assert f"cannot serve JSON-RPC on 127.0.0.1:{taken_port}" in str(e.value)
    for db in ("chain", "jobs"):
        LevelDBStore(str(tmp_path / db)).close()  # LevelDB's lock is free again: the database was closed
    alive = [t.name for t in threading.enumerate() if t.name.startswith(SERVICE_THREADS)]
    assert alive == []


async def test_a_start_that_fails_at_networking_closes_everything(tmp_path, taken_port):
    argv = ["--network", "regtest", "--datadir", str(tmp_path), "--rpc-port", "0", "--p2p-port", str(taken_port)]
    with pytest.raises(StartupError) as e:
        async with open_node(load_config(argv, environ={})):
            pytest.fail("the node started without a way for peers to reach it")
    assert f"could not listen on /ip4/127.0.0.1/tcp/{taken_port}" in str(e.value)
    for db in ("chain", "jobs"):
        LevelDBStore(str(tmp_path / db)).close()
    alive = [t.name for t in threading.enumerate() if t.name.startswith((*SERVICE_THREADS, "p2p-"))]
    assert alive == []


async def test_a_node_starts_and_stops_cleanly(tmp_path):
    async with open_node(config_for(tmp_path, 0)) as node:
        assert node.chain.snapshot.height == 0 and node.rpc.url.startswith("http://127.0.0.1:")
        assert node.network is None and not node.miner.running
        served = node.rpc.registry.openrpc_document()["methods"]
        assert json.loads(json.dumps(served)) == json.loads(GOLDEN_METHODS.read_text())
    LevelDBStore(str(tmp_path / "chain")).close()
    assert not [t.name for t in threading.enumerate() if t.name.startswith(SERVICE_THREADS)]


def test_pouwd_says_which_port_is_taken_and_exits_1(tmp_path, taken_port):
    proc = subprocess.run([sys.executable, "-m", "node.daemon", "--network", "regtest", "--datadir", str(tmp_path),
                           "--rpc-port", str(taken_port), "--no-p2p"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert f"pouwd: cannot serve JSON-RPC on 127.0.0.1:{taken_port}" in proc.stderr
    assert "Traceback" not in proc.stderr
