"""The node daemon ``pouwd``: storage, chain service, mempool, miner, jobs, JSON-RPC and metrics.

Reading order: ``node.schema`` (database layout) -> ``node.store`` (key-value
seam) -> ``node.chain`` (validate, store, connect, reorganise) ->
``node.mempool`` -> ``node.jobs`` and ``node.blobs`` -> ``node.miner`` ->
``node.node`` (everything wired on one asyncio loop) -> ``node.api`` and
``node.api_jobs`` (the JSON-RPC methods) -> ``node.daemon`` (``pouwd``).
"""

__version__ = "0.1.0"
