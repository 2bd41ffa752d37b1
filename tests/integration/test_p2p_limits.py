"""Eclipse resistance of ``P2PHost`` with real py-libp2p hosts on 127.0.0.1.

An attacker with free keys tries to fill every connection slot of a node ("guard"): from one
address (the per-address limit closes the extra connections), with a fresh key after a ban (the
ban covers the address), and with all inbound slots taken (the node still dials out). Loopback
is exempt from the per-address rules by default, so these guards set ``limit_loopback``; one
test checks the exemption itself.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack

import pytest

from p2p.errors import ConnectFailed, PeerRefused
from p2p.host import P2PHost
from p2p.peers import ConnectionLimits
from p2p.scoring import ScoreBook
from p2p.types import INBOUND, OUTBOUND

pytestmark = pytest.mark.timeout(120)


async def wait_for(condition, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


async def hosts(stack: AsyncExitStack, n: int) -> list[P2PHost]:
    """``n`` attacker hosts, each with a fresh key (all on 127.0.0.1)."""
    return [await stack.enter_async_context(P2PHost()) for _ in range(n)]


async def refused(dialer: P2PHost, guard: P2PHost, reason: str, before: int) -> None:
    """``dialer`` cannot connect: the guard closed the connection before the handshake, for ``reason``."""
    with pytest.raises(ConnectFailed):
        await dialer.connect(guard.listen_addrs[0], timeout=5.0)
    assert guard.refused.get(reason, 0) > before, guard.refused
    assert not dialer.is_connected(guard.peer_id)


async def test_more_inbound_connections_from_one_address_than_the_limit_are_closed():
    guard = P2PHost(limits=ConnectionLimits(max_inbound_per_ip=3, limit_loopback=True))
    async with guard, AsyncExitStack() as stack:
        attackers = await hosts(stack, 5)
        for a in attackers[:3]:
            await a.connect(guard.listen_addrs[0])
        await wait_for(lambda: len(guard.peers()) == 3, what="three inbound peers")
        for a in attackers[3:]:
            await refused(a, guard, "address-full", guard.refused.get("address-full", 0))
        assert len(guard.peers()) == 3 and guard.connection_counts()[INBOUND] == 3

        # A closed connection gives its slot back (py-libp2p 0.8.1 kept it until the swarm stopped).
        await guard.disconnect(attackers[0].peer_id)
        await wait_for(lambda: guard.connection_counts()[INBOUND] == 2, what="the slot to be released")
        assert await attackers[3].connect(guard.listen_addrs[0]) == guard.peer_id


async def test_loopback_is_exempt_from_the_per_address_limit_by_default():
    guard = P2PHost(limits=ConnectionLimits(max_inbound_per_ip=1))  # a devnet: every node is 127.0.0.1
    async with guard, AsyncExitStack() as stack:
        for a in await hosts(stack, 3):
            await a.connect(guard.listen_addrs[0])
        await wait_for(lambda: len(guard.peers()) == 3, what="three loopback peers")
        assert guard.refused == {}


async def test_a_banned_peer_coming_back_with_a_fresh_key_from_its_address_is_refused(tmp_path):
    book = ScoreBook(tmp_path)
    guard = P2PHost(gater=book.is_banned, limits=ConnectionLimits(limit_loopback=True))
    async with guard, P2PHost() as bad, P2PHost() as fresh, P2PHost() as listener:
        await bad.connect(guard.listen_addrs[0])
        await wait_for(lambda: guard.is_connected(bad.peer_id), what="the attacker to connect")
        entry = book.ban(bad.peer_id, 3600, "test")  # what a scoring ban or setban does
        assert entry.address == "127.0.0.1"
        assert book.list_banned()[0].to_json()["address"] == "127.0.0.1"  # listbanned shows it
        await guard.disconnect(bad.peer_id)

        await refused(fresh, guard, "banned-address", 0)  # a new key from the banned address
        with pytest.raises(PeerRefused):  # and we do not dial the banned address either
            await guard.connect(listener.listen_addrs[0])
        restarted = ScoreBook(tmp_path)  # the address ban is kept with the ban list
        guard.set_gater(restarted.is_banned)
        await refused(fresh, guard, "banned-address", guard.refused["banned-address"])

        restarted.unban(bad.peer_id)  # lifting the ban lifts the address ban
        assert await fresh.connect(guard.listen_addrs[0]) == guard.peer_id


async def test_on_loopback_bans_stay_per_peer_id_by_default(tmp_path):
    book = ScoreBook(tmp_path)
    guard = P2PHost(gater=book.is_banned)
    async with guard, P2PHost() as bad, P2PHost() as other:
        await bad.connect(guard.listen_addrs[0])
        await wait_for(lambda: guard.is_connected(bad.peer_id), what="the peer to connect")
        assert book.ban(bad.peer_id, 3600, "test").address is None  # the loopback exemption
        await guard.disconnect(bad.peer_id)
        with pytest.raises(ConnectFailed):
            await bad.connect(guard.listen_addrs[0])
        assert await other.connect(guard.listen_addrs[0]) == guard.peer_id  # other devnet nodes still connect


async def test_with_every_inbound_slot_taken_the_node_still_dials_out():
    """The eclipse attack: attacker peers fill every inbound slot; outbound slots stay ours."""
    limits = ConnectionLimits(max_connections=6, outbound_slots=2, max_inbound_per_ip=6, limit_loopback=True)
    guard = P2PHost(limits=limits)
    async with guard, AsyncExitStack() as stack, P2PHost() as honest, P2PHost() as honest2:
        attackers = await hosts(stack, 5)
        for a in attackers[:4]:
            await a.connect(guard.listen_addrs[0])
        await wait_for(lambda: guard.connection_counts()[INBOUND] == 4, what="four inbound connections")
        await refused(attackers[4], guard, "inbound-full", 0)  # every inbound slot is taken

        assert await guard.connect(honest.listen_addrs[0]) == honest.peer_id
        assert await guard.connect(honest2.listen_addrs[0]) == honest2.peer_id
        await wait_for(lambda: guard.connection_counts()[OUTBOUND] == 2, what="two outbound connections")
        directions = {p.peer_id: p.direction for p in guard.peers()}
        assert directions[honest.peer_id] == directions[honest2.peer_id] == OUTBOUND
        assert sum(d == INBOUND for d in directions.values()) == 4
        # Every slot is now in use: a further inbound connection is refused too.
        await refused(attackers[4], guard, "inbound-full", guard.refused["inbound-full"])


async def test_slots_come_back_when_connections_close():
    """py-libp2p 0.8.1's own inbound handler held each slot until the swarm stopped: after
    ``max_connections`` inbound connections over a node's life, it refused every new one."""
    guard = P2PHost(limits=ConnectionLimits(max_connections=2, outbound_slots=0))
    async with guard:
        for _ in range(5):
            async with P2PHost() as visitor:
                assert await visitor.connect(guard.listen_addrs[0]) == guard.peer_id
                await visitor.disconnect(guard.peer_id)
                await wait_for(lambda: guard.connection_counts()[INBOUND] == 0, what="the slot to be released")
        assert guard.refused == {}
