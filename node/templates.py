"""Block templates on the current tip (the mempool's best transactions, the chain's next header), and their long-poll.

The mempool checked each transaction against the tip it saw; a template is
built on the chain's tip of the moment, at the next height. A transfer's nonce
and balance hold in any block on that tip (the mempool checked them against
its accounts and the sender's pending queue), but a job transaction's row of
section 11 may not: a claim's deadline passed while the mempool settled, a
second claim for one offer. So before a template goes out its job transactions
are applied in order to an in-memory overlay of the tip's records at the
template's height (``consensus.jobmarket.apply_job_tx``, the rule a block is
checked by), and one that fails is left out with its sender's later
transactions, which would otherwise leave a nonce gap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable, Sequence

from consensus.assemble import BlockTemplate, build_template
from consensus.errors import InvalidTx
from consensus.jobmarket import apply_job_tx
from consensus.networks import NetworkParams
from consensus.state import StateOverlay, StateView
from consensus.tx import get_sender
from consensus.types import JobTxBody, Tx

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
            valid = drop_invalid(chain, transfers, parent.height + 1, params)
            return build_template(parent, params, now, address, valid, shape)

        return await self._chain.read(build)


def drop_invalid(view: StateView, txs: Sequence[Tx], height: int, params: NetworkParams) -> list[Tx]:
    """``txs`` without the job transactions whose row condition fails at ``height`` on ``view`` (each seeing
    the records the ones before it left) and without their senders' later transactions.

    Only job transactions are checked: transfers cost no account reads, so a template of 10,000 of them
    costs nothing here.
    """
    records = StateOverlay(view)
    kept: list[Tx] = []
    failed: set[bytes] = set()
    for tx in txs:
        body = tx.body
        if body.pubkey in failed:
            continue
        if isinstance(body, JobTxBody):
            try:
                apply_job_tx(records, body, get_sender(tx), height, params)
            except InvalidTx:
                failed.add(body.pubkey)
                continue
        kept.append(tx)
    return kept


# --- long-polling (BIP 22) -------------------------------------------------------------------------------------------

LONGPOLL_MAX_WAIT = 60.0
"""Longest a ``getblocktemplate`` long-poll waits before it answers with the unchanged template (seconds)."""
LONGPOLL_MAX_WAITERS = 64
"""Long-polls that may wait at once; one more is refused (``LongPollBusy``) instead of queued."""
LONGPOLL_INTERVAL = 0.05
"""How often, while someone waits, the watch looks for a new tip, a mempool change or a job change (seconds)."""
MEMPOOL_INTERVAL = 5.0
"""A mempool change alone bumps the revision at most this often (the node's own miner refreshes as often)."""
LONGPOLL_ID_PATTERN = "^[0-9a-f]{64}-[0-9]{1,15}$"
"""``<tip id hex>-<revision>``."""


class LongPollBusy(Exception):
    """Too many long-polls wait already; the caller should retry later or poll without ``longpollid``."""


class TemplateWatch:
    """Says when the template on offer changed, so ``getblocktemplate`` long-polls can wait for it (BIP 22).

    The state a template depends on is the tip, the mempool and the jobs
    (job work is handed out with templates). ``tip()``, ``mempool()`` and
    ``jobs()`` return a cheap fingerprint of each (the tip id; the
    mempool's count and bytes; the job service's change counter). The
    ``revision`` bumps at once when the tip or the jobs change, and on a
    mempool change at most every ``mempool_interval`` seconds (new
    transfers are worth a new template, but not one per transfer). The
    long-poll id is ``<tip hex>-<revision>``.

    Waiting costs no thread: one poller task (``poll_interval``) runs only
    while someone waits, and every waiter waits on the same event. It polls
    rather than subscribes because the watch sees the services only through
    these fingerprints; ``notify`` lets a caller that knows of a change
    (``submitblock``) wake the waiters at once. At most ``max_waiters`` wait
    at once; each waits at most ``max_wait`` seconds.
    """

    def __init__(self, tip: Callable[[], bytes], mempool: Callable[[], Hashable], jobs: Callable[[], Hashable], *,
                 max_wait: float = LONGPOLL_MAX_WAIT, max_waiters: int = LONGPOLL_MAX_WAITERS,
                 poll_interval: float = LONGPOLL_INTERVAL, mempool_interval: float = MEMPOOL_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_wait <= 0 or max_waiters < 1 or poll_interval <= 0 or mempool_interval < 0:
            raise ValueError("max_wait, max_waiters and poll_interval must be positive, mempool_interval >= 0")
        self._tip_of, self._mempool_of, self._jobs_of = tip, mempool, jobs
        self.max_wait = max_wait
        self.max_waiters = max_waiters
        self.poll_interval = poll_interval
        self.mempool_interval = mempool_interval
        self._clock = clock
        self._tip, self._mempool, self._jobs = tip(), mempool(), jobs()
        self.revision = 0
        self._bumped = clock()
        self._changed = asyncio.Event()
        self._waiting = 0
        self._poller: asyncio.Task | None = None

    @property
    def waiting(self) -> int:
        """Long-polls waiting now."""
        return self._waiting

    @property
    def longpollid(self) -> str:
        """The id of the template on offer now (``refresh`` first)."""
        self.refresh()
        return f"{self._tip.hex()}-{self.revision}"

    def refresh(self) -> bool:
        """Look at the fingerprints; bump the revision and wake every waiter if the template changed."""
        tip, mempool, jobs = self._tip_of(), self._mempool_of(), self._jobs_of()
        now = self._clock()
        if tip != self._tip or jobs != self._jobs:
            changed = True
        else:
            changed = mempool != self._mempool and now - self._bumped >= self.mempool_interval
        if not changed:
            return False
        self._tip, self._mempool, self._jobs = tip, mempool, jobs
        self.revision += 1
        self._bumped = now
        event, self._changed = self._changed, asyncio.Event()
        event.set()
        return True

    notify = refresh

    async def wait(self, longpollid: str, timeout: float | None = None) -> bool:
        """Wait until the template is no longer the one ``longpollid`` names, at most ``timeout`` seconds.

        Returns at once (True) if it already changed; False when the bound
        passed first. Raises ``LongPollBusy`` when ``max_waiters`` wait already.
        """
        if longpollid != self.longpollid:
            return True
        if self._waiting >= self.max_waiters:
            raise LongPollBusy(f"{self._waiting} long-polls wait already, the most this node serves at once; "
                               "retry later, or call getblocktemplate without longpollid")
        bound = self.max_wait if timeout is None else max(0.0, min(timeout, self.max_wait))
        event = self._changed
        self._waiting += 1
        if self._poller is None:
            self._poller = asyncio.get_running_loop().create_task(self._poll(), name="longpoll-watch")
        try:
            await asyncio.wait_for(event.wait(), bound)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiting -= 1

    async def _poll(self) -> None:
        try:
            while self._waiting:
                await asyncio.sleep(self.poll_interval)
                self.refresh()
        finally:
            self._poller = None

    async def close(self) -> None:
        """Wake every waiter (they answer with the template as it is) and stop the poller.

        A node's poller ends by itself once nobody waits; a stopping server that
        calls this answers its long-polls at once instead of at its shutdown timeout.
        """
        self._changed.set()
        self._changed = asyncio.Event()
        task = self._poller
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
