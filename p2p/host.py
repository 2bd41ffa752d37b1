"""The libp2p host: py-libp2p under trio in its own thread, with an asyncio face.

py-libp2p 0.8.1 is trio-only, the node is asyncio. Each ``P2PHost`` runs one
``trio.run`` in a dedicated daemon thread (``p2p.bridge.TrioThread``; several
hosts per process work). Topic handlers and request handlers are asyncio
coroutines, called from trio through the bridge.

Nothing from trio or libp2p leaves this module: callers see coroutines, plain
``bytes`` and ``str`` peer ids, and the errors of ``p2p.errors``.

Configuration, and why (each one is a trap found by running 0.8.1):

- Security is Noise only (``sec_opt``); the default also offers TLS, secio and
  plaintext. The muxer is yamux.
- GossipSub offers ``/meshsub/1.2.0``, ``1.1.0`` and ``1.0.0`` (what other libp2p
  implementations speak), signs every message (strict signing), and has its own
  rate limit off (``spam_protection_enabled=False``: by default it drops more than
  10 messages per second per peer and topic). The node validates and rate-limits
  itself through topic validators and ``p2p.scoring``.
- Message id = BLAKE3(payload), 32 bytes: the same payload published by two
  nodes is one message, and a mixed-implementation mesh agrees on ids. A payload
  published twice within the seen-cache window (120 s) is delivered once.
- Gossip payloads are capped at ``MAX_GOSSIP_BYTES`` (< 1 MiB; libp2p drops
  bigger RPC frames silently); ``publish`` raises ``MessageTooLarge`` above it.
- Two private queue sizes are raised (both silently drop when full): the
  per-topic subscription channel (``SUBSCRIPTION_CHANNEL_SIZE``, 32) and the
  per-peer outbound RPC queue (``RpcQueue``, 32). They are module globals of
  0.8.1, hence the exact pin and the version check below.
- Failed validations are not cached: libp2p caches validator results by message
  id for 5 minutes, which with content ids would make a block that was ignored
  once (parent unknown yet) undeliverable even after its parent arrived. Only
  successful results are cached.
- mDNS off, the connection manager's auto-connector off (it dials peerstore
  entries to keep 50+ connections); the node dials its bootstrap and addnode
  peers itself. Heartbeat 1 s, so meshes form quickly on loopback.
- Request/response: one stream per request, responses up to
  ``MAX_RESPONSE_BYTES`` (callers page below 4 MiB: larger responses fail in
  0.8.1).

Connection admission (against eclipse attacks; the rules are ``p2p.peers.ConnectionSlots``,
the numbers ``p2p.peers.ConnectionLimits``):

- Inbound connections are admitted before their security handshake, by the
  remote address: a banned address, full inbound slots (``outbound_slots`` of
  ``max_connections`` are kept for our own dials) or an address holding
  ``max_inbound_per_ip`` inbound connections already: the socket is closed at
  once, no handshake is spent on it. The slot is held until the connection
  closes. Loopback addresses are exempt from the per-address rules unless
  ``limit_loopback``.
- This replaces libp2p's own inbound handler (``Swarm._handle_inbound_connection``):
  in 0.8.1 each inbound connection holds a slot of its inbound limiter until the
  swarm stops, not until the connection closes, so after ``max_connections``
  inbound connections over the node's lifetime every further one was refused
  (an attacker needed only to connect and disconnect that many times).
- After the handshake names the peer: a banned peer id, or a banned address
  (either direction), closes the connection.
- A ban covers the address too: the host tells a ``ScoreBook`` gater where each
  peer is (``ScoreBook.set_address_resolver``).

Identity: an Ed25519 key whose 32-byte seed lives in ``<key_dir>/node_key``
(mode 0600, created on first start), so the peer id survives restarts; devnets
may pass a fixed ``seed`` instead.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import libp2p
import libp2p.pubsub.pubsub as _pubsub_mod
import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import IMuxedConn, INotifee
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.config import ConnectionConfig
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID as MESHSUB_V10
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11 as MESHSUB_V11
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V12 as MESHSUB_V12
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pubsub import Pubsub, ValidationCache
from libp2p.pubsub.rpc_queue import DefaultMaxMessageSize
from libp2p.request_response import BytesCodec, RequestResponse, RequestResponseConfig
from libp2p.request_response.exceptions import RequestResponseError, RequestTimeoutError
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.tools.anyio_service import background_trio_service

from pouw.hashing import H

from .bridge import TrioThread
from .errors import (
    ConnectFailed,
    HostNotRunning,
    ListenFailed,
    MessageTooLarge,
    P2PError,
    PeerRefused,
    RequestFailed,
    RequestTimeout,
)
from .identity import load_or_create_node_key
from .peers import ConnectionLimits, ConnectionSlots, Refusal, address_key
from .protocol import MAX_GOSSIP_BYTES, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES
from .types import INBOUND, OUTBOUND, PeerInfo, Verdict

log = logging.getLogger(__name__)

LIBP2P_VERSION = "0.8.1"
"""The exact py-libp2p release whose private knobs this module patches."""

if libp2p.__version__ != LIBP2P_VERSION:  # pragma: no cover - guarded by the exact pin in pyproject.toml
    raise ImportError(
        f"p2p.host patches private names of py-libp2p {LIBP2P_VERSION}; found {libp2p.__version__}. "
        "Re-check notes/deps-findings.md section 1.5 before changing the pin."
    )

SUBSCRIPTION_QUEUE = 65_536
"""Depth of each topic's subscription channel (libp2p default 32, drops when full)."""
OUTBOUND_QUEUE = 65_536
"""Depth of each peer's outbound RPC queue (libp2p default 32, drops when full)."""
DEFAULT_LISTEN = ("/ip4/127.0.0.1/tcp/0",)

assert MAX_GOSSIP_BYTES < DefaultMaxMessageSize


def _patch_queue_sizes() -> None:
    if getattr(_pubsub_mod, "_pouw_patched", False):
        return
    _pubsub_mod.SUBSCRIPTION_CHANNEL_SIZE = SUBSCRIPTION_QUEUE
    original: Any = _pubsub_mod.RpcQueue  # a class, read from the module at run time

    class _DeepRpcQueue(original):
        def __init__(self, max_size: int = OUTBOUND_QUEUE, max_message_size: int = DefaultMaxMessageSize) -> None:
            super().__init__(max_size, max_message_size)

    setattr(_pubsub_mod, "RpcQueue", _DeepRpcQueue)  # noqa: B010 - a module global of 0.8.1, typed as a class
    setattr(_pubsub_mod, "_pouw_patched", True)  # noqa: B010 - our own marker on their module


_patch_queue_sizes()


class _SuccessOnlyValidationCache(ValidationCache):
    """Caches validator successes only (see the module docstring)."""

    def put(self, msg_id: bytes, result: Any) -> None:
        if result.is_valid:
            super().put(msg_id, result)


def message_id(msg: Any) -> bytes:
    """Gossip message id: BLAKE3 of the payload (32 bytes)."""
    return H(bytes(msg.data))


def _remote_host(conn: Any) -> str | None:
    """The remote IP of a raw, muxed or swarm connection (None if it cannot say)."""
    for obj in (conn, getattr(conn, "muxed_conn", None)):
        get = getattr(obj, "get_remote_address", None)
        if get is None:
            continue
        try:
            remote = get()
        except Exception:  # a closing connection may not know
            continue
        if remote:
            return str(remote[0])
    return None


def _maddr_host(maddr: Any) -> str | None:
    """The IP address of a multiaddr (None for a DNS name or no address)."""
    for proto in ("ip4", "ip6"):
        try:
            return str(maddr.value_for_protocol(proto))
        except Exception:  # multiaddr's lookup errors vary
            continue
    return None


def _direction(conn: Any) -> str:
    name = getattr(getattr(conn, "direction", None), "name", "").lower()
    return INBOUND if name == "inbound" else OUTBOUND


async def _wait_closed(muxed_conn: Any) -> None:
    event = getattr(muxed_conn, "event_closed", None)  # yamux's
    if event is not None:
        await event.wait()
        return
    while not muxed_conn.is_closed:
        await trio.sleep(0.5)


def peer_id_from_seed(seed: bytes) -> str:
    """The base58 peer id of the Ed25519 key with this 32-byte seed."""
    return ID.from_pubkey(create_new_key_pair(seed).public_key).to_base58()


class _ConnectionNotifee(INotifee):
    """Forwards libp2p's connection events to the host (runs in the trio thread)."""

    def __init__(self, host: P2PHost) -> None:
        self._host = host

    async def opened_stream(self, network: Any, stream: Any) -> None:
        pass

    async def closed_stream(self, network: Any, stream: Any) -> None:
        pass

    async def connected(self, network: Any, conn: Any) -> None:
        self._host._on_conn_opened(conn)

    async def disconnected(self, network: Any, conn: Any) -> None:
        self._host._on_conn_closed(conn)

    async def listen(self, network: Any, maddr: Any) -> None:
        pass

    async def listen_close(self, network: Any, maddr: Any) -> None:
        pass


TopicHandler = Callable[[str, bytes], Awaitable[Verdict]]
RequestHandler = Callable[[str, bytes], Awaitable[bytes]]
PeerListener = Callable[[PeerInfo], Any]


class P2PHost:
    """A libp2p host in its own trio thread; use as ``async with P2PHost(...) as host``."""

    def __init__(
        self,
        *,
        key_dir: str | os.PathLike | None = None,
        seed: bytes | None = None,
        listen: Sequence[str] = DEFAULT_LISTEN,
        gater: Callable[[str], bool] | None = None,
        address_gater: Callable[[str], bool] | None = None,
        heartbeat_interval: float = 1.0,
        limits: ConnectionLimits | None = None,
        validation_timeout: float = 30.0,
        handler_timeout: float = 30.0,
    ) -> None:
        """Configure (nothing starts until ``start``).

        ``seed`` (32 bytes) fixes the identity (devnets); otherwise ``key_dir``
        holds the persistent key file; with neither the identity is random.
        ``gater(peer_id) -> True`` refuses a peer (banned): its connections are
        closed as soon as the handshake names it, and dials to it fail.
        ``address_gater(address_key) -> True`` refuses an address (see ``set_gater``).
        ``limits``: connection slots and per-address limits (default ``ConnectionLimits()``).
        """
        if seed is None:
            seed = load_or_create_node_key(key_dir) if key_dir is not None else secrets.token_bytes(32)
        if len(seed) != 32:
            raise ValueError(f"an Ed25519 seed is 32 bytes, found {len(seed)}")
        self._seed = bytes(seed)
        self._key_pair = create_new_key_pair(self._seed)
        self._my_id = ID.from_pubkey(self._key_pair.public_key)
        self.peer_id: str = self._my_id.to_base58()
        """Base58 peer id; stable for a given seed or key file."""
        self.listen_addrs: list[str] = []
        """Full multiaddrs we listen on, each ending in ``/p2p/<peer id>`` (set by ``start``)."""
        self._listen = [str(a) for a in listen]
        self._gater: Callable[[str], bool] | None = None
        self._address_gater: Callable[[str], bool] | None = None
        self._heartbeat = heartbeat_interval
        self.limits = limits if limits is not None else ConnectionLimits()
        """Connection slots and per-address limits (read-only once started)."""
        self._slots = ConnectionSlots(self.limits)
        self.refused: dict[str, int] = {}
        """Inbound connections closed before their handshake, by ``p2p.peers.Refusal`` value."""
        self._recent_addrs: OrderedDict[str, str] = OrderedDict()
        """Peer id -> address key of its latest connection (bounded): what a ban on it covers."""
        self._validation_timeout = validation_timeout
        self._handler_timeout = handler_timeout

        self._topics: dict[str, TopicHandler] = {}
        self._request_handlers: dict[str, RequestHandler] = {}
        self._on_connected: list[PeerListener] = []
        self._on_disconnected: list[PeerListener] = []
        self._peer_lock = threading.Lock()
        self._conns: dict[str, list[Any]] = {}
        self._peer_meta: dict[str, tuple[str, float]] = {}
        self._bg: set[asyncio.Task] = set()

        self._trio = TrioThread(f"p2p-{self.peer_id[-8:]}")
        self._host: Any = None
        self._pubsub: Any = None
        self._gossipsub: Any = None
        self._rr: Any = None
        self.set_gater(gater, address_gater)

    # --- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> P2PHost:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._trio.running

    async def start(self) -> None:
        """Start the trio thread, listen, and register the handlers added so far.

        Raises ``ListenFailed`` (and stops again) when none of the listen
        addresses could be bound: libp2p only logs that and runs on unreachable.
        """
        await self._trio.start(self._run_libp2p, self._setup)
        if self._listen and not self.listen_addrs:
            await self.stop()
            raise ListenFailed(f"could not listen on {', '.join(self._listen)} (is the port in use?)")

    async def stop(self) -> None:
        """Close every connection and end the trio thread (idempotent)."""
        await self._trio.stop()
        for task in list(self._bg):
            task.cancel()

    @asynccontextmanager
    async def _run_libp2p(self) -> AsyncIterator[None]:
        self._build()
        listen = [multiaddr.Multiaddr(a) for a in self._listen]
        try:
            async with self._host.run(listen_addrs=listen):
                async with background_trio_service(self._pubsub), background_trio_service(self._gossipsub):
                    await self._pubsub.wait_until_ready()
                    yield
        finally:
            self._pubsub.seen_messages.stop()  # its sweeper thread outlives the service otherwise

    async def _setup(self) -> None:
        for protocol, request_handler in self._request_handlers.items():
            self._trio_set_request_handler(protocol, request_handler)
        for topic, topic_handler in self._topics.items():
            await self._trio_subscribe(topic, topic_handler)
        self.listen_addrs = [str(a) for a in self._host.get_addrs()]

    def _build(self) -> None:
        kp = self._key_pair
        most = self.limits.max_connections
        config = ConnectionConfig(max_connections=most, min_connections=0, low_watermark=most, high_watermark=most)
        host = new_host(
            key_pair=kp,
            sec_opt={NOISE_ID: NoiseTransport(kp, noise_privkey=create_x25519_key_pair().private_key)},
            muxer_opt={TProtocol(YAMUX_ID): Yamux},
            enable_mDNS=False,
            connection_config=config,
        )
        swarm: Any = host.get_network()  # the Swarm behind the interface: its connector and add_conn are patched

        async def _auto_connector_off() -> None:
            return None

        swarm.auto_connector.start = _auto_connector_off  # see module docstring
        original_add_conn = swarm.add_conn

        async def gated_add_conn(muxed_conn: Any, direction: str = "unknown") -> Any:
            peer = muxed_conn.peer_id.to_base58()
            key = address_key(_remote_host(muxed_conn))
            if self._refused(peer) or self._address_refused(key):
                try:
                    await muxed_conn.close()
                finally:
                    log.info("refused connection from banned peer %s (address %s)", peer, key)
                raise ConnectionRefusedError(f"peer {peer} is banned")
            return await original_add_conn(muxed_conn, direction)

        async def admit_inbound(read_write_closer: Any, maddr: Any) -> None:
            # Replaces Swarm._handle_inbound_connection (TCP only; see the module docstring).
            if isinstance(read_write_closer, IMuxedConn):  # QUIC and the like: not listened on
                try:
                    await read_write_closer.close()
                except Exception:  # already gone
                    pass
                return
            host_ip = _remote_host(read_write_closer)
            banned = self._address_refused(address_key(host_ip))
            with self._peer_lock:
                ticket = self._slots.admit_inbound(host_ip, outbound=self._outbound_locked(), address_banned=banned)
                if isinstance(ticket, Refusal):
                    self.refused[ticket.value] = self.refused.get(ticket.value, 0) + 1
            if isinstance(ticket, Refusal):
                log.debug("inbound connection from %s refused: %s", host_ip, ticket.value)
                try:
                    await read_write_closer.close()
                except Exception:  # already gone
                    pass
                return
            raw = None
            try:
                raw = RawConnection(read_write_closer, False)
                muxed_conn = await swarm.upgrade_inbound_raw_conn(raw, maddr)
                await _wait_closed(muxed_conn)  # the slot is held for the connection's life
            except Exception as e:  # a failed handshake, a refused peer: libp2p closed it
                log.debug("inbound connection from %s failed: %r", host_ip, e)
                try:
                    await (raw if raw is not None else read_write_closer).close()
                except Exception:  # already gone
                    pass
            finally:
                with self._peer_lock:
                    self._slots.release(ticket)

        swarm.add_conn = gated_add_conn
        swarm._handle_inbound_connection = admit_inbound
        swarm.register_notifee(_ConnectionNotifee(self))
        gossipsub = GossipSub(
            protocols=[MESHSUB_V12, MESHSUB_V11, MESHSUB_V10],
            degree=6, degree_low=4, degree_high=12,
            # Typed int in 0.8.1, used as trio.sleep seconds: a float works (1 s default, faster in tests).
            heartbeat_initial_delay=0.1, heartbeat_interval=self._heartbeat,  # type: ignore[arg-type]
            spam_protection_enabled=False, adaptive_gossip_enabled=False,
        )
        pubsub = Pubsub(
            host, gossipsub, strict_signing=True, msg_id_constructor=message_id,
            validation_timeout=self._validation_timeout, cache_size=4096,
            max_inbound_rpc_size=DefaultMaxMessageSize,
        )
        pubsub.validation_cache = _SuccessOnlyValidationCache()
        self._host, self._gossipsub, self._pubsub = host, gossipsub, pubsub
        self._rr = RequestResponse(host)

    # --- gossip --------------------------------------------------------------------------------

    def subscribe(self, topic: str, handler: TopicHandler) -> None:
        """Join ``topic``; ``await handler(peer_id, data) -> Verdict`` runs on the asyncio loop
        before a message is forwarded (only ``ACCEPT`` forwards).

        ``peer_id`` is the peer that sent us the message (not necessarily its
        author). Our own publishes are not passed to the handler. Best called
        before ``start``; after it, the subscription takes effect moments later.
        """
        self._topics[topic] = handler
        if self.running:
            self._trio.spawn(self._trio_subscribe, topic, handler)

    async def _trio_subscribe(self, topic: str, handler: TopicHandler) -> None:
        my_id = self._my_id

        async def validator(forwarder: ID, msg: Any) -> bool:
            if forwarder == my_id:
                return True  # our own publish: the caller validated it
            if self._refused(forwarder.to_base58()):
                return False  # banned, its connection is about to close
            try:
                verdict = await self._trio.call_asyncio(handler, forwarder.to_base58(), bytes(msg.data))
            except HostNotRunning:
                return False
            except Exception:  # a failing handler must not take the host down
                log.exception("topic handler for %s failed; message ignored", topic)
                return False
            return verdict is Verdict.ACCEPT

        self._pubsub.set_topic_validator(topic, validator, True)
        subscription = await self._pubsub.subscribe(topic)
        self._trio.start_soon(self._drain, subscription)

    @staticmethod
    async def _drain(subscription: Any) -> None:
        # Delivered messages were handled by the validator already; the channel
        # must still be emptied or libp2p drops (and warns) when it fills up.
        while True:
            await subscription.get()

    async def publish(self, topic: str, data: bytes) -> None:
        """Gossip ``data`` on ``topic`` (signed by this host; at most ``MAX_GOSSIP_BYTES``)."""
        data = bytes(data)
        if len(data) > MAX_GOSSIP_BYTES:
            raise MessageTooLarge(f"gossip payload of {len(data)} bytes exceeds the cap of {MAX_GOSSIP_BYTES} bytes")
        try:
            await self._trio.run(self._pubsub.publish, topic, data, timeout=30.0)
        except TimeoutError as e:  # publishing only queues; this is a stuck host
            raise P2PError(f"publish on {topic} did not complete in 30 s") from e

    async def wait_for_mesh(self, topic: str, peer_ids: Iterable[str] = (), *, min_peers: int = 1,
                            timeout: float = 10.0) -> None:
        """Wait until our mesh for ``topic`` holds ``peer_ids`` (or ``min_peers`` peers); else ``TimeoutError``."""
        wanted = {ID.from_base58(p) for p in peer_ids}
        need = max(min_peers, len(wanted))

        async def wait() -> bool:
            with trio.move_on_after(timeout):
                while True:
                    mesh = self._gossipsub.mesh.get(topic, set())
                    if len(mesh) >= need and wanted <= mesh:
                        return True
                    await trio.sleep(0.02)
            return False

        if not await self._trio.run(wait, timeout=timeout + 5.0):
            raise TimeoutError(f"mesh for {topic} did not reach {need} peers within {timeout} s")

    # --- request / response --------------------------------------------------------------------

    def set_request_handler(self, protocol: str, handler: RequestHandler) -> None:
        """Serve ``protocol``: ``await handler(peer_id, request) -> response bytes`` on the asyncio loop.

        An exception in the handler resets the stream (the requester sees ``RequestFailed``).
        """
        self._request_handlers[protocol] = handler
        if self.running:
            self._trio.run_sync_soon(self._trio_set_request_handler, protocol, handler)

    def _rr_config(self, timeout: float) -> RequestResponseConfig:
        return RequestResponseConfig(timeout=timeout, max_request_size=MAX_REQUEST_BYTES,
                                     max_response_size=MAX_RESPONSE_BYTES, max_concurrent_inbound=64)

    def _trio_set_request_handler(self, protocol: str, handler: RequestHandler) -> None:
        async def serve(request: bytes, ctx: Any) -> bytes:
            peer = ctx.peer_id.to_base58()
            if self._refused(peer):
                raise RequestResponseError(f"peer {peer} is banned")
            try:
                return bytes(await self._trio.call_asyncio(handler, peer, bytes(request)))
            except trio.Cancelled:
                raise
            except Exception as e:  # logged by libp2p as a rejected request
                raise RequestResponseError(f"{type(e).__name__}: {e}") from e

        self._rr.set_handler(TProtocol(protocol), handler=serve, codec=BytesCodec(),
                             config=self._rr_config(self._handler_timeout))

    async def request(self, peer_id: str, protocol: str, data: bytes, timeout: float = 10.0) -> bytes:
        """Send one request to ``peer_id`` and return the response bytes.

        Raises ``RequestTimeout`` after ``timeout`` seconds, ``RequestFailed`` for
        any other failure (unsupported protocol, handler error, reset stream).
        """
        if not data:
            raise ValueError("a request carries at least one byte (py-libp2p 0.8.1 hangs on empty ones)")
        try:
            pid = ID.from_base58(peer_id)
        except Exception as e:  # base58/multihash errors vary
            raise RequestFailed(f"not a peer id: {peer_id!r}") from e
        config = self._rr_config(timeout)

        async def send() -> bytes:
            return await self._rr.send_request(peer_id=pid, protocol_ids=[TProtocol(protocol)],
                                               request=bytes(data), codec=BytesCodec(), config=config)

        try:
            # The outer bound covers a stuck dial as well as a slow answer.
            return bytes(await self._trio.run(send, timeout=timeout + 5.0))
        except (TimeoutError, RequestTimeoutError) as e:
            raise RequestTimeout(f"{protocol} to {peer_id} timed out after {timeout} s") from e
        except P2PError:
            raise
        except Exception as e:  # base58/multihash errors vary
            raise RequestFailed(f"{protocol} to {peer_id} failed: {type(e).__name__}: {e}") from e

    async def round_trip(self, timeout: float = 30.0) -> None:
        """Run a no-op on the libp2p thread and wait for it: how long it takes is that thread's lag."""

        async def noop() -> None:
            return None

        await self._trio.run(noop, timeout=timeout)

    # --- peers ---------------------------------------------------------------------------------

    def _refused(self, peer_id: str) -> bool:
        gater = self._gater
        if gater is None:
            return False
        try:
            return bool(gater(peer_id))
        except Exception:  # a broken gater must not kill the connection path
            log.exception("connection gater failed for %s", peer_id)
            return False

    def _address_refused(self, key: str | None) -> bool:
        gater = self._address_gater
        if gater is None or key is None or not self.limits.per_address(key):
            return False
        try:
            return bool(gater(key))
        except Exception:  # a broken gater must not kill the connection path
            log.exception("address gater failed for %s", key)
            return False

    def set_gater(self, gater: Callable[[str], bool] | None,
                  address_gater: Callable[[str], bool] | None = None) -> None:
        """Replace the connection gaters: ``gater(peer_id) -> True`` refuses the peer,
        ``address_gater(address_key) -> True`` refuses every peer at that address.

        When ``gater`` is the ``is_banned`` of a ban book that has ``is_address_banned``
        (``p2p.scoring.ScoreBook``) and no ``address_gater`` is given, the book's address bans
        apply, and the host becomes the book's address resolver, so that each ban covers the
        banned peer's address (``ban_address``).
        """
        book: Any = getattr(gater, "__self__", None)
        if address_gater is None and callable(getattr(book, "is_address_banned", None)):
            address_gater = book.is_address_banned
        self._gater = gater
        self._address_gater = address_gater
        owner = getattr(address_gater, "__self__", None)
        set_resolver = getattr(owner, "set_address_resolver", None)
        if callable(set_resolver):
            set_resolver(self.ban_address)

    def ban_address(self, peer_id: str) -> str | None:
        """The address a ban on ``peer_id`` covers: that of its latest connection (open or recent),
        unless the per-address rules do not apply to it (loopback, by default)."""
        with self._peer_lock:
            key = self._recent_addrs.get(peer_id)
        return key if key is not None and self.limits.per_address(key) else None

    def connection_counts(self) -> dict[str, int]:
        """Connections by direction: ``inbound`` (slots held, handshakes included) and ``outbound`` (open)."""
        with self._peer_lock:
            return {INBOUND: self._slots.inbound, OUTBOUND: self._outbound_locked()}

    def _outbound_locked(self) -> int:
        return sum(1 for conns in self._conns.values() for c in conns if not c.is_closed and _direction(c) == OUTBOUND)

    async def connect(self, maddr: str, timeout: float = 10.0) -> str:
        """Dial a full multiaddr (``.../p2p/<peer id>``); return the peer id once connected."""
        try:
            info = info_from_p2p_addr(multiaddr.Multiaddr(maddr))
        except Exception as e:  # base58/multihash errors vary
            raise ConnectFailed(f"not a dialable multiaddr with /p2p/<id>: {maddr!r} ({e})") from e
        peer = info.peer_id.to_base58()
        if peer == self.peer_id:
            raise ConnectFailed("refusing to dial ourselves")
        if self._refused(peer):
            raise PeerRefused(f"peer {peer} is banned")
        key = address_key(_maddr_host(multiaddr.Multiaddr(maddr)))
        if self._address_refused(key):
            raise PeerRefused(f"address {key} is banned")

        async def dial() -> None:
            swarm = self._host.get_network()
            swarm.unblock_peer(info.peer_id)  # an explicit dial retries at once
            with trio.fail_after(timeout):
                # A connection that is closing still counts for libp2p's connect(): let it go first.
                while swarm.connections.get(info.peer_id) and all(
                        c.is_closed for c in swarm.connections[info.peer_id]):
                    await trio.sleep(0.01)
                await self._host.connect(info)
            # connect() returns as soon as a connection is usable, which can be before it
            # is announced to us (another dial to the same peer may be finishing).
            with trio.move_on_after(2.0):
                while not self.is_connected(peer) and any(
                        not c.is_closed for c in swarm.connections.get(info.peer_id, ())):
                    await trio.sleep(0.01)

        try:
            await self._trio.run(dial, timeout=timeout + 5.0)
        except P2PError:
            raise
        except Exception as e:  # base58/multihash errors vary
            raise ConnectFailed(f"cannot connect to {maddr}: {type(e).__name__}: {e}") from e
        if not self.is_connected(peer):
            raise ConnectFailed(f"{peer} closed the connection right after the handshake (it may ban us)")
        return peer

    async def disconnect(self, peer_id: str) -> None:
        """Close every connection to ``peer_id`` (no-op if none)."""
        try:
            pid = ID.from_base58(peer_id)
        except Exception:  # a broken gater must not kill the connection path
            return
        try:
            await self._trio.run(self._host.disconnect, pid, timeout=10.0)
        except HostNotRunning:
            pass
        except Exception as e:  # base58/multihash errors vary
            log.debug("disconnect %s: %r", peer_id, e)

    def is_connected(self, peer_id: str) -> bool:
        with self._peer_lock:
            return any(not c.is_closed for c in self._conns.get(peer_id, ()))

    def peers(self) -> list[PeerInfo]:
        """Connected peers."""
        with self._peer_lock:
            out = []
            for peer, conns in self._conns.items():
                conns = [c for c in conns if not c.is_closed]
                if not conns:
                    continue
                direction, since = self._peer_meta[peer]
                addrs: list[str] = []
                for conn in conns:
                    try:
                        addrs.extend(str(a) for a in conn.get_transport_addresses())
                    except Exception:  # a closing connection may not know
                        pass
                out.append(PeerInfo(peer, tuple(dict.fromkeys(addrs)), direction, since))
            return out

    def on_peer_connected(self, fn: PeerListener) -> None:
        """Call ``fn(PeerInfo)`` on the asyncio loop when a peer's first connection opens (may be a coroutine)."""
        self._on_connected.append(fn)

    def on_peer_disconnected(self, fn: PeerListener) -> None:
        """Call ``fn(PeerInfo)`` on the asyncio loop when a peer's last connection closes (may be a coroutine)."""
        self._on_disconnected.append(fn)

    def _on_conn_opened(self, conn: Any) -> None:
        peer = conn.muxed_conn.peer_id.to_base58()
        direction = _direction(conn)
        if conn.is_closed:
            return  # closed before we heard it open: its close event may already have passed
        key = address_key(_remote_host(conn))
        with self._peer_lock:
            if key is not None:
                self._recent_addrs[peer] = key
                self._recent_addrs.move_to_end(peer)
                while len(self._recent_addrs) > max(1024, 2 * self.limits.max_connections):
                    self._recent_addrs.popitem(last=False)
            conns = self._conns.setdefault(peer, [])
            first = not conns
            conns.append(conn)
            if first:
                self._peer_meta[peer] = (direction, time.time())
            meta = self._peer_meta[peer]
        if first:
            self._trio.post(self._dispatch, self._on_connected, PeerInfo(peer, (), meta[0], meta[1]))

    def _on_conn_closed(self, conn: Any) -> None:
        peer = conn.muxed_conn.peer_id.to_base58()
        with self._peer_lock:
            conns = self._conns.get(peer, [])
            if conn in conns:
                conns.remove(conn)
            last = not conns and peer in self._conns
            if last:
                del self._conns[peer]
                meta = self._peer_meta.pop(peer, (OUTBOUND, time.time()))
        if last:
            self._trio.post(self._dispatch, self._on_disconnected, PeerInfo(peer, (), meta[0], meta[1]))

    def _dispatch(self, listeners: list[PeerListener], info: PeerInfo) -> None:
        for fn in listeners:
            try:
                result = fn(info)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._bg.add(task)
                    task.add_done_callback(self._listener_done)
            except Exception:  # a failing handler must not take the host down
                log.exception("peer listener failed for %s", info.peer_id)

    def _listener_done(self, task: asyncio.Task) -> None:
        self._bg.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("peer listener failed", exc_info=task.exception())
