"""The launcher's free-port check: TIME_WAIT leftovers of a stopped devnet are free, live listeners are not."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest

from testnet import devnet
from testnet.devnet import build_parser, port_free

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="TIME_WAIT semantics checked on Linux")


def _tcp_states(port: int) -> set[str]:
    """States (hex, as in /proc/net/tcp: 06 is TIME_WAIT, 0A is LISTEN) of IPv4 sockets on local ``port``."""
    states = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port:
            states.add(fields[3])
    return states


def _plain_bind_ok(port: int) -> bool:
    """The old check: bind without SO_REUSEADDR."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _leave_time_wait() -> int:
    """A loopback port whose only socket is a connection in TIME_WAIT (the server side closed first)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the node's servers do
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = listener.accept()
    listener.close()
    conn.close()  # active close on the server's port: that side goes to TIME_WAIT
    client.recv(1)  # the FIN arrived
    client.close()
    deadline = time.monotonic() + 5
    while "06" not in _tcp_states(port) and time.monotonic() < deadline:
        time.sleep(0.01)
    return port


def test_port_in_time_wait_is_free():
    port = _leave_time_wait()
    assert _tcp_states(port) == {"06"}, "the test needs a TIME_WAIT connection and nothing else on the port"
    assert not _plain_bind_ok(port)  # what made `make devnet` fail for ~1 minute after Ctrl-C
    assert port_free(port)


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
@pytest.mark.parametrize("flags", [(), ("SO_REUSEADDR",), ("SO_REUSEADDR", "SO_REUSEPORT")])  # the last: libp2p's
def test_listening_port_is_in_use(host, flags):
    with socket.socket() as listener:
        for flag in flags:
            listener.setsockopt(socket.SOL_SOCKET, getattr(socket, flag), 1)
        listener.bind((host, 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not port_free(port)
    assert port_free(port)  # closed without connections: free again


def test_up_reports_a_listened_port_and_starts_nothing(tmp_path, capsys, monkeypatch):
    started = []
    monkeypatch.setattr(devnet, "start_node", lambda *a, **k: started.append(a))
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        args = build_parser().parse_args(["up", "--nodes", "1", "--miners", "1", "--base-port", str(port),
                                          "--datadir", str(tmp_path / "devnet")])
        assert devnet.cmd_up(args) == 1
    err = capsys.readouterr().err
    assert "are in use" in err and str(port) in err
    assert not started
