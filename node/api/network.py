"""Network RPC methods: peers, node identity, addnode, bans."""

from __future__ import annotations

import time

from p2p.network import PeerNetwork

from .. import __version__
from ..rpc import errors as E
from ..rpc.errors import RpcError
from ..rpc.registry import Param, rpc_method


class NetworkMethods:
    """Peer-to-peer state and management; ``network`` is None when networking is off (``--no-p2p``)."""

    def __init__(self, network: PeerNetwork | None, *, network_name: str, chain_id: int, started: float) -> None:
        self.network = network
        self.network_name = network_name
        self.chain_id = chain_id
        self.started = started

    def _net(self) -> PeerNetwork:
        if self.network is None:
            raise RpcError(E.MISC_ERROR, "networking is off (--no-p2p)")
        return self.network

    @rpc_method(result={"type": "array"})
    async def getpeerinfo(self) -> list:
        """Connected peers: id, addresses, direction, score, their height and connection time."""
        return self.network.peer_info() if self.network is not None else []

    @rpc_method(result={"type": "object"})
    async def getnetworkinfo(self) -> dict:
        """Node identity and networking: version, peer id, listen addresses, connections."""
        net = self.network
        return {"version": __version__, "subversion": f"/pouw-node:{__version__}/", "network": self.network_name,
                "chain_id": self.chain_id, "peer_id": net.host.peer_id if net else None,
                "localaddresses": net.host.listen_addrs if net else [],
                "connections": len(net.peer_info()) if net else 0, "networkactive": net is not None,
                "syncing": net.syncing if net else False, "uptime": int(time.time() - self.started)}

    @rpc_method(params=[Param("node", {"type": "string", "minLength": 1, "maxLength": 512},
                              description="Peer multiaddr ending in /p2p/<peer id>."),
                        Param("command", {"type": "string", "enum": ["add", "remove", "onetry"]},
                              description="add: keep connected; remove: stop; onetry: dial once.")],
                errors=[E.MISC_ERROR, E.INVALID_PARAMETER], control=True)
    async def addnode(self, node: str, command: str) -> None:
        """Connect to a peer (and keep the connection), stop doing so, or dial once."""
        try:
            await self._net().addnode(node, command)  # `node` is the multiaddr here (Bitcoin's name)
        except Exception as e:  # dial errors of every kind become one RPC error
            raise RpcError(E.MISC_ERROR, f"addnode {node}: {e}") from None

    @rpc_method(params=[Param("peer_id", {"type": "string", "minLength": 1, "maxLength": 128}),
                        Param("command", {"type": "string", "enum": ["add", "remove"]}),
                        Param("bantime", {"type": "integer", "minimum": 1, "maximum": 10 * 365 * 86400},
                              required=False, description="Seconds (default 24 hours).")],
                errors=[E.MISC_ERROR], control=True)
    async def setban(self, peer_id: str, command: str, bantime: int | None = None) -> None:
        """Ban a peer and its address (and disconnect it) or lift the ban; bans survive restarts."""
        await self._net().setban(peer_id, command, bantime, "setban RPC")

    @rpc_method(result={"type": "array"})
    async def listbanned(self) -> list:
        """Banned peers, the address banned with each (null: by peer id only), the reason and when the ban ends."""
        return self._net().listbanned()
