"""The node: LevelDB storage and the chain service (the asyncio daemon, mempool, miner and RPC come later).

``node.schema`` is the database layout, ``node.store`` the key-value store
seam (LevelDB and an in-memory fake), ``node.chain`` the chain service that
validates, stores, connects and reorganises blocks.
"""
