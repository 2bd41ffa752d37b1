"""A fake JSON-RPC node on loopback (http.server in a thread) for client and CLI tests without pouwd."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from wallet import keystore

FAST_SCRYPT_N = 1 << 4  # for tests only; the shipped default (keystore.SCRYPT_N) is 2^17


class FakeNode:
    """Answers JSON-RPC from ``handlers`` (method -> callable(params) returning a result or raising FakeError)."""

    def __init__(self) -> None:
        self.handlers: dict = {}
        self.calls: list[tuple[str, list]] = []
        self.require_auth: str | None = None
        node = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, status, body: bytes):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                if node.require_auth and self.headers.get("Authorization") != node.require_auth:
                    self._send(401, b"")
                    return
                req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                batch = isinstance(req, list)
                answers = [node.answer(r) for r in (req if batch else [req])]
                self._send(200, json.dumps(answers if batch else answers[0]).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def answer(self, req: dict) -> dict:
        method, params = req["method"], req.get("params", [])
        self.calls.append((method, params))
        handler = self.handlers.get(method)
        if handler is None:
            return {"jsonrpc": "2.0", "id": req["id"], "error": {"code": -32601, "message": f"no method {method}"}}
        try:
            return {"jsonrpc": "2.0", "id": req["id"], "result": handler(params)}
        except FakeError as e:
            return {"jsonrpc": "2.0", "id": req["id"], "error": {"code": e.code, "message": e.message}}


class FakeError(Exception):
    def __init__(self, code: int, message: str) -> None:
        self.code, self.message = code, message


@pytest.fixture
def fast_scrypt(monkeypatch):
    """Keystores created through the CLI in this test use scrypt N = 2^4 instead of the default.

    ``keystore.create`` reads ``SCRYPT_N`` when it is called, so this lowers the cost of
    the test's own wallets without touching the default anywhere else.
    """
    monkeypatch.setattr(keystore, "SCRYPT_N", FAST_SCRYPT_N)
    return FAST_SCRYPT_N


@pytest.fixture
def fake_node():
    node = FakeNode()
    node.thread.start()
    yield node
    node.server.shutdown()
    node.server.server_close()


@pytest.fixture
def dead_url():
    """A loopback URL where nothing listens."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/"
