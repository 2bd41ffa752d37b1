"""The mempool: transfers and job transactions waiting for a block.

- Per sender, transfers are kept by nonce and must be contiguous from the
  sender's next nonce on chain: a block can only take them in order.
- Admission checks the signature, chain id, memo and minimum fee (``consensus.tx.validate_tx``),
  then the nonce and the balance against the chain state plus the sender's
  earlier pending transfers. Each sender's queue keeps a running total of
  ``amount + fee`` over its pending transfers, so admission never re-sums the
  queue: it costs one id hash, one signature check and O(log n) bookkeeping.
- A transfer with the nonce of a pending one replaces it only with a strictly
  higher fee (and the balance still covering the whole queue with the
  replacement). Replacement is atomic: room and balance are checked before the
  old entry is touched; on any refusal the mempool is left as it was.
- Limits: at most ``max_per_sender`` (``MAX_PER_SENDER``, 1,000, whatever the
  network) pending transfers per sender (``sender-limit``), and ``max_count``
  transfers and ``max_bytes`` encoded bytes in total. When the total is
  reached, the transfers with the lowest fee rate among the senders' last
  transfers (evicting those leaves no gap) make room, found through a heap of
  the tails; the newcomer is refused (``mempool-full``) unless it pays a
  strictly higher rate than every transfer it would evict.
- Gossip can deliver a sender's transfers out of order. A transfer whose nonce
  leaves a gap (up to ``MAX_GAP`` ahead) is held aside, not dropped, once its
  signature checked, and admitted as soon as the gap closes (``add_or_hold``).
- ``select`` picks transfers for a block by fee rate, respecting each sender's
  nonce order.

Tip changes (``on_tip_change``) are incremental. The mempool reads accounts
from one chain snapshot, the one of the last tip change it applied (the
``TipMoved`` event carries it), so its queues and running totals always match
the state they were checked against. A tip change:

1. ``begin_tip_change`` (synchronous, O(transfers in the blocks)): switches to
   the new snapshot and marks *dirty* every address the blocks touched that has
   something here: senders and recipients of the transfers of the connected and
   disconnected blocks, and the coinbase recipients of disconnected blocks (a
   disconnect lowers their balance). Each dirty sender remembers its mined
   transfers (by nonce) and its transfers taken back from disconnected blocks.
2. Each dirty sender is then *settled*: one ``get_account``; its transfers below
   the account's nonce leave (mined, or outdone by a competing one: dropped);
   transfers taken back are merged in by nonce (they were checked when their
   block was, so no signature check); the queue is walked in nonce order from
   the account's nonce, recomputing the running total, and everything from the
   first gap, the first transfer the balance no longer covers, or the
   per-sender limit on is dropped. Held transfers of the sender that the block
   made stale are dropped and those it made contiguous are admitted.
   Untouched senders are not looked at: the work is proportional to what the
   blocks touched (their transfers plus the queues of the senders involved,
   at most ``max_per_sender`` each), not to the mempool's size.

Job transactions (section 11) share the sender's nonce sequence and queue with
transfers; their cost is ``fee + debit`` (an offer's ``reward + deposit``, a
claim's bond), found at admission and kept in the entry. Besides nonce and
balance, admission checks the row condition of section 11's table at height
``tip + 1`` against the tip's records (``get_job_record``): a job transaction
for an offer that is not on chain yet is refused, not held (an offer's id only
exists once it is mined). Order, cheapest first: the stateless checks
(``validate_tx``: fields, fee, one signature), the nonce, the offer's slot
(below), the job limits, then the row condition (record, status, window,
sender; for a fraud proof then its three Merkle paths, and only then its
``256 k_p`` multiply-adds). Rules of the pool beyond consensus:

- One *slot* per offer: at most one pending claim, accept, reject, settle,
  refund or fraud per offer id (``offer-busy``); only the same sender and nonce
  with a higher fee replaces the holder (the replacement rule above). Two of
  them could never both be in one block, and the slot keeps a flood of claims
  from many senders down to one entry.
- At most ``max_job_count`` (``MAX_JOB_TXS``) pending job transactions and
  ``max_job_bytes`` (``MAX_JOB_BYTES``) of them (``job-limit``); a fraud proof
  can be half a megabyte.
- Job transactions are never held for a nonce gap (a held fraud proof would
  cost half a megabyte of memory on a promise).

On a tip change a job transaction is re-checked when its sender is settled and
either its record changed or the new ``tip + 1`` left the heights its row
condition held for (a claim's deadline passed, a settle's window opened); one
that fails leaves, with the sender's later transactions. Finding them is a
scan of the pending job transactions (at most ``max_job_count`` integer
comparisons); transfers stay incremental as above.

The event loop stays responsive because settling is sliced: ``on_tip_change``
is a coroutine that settles dirty senders for at most ``slice_seconds``
(``TIP_SLICE_SECONDS``) and then yields to the loop (``await asyncio.sleep(0)``)
before the next slice. While it yields, other callers see a consistent pool:
``add``, ``add_or_hold`` and ``pending_nonce`` settle a dirty sender first
(bounded by the per-sender limit), ``select`` leaves dirty senders out of a
template until they are settled, and two overlapping tip changes share one
dirty set (the later snapshot wins). Until its sender is settled, a mined
transfer can still show in ``entries``/``get``; ``ChainHandle.submit_block``
awaits the whole re-admission before it returns, so a ``generatetoaddress``
or ``submitblock`` answer comes after it.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable, Iterable

from consensus.codec import encode_tx
from consensus.errors import BadNonce, InsufficientBalance, InvalidTx, JobStateFault
from consensus.jobmarket import RecordReader, check_job_tx, compute_offer_id
from consensus.networks import NetworkParams
from consensus.tx import compute_tx_id, validate_tx
from consensus.types import (
    KIND_ACCEPT,
    KIND_CLAIM,
    KIND_OFFER,
    KIND_REFUND,
    KIND_SETTLE,
    Account,
    JobRecord,
    JobTxBody,
    OfferPayload,
    Tx,
    TxBody,
)

from .mempoolqueue import Entry, JobInfo, MempoolError, SenderQueue, TipChange, address_of, rate_key

DEFAULT_MAX_COUNT = 50_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
MAX_PER_SENDER = 1_000
"""Pending transfers one sender may have (the same on every network)."""
MAX_GAP = 64
"""How far ahead of a sender's next nonce a held transfer may be."""
MAX_HELD = 10_000
"""Transfers held for a gap to close, across all senders (oldest dropped first)."""
TIP_SLICE_SECONDS = 0.005
"""Longest stretch ``on_tip_change`` runs before it yields to the event loop."""
MAX_JOB_TXS = 10_000
"""Pending job transactions, all senders together."""
MAX_JOB_BYTES = 16 * 1024 * 1024
"""Encoded bytes of the pending job transactions (about 30 fraud proofs at the largest k)."""
NEVER = 1 << 64
"""A height no chain reaches: the open end of a row condition's window."""


def _no_records(offer_id: bytes) -> JobRecord | None:
    return None


def valid_heights(body: JobTxBody, record: JobRecord | None, params: NetworkParams) -> tuple[int, int]:
    """The heights at which ``body``'s window condition holds for ``record`` (inclusive; section 11's table)."""
    kind = body.kind
    if kind == KIND_OFFER:
        assert isinstance(body.payload, OfferPayload)
        deadline = body.payload.deadline
        return max(0, deadline - params.max_job_lifetime), deadline - 1
    assert record is not None
    if kind == KIND_CLAIM:
        return 0, record.deadline
    if kind == KIND_REFUND:
        return record.deadline + 1, NEVER
    if kind == KIND_ACCEPT:
        return 0, NEVER
    end = record.claim_height + params.job_window
    if kind == KIND_SETTLE:
        return end + 1, NEVER
    return 0, end  # reject, fraud


_Tail = tuple[int, int, Entry]
"""A heap item: (rate key, sequence number, entry); valid while the entry is its sender's last."""


class Mempool:
    """Pending transactions; not thread-safe (the node uses it from its event loop)."""

    def __init__(self, params: NetworkParams, get_account: Callable[[bytes], Account], *,
                 get_job_record: RecordReader | None = None, height: int = 0,
                 max_count: int = DEFAULT_MAX_COUNT, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_per_sender: int = MAX_PER_SENDER, slice_seconds: float = TIP_SLICE_SECONDS,
                 max_job_count: int = MAX_JOB_TXS, max_job_bytes: int = MAX_JOB_BYTES,
                 clock: Callable[[], float] | None = None) -> None:
        self.params = params
        self.get_account = get_account
        """Accounts as of the chain state the pool was last checked against (replaced by tip changes)."""
        self.get_job_record: RecordReader = get_job_record or _no_records
        """Live job records of that same state (replaced with ``get_account``)."""
        self.height = height
        """Height of that state's tip: job transactions are checked at ``height + 1``."""
        self.max_job_count = max_job_count
        self.max_job_bytes = max_job_bytes
        self._slots: dict[bytes, Entry] = {}
        """Offer id -> the pending job transaction (not an offer) that acts on it."""
        self._jobs: dict[bytes, Entry] = {}
        """Txid -> pending job transaction."""
        self.job_bytes = 0
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.max_per_sender = max_per_sender
        self.slice_seconds = slice_seconds
        self._clock = clock or (lambda: 0.0)
        self._by_id: dict[bytes, Entry] = {}
        self._queues: dict[bytes, SenderQueue] = {}
        self._tails: list[_Tail] = []
        self._seq = 0
        self._dirty: dict[bytes, TipChange] = {}
        self._dropped: list[Tx] = []
        self._held: dict[bytes, dict[int, Tx]] = {}
        self._held_count = 0
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, tx_id: bytes) -> bool:
        return tx_id in self._by_id

    def get(self, tx_id: bytes) -> Entry | None:
        return self._by_id.get(tx_id)

    def entries(self) -> list[Entry]:
        return list(self._by_id.values())

    def seen_seconds_ago(self, tx_id: bytes) -> float | None:
        """How long ago a pending transfer was first seen (by the mempool's clock); None if not pending."""
        entry = self._by_id.get(tx_id)
        return None if entry is None else self._clock() - entry.time

    def pending_nonce(self, sender: bytes) -> int:
        """The nonce the sender's next transfer should carry, counting pending ones."""
        if sender in self._dirty:
            self._settle(sender)
        queue = self._queues.get(sender)
        return queue.next_nonce if queue is not None else self.get_account(sender).nonce

    def pending_cost(self, sender: bytes) -> int:
        """Sum of ``Entry.cost`` over the sender's pending transactions (the running total)."""
        queue = self._queues.get(sender)
        return queue.spent if queue is not None else 0

    def pending_count(self, sender: bytes) -> int:
        queue = self._queues.get(sender)
        return len(queue) if queue is not None else 0

    def pending_for_offer(self, offer_id: bytes) -> list[bytes]:
        """Txids of the pending job transactions acting on ``offer_id`` (its slot holder: at most one)."""
        entry = self._slots.get(offer_id)
        return [] if entry is None else [entry.tx_id]

    def job_count(self) -> int:
        """Pending job transactions."""
        return len(self._jobs)

    def settling(self) -> int:
        """Senders a tip change touched that are not revalidated yet."""
        return len(self._dirty)

    # --- admission ---------------------------------------------------------------------------

    def add(self, tx: Tx, *, verified: bool = False) -> Entry:
        """Admit ``tx`` or raise ``MempoolError`` (or the consensus ``InvalidTx``) saying why.

        ``verified``: the stateless checks (signature, chain id, memo) already
        passed, as for held transfers whose gap closed. On a refusal nothing
        changed (a pending transfer it would have replaced stays).
        """
        tx_id = compute_tx_id(tx)
        if tx_id in self._by_id:
            raise MempoolError("duplicate", f"transaction {tx_id.hex()} is already in the mempool")
        if not verified:
            validate_tx(tx, self.params)
        body = tx.body
        sender = address_of(body.pubkey)
        if sender in self._dirty:
            self._settle(sender)
        account = self.get_account(sender)
        queue = self._queues.get(sender)
        nonce = body.nonce
        next_nonce = queue.next_nonce if queue is not None else account.nonce
        if nonce < account.nonce:
            raise BadNonce(f"nonce {nonce} already used: the sender's next nonce is {account.nonce}",
                           account.nonce, nonce)
        if nonce > next_nonce:
            raise BadNonce(f"nonce {nonce} leaves a gap: the sender's next nonce is {next_nonce}", next_nonce, nonce)
        replaced = queue.entries.get(nonce) if queue is not None else None
        if replaced is not None and body.fee <= replaced.fee:
            raise MempoolError("replacement-fee-too-low",
                               f"a transfer with nonce {nonce} is pending with fee {replaced.fee}; "
                               f"a replacement must pay more, found {body.fee}")
        if replaced is None and queue is not None and len(queue) >= self.max_per_sender:
            raise MempoolError("sender-limit",
                               f"the sender has {len(queue)} transfers pending, the most one sender may have "
                               f"({self.max_per_sender}); wait for a block, or replace one (same nonce, higher fee)")
        size = len(encode_tx(tx))
        job = None
        if isinstance(body, TxBody):
            cost = body.amount + body.fee
        else:
            job, debit = self._check_job(body, sender, size, replaced)
            cost = body.fee + debit
        spent = 0 if queue is None else queue.spent - (replaced.cost if replaced is not None else 0)
        if account.balance < spent + cost:
            what = "amount + fee" if job is None else "fee + what the job transaction takes"
            raise InsufficientBalance(
                f"balance {account.balance} does not cover pending transactions ({spent}) plus {what} ({cost})")
        entry = Entry(tx, tx_id, sender, size, self._clock(), cost, job)
        victims = self._plan_room(entry, replaced)
        # Everything is checked: from here on nothing raises.
        for victim in victims:
            self._evict_tail(victim)
        if queue is None:
            queue = self._queues[sender] = SenderQueue(nonce)
        if replaced is not None:
            self._replace(queue, replaced, entry)  # later transfers stay: the replacement takes the same place
        else:
            self._append(queue, entry)
        return entry

    def _check_job(self, body: JobTxBody, sender: bytes, size: int, replaced: Entry | None) -> tuple[JobInfo, int]:
        """The slot, the job limits and the row condition at ``height + 1``; return the job's info and debit."""
        slot = body.kind != KIND_OFFER
        offer_id = body.id if slot else compute_offer_id(sender, body.nonce)
        if slot:
            holder = self._slots.get(offer_id)
            if holder is not None and holder is not replaced:
                raise MempoolError("offer-busy",
                                   f"transaction {holder.tx_id.hex()} for offer {offer_id.hex()} is pending; one "
                                   "claim, accept, reject, settle, refund or fraud per offer waits at a time "
                                   "(its sender may replace it with the same nonce and a higher fee)")
        freed = replaced is not None and replaced.job is not None
        count = len(self._jobs) + 1 - (1 if freed else 0)
        job_bytes = self.job_bytes + size - (replaced.size if freed and replaced is not None else 0)
        if count > self.max_job_count or job_bytes > self.max_job_bytes:
            raise MempoolError("job-limit",
                               f"{len(self._jobs)} job transactions of {self.job_bytes} bytes are pending, the most "
                               f"this node keeps is {self.max_job_count} and {self.max_job_bytes} bytes; "
                               "retry after the next block")
        height = self.height + 1
        check = check_job_tx(body, sender, height, self.params, self.get_job_record)
        lo, hi = valid_heights(body, check.record, self.params)
        return JobInfo(offer_id, slot, check.record, lo, hi), check.debit

    def _job_still_valid(self, entry: Entry) -> bool:
        """Re-check a pending job transaction at the current ``height + 1``; keep its info up to date."""
        info = entry.job
        assert info is not None
        height = self.height + 1
        record = self.get_job_record(info.offer_id) if info.slot else None
        if record == info.record and info.lo <= height <= info.hi:
            return True
        body = entry.tx.body
        assert isinstance(body, JobTxBody)
        try:
            check = check_job_tx(body, entry.sender, height, self.params, self.get_job_record)
        except JobStateFault:
            return False
        if body.fee + check.debit != entry.cost:
            return False  # cannot happen for one offer id (its bond is fixed); refuse rather than miscount
        info.record = check.record
        info.lo, info.hi = valid_heights(body, check.record, self.params)
        return True

    def _needs_recheck(self, entry: Entry, touched: set[bytes]) -> bool:
        info = entry.job
        assert info is not None
        return info.offer_id in touched or not info.lo <= self.height + 1 <= info.hi

    def add_or_hold(self, tx: Tx) -> list[Entry]:
        """Like ``add``, but a transfer a little ahead of its sender's next nonce is held, not refused.

        Returns the entries admitted: this transfer and any held ones its
        arrival made contiguous (empty when it was held). A held transfer passed
        the stateless checks; it is admitted (or dropped) once the gap closes.
        Job transactions are never held (``BadNonce`` as from ``add``).
        """
        try:
            admitted = [self.add(tx)]
        except BadNonce:
            if not tx.is_transfer:
                raise
            sender = address_of(tx.body.pubkey)
            gap = tx.body.nonce - self.pending_nonce(sender)
            if not 0 < gap <= MAX_GAP:
                raise
            validate_tx(tx, self.params)
            held = self._held.setdefault(sender, {})
            if tx.body.nonce not in held:
                held[tx.body.nonce] = tx
                self._held_count += 1
                self._trim_held()
            return []
        return admitted + self._promote(admitted[0].sender)

    def _promote(self, sender: bytes) -> list[Entry]:
        out = []
        held = self._held.get(sender)
        while held:
            tx = held.pop(self.pending_nonce(sender), None)
            if tx is None:
                break
            self._held_count -= 1
            try:
                out.append(self.add(tx, verified=True))
            except (MempoolError, InvalidTx):
                break
        if held is not None and not held:
            del self._held[sender]
        return out

    def _trim_held(self) -> None:
        while self._held_count > MAX_HELD:
            sender = next(iter(self._held))
            held = self._held[sender]
            held.pop(max(held))
            self._held_count -= 1
            if not held:
                del self._held[sender]

    def held_count(self) -> int:
        return self._held_count

    # --- room: the heap of tails -------------------------------------------------------------

    def _plan_room(self, entry: Entry, replaced: Entry | None) -> list[Entry]:
        """The tails to evict so that ``entry`` fits (in place of ``replaced``); raise if it cannot.

        Changes nothing but the order of the heap: popped items are pushed back.
        """
        count = len(self._by_id) + (0 if replaced is not None else 1)
        size = self.bytes + entry.size - (replaced.size if replaced is not None else 0)
        if count <= self.max_count and size <= self.max_bytes:
            return []
        if entry.size > self.max_bytes:
            raise MempoolError("mempool-full", f"the transfer ({entry.size} bytes) is larger than the mempool "
                                               f"({self.max_bytes} bytes)")
        key = rate_key(entry)
        victims: list[Entry] = []
        planned: dict[bytes, int] = {}
        keep: list[_Tail] = []  # popped items that stay valid if the plan is given up
        try:
            while count > self.max_count or size > self.max_bytes:
                item = self._pop_tail(planned, exclude=entry.sender, keep=keep)
                if item is None or item[0] >= key:
                    if item is not None:
                        keep.append(item)
                    full = "count" if count > self.max_count else "bytes"
                    lowest = "none" if item is None else f"{item[2].fee}/{item[2].size} per byte"
                    raise MempoolError(
                        "mempool-full",
                        f"the mempool is full ({full}: {len(self._by_id)} of {self.max_count} transfers, "
                        f"{self.bytes} of {self.max_bytes} bytes) and this transfer's fee rate "
                        f"({entry.fee}/{entry.size} per byte) does not beat the lowest evictable one ({lowest})")
                victim = item[2]
                keep.append(item)
                victims.append(victim)
                count -= 1
                size -= victim.size
                planned[victim.sender] = done = planned.get(victim.sender, 0) + 1
                queue = self._queues[victim.sender]
                if len(queue) > done:  # the sender's next-to-last becomes a candidate (no rebuild meanwhile)
                    after = queue.entries[queue.first + len(queue) - 1 - done]
                    self._seq += 1
                    heapq.heappush(self._tails, (rate_key(after), self._seq, after))
        except MempoolError:
            for item in keep:
                heapq.heappush(self._tails, item)
            raise
        evicted = {id(v) for v in victims}
        for item in keep:
            if id(item[2]) not in evicted:
                heapq.heappush(self._tails, item)
        return victims

    def _pop_tail(self, planned: dict[bytes, int], *, exclude: bytes | None = None,
                  keep: list[_Tail] | None = None) -> _Tail | None:
        """Pop the lowest-rate tail, as if ``planned[s]`` more of each sender's last were gone."""
        tails = self._tails
        while tails:
            item = heapq.heappop(tails)
            e = item[2]
            queue = self._queues.get(e.sender)
            if queue is None or queue.entries.get(e.nonce) is not e:
                continue  # stale
            if e.nonce != queue.first + len(queue) - 1 - planned.get(e.sender, 0):
                continue  # not the (planned) last any more: a newer item stands for the sender
            if e.sender == exclude:
                if keep is not None:
                    keep.append(item)
                continue
            return item
        return None

    def _push_tail(self, entry: Entry) -> None:
        self._seq += 1
        heapq.heappush(self._tails, (rate_key(entry), self._seq, entry))
        if len(self._tails) > 2 * len(self._queues) + 1024:
            self._rebuild_tails()

    def _rebuild_tails(self) -> None:
        items = []
        for queue in self._queues.values():
            self._seq += 1
            tail = queue.tail()
            items.append((rate_key(tail), self._seq, tail))
        heapq.heapify(items)
        self._tails = items

    # --- bookkeeping -------------------------------------------------------------------------

    def _index(self, entry: Entry) -> None:
        self._by_id[entry.tx_id] = entry
        self.bytes += entry.size
        if entry.job is not None:
            self._jobs[entry.tx_id] = entry
            self.job_bytes += entry.size
            if entry.job.slot:
                self._slots[entry.job.offer_id] = entry

    def _unindex(self, entry: Entry) -> None:
        del self._by_id[entry.tx_id]
        self.bytes -= entry.size
        if entry.job is not None:
            del self._jobs[entry.tx_id]
            self.job_bytes -= entry.size
            if entry.job.slot and self._slots.get(entry.job.offer_id) is entry:
                del self._slots[entry.job.offer_id]

    def _append(self, queue: SenderQueue, entry: Entry) -> None:
        queue.entries[entry.nonce] = entry
        queue.spent += entry.cost
        self._index(entry)
        self._push_tail(entry)

    def _replace(self, queue: SenderQueue, old: Entry, new: Entry) -> None:
        queue.entries[new.nonce] = new
        queue.spent += new.cost - old.cost
        self._unindex(old)
        self._index(new)
        if new.nonce == queue.next_nonce - 1:
            self._push_tail(new)

    def _evict_tail(self, entry: Entry) -> None:
        queue = self._queues[entry.sender]
        del queue.entries[entry.nonce]
        queue.spent -= entry.cost
        self._unindex(entry)
        if queue.entries:
            self._push_tail(queue.tail())
        else:
            del self._queues[entry.sender]

    def _shrink(self) -> None:
        """Evict the lowest-rate tails until the totals fit (after transfers were taken back)."""
        while len(self._by_id) > self.max_count or self.bytes > self.max_bytes:
            item = self._pop_tail({})
            if item is None:
                break
            self._evict_tail(item[2])
            self._dropped.append(item[2].tx)

    # --- block building ----------------------------------------------------------------------

    def select(self, max_count: int, max_bytes: int) -> list[Tx]:
        """Transfers for a block: highest fee rate first, each sender's in nonce order.

        Senders a tip change touched and that are not settled yet are left out.
        """
        heads: list[tuple[int, int, Entry]] = []
        order = 0
        for sender, queue in self._queues.items():
            if sender in self._dirty:
                continue
            first = queue.entries[queue.first]
            heads.append((-rate_key(first), order, first))
            order += 1
        heapq.heapify(heads)
        chosen: list[Tx] = []
        used = 0
        while heads and len(chosen) < max_count:
            _, _, entry = heapq.heappop(heads)
            if used + entry.size > max_bytes:
                continue  # this sender's later transfers cannot go before this one
            chosen.append(entry.tx)
            used += entry.size
            nxt = self._queues[entry.sender].entries.get(entry.nonce + 1)
            if nxt is not None:
                heapq.heappush(heads, (-rate_key(nxt), order, nxt))
                order += 1
        return chosen

    # --- chain updates -----------------------------------------------------------------------

    async def on_tip_change(self, mined: Iterable[Tx], returned: Iterable[Tx], *, touched: Iterable[bytes] = (),
                            get_account: Callable[[bytes], Account] | None = None,
                            get_job_record: RecordReader | None = None,
                            height: int | None = None) -> list[Tx]:
        """Drop transfers that got mined, take back those of disconnected blocks, revalidate touched senders.

        ``mined``: transfers of the newly connected blocks; ``returned``: those of
        disconnected blocks; ``touched``: other addresses whose balance may have
        dropped (the coinbase recipients of disconnected blocks);
        ``get_account``, ``get_job_record``, ``height``: the accounts, records
        and height at the new tip (given together, or none of them for an older
        snapshot). Yields to the event loop every ``slice_seconds``. Returns the
        transactions dropped (no longer valid, or evicted for room), mined ones
        not included.
        """
        self.begin_tip_change(mined, returned, touched=touched, get_account=get_account,
                              get_job_record=get_job_record, height=height)
        while self._dirty:
            self.settle_some(self.slice_seconds)
            if self._dirty:
                await asyncio.sleep(0)
        dropped, self._dropped = self._dropped, []
        return dropped

    def begin_tip_change(self, mined: Iterable[Tx], returned: Iterable[Tx], *, touched: Iterable[bytes] = (),
                         get_account: Callable[[bytes], Account] | None = None,
                         get_job_record: RecordReader | None = None,
                         height: int | None = None) -> None:
        """Switch to the new chain state and mark the senders the blocks touched; settle them later."""
        if get_account is not None:
            self.get_account = get_account
        if get_job_record is not None:
            self.get_job_record = get_job_record
        if height is not None:
            self.height = height
        offers: set[bytes] = set()  # offer ids whose record the blocks may have changed
        dirty = self._dirty
        queues = self._queues
        held = self._held

        def mark(address: bytes) -> TipChange | None:
            change = dirty.get(address)
            if change is None and (address in queues or address in held):
                change = dirty[address] = TipChange()
            return change

        def job_touched(body: JobTxBody, sender: bytes, disconnected: bool) -> None:
            offer_id = compute_offer_id(sender, body.nonce) if body.kind == KIND_OFFER else body.id
            offers.add(offer_id)
            if disconnected:  # its credits (to the client, the claimant) are taken back
                record = self.get_job_record(offer_id)
                if record is not None:
                    mark(record.client)
                    mark(record.claimant)

        for tx in mined:
            body = tx.body
            sender = address_of(body.pubkey)
            change = mark(sender)
            if change is not None:
                change.mined[body.nonce] = tx
            if isinstance(body, TxBody):
                mark(body.to)
            else:
                job_touched(body, sender, False)
        for tx in returned:
            body = tx.body
            sender = address_of(body.pubkey)
            change = dirty.get(sender)
            if change is None:
                change = dirty[sender] = TipChange()
            change.returned.append(tx)
            if isinstance(body, TxBody):
                mark(body.to)
            else:
                job_touched(body, sender, True)
        for address in touched:
            mark(address)
        for entry in self._jobs.values():
            if entry.sender not in dirty and self._needs_recheck(entry, offers):
                mark(entry.sender)

    def settle_some(self, seconds: float | None = None) -> int:
        """Settle dirty senders, for about ``seconds`` at most (all of them with None); return how many."""
        start = time.perf_counter()
        done = 0
        while self._dirty:
            self._settle(next(iter(self._dirty)))
            done += 1
            if seconds is not None and time.perf_counter() - start >= seconds:
                break
        return done

    def _settle(self, sender: bytes) -> None:
        """Revalidate one sender against the current chain state (see the module docstring)."""
        change = self._dirty.pop(sender)
        account = self.get_account(sender)
        base = account.nonce
        queue = self._queues.get(sender)
        if queue is None and change.returned:
            queue = self._queues[sender] = SenderQueue(base)
        if queue is not None:
            self._drop_below(queue, base, change)
            self._take_back(queue, sender, base, change)
            self._keep_funded(queue, account)
            if queue.entries:
                self._push_tail(queue.tail())
            else:
                del self._queues[sender]
        self._settle_held(sender, base)
        if len(self._by_id) > self.max_count or self.bytes > self.max_bytes:
            self._shrink()

    def _drop_below(self, queue: SenderQueue, base: int, change: TipChange) -> None:
        """Transfers below the account's nonce leave: mined, or dropped when another one was mined."""
        entries = queue.entries
        for n in range(queue.first, min(base, queue.next_nonce)):
            e = entries.pop(n)
            self._unindex(e)
            if change.mined.get(n) != e.tx:
                self._dropped.append(e.tx)

    def _take_back(self, queue: SenderQueue, sender: bytes, base: int, change: TipChange) -> None:
        """Merge the transfers of disconnected blocks in by nonce (a pending one with a higher fee wins)."""
        entries = queue.entries
        end = base + self.max_per_sender
        for tx in sorted(change.returned, key=lambda t: t.body.nonce):
            n = tx.body.nonce
            if n < base or n >= end:
                if change.mined.get(n) != tx:
                    self._dropped.append(tx)
                continue
            current = entries.get(n)
            if current is not None and (current.tx == tx or current.fee >= tx.body.fee):
                if current.tx != tx:
                    self._dropped.append(tx)
                continue
            entry = self._returned_entry(tx, sender, current)
            if entry is None:
                self._dropped.append(tx)
                continue
            if current is not None:
                self._unindex(current)
                self._dropped.append(current.tx)
            entries[n] = entry
            self._index(entry)

    def _returned_entry(self, tx: Tx, sender: bytes, current: Entry | None) -> Entry | None:
        """The entry of a transaction taken back from a disconnected block, or None when it cannot stay.

        Its signature was checked with its block; a job transaction's row
        condition is checked again at the new height (``_keep_funded`` walks
        the queue next) and it needs its offer's slot.
        """
        body = tx.body
        size = len(encode_tx(tx))
        if isinstance(body, TxBody):
            return Entry(tx, compute_tx_id(tx), sender, size, self._clock(), body.amount + body.fee)
        try:
            job, debit = self._check_job(body, sender, size, current)
        except (MempoolError, InvalidTx):
            return None
        return Entry(tx, compute_tx_id(tx), sender, size, self._clock(), body.fee + debit, job)

    def _keep_funded(self, queue: SenderQueue, account: Account) -> None:
        """Walk in nonce order from the account's nonce; keep what is contiguous, funded and within the limit."""
        entries = queue.entries
        base = account.nonce
        total = 0
        n = base
        while n < base + self.max_per_sender:
            at = entries.get(n)
            if at is None or total + at.cost > account.balance:
                break
            if at.job is not None and not self._job_still_valid(at):
                break
            total += at.cost
            n += 1
        if n - base < len(entries):
            for k in [k for k in entries if not base <= k < n]:
                e = entries.pop(k)
                self._unindex(e)
                self._dropped.append(e.tx)
        queue.first = base
        queue.spent = total

    def _settle_held(self, sender: bytes, base: int) -> None:
        """Held transfers the new nonce passed are dropped; those whose gap closed are promoted."""
        held = self._held.get(sender)
        if held:
            for k in [k for k in held if k < base]:
                del held[k]
                self._held_count -= 1
            if held:
                self._promote(sender)
            else:
                del self._held[sender]
