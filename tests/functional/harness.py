"""Start real ``pouwd`` processes on 127.0.0.1 and talk to them over HTTP, like a user.

``NodeProcess`` runs ``python -m node.daemon`` with a temporary data directory,
waits for its ``ready`` line, and offers ``rpc`` (raising ``RpcFailure`` with the
JSON-RPC code), ``call`` (the raw JSON answer) and ``http`` helpers. Waiting is
always for a condition with a deadline (``wait_until``), never a fixed sleep.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class RpcFailure(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class NodeProcess:
    def __init__(self, datadir: Path, *args: str, network: str = "regtest", p2p: bool = False,
                 env: dict | None = None) -> None:
        self.datadir = Path(datadir)
        self.env = dict(env or {})
        net = ["--p2p-port", "0"] if p2p else ["--no-p2p"]
        self.args = ["--network", network, "--datadir", str(self.datadir), "--rpc-port", "0", *net,
                     "--log-level", "info" if p2p else "warning", *args]
        self.proc: subprocess.Popen | None = None
        self.ready: dict = {}
        self.url = ""

    def start(self, *extra: str, timeout: float = 60.0) -> NodeProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.stderr = open(self.datadir.parent / f"{self.datadir.name}.stderr", "ab")
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-m", "node.daemon", *self.args, *extra], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=self.stderr, env=env, text=True)
        deadline = time.monotonic() + timeout
        while True:
            line = self.proc.stdout.readline()
            if line:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if msg.get("event") == "ready":
                    self.ready = msg
                    self.url = msg["rpc"].rstrip("/")
                    self.p2p = msg.get("p2p") or []
                    return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pouwd did not start (exit {self.proc.poll()}); see {self.stderr.name}")

    def stop(self, sig=signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc.stdout.close()
        self.stderr.close()
        self.proc = None
        return rc

    def kill(self) -> int:
        return self.stop(signal.SIGKILL)

    def http(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
             timeout: float = 60.0) -> tuple[int, bytes]:
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def auth_header(self) -> dict:
        """HTTP Basic with the node's cookie, as pouw-cli --datadir sends it (control methods need it)."""
        cookie = (self.datadir / ".cookie").read_text().strip()
        return {"Authorization": "Basic " + base64.b64encode(cookie.encode()).decode()}

    def call(self, payload, *, auth: bool = True) -> object:
        """POST a JSON value (or raw bytes) to ``/`` (with the cookie unless ``auth=False``); the decoded
        answer (None for 204)."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", **(self.auth_header() if auth else {})}
        status, raw = self.http("POST", "/", body, headers)
        if status == 204:
            return None
        return json.loads(raw)

    def rpc(self, method: str, *params, **named):
        answer = self.call({"jsonrpc": "2.0", "id": 1, "method": method,
                            "params": named if named else list(params)})
        if "error" in answer:
            raise RpcFailure(answer["error"]["code"], answer["error"]["message"])
        return answer["result"]
