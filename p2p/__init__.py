"""Peer-to-peer networking over py-libp2p 0.8.1, with an asyncio face.

- ``p2p.host``: ``P2PHost``, a libp2p host (Noise, yamux, gossipsub) in its own
  trio thread; the only module that configures libp2p.
- ``p2p.bridge``: ``TrioThread``, the trio-in-a-thread run and its two crossings.
- ``p2p.network``: ``PeerNetwork``, the gossip, handshake, sync and blob service
  the node runs over a host; ``p2p.headersync`` (``HeadersFirstSync``, composed
  into it), ``p2p.orphans`` (held blocks whose parent is unknown), ``p2p.peers``
  (per-peer state, counters).
- ``p2p.access``: ``ChainAccess``, what the network needs from the node, and the
  ``Intake`` outcomes it reports back.
- ``p2p.protocol``: topic names, request/response protocol ids, every wire format.
- ``p2p.requests``: ``PeerRequester``, the asking side of the sync protocols.
- ``p2p.scoring``: ``ScoreBook``, peer scores and persistent bans.
- ``p2p.identity``: the node key file.
- ``p2p.types``, ``p2p.errors``: ``Verdict``, ``PeerInfo`` and the error hierarchy.

Only ``host`` and ``bridge`` import trio or libp2p (importing ``p2p.host`` costs
about a second); the rest is cheap and pure.
"""
