"""``pouwd``: run a node until SIGINT, SIGTERM or the ``stop`` RPC.

On start it prints one JSON line to stdout, ``{"event": "ready", "rpc": URL,
...}``, that scripts (the devnet launcher, tests) wait for; logs go to stderr.
Shutdown stops the services in reverse order of start: RPC, networking, miner,
then the databases, so nothing is left half-written.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys

from .config import ConfigError, NodeConfig, load_config
from .node import Node

log = logging.getLogger("pouwd")


async def run(config: NodeConfig) -> int:
    async with Node(config) as node:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, node.request_stop)
        ready = {
            "event": "ready", "network": config.network, "datadir": str(config.datadir),
            "rpc": node.rpc.url, "ws": node.rpc.ws_url, "height": node.chain.height,
            "mining": node.miner.running, "miner_address": node.encode_address(node.miner.address),
            "backend": node.miner.backend.name,
            "p2p": node.network.host.listen_addrs if node.network is not None else [],
            "peer_id": node.network.host.peer_id if node.network is not None else None,
        }
        print(json.dumps(ready), flush=True)
        log.info("pouwd ready: %s network, RPC %s", config.network, node.rpc.url)
        await node.stopping.wait()
        log.info("pouwd stopping")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        config = load_config(argv)
    except ConfigError as e:
        print(f"pouwd: configuration error: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(run(config))
    except OSError as e:
        print(f"pouwd: {e} (is another node using the same ports or data directory?)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
