"""``pouw-cli`` run as a subprocess against live servers (in a background thread): exit codes 0/1/2."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from node.cli import parse_named, parse_param
from node.rpc import errors as E
from node.rpc.errors import RpcError
from node.rpc.registry import Param, Registry
from node.rpc.server import RpcServer

ROOT = Path(__file__).resolve().parents[3]


def make_registry() -> Registry:
    r = Registry()

    @r.method(result={"type": "integer"})
    async def getblockcount() -> int:
        """Return the height of the best chain."""
        return 7

    @r.method(params=[Param("height", {"type": "integer", "minimum": 0})], result={"type": "string"})
    async def getblockhash(height: int) -> str:
        """Return the hash of the block at a height."""
        if height > 7:
            raise RpcError(E.INVALID_PARAMETER, f"block height {height} out of range", data={"tip": 7})
        return f"{height:064x}"

    @r.method(params=[Param("a", {}), Param("b", {}, required=False)])
    async def echo(a, b=None):
        """Return the parameters as received."""
        return {"a": a, "b": b}

    @r.method()
    async def nothing() -> None:
        """Return null."""

    return r


class LiveServers:
    """Two servers on their own event loop in a thread: one open, one with cookie auth."""

    def __init__(self, datadir: Path) -> None:
        self.datadir = datadir
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced by start()
            self.error = exc
            self.ready.set()

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        async with RpcServer(make_registry(), "127.0.0.1", 0) as open_server, \
                RpcServer(make_registry(), "127.0.0.1", 0, require_auth=True, cookie_path=self.datadir / ".cookie",
                          rpc_user="alice", rpc_password="s3cret") as auth_server:
            self.open_url, self.auth_url = open_server.url, auth_server.url
            self.ready.set()
            await self.stopping.wait()

    def start(self) -> None:
        self.thread.start()
        assert self.ready.wait(30), "servers did not start"
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(30)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    servers = LiveServers(tmp_path_factory.mktemp("datadir"))
    servers.start()
    yield servers
    servers.stop()
    assert not (servers.datadir / ".cookie").exists()


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POUW_")}
    return subprocess.run([sys.executable, "-m", "node.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_success_prints_result(live):
    run = cli("--rpc-url", live.open_url, "getblockcount")
    assert (run.returncode, run.stdout, run.stderr) == (0, "7\n", "")
    run = cli("--rpc-url", live.open_url, "getblockhash", "3")
    assert (run.returncode, run.stdout) == (0, f"{3:064x}\n")  # strings printed raw
    run = cli("--rpc-url", live.open_url, "echo", '{"x": [1, 2]}', "abc")
    assert run.returncode == 0
    assert run.stdout == json.dumps({"a": {"x": [1, 2]}, "b": "abc"}, indent=2) + "\n"
    run = cli("--rpc-url", live.open_url, "nothing")
    assert (run.returncode, run.stdout) == (0, "")


def test_host_and_port_flags_and_named_params(live):
    port = live.open_url.rstrip("/").rsplit(":", 1)[1]
    run = cli("--rpc-host", "127.0.0.1", "--rpc-port", port, "--named", "echo", "a=true", "b=x=y")
    assert run.returncode == 0 and json.loads(run.stdout) == {"a": True, "b": "x=y"}
    run = cli("--rpc-url", live.open_url, "help", "getblockhash")
    assert run.returncode == 0 and run.stdout.startswith("getblockhash height\n")


def test_rpc_errors_exit_1(live):
    run = cli("--rpc-url", live.open_url, "getblockhash", "9")
    assert run.returncode == 1
    assert "error code: -8\n" in run.stderr and "error message: block height 9 out of range" in run.stderr
    assert 'error data: {"tip": 7}' in run.stderr
    run = cli("--rpc-url", live.open_url, "getblockhash", "abc")
    assert run.returncode == 1 and "error code: -32602" in run.stderr and '"height"' in run.stderr
    run = cli("--rpc-url", live.open_url, "nosuchmethod")
    assert run.returncode == 1 and "error code: -32601" in run.stderr
    run = cli("--rpc-url", live.open_url, "--named", "echo", "novalue")
    assert run.returncode == 1 and "key=value" in run.stderr


def test_auth_with_cookie_or_user_password(live):
    run = cli("--rpc-url", live.auth_url, "--datadir", str(live.datadir), "getblockcount")
    assert (run.returncode, run.stdout) == (0, "7\n")
    run = cli("--rpc-url", live.auth_url, "--rpc-user", "alice", "--rpc-password", "s3cret", "getblockcount")
    assert (run.returncode, run.stdout) == (0, "7\n")
    run = cli("--rpc-url", live.auth_url, "getblockcount")
    assert run.returncode == 1 and "401" in run.stderr
    run = cli("--rpc-url", live.auth_url, "--rpc-user", "alice", "--rpc-password", "nope", "getblockcount")
    assert run.returncode == 1 and "401" in run.stderr


def test_unreachable_node_exits_2_with_a_hint():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = cli("--rpc-port", str(port), "getblockcount")
    assert run.returncode == 2
    assert f"127.0.0.1:{port}" in run.stderr and "pouwd --network devnet" in run.stderr


def test_param_parsing():
    assert parse_param("12") == 12 and parse_param("1.5") == 1.5 and parse_param("-3") == -3
    assert parse_param("true") is True and parse_param("false") is False and parse_param("null") is None
    assert parse_param('{"a": 1}') == {"a": 1} and parse_param("[1, 2]") == [1, 2]
    assert parse_param('"12"') == "12"
    assert parse_param("abc") == "abc" and parse_param("00ab") == "00ab" and parse_param("") == ""
    assert parse_param("NaN") == "NaN" and parse_param("1e400") == "1e400"
    assert parse_named(["a=1", "b=x", "c="]) == {"a": 1, "b": "x", "c": ""}
    with pytest.raises(ValueError, match="twice"):
        parse_named(["a=1", "a=2"])
