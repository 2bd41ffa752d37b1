"""``verify_store``: check a chain database against a replay of its main chain, without changing it.

Checks: the height index is contiguous from the preset's genesis block, linked
by parent ids, and ends at the tip record; every main-chain block above genesis
has an undo record and no other block has one; the accounts on disk equal the
accounts a replay of the main-chain blocks produces, and the transaction index
maps exactly the main chain's transactions to their blocks, and the address
index (``node.addrindex``) holds exactly the entries the main chain's blocks
above genesis give, and nothing else; the live job records on disk equal the
replay's; and value is conserved (docs/protocol.md section 11): the balances
plus the escrow of the live records equal the genesis allocations plus every
coinbase amount minus the fees paid minus what job transactions burned.
Certificates and signatures are not re-checked (they were when the blocks
arrived); the replay runs the state transition.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consensus.errors import ConsensusError
from consensus.genesis import make_genesis_block
from consensus.networks import NetworkParams
from consensus.state import apply_block
from consensus.tx import compute_tx_id
from consensus.types import Account, Coinbase, JobRecord

from . import addrindex, schema
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
    records_checked: int = 0
    """Live job records compared with the replay."""
    supply: dict[str, int] = field(default_factory=dict)
    """The conservation sums: balances, escrow, allocations, coinbase, fees, burned."""


@dataclass
class _Totals:
    """What the replay sums for the conservation check, and the job records it ends with."""

    records: dict[bytes, JobRecord] = field(default_factory=dict)
    allocations: int = 0
    coinbase: int = 0
    fees: int = 0
    burned: int = 0


def verify_store(store: KeyValueStore, params: NetworkParams) -> ChainReport:
    """Check a chain database without changing it: replay the main chain from genesis and compare."""
    problems: list[str] = []
    main, tip = _check_height_index(store, make_genesis_block(params).header.block_id, problems)
    totals = _Totals()
    replayed, tx_index, addr_index, count = _replay(store, main, problems, params, totals)
    stored_tx_index = {key[1:]: value for key, value in store.iterate(schema.TX)}
    if stored_tx_index != tx_index:
        problems.append(f"transaction index holds {len(stored_tx_index)} entries, the main chain "
                        f"{len(tx_index)} (or they point at different blocks)")
    stored_addr_index = {k: v for prefix in (schema.ADDR_COUNT, schema.ADDR_TX) for k, v in store.iterate(prefix)}
    if stored_addr_index != addr_index:
        differing = sorted(set(stored_addr_index) ^ set(addr_index)
                           | {k for k in addr_index if stored_addr_index.get(k) != addr_index[k]})
        problems.append(f"address index holds {len(stored_addr_index)} records, the main chain gives "
                        f"{len(addr_index)}; {len(differing)} differ, e.g. "
                        + ", ".join(k.hex() for k in differing[:3]))
    stored = {key[1:]: schema.decode_account(value) for key, value in store.iterate(schema.ACCOUNT)}
    if stored != replayed:
        differing = sorted(set(stored) ^ set(replayed) | {a for a in stored if stored[a] != replayed.get(a)})
        problems.append(
            f"{len(differing)} accounts differ from the replay, e.g. "
            + ", ".join(f"{a.hex()}: stored {stored.get(a)} replayed {replayed.get(a)}" for a in differing[:3])
        )
    stored_records = {key[1:]: schema.decode_record(value) for key, value in store.iterate(schema.OFFER)}
    if stored_records != totals.records:
        differing = sorted(set(stored_records) ^ set(totals.records)
                           | {o for o in stored_records if stored_records[o] != totals.records.get(o)})
        problems.append(f"{len(differing)} job records differ from the replay, e.g. "
                        + ", ".join(o.hex() for o in differing[:3]))
    supply = {
        "balances": sum(a.balance for a in stored.values()),
        "escrow": sum(r.escrow for r in stored_records.values()),
        "allocations": totals.allocations, "coinbase": totals.coinbase, "fees": totals.fees, "burned": totals.burned,
    }
    held = supply["balances"] + supply["escrow"]
    issued = totals.allocations + totals.coinbase - totals.fees - totals.burned
    if held != issued:
        problems.append(f"value not conserved: balances + escrow = {held}, allocations + coinbase - fees - "
                        f"burned = {issued}")
    return ChainReport(not problems, tip, len(main) - 1, count, len(stored), tuple(problems),
                       len(stored_records), supply)


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


def _replay(store: KeyValueStore, main: list[bytes], problems: list[str], params: NetworkParams,
            totals: _Totals) -> tuple[dict[bytes, Account], dict[bytes, bytes], dict[bytes, bytes], int]:
    """Accounts, transaction index and address index records from applying the main chain from genesis;
    blocks replayed. ``totals`` receives the job records and the conservation sums."""
    replayed: dict[bytes, Account] = {}
    view = DictView(replayed, totals.records)
    tx_index: dict[bytes, bytes] = {}
    addr_index: dict[bytes, bytes] = {}
    count = 0
    for block_id in main:
        try:
            block = load_block(store, block_id)
            change = apply_block(view, block, params)
        except (ConsensusError, StorageError) as e:
            problems.append(f"replay failed at block {block_id.hex()}: {e}")
            break
        replayed.update(change.accounts)
        for offer_id, record in change.records:
            if record is None:
                totals.records.pop(offer_id, None)
            else:
                totals.records[offer_id] = record
        if block.height == 0:
            totals.allocations += sum(tx.amount for tx in block.transactions if isinstance(tx, Coinbase))
        else:
            totals.coinbase += block.coinbase.amount
            totals.fees += sum(tx.body.fee for tx in block.signed)
        totals.burned += change.burned
        tx_index.update((compute_tx_id(tx), block_id) for tx in block.transactions)
        addrindex.add_block(addr_index, block)
        count += 1
    return replayed, tx_index, addr_index, count
