"""``StubHost``: just enough of ``p2p.host.P2PHost`` for a ``PeerNetwork`` built in a unit test."""

from __future__ import annotations


class StubHost:
    """Takes the registrations ``PeerNetwork``'s constructor makes and does nothing with them."""

    def set_gater(self, fn): ...
    def subscribe(self, topic, fn): ...
    def set_request_handler(self, protocol, fn): ...
    def on_peer_connected(self, fn): ...
    def on_peer_disconnected(self, fn): ...


class RecordingHost(StubHost):
    """A ``StubHost`` that keeps what the network publishes (``(topic, payload)``, in order)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    async def publish(self, topic, data):
        self.published.append((topic, bytes(data)))

    def is_connected(self, peer):
        return False
