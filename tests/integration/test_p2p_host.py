"""P2PHost with real py-libp2p hosts on 127.0.0.1: identity, gossip, validation, requests, gating."""

from __future__ import annotations

import asyncio
import os
import stat
import time

import pytest

from p2p.errors import ConnectFailed, MessageTooLarge, PeerRefused, RequestFailed, RequestTimeout
from p2p.host import P2PHost, peer_id_from_seed
from p2p.identity import KEY_FILE
from p2p.protocol import MAX_GOSSIP_BYTES
from p2p.scoring import ScoreBook
from p2p.types import INBOUND, OUTBOUND, Verdict

pytestmark = pytest.mark.timeout(120)
TOPIC = "/test/t/1"


async def wait_for(condition, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


class Recorder:
    """A topic handler that records what it saw and answers with a fixed rule."""

    def __init__(self, reject_prefix: bytes = b"bad") -> None:
        self.seen: list[tuple[str, bytes]] = []
        self.reject_prefix = reject_prefix

    async def __call__(self, peer: str, data: bytes) -> Verdict:
        self.seen.append((peer, data))
        return Verdict.REJECT if data.startswith(self.reject_prefix) else Verdict.ACCEPT

    def data(self) -> list[bytes]:
        return [d for _, d in self.seen]


async def line(*hosts: P2PHost) -> None:
    """Connect hosts in a line and wait for the topic mesh on every link."""
    for left, right in zip(hosts, hosts[1:], strict=False):
        await right.connect(left.listen_addrs[0])
    for left, right in zip(hosts, hosts[1:], strict=False):
        await left.wait_for_mesh(TOPIC, [right.peer_id])
        await right.wait_for_mesh(TOPIC, [left.peer_id])


async def test_identity_persists_in_a_private_key_file(tmp_path):
    async with P2PHost(key_dir=tmp_path) as first:
        peer = first.peer_id
        assert first.listen_addrs and first.listen_addrs[0].startswith("/ip4/127.0.0.1/tcp/")
        assert first.listen_addrs[0].endswith(f"/p2p/{peer}")
    key = tmp_path / KEY_FILE
    assert len(key.read_bytes()) == 32
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert P2PHost(key_dir=tmp_path).peer_id == peer
    seed = bytes(range(32))
    assert P2PHost(seed=seed).peer_id == peer_id_from_seed(seed) != peer


async def test_gossip_is_validated_before_it_is_forwarded():
    hosts = [P2PHost() for _ in range(3)]
    handlers = [Recorder() for _ in hosts]
    for host, handler in zip(hosts, handlers, strict=True):
        host.subscribe(TOPIC, handler)
    async with hosts[0] as a, hosts[1] as b, hosts[2] as c:
        await line(a, b, c)
        await a.publish(TOPIC, b"good block")
        await wait_for(lambda: b"good block" in handlers[2].data(), what="forwarded message")
        assert handlers[1].seen == [(a.peer_id, b"good block")]
        assert handlers[2].seen == [(b.peer_id, b"good block")]  # peer = the forwarder
        assert handlers[0].seen == []  # our own publishes are not handed back

        await a.publish(TOPIC, b"bad block")
        await wait_for(lambda: b"bad block" in handlers[1].data(), what="rejected message at b")
        await a.publish(TOPIC, b"marker")  # ordered behind the bad one on the same links
        await wait_for(lambda: b"marker" in handlers[2].data(), what="marker")
        assert b"bad block" not in handlers[2].data()  # REJECT stopped propagation


async def test_message_size_cap():
    hosts = [P2PHost(), P2PHost()]
    got = Recorder()
    hosts[0].subscribe(TOPIC, Recorder())
    hosts[1].subscribe(TOPIC, got)
    async with hosts[0] as a, hosts[1] as b:
        await line(a, b)
        with pytest.raises(MessageTooLarge):
            await a.publish(TOPIC, bytes(MAX_GOSSIP_BYTES + 1))
        biggest = b"x" * MAX_GOSSIP_BYTES
        await a.publish(TOPIC, biggest)
        await wait_for(lambda: biggest in got.data(), what="largest allowed message")


async def test_a_burst_of_300_messages_is_not_dropped():
    hosts = [P2PHost(), P2PHost()]
    got = Recorder()
    hosts[0].subscribe(TOPIC, Recorder())
    hosts[1].subscribe(TOPIC, got)
    async with hosts[0] as a, hosts[1] as b:
        await line(a, b)
        # libp2p's own queues (32 deep) would drop most of these; the host raises them.
        await asyncio.gather(*(a.publish(TOPIC, b"m%d" % i) for i in range(300)))
        await wait_for(lambda: len(got.seen) >= 300, timeout=60, what="300 messages")
        assert sorted(got.data()) == sorted(b"m%d" % i for i in range(300))


async def test_requests_responses_and_their_failures():
    never = asyncio.Event()

    async def echo(peer: str, data: bytes) -> bytes:
        return peer.encode() + b":" + data

    async def big(peer: str, data: bytes) -> bytes:
        return bytes(3_900_000)  # a page just under 4 MB

    async def broken(peer: str, data: bytes) -> bytes:
        raise ValueError("no")

    async def stuck(peer: str, data: bytes) -> bytes:
        await never.wait()
        return b""

    server = P2PHost()
    server.set_request_handler("/test/echo/1", echo)
    server.set_request_handler("/test/broken/1", broken)
    server.set_request_handler("/test/big/1", big)
    async with server, P2PHost() as client:
        server.set_request_handler("/test/stuck/1", stuck)  # registered while running
        await client.connect(server.listen_addrs[0])
        assert await client.request(server.peer_id, "/test/echo/1", b"hi") == client.peer_id.encode() + b":hi"
        assert len(await client.request(server.peer_id, "/test/big/1", b"x")) == 3_900_000
        with pytest.raises(ValueError):
            await client.request(server.peer_id, "/test/echo/1", b"")
        with pytest.raises(RequestFailed):
            await client.request(server.peer_id, "/test/broken/1", b"x")
        with pytest.raises(RequestFailed):
            await client.request(server.peer_id, "/test/missing/1", b"x")
        with pytest.raises(RequestTimeout):
            await client.request(server.peer_id, "/test/stuck/1", b"x", timeout=0.5)


async def test_peers_callbacks_and_disconnect():
    a, b = P2PHost(), P2PHost()
    events: list[tuple[str, str]] = []
    a.on_peer_connected(lambda info: events.append(("up", info.peer_id)))
    a.on_peer_disconnected(lambda info: events.append(("down", info.peer_id)))
    async with a, b:
        assert await b.connect(a.listen_addrs[0]) == a.peer_id
        await wait_for(lambda: ("up", b.peer_id) in events, what="connect callback")
        (info,) = a.peers()
        assert info.peer_id == b.peer_id and info.direction == INBOUND
        assert info.addrs and info.addrs[0].startswith("/ip4/127.0.0.1/tcp/")
        assert b.peers()[0].direction == OUTBOUND and b.peers()[0].connected_since <= time.time()
        await a.disconnect(b.peer_id)
        await wait_for(lambda: ("down", b.peer_id) in events, what="disconnect callback")
        await wait_for(lambda: not b.is_connected(a.peer_id), what="b sees the disconnect")
        assert a.peers() == []


async def test_banned_peers_are_refused_both_ways_and_after_a_restart(tmp_path):
    book = ScoreBook(tmp_path)
    guard = P2PHost(gater=book.is_banned)
    async with guard, P2PHost() as bad, P2PHost() as good:
        book.ban(bad.peer_id, 3600, "test")
        restarted = ScoreBook(tmp_path)  # a new book on the same directory still knows
        guard.set_gater(restarted.is_banned)
        with pytest.raises(ConnectFailed):  # the guard closes it as soon as the handshake names bad
            await bad.connect(guard.listen_addrs[0])
        with pytest.raises(PeerRefused):  # our own gater refuses before dialling
            await guard.connect(bad.listen_addrs[0])
        assert not guard.is_connected(bad.peer_id)
        assert await good.connect(guard.listen_addrs[0]) == guard.peer_id
        await wait_for(lambda: guard.is_connected(good.peer_id), what="good peer accepted")
