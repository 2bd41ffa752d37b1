"""The node's JSON-RPC 2.0 layer: error codes, method registry, HTTP/WebSocket server.

- ``node.rpc.errors``: ``RpcError`` and the documented code table.
- ``node.rpc.registry``: ``Registry``, ``Param``, ``Method``: declared methods with
  strict parameter validation, ``help`` and ``rpc.discover`` (OpenRPC).
- ``node.rpc.schema``: the JSON-Schema subset parameters are checked against.
- ``node.rpc.server``: ``RpcServer``, the aiohttp server (POST ``/``, ``/ws``,
  ``/health``, ``/metrics``) with cookie / Basic auth and subscriptions.

The names below are re-exported lazily so that ``pouw-cli``, which only needs
``DEFAULT_RPC_PORT``, starts without importing aiohttp.
"""

from __future__ import annotations

import importlib
from typing import Any

#: The devnet JSON-RPC port (``pouwd --network devnet`` and ``pouw-cli`` default).
DEFAULT_RPC_PORT = 18445

#: The file in the data directory holding ``__cookie__:<hex>`` while the node runs.
COOKIE_FILENAME = ".cookie"
#: The user name of cookie authentication.
COOKIE_USER = "__cookie__"

_LAZY = {
    "RpcError": "node.rpc.errors",
    "Registry": "node.rpc.registry",
    "Param": "node.rpc.registry",
    "Method": "node.rpc.registry",
    "RpcServer": "node.rpc.server",
}

__all__ = ["DEFAULT_RPC_PORT", "COOKIE_FILENAME", "COOKIE_USER", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
