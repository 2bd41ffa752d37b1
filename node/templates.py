"""Block templates on the current tip: the mempool's best transfers and the chain's next header."""

from __future__ import annotations

import time
from collections.abc import Callable

from consensus.assemble import BlockTemplate, build_template

from .chain import ChainService
from .chainhandle import ChainHandle
from .mempool import Mempool


class TemplateMaker:
    """Builds templates for the miner and ``getblocktemplate``."""

    def __init__(self, chain: ChainHandle, mempool: Mempool, *, clock: Callable[[], float] = time.time) -> None:
        self._chain = chain
        self._mempool = mempool
        self._clock = clock

    async def template(self, address: bytes, shape: tuple[int, int, int]) -> BlockTemplate:
        """A template on the current tip paying ``address``; ``shape`` is ``(m, n, k)``."""
        params = self._chain.params
        transfers = self._mempool.select(params.max_tx_count - 1, params.max_block_size // 2)

        def build(chain: ChainService) -> BlockTemplate:
            parent = chain.get_parent_info(chain.tip_id)
            median = sorted(parent.recent_times)[len(parent.recent_times) // 2]
            now = max(int(self._clock()), median + 1)
            return build_template(parent, params, now, address, transfers, shape)

        return await self._chain.read(build)
