"""The node daemon ``pouwd``: storage, chain service, mempool, miner, jobs, JSON-RPC and metrics.

Reading order: ``node.schema`` (database layout) -> ``node.store`` (key-value
seam) -> ``node.chain`` (validate, store, connect, reorganise) ->
``node.chainhandle`` and ``node.snapshot`` (the one thread that touches the
chain, and what the event loop reads) -> ``node.events`` (who hears what) ->
``node.mempool`` and ``node.txintake`` -> ``node.jobs`` and ``node.blobs`` ->
``node.templates`` and ``node.miner`` -> ``node.netadapter`` (the network's view
of the node) -> ``node.api`` (the JSON-RPC methods) -> ``node.app`` (the
composition root) -> ``node.daemon`` (``pouwd``). ``docs/architecture.md``
follows a block, a transaction and a job through them.
"""

__version__ = "0.1.0"
