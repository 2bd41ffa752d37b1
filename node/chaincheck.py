"""``verify_store``: check a chain database against a replay of its main chain, without changing it.

Checks: the height index is contiguous from the preset's genesis block, linked
by parent ids, and ends at the tip record; every main-chain block above genesis
has an undo record and no other block has one; the accounts on disk equal the
accounts a replay of the main-chain blocks produces, and the transaction index
maps exactly the main chain's transactions to their blocks. Certificates and
signatures are not re-checked (they were when the blocks arrived); the replay
runs the state transition.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.errors import ConsensusError
from consensus.genesis import make_genesis_block
from consensus.networks import NetworkParams
from consensus.state import apply_block
from consensus.tx import compute_tx_id
from consensus.types import Account

from . import schema
from .errors import StorageError
from .records import DictView, load_block
from .store import KeyValueStore


@dataclass(frozen=True)
class ChainReport:
    """Outcome of ``verify_store`` (and ``ChainService.verify_chain``)."""

    ok: bool
    tip: bytes
    height: int
    blocks_replayed: int
    accounts_checked: int
    problems: tuple[str, ...]


def verify_store(store: KeyValueStore, params: NetworkParams) -> ChainReport:
    """Check a chain database without changing it: replay the main chain from genesis and compare."""
    problems: list[str] = []
    main, tip = _check_height_index(store, make_genesis_block(params).header.block_id, problems)
    replayed, tx_index, count = _replay(store, main, problems)
    stored_tx_index = {key[1:]: value for key, value in store.iterate(schema.TX)}
    if stored_tx_index != tx_index:
        problems.append(f"transaction index holds {len(stored_tx_index)} entries, the main chain "
                        f"{len(tx_index)} (or they point at different blocks)")
    stored = {key[1:]: schema.decode_account(value) for key, value in store.iterate(schema.ACCOUNT)}
    if stored != replayed:
        differing = sorted(set(stored) ^ set(replayed) | {a for a in stored if stored[a] != replayed.get(a)})
        problems.append(
            f"{len(differing)} accounts differ from the replay, e.g. "
            + ", ".join(f"{a.hex()}: stored {stored.get(a)} replayed {replayed.get(a)}" for a in differing[:3])
        )
    return ChainReport(not problems, tip, len(main) - 1, count, len(stored), tuple(problems))


def _check_height_index(store: KeyValueStore, genesis_id: bytes, problems: list[str]) -> tuple[list[bytes], bytes]:
    """The main chain by the height index, and the tip record; what is wrong goes to ``problems``."""
    main: list[bytes] = []
    for key, value in store.iterate(schema.MAIN):
        height = schema.decode_main_key(key)
        if height != len(main):
            problems.append(f"height index jumps from {len(main) - 1} to {height}")
            break
        main.append(value)
    tip = store.get(schema.TIP_KEY) or b""
    if not main or main[0] != genesis_id:
        problems.append("height index does not start at the genesis block")
    if main and tip != main[-1]:
        problems.append(f"tip record {tip.hex()} is not the last indexed block {main[-1].hex()}")
    for height, block_id in enumerate(main):
        raw = store.get(schema.index_key(block_id))
        if raw is None:
            problems.append(f"main-chain block {block_id.hex()} has no index record")
            continue
        entry = schema.decode_index(block_id, raw)
        if entry.height != height:
            problems.append(f"block {block_id.hex()} indexed at height {height} but records {entry.height}")
        if height > 0 and entry.parent != main[height - 1]:
            problems.append(f"block at height {height} does not link to the block below it")
        if height > 0 and store.get(schema.undo_key(block_id)) is None:
            problems.append(f"main-chain block at height {height} has no undo record")
    on_main = set(main)
    for key, _ in store.iterate(schema.UNDO):
        if key[1:] not in on_main:
            problems.append(f"undo record for {key[1:].hex()}, which is not on the main chain")
    return main, tip


def _replay(store: KeyValueStore, main: list[bytes],
            problems: list[str]) -> tuple[dict[bytes, Account], dict[bytes, bytes], int]:
    """Accounts and transaction index from applying the main chain from genesis; blocks replayed."""
    replayed: dict[bytes, Account] = {}
    view = DictView(replayed)
    tx_index: dict[bytes, bytes] = {}
    count = 0
    for block_id in main:
        try:
            block = load_block(store, block_id)
            change = apply_block(view, block)
        except (ConsensusError, StorageError) as e:
            problems.append(f"replay failed at block {block_id.hex()}: {e}")
            break
        replayed.update(change.accounts)
        tx_index.update((compute_tx_id(tx), block_id) for tx in block.transactions)
        count += 1
    return replayed, tx_index, count
