"""``ChainSnapshot``: the main chain's tip and the state at that tip, frozen at one moment.

Taken on the chain thread (``node.chainhandle``) after every write; readers on
any thread use it without touching the chain service.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.types import Account, JobRecord

from . import schema
from .chain import ChainService
from .schema import IndexEntry
from .store import KeyValueReader


@dataclass(frozen=True)
class ChainSnapshot:
    """The main chain's tip and the state at that tip, frozen at one moment on the chain thread."""

    tip: IndexEntry
    """Index entry of the main-chain tip."""
    recent_times: tuple[int, ...]
    """Timestamps of the tip and its ancestors, newest first (up to the median-time span)."""
    orphans: int
    """Blocks waiting for their parent."""
    genesis_id: bytes
    state: KeyValueReader
    """The store as of this tip (accounts, blocks); readable from any thread."""

    @property
    def tip_id(self) -> bytes:
        return self.tip.block_id

    @property
    def height(self) -> int:
        return self.tip.height

    @property
    def median_time(self) -> int:
        times = sorted(self.recent_times)
        return times[len(times) // 2]

    def get_account(self, address: bytes) -> Account:
        """The account of ``address`` at this tip (zero balance and nonce if untouched)."""
        raw = self.state.get(schema.account_key(address))
        return Account() if raw is None else schema.decode_account(raw)

    def get_job_record(self, offer_id: bytes) -> JobRecord | None:
        """The live job record of ``offer_id`` at this tip (``None``: never offered here, or final)."""
        raw = self.state.get(schema.offer_key(offer_id))
        return None if raw is None else schema.decode_record(raw)


def take_snapshot(chain: ChainService) -> ChainSnapshot:
    """A ``ChainSnapshot`` of ``chain`` now; call it on the chain thread."""
    tip = chain.tip
    return ChainSnapshot(tip, chain.get_parent_info(tip.block_id).recent_times, chain.orphan_count(),
                         chain.genesis_id, chain.snapshot_state())
