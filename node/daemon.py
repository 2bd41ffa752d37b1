"""``pouwd``: run a node until SIGINT, SIGTERM or the ``stop`` RPC.

On start it prints one JSON line to stdout, ``{"event": "ready", "rpc": URL,
...}``, that scripts (the devnet launcher, tests) wait for; logs go to stderr.
Shutdown stops the services in reverse order of start (``node.app``): mining,
RPC, networking, the miner, then the databases, so nothing is left half-written.
A failed start (a port in use) closes what was opened and exits with 1.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys

from .app import Node, open_node
from .config import ConfigError, NodeConfig, load_config
from .errors import StartupError, StorageError

log = logging.getLogger("pouwd")


def ready_line(config: NodeConfig, node: Node) -> dict:
    """The ``ready`` event printed once the node serves."""
    net = node.network
    return {
        "event": "ready", "network": config.network, "datadir": str(config.datadir),
        "rpc": node.rpc.url, "ws": node.rpc.ws_url, "height": node.chain.snapshot.height,
        "mining": node.miner.running, "miner_address": node.encode_address(node.miner.address),
        "backend": node.miner.backend.name,
        "p2p": net.host.listen_addrs if net is not None else [],
        "peer_id": net.host.peer_id if net is not None else None,
    }


async def run(config: NodeConfig) -> int:
    async with open_node(config) as node:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, node.request_stop)
        print(json.dumps(ready_line(config, node)), flush=True)
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
    except (StartupError, StorageError) as e:
        print(f"pouwd: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"pouwd: {e} (is another node using the same ports or data directory?)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
