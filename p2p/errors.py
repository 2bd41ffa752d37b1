"""Errors of the p2p layer: one small hierarchy, translated from libp2p's at the boundary.

``P2PError`` is the root. Nothing from libp2p or trio escapes ``p2p``: the host
catches libp2p's exceptions and re-raises one of these with ``from``.

- ``P2PDecodeError``: bytes from a peer that do not decode (a peer fault: the
  caller penalises the sender). The only error ``p2p.protocol``'s decoders raise.
- ``MessageTooLarge``: a local caller tried to gossip more than
  ``p2p.protocol.MAX_GOSSIP_BYTES`` (a programming error, not a peer's fault).
- ``RequestFailed`` / ``RequestTimeout``: a request to a peer got no usable
  answer (the peer does not speak the protocol, reset the stream, or was too slow).
- ``ConnectFailed`` / ``PeerRefused``: a dial failed, or was refused because the
  peer is banned.
- ``HostNotRunning``: the host was used before ``start()`` or after ``stop()``.
"""

from __future__ import annotations


class P2PError(Exception):
    """Root of every error raised by ``p2p``."""


class P2PDecodeError(P2PError, ValueError):
    """Malformed bytes from a peer (the peer is at fault)."""


class MessageTooLarge(P2PError, ValueError):
    """A gossip payload over the size cap (the local caller is at fault)."""


class RequestFailed(P2PError):
    """A request/response exchange failed (unsupported protocol, reset stream, bad framing)."""


class RequestTimeout(RequestFailed):
    """A request got no answer within its timeout."""


class ConnectFailed(P2PError):
    """A dial to a peer failed (unreachable address, handshake failure)."""


class PeerRefused(ConnectFailed):
    """The peer is refused by the connection gater (it is banned)."""


class ListenFailed(P2PError):
    """None of the host's listen addresses could be bound (a port in use, an address not ours)."""


class HostNotRunning(P2PError):
    """The host is not started (or already stopped)."""


class KeyFileError(P2PError):
    """The node key file exists but cannot be used (wrong size, unreadable)."""
