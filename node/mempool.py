"""The mempool: transfers waiting for a block.

- Per sender, transfers are kept by nonce and must be contiguous from the
  sender's next nonce on chain: a block can only take them in order.
- Admission checks the signature, chain id and memo (``consensus.tx.validate_tx``),
  then the nonce and the balance against the chain state plus the sender's
  earlier pending transfers.
- A transfer with the nonce of a pending one replaces it only with a strictly
  higher fee (and the balance still covering the whole queue).
- Limits on count and bytes; when full, the transfer with the lowest fee rate
  among the senders' last transfers (evicting it leaves no gap) makes room, or
  the newcomer is refused if it pays less than that.
- Gossip can deliver a sender's transfers out of order. A transfer whose nonce
  leaves a gap (up to ``MAX_GAP`` ahead) is held aside, not dropped, once its
  signature checked, and admitted as soon as the gap closes (``add_or_hold``).
- ``select`` picks transfers for a block by fee rate, respecting each sender's
  nonce order. ``on_tip_change`` drops what got mined, takes back transfers of
  disconnected blocks, and revalidates everything against the new state.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from consensus.codec import encode_tx
from consensus.errors import BadNonce, InsufficientBalance, InvalidTx
from consensus.tx import compute_tx_id, get_sender, validate_tx
from consensus.types import Account, Tx

DEFAULT_MAX_COUNT = 50_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
MAX_GAP = 64
"""How far ahead of a sender's next nonce a held transfer may be."""
MAX_HELD = 10_000
"""Transfers held for a gap to close, across all senders (oldest dropped first)."""


class MempoolError(Exception):
    """A transfer was refused; ``reason`` is a short stable identifier."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Entry:
    tx: Tx
    tx_id: bytes
    sender: bytes
    size: int
    time: float
    """When the node first saw it (unix seconds), for RPC display."""

    @property
    def fee(self) -> int:
        return self.tx.body.fee

    @property
    def nonce(self) -> int:
        return self.tx.body.nonce


def _rate_less(a: Entry, b: Entry) -> bool:
    """Fee rate of ``a`` below that of ``b`` (exact: cross-multiplied)."""
    return a.fee * b.size < b.fee * a.size


class Mempool:
    """Pending transfers; not thread-safe (the node uses it from its event loop)."""

    def __init__(self, chain_id: int, max_memo: int, get_account: Callable[[bytes], Account], *,
                 max_count: int = DEFAULT_MAX_COUNT, max_bytes: int = DEFAULT_MAX_BYTES,
                 clock: Callable[[], float] | None = None) -> None:
        self.chain_id = chain_id
        self.max_memo = max_memo
        self.get_account = get_account
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._clock = clock or (lambda: 0.0)
        self._by_id: dict[bytes, Entry] = {}
        self._by_sender: dict[bytes, dict[int, Entry]] = {}
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

    def pending_nonce(self, sender: bytes) -> int:
        """The nonce the sender's next transfer should carry, counting pending ones."""
        queue = self._by_sender.get(sender)
        base = self.get_account(sender).nonce
        return base + len(queue) if queue else base

    # --- admission ---------------------------------------------------------------------------

    def add(self, tx: Tx, *, verified: bool = False) -> Entry:
        """Admit ``tx`` or raise ``MempoolError`` (or the consensus ``InvalidTx``) saying why.

        ``verified``: the stateless checks (signature, chain id, memo) already
        passed, as for transfers re-admitted after a tip change.
        """
        tx_id = compute_tx_id(tx)
        if tx_id in self._by_id:
            raise MempoolError("duplicate", f"transaction {tx_id.hex()} is already in the mempool")
        if not verified:
            validate_tx(tx, self.chain_id, self.max_memo)
        sender = get_sender(tx)
        account = self.get_account(sender)
        queue = self._by_sender.get(sender, {})
        nonce = tx.body.nonce
        next_nonce = account.nonce + len(queue)
        if nonce < account.nonce:
            raise BadNonce(f"nonce {nonce} already used: the sender's next nonce is {account.nonce}",
                           account.nonce, nonce)
        if nonce > next_nonce:
            raise BadNonce(f"nonce {nonce} leaves a gap: the sender's next nonce is {next_nonce}", next_nonce, nonce)
        replaced = queue.get(nonce)
        if replaced is not None and tx.body.fee <= replaced.fee:
            raise MempoolError("replacement-fee-too-low",
                               f"a transfer with nonce {nonce} is pending with fee {replaced.fee}; "
                               f"a replacement must pay more, found {tx.body.fee}")
        spent = sum(e.tx.body.amount + e.fee for n, e in queue.items() if n != nonce)
        if account.balance < spent + tx.body.amount + tx.body.fee:
            raise InsufficientBalance(
                f"balance {account.balance} does not cover pending transfers ({spent}) plus "
                f"amount + fee ({tx.body.amount + tx.body.fee})")
        size = len(encode_tx(tx))
        entry = Entry(tx, tx_id, sender, size, self._clock())
        if replaced is not None:
            self._remove(replaced)
            # Later transfers of this sender stay: the replacement takes the same place.
        self._make_room(entry)
        self._insert(entry)
        return entry

    def add_or_hold(self, tx: Tx) -> list[Entry]:
        """Like ``add``, but a transfer a little ahead of its sender's next nonce is held, not refused.

        Returns the entries admitted: this transfer and any held ones its
        arrival made contiguous (empty when it was held). A held transfer passed
        the stateless checks; it is admitted (or dropped) once the gap closes.
        """
        try:
            admitted = [self.add(tx)]
        except BadNonce:
            sender = get_sender(tx)
            gap = tx.body.nonce - self.pending_nonce(sender)
            if not 0 < gap <= MAX_GAP:
                raise
            validate_tx(tx, self.chain_id, self.max_memo)
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

    def _make_room(self, entry: Entry) -> None:
        while len(self._by_id) + 1 > self.max_count or self.bytes + entry.size > self.max_bytes:
            victim = self._cheapest_tail(exclude=entry.sender)
            if victim is None or not _rate_less(victim, entry):
                raise MempoolError("mempool-full", "the mempool is full and this transfer's fee rate is too low "
                                   "to replace any pending one")
            self._remove(victim)

    def _cheapest_tail(self, exclude: bytes) -> Entry | None:
        worst = None
        for sender, queue in self._by_sender.items():
            if sender == exclude or not queue:
                continue
            tail = queue[max(queue)]
            if worst is None or _rate_less(tail, worst):
                worst = tail
        return worst

    def _insert(self, entry: Entry) -> None:
        self._by_id[entry.tx_id] = entry
        self._by_sender.setdefault(entry.sender, {})[entry.nonce] = entry
        self.bytes += entry.size

    def _remove(self, entry: Entry) -> None:
        del self._by_id[entry.tx_id]
        queue = self._by_sender[entry.sender]
        del queue[entry.nonce]
        if not queue:
            del self._by_sender[entry.sender]
        self.bytes -= entry.size

    # --- block building ----------------------------------------------------------------------

    def select(self, max_count: int, max_bytes: int) -> list[Tx]:
        """Transfers for a block: highest fee rate first, each sender's in nonce order."""
        heads: list[tuple[float, int, int, bytes]] = []
        order = 0
        for sender, queue in self._by_sender.items():
            first = queue[min(queue)]
            heapq.heappush(heads, (-first.fee / first.size, order, first.nonce, sender))
            order += 1
        chosen: list[Tx] = []
        used = 0
        while heads and len(chosen) < max_count:
            _, _, nonce, sender = heapq.heappop(heads)
            entry = self._by_sender[sender][nonce]
            if used + entry.size > max_bytes:
                continue  # this sender's later transfers cannot go before this one
            chosen.append(entry.tx)
            used += entry.size
            nxt = self._by_sender[sender].get(nonce + 1)
            if nxt is not None:
                heapq.heappush(heads, (-nxt.fee / nxt.size, order, nxt.nonce, sender))
                order += 1
        return chosen

    # --- chain updates -----------------------------------------------------------------------

    def on_tip_change(self, mined: Iterable[Tx], returned: Iterable[Tx]) -> list[Tx]:
        """Drop transfers that got mined, take back those of disconnected blocks, revalidate all.

        ``mined``: transfers of the newly connected blocks; ``returned``: those of
        disconnected blocks. Returns the transfers dropped as no longer valid.
        """
        mined_ids = {compute_tx_id(t) for t in mined}
        keep = [e.tx for e in self._by_id.values() if e.tx_id not in mined_ids]
        times = {e.tx_id: e.time for e in self._by_id.values()}
        by_id = {compute_tx_id(t): t for t in [*returned, *keep]}
        candidates = [t for i, t in by_id.items() if i not in mined_ids]
        self._by_id.clear()
        self._by_sender.clear()
        self.bytes = 0
        dropped = []
        # Re-admit in nonce order per sender so queues are rebuilt contiguously.
        for tx in sorted(candidates, key=lambda t: (get_sender(t), t.body.nonce)):
            try:
                entry = self.add(tx, verified=True)
            except (MempoolError, InvalidTx):
                dropped.append(tx)
                continue
            old = times.get(entry.tx_id)
            if old is not None:
                self._by_id[entry.tx_id] = e = Entry(entry.tx, entry.tx_id, entry.sender, entry.size, old)
                self._by_sender[entry.sender][entry.nonce] = e
        for sender in list(self._held):  # a block may have closed a gap, or made held ones stale
            base = self.get_account(sender).nonce
            held = self._held[sender]
            for nonce in [n for n in held if n < base]:
                del held[nonce]
                self._held_count -= 1
            self._promote(sender)
            if sender in self._held and not self._held[sender]:
                del self._held[sender]
        return dropped
