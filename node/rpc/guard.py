"""What keeps web pages and unauthenticated callers out of the RPC: the browser guard and the auth rule.

``BrowserGuard.middleware`` runs before every handler but ``/health``:

- the ``Host`` header must name ``localhost``, ``127.0.0.1``, ``[::1]``, the
  address the server is bound to, or one of the allowed hosts (``*``: any):
  a DNS-rebinding page names its own host (HTTP 403);
- a request with an ``Origin`` must come from the server's own pages (the
  same scheme, host and port) or an allowed origin (``*``: any), WebSocket
  upgrades included (HTTP 403); allowed foreign origins get CORS headers and
  their preflights (``OPTIONS``) are answered;
- a POST to ``/`` must be ``Content-Type: application/json`` (HTTP 415), so a
  page cannot send one without a preflight.

``auth_required`` decides whether every call needs credentials (a server
bound beyond loopback) and refuses unsafe settings.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from node.rpc import errors as E
from node.rpc.schema import preview

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1; any other name or address is not loopback."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(host: str) -> str:
    """The host part of a ``Host`` header, lowercased: ``[::1]:18445`` -> ``[::1]``, ``a.b:1`` -> ``a.b``."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end >= 0 else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def same_origin(origin: str, host: str) -> bool:
    """``origin`` is a page of this server as the client addressed it (``Host``)."""
    origin = origin.strip().lower().rstrip("/")
    host = host.strip().lower()
    return bool(host) and origin in (f"http://{host}", f"https://{host}")


def refusal(status: int, message: str) -> web.Response:
    """An HTTP error with a JSON-RPC error body (nothing ran)."""
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": E.INVALID_REQUEST, "message": message}}
    return web.Response(status=status, content_type="application/json", text=json.dumps(body))


class BrowserGuard:
    """The Host allow-list, the Origin check with CORS, and the JSON content type."""

    def __init__(self, bind: str, allowed_hosts: Iterable[str] = (), cors_origins: Iterable[str] = (), *,
                 exempt: Iterable[str] = ("/health",)) -> None:
        names = {*LOOPBACK_NAMES}
        for name in (bind, *allowed_hosts):
            name = name.strip().lower()
            if not name or name in ("0.0.0.0", "::"):  # a wildcard bind names no host
                continue
            names.add(f"[{name}]" if ":" in name and not name.startswith("[") else name)
        self.hosts = frozenset(names)
        self.cors = frozenset(o.rstrip("/").lower() for o in cors_origins)
        self.exempt = frozenset(exempt)

    def host_allowed(self, host: str) -> bool:
        return "*" in self.hosts or host_name(host) in self.hosts

    def origin_allowed(self, origin: str) -> bool:
        return "*" in self.cors or origin.rstrip("/").lower() in self.cors

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path in self.exempt:
            return await handler(request)
        host = request.headers.get("Host", "")
        if not self.host_allowed(host):
            log.info("refused RPC request from %s: Host %s is not allowed", request.remote, preview(host))
            return refusal(403, f"Host {host!r} is not allowed: this node answers to localhost, 127.0.0.1, [::1] "
                                "and the --rpc-allow-host names")
        origin = request.headers.get("Origin")
        foreign = origin if origin is not None and not same_origin(origin, host) else None
        if foreign is not None and not self.origin_allowed(foreign):
            log.info("refused RPC request from %s: Origin %s is not allowed", request.remote, preview(foreign))
            return refusal(403, f"Origin {foreign!r} is not allowed: web pages of other sites may call this node "
                                "only if it was started with --rpc-cors <origin>")
        if request.method == "OPTIONS":  # a CORS preflight from an allowed origin
            return self._with_cors(web.Response(status=204), foreign)
        if request.method == "POST" and request.path == "/" and request.content_type != "application/json":
            return refusal(415, f"Content-Type must be application/json, found {request.content_type!r}")
        return self._with_cors(await handler(request), foreign)

    @staticmethod
    def _with_cors(response: web.StreamResponse, origin: str | None) -> web.StreamResponse:
        if origin is not None and not response.prepared:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Methods"] = "POST, GET, PUT, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
            response.headers["Vary"] = "Origin"
        return response


def auth_required(host: str, cookie_path: object, rpc_user: str | None, rpc_password: str | None,
                   require_auth: bool | None) -> bool:
    """Whether a server on ``host`` with these settings requires auth; ``ValueError`` for unsafe settings."""
    if (rpc_user is None) != (rpc_password is None):
        raise ValueError("give both rpc_user and rpc_password, or neither")
    if rpc_user is not None and (":" in rpc_user or not rpc_user or not rpc_password):
        raise ValueError("rpc_user must be non-empty without ':' and rpc_password non-empty")
    loopback = is_loopback(host)
    if require_auth is False and not loopback:
        raise ValueError(f"refusing to serve RPC on non-loopback address {host} without authentication")
    required = bool(require_auth) if require_auth is not None else not loopback
    if required and cookie_path is None and rpc_user is None:
        raise ValueError(f"RPC on {host} requires authentication: give cookie_path or rpc_user/rpc_password")
    return required
