"""A small JSON-RPC 2.0 client for ``pouwd`` over urllib (stdlib only: the CLI starts fast).

``RpcClient.call(method, *params)`` returns the ``result`` or raises:

- ``NodeUnreachable``: no connection, a timeout, or an answer that is not
  JSON-RPC (the URL probably points at something else);
- ``RpcAuthError``: HTTP 401, the credentials were refused;
- ``RpcError(code, message)``: the node answered with a JSON-RPC error.

``batch`` sends several calls in one HTTP request; ``put_blob`` and
``get_blob`` use the node's ``/blobs`` routes for ``.npy`` matrices.
Credentials are HTTP Basic: a cookie file (``<datadir>/.cookie``, holding
``__cookie__:<hex>``) or a user and password.
"""

from __future__ import annotations

import base64
import itertools
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

DEFAULT_PORTS = {"devnet": 18445, "regtest": 19445, "testnet": 28445, "mainnet": 8445}
"""The node's JSON-RPC port per network (``node.config.DEFAULT_PORTS``; the wallet may not import ``node``)."""


class NodeError(Exception):
    """Root of the client's errors."""


class NodeUnreachable(NodeError):
    """The node did not answer (connection refused, timeout, not a JSON-RPC server)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the node at {url}: {reason}")
        self.url = url
        self.reason = reason


class BlobTooLarge(NodeError):
    """A download larger than the caller's bound; it was cut off unread past the bound."""


class RpcAuthError(NodeError):
    """HTTP 401: the node wants (other) credentials."""


class RpcError(NodeError):
    """A JSON-RPC error answer: ``code`` and ``message`` as the node sent them."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message
        self.data = data


def default_url(network: str) -> str:
    return f"http://127.0.0.1:{DEFAULT_PORTS.get(network, DEFAULT_PORTS['devnet'])}/"


def read_cookie(path: str | Path) -> tuple[str, str]:
    """``(user, password)`` from a cookie file ``user:password``."""
    try:
        text = Path(path).expanduser().read_text().strip()
    except OSError as e:
        raise RpcAuthError(f"cannot read the cookie file {path}: {e.strerror} "
                           "(the node writes it to <datadir>/.cookie while it runs)") from None
    user, sep, password = text.partition(":")
    if not sep:
        raise RpcAuthError(f"the cookie file {path} does not hold user:password")
    return user, password


class RpcClient:
    """JSON-RPC calls to one node."""

    def __init__(self, url: str, auth: tuple[str, str] | None = None, timeout: float = 60.0) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.auth = auth
        self.timeout = timeout
        self._ids = itertools.count(1)
        # No proxies: the node is local or addressed directly.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # --- transport ---------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: bytes | None, content_type: str | None,
                 timeout: float | None = None, limit: int | None = None) -> tuple[int, bytes]:
        url = urllib.parse.urljoin(self.url, path.lstrip("/"))
        req = urllib.request.Request(url, data=body, method=method)
        if content_type:
            req.add_header("Content-Type", content_type)
        if self.auth is not None:
            token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        try:
            with self._opener.open(req, timeout=timeout or self.timeout) as r:
                raw = r.read() if limit is None else r.read(limit + 1)
                if limit is not None and len(raw) > limit:
                    raise BlobTooLarge(f"{method} {path}: the answer exceeds {limit} bytes")
                return r.status, raw
        except urllib.error.HTTPError as e:
            raw = e.read()
            if e.code == 401:
                raise RpcAuthError("the node refused the credentials (HTTP 401)") from None
            return e.code, raw
        except TimeoutError:
            raise NodeUnreachable(self.url, f"no answer within {timeout or self.timeout:g} s") from None
        except urllib.error.URLError as e:
            raise NodeUnreachable(self.url, str(getattr(e, "reason", e))) from None
        except (OSError, ValueError) as e:  # connection reset, bad URL, ...
            raise NodeUnreachable(self.url, str(e)) from None

    @staticmethod
    def _error_of(answer: Any) -> RpcError | None:
        if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
            err = answer["error"]
            return RpcError(int(err.get("code", -1)), str(err.get("message", "")), err.get("data"))
        return None

    def _post(self, payload: Any, timeout: float | None = None) -> Any:
        status, raw = self._request("POST", "/", json.dumps(payload).encode(), "application/json", timeout)
        try:
            answer = json.loads(raw)
        except ValueError:
            raise NodeUnreachable(self.url, f"HTTP {status} without a JSON answer (is this a pouwd RPC URL?)") from None
        if status != 200:
            err = self._error_of(answer)
            if err is not None:
                raise err
            raise NodeUnreachable(self.url, f"HTTP {status}")
        return answer

    # --- JSON-RPC ----------------------------------------------------------------------------

    def call(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        """Call ``method`` with positional ``params``; the result, or ``RpcError``."""
        answer = self._post({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)},
                            timeout)
        err = self._error_of(answer)
        if err is not None:
            raise err
        if not isinstance(answer, dict) or "result" not in answer:
            raise NodeUnreachable(self.url, "the answer is not JSON-RPC 2.0")
        return answer["result"]

    def batch(self, calls: list[tuple[str, list]]) -> list[Any]:
        """Several calls in one request; results in order (the first error raises)."""
        if not calls:
            return []
        ids = [next(self._ids) for _ in calls]
        answer = self._post([{"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
                             for i, (m, p) in zip(ids, calls, strict=True)])
        if not isinstance(answer, list):
            err = self._error_of(answer)
            if err is not None:
                raise err
            raise NodeUnreachable(self.url, "the answer to a batch is not a JSON array")
        by_id = {a.get("id"): a for a in answer if isinstance(a, dict)}
        out = []
        for i in ids:
            a = by_id.get(i)
            if a is None:
                raise NodeUnreachable(self.url, f"the batch answer lacks id {i}")
            err = self._error_of(a)
            if err is not None:
                raise err
            out.append(a.get("result"))
        return out

    # --- blobs -------------------------------------------------------------------------------

    def put_blob(self, data: bytes, *, product_of: str | None = None, claim_of: str | None = None) -> dict:
        """Upload ``.npy`` bytes with ``PUT /blobs``; the node's answer ``{"hash", "size", "shape", "dtype"}``.

        ``product_of``: the bytes are the int32 product of that waiting job (an external miner's).
        ``claim_of``: the bytes are the product a claimant claims for that live offer; the node answers
        ``{"blob", "root_c", "h_c"}`` and serves it once the claim with that ``root_C`` has confirmed.
        """
        query = {k: v for k, v in (("product_of", product_of), ("claim_of", claim_of)) if v is not None}
        path = "/blobs" + ("?" + urllib.parse.urlencode(query) if query else "")
        status, raw = self._request("PUT", path, data, "application/octet-stream")
        return self._blob_answer(status, raw, "upload")

    def get_blob(self, digest: str, *, max_bytes: int | None = None) -> bytes:
        """Download ``GET /blobs/<digest>``; ``BlobTooLarge`` past ``max_bytes`` (when given), read no further."""
        status, raw = self._request("GET", f"/blobs/{digest}", None, None, limit=max_bytes)
        if status == 200:
            return raw
        self._blob_answer(status, raw, f"download of blob {digest}")
        raise AssertionError("unreachable")

    def _blob_answer(self, status: int, raw: bytes, what: str) -> dict:
        try:
            answer = json.loads(raw)
        except ValueError:
            raise NodeUnreachable(self.url, f"{what}: HTTP {status} without a JSON answer") from None
        err = self._error_of(answer)
        if err is not None:
            raise err
        if status != 200 or not isinstance(answer, dict):
            raise NodeUnreachable(self.url, f"{what}: HTTP {status}")
        return answer
