"""``pouw-miner``: mining for a node from outside it, over JSON-RPC and ``/blobs`` only (like the wallet).

- ``miner.work``: a node's ``getblocktemplate`` answer as a ``consensus`` template, and the block of a
  winning tile (``consensus.assemble.assemble_block`` over a ``kernels`` result).
- ``miner.client``: ``MinerClient``, the node as a miner needs it (``wallet.rpc.RpcClient`` underneath).
- ``miner.devices``: ``--devices`` (``cpu``, GPU indices, ``all``) to self-tested ``kernels`` backends.
- ``miner.engine``: the long-poll thread, one worker thread per device, job work, reporting.
- ``miner.useful``: ``UsefulMiner``, exact products of your own matrices computed as mining work.
- ``miner.cli``: the ``pouw-miner`` command.

It may not import ``node``, ``p2p``, ``plyvel``, ``libp2p`` or ``trio`` (tests/unit/test_import_layers.py).
"""
