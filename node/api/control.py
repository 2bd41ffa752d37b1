"""Control RPC methods: stopping the node."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..rpc.registry import rpc_method


class ControlMethods:
    """The node's life cycle."""

    def __init__(self, request_stop: Callable[[], None]) -> None:
        self.request_stop = request_stop

    @rpc_method(result={"type": "string"}, control=True)
    async def stop(self) -> str:
        """Stop the node cleanly (after this answer is sent)."""
        asyncio.get_running_loop().call_later(0.05, self.request_stop)
        return "pouwd stopping"
