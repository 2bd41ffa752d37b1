"""The node's JSON-RPC methods, one module per topic, and the routes served beside them.

- ``node.api.chain``: the best chain, blocks, transactions, accounts, ``verifychain``;
- ``node.api.mempool``: sending transfers, the pending set, the devnet faucet;
- ``node.api.mining``: miner state, templates, ``submitblock``, ``generatetoaddress``, certificates;
- ``node.api.jobs``: MatMul jobs; ``node.api.routes``: ``/blobs`` and ``/explorer``;
- ``node.api.explorer``: the explorer's views, one call per page (home, block, transaction, address, search);
- ``node.api.network``: peers and bans; ``node.api.control``: ``stop``;
- ``node.api.views``: what they share (schemas, block and transaction JSON, rejection errors).

Each module is a class that receives the narrow collaborators it uses; the
composition root (``node.app``) builds them and ``Registry.add_methods``
registers their methods.
"""
