"""The database layout: every key and every stored record, in one place.

Keys start with one ASCII byte naming the record kind:

| key                      | value                                                         |
|--------------------------|---------------------------------------------------------------|
| ``H`` + block id         | header, 212 bytes (``consensus.codec``)                       |
| ``C`` + block id         | certificate bytes (empty for genesis)                         |
| ``B`` + block id         | block body: ``u32 tx_count || (u32 len || tx)*``              |
| ``I`` + block id         | block index record (below)                                    |
| ``U`` + block id         | undo record of a block on the main chain (below)              |
| ``A`` + address (20)     | account: ``u64 balance || u64 nonce``                         |
| ``O`` + offer id (32)    | live job record of section 11 (221 bytes, below)              |
| ``M`` + u64be(height)    | id of the main-chain block at that height                     |
| ``T``                    | id of the main-chain tip                                      |
| ``X`` + tx id            | id of the main-chain block that carries the transaction       |
| ``J`` + job id           | a MatMul job record, JSON (jobs database, ``node.jobs``)      |
| ``N`` + address (20)     | address index: u64 count of the address's entries (below)     |
| ``R`` + address + u64be(seq) | address index entry number ``seq`` (0 = oldest; below)    |
| ``V``                    | meta: ``u32 schema || u8 len || network name || genesis id``  |

Block index record (153 bytes): ``u64 height || parent 32 || u64 time ||
target 32 (LE) || chain_work 64 (LE) || u8 status || u64 seq``. ``time`` and
``target`` are copied from the header so that start-up, median time and
difficulty need only the index; ``seq`` is the arrival order (fork-choice
ties keep the block seen first).

Undo record: ``u32 count || (address 20 || u8 present || [u64 balance || u64 nonce])*``,
then (when the block touched job records) ``u32 count || (offer id 32 || u8 present ||
[record 221])*``; ``present = 0`` means the address had no account (the record did not
exist) before the block. An undo record without the second part (written before the job
market) restores no records.

Job record (221 bytes): ``u8 status || client 20 || job_id 32 || u32 m || u32 k || u32 n ||
root_A 32 || root_B 32 || u64 reward || u64 deposit || u64 bond || u64 deadline ||
claimant 20 || root_C 32 || u64 claim_height``.

Address index (``node.addrindex``): one entry per main-chain transaction above
genesis and address it touches (sender, recipient, coinbase recipient), 49
bytes: ``u64 height || u32 position in the block || u32 offset of its length
prefix in the block body || u8 role (1 sender, 2 recipient, 3 both) || tx id``.

Heights in ``M`` keys are big-endian so that LevelDB's key order is height order.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from consensus.state import BlockUndo
from consensus.types import ADDRESS_SIZE, Account, JobRecord

from .errors import StorageError

SCHEMA_VERSION = 2
"""2: job records (``O``), their undo data and the address index (``N``, ``R``). A version-1 database
lacks them for the blocks it holds, so this node refuses it (resync from peers instead)."""

HEADER = b"H"
CERTIFICATE = b"C"
BODY = b"B"
INDEX = b"I"
UNDO = b"U"
ACCOUNT = b"A"
OFFER = b"O"
MAIN = b"M"
TIP_KEY = b"T"
TX = b"X"
JOB = b"J"
META_KEY = b"V"
ADDR_COUNT = b"N"
"""Address index: how many entries an address has (``node.addrindex``; blocks above genesis)."""
ADDR_TX = b"R"
"""Address index: one entry per (main-chain transaction, address it touches), oldest first by ``seq``."""

STATUS_STORED = 1
"""Block data stored, header and transfers checked; account state not yet checked (side branch)."""
STATUS_VALID = 2
"""The block has been connected at least once: its state transition is valid."""

_INDEX = struct.Struct("<Q32sQ32s64sBQ")
_ACCOUNT = struct.Struct("<QQ")
_RECORD = struct.Struct("<B20s32sIII32s32sQQQQ20s32sQ")
RECORD_SIZE = _RECORD.size
assert RECORD_SIZE == 221
_U32 = struct.Struct("<I")
_HEIGHT = struct.Struct(">Q")


def tx_key(tx_id: bytes) -> bytes:
    return TX + tx_id


def job_key(job_id: bytes) -> bytes:
    return JOB + job_id


def addr_count_key(address: bytes) -> bytes:
    """Key of an address's entry count in the address index."""
    return ADDR_COUNT + address


def addr_tx_key(address: bytes, seq: int) -> bytes:
    """Key of entry ``seq`` (0 = oldest) of an address in the address index; big-endian so key order is seq order."""
    return ADDR_TX + address + _HEIGHT.pack(seq)


def header_key(block_id: bytes) -> bytes:
    """Key of a block's header."""
    return HEADER + block_id


def certificate_key(block_id: bytes) -> bytes:
    """Key of a block's certificate."""
    return CERTIFICATE + block_id


def body_key(block_id: bytes) -> bytes:
    """Key of a block's transactions."""
    return BODY + block_id


def index_key(block_id: bytes) -> bytes:
    """Key of a block's index record."""
    return INDEX + block_id


def undo_key(block_id: bytes) -> bytes:
    """Key of a main-chain block's undo record."""
    return UNDO + block_id


def account_key(address: bytes) -> bytes:
    """Key of an account."""
    if len(address) != ADDRESS_SIZE:
        raise ValueError(f"an address is {ADDRESS_SIZE} bytes, found {len(address)}")
    return ACCOUNT + address


def offer_key(offer_id: bytes) -> bytes:
    """Key of a live job record."""
    if len(offer_id) != 32:
        raise ValueError(f"an offer id is 32 bytes, found {len(offer_id)}")
    return OFFER + offer_id


def encode_record(r: JobRecord) -> bytes:
    """The 221-byte job record."""
    return _RECORD.pack(r.status, r.client, r.job_id, r.m, r.k, r.n, r.root_a, r.root_b, r.reward, r.deposit,
                        r.bond, r.deadline, r.claimant, r.root_c, r.claim_height)


def decode_record(data: bytes) -> JobRecord:
    """Parse a job record; ``StorageError`` if malformed."""
    if len(data) != _RECORD.size:
        raise StorageError(f"job record is {len(data)} bytes, expected {_RECORD.size}")
    return JobRecord(*_RECORD.unpack(data))


def main_key(height: int) -> bytes:
    """Key of the main-chain id at ``height``."""
    return MAIN + _HEIGHT.pack(height)


def decode_main_key(key: bytes) -> int:
    """Height of a ``M`` key."""
    if len(key) != 1 + _HEIGHT.size or key[:1] != MAIN:
        raise StorageError(f"not a main-chain key: {key.hex()}")
    return _HEIGHT.unpack(key[1:])[0]


@dataclass(frozen=True)
class IndexEntry:
    """What the node keeps about every stored block (the block index)."""

    block_id: bytes
    height: int
    parent: bytes
    """Id of the parent (all zero for genesis)."""
    time: int
    target: int
    chain_work: int
    """Work of the chain ending at this block, genesis included."""
    status: int
    """``STATUS_STORED`` or ``STATUS_VALID``."""
    seq: int
    """Arrival order in this database (lower = seen first)."""


def encode_index(entry: IndexEntry) -> bytes:
    """The 153-byte index record (the id is in the key)."""
    return _INDEX.pack(entry.height, entry.parent, entry.time, entry.target.to_bytes(32, "little"),
                       entry.chain_work.to_bytes(64, "little"), entry.status, entry.seq)


def decode_index(block_id: bytes, data: bytes) -> IndexEntry:
    """Parse an index record; ``StorageError`` if malformed."""
    if len(data) != _INDEX.size:
        raise StorageError(f"index record of {block_id.hex()} is {len(data)} bytes, expected {_INDEX.size}")
    height, parent, time, target, work, status, seq = _INDEX.unpack(data)
    return IndexEntry(block_id, height, parent, time, int.from_bytes(target, "little"),
                      int.from_bytes(work, "little"), status, seq)


def encode_account(account: Account) -> bytes:
    """``u64 balance || u64 nonce``."""
    return _ACCOUNT.pack(account.balance, account.nonce)


def decode_account(data: bytes) -> Account:
    """Parse an account record; ``StorageError`` if malformed."""
    if len(data) != _ACCOUNT.size:
        raise StorageError(f"account record is {len(data)} bytes, expected {_ACCOUNT.size}")
    return Account(*_ACCOUNT.unpack(data))


def encode_undo(undo: BlockUndo) -> bytes:
    """The undo record of a block."""
    parts = [_U32.pack(len(undo.entries))]
    for address, prior in undo.entries:
        if prior is None:
            parts.append(address + b"\x00")
        else:
            parts.append(address + b"\x01" + encode_account(prior))
    if undo.records:
        parts.append(_U32.pack(len(undo.records)))
        for offer_id, record in undo.records:
            parts.append(offer_id + (b"\x00" if record is None else b"\x01" + encode_record(record)))
    return b"".join(parts)


def decode_undo(data: bytes) -> BlockUndo:
    """Parse an undo record; ``StorageError`` if malformed."""
    try:
        (count,) = _U32.unpack_from(data, 0)
        pos = 4
        entries: list[tuple[bytes, Account | None]] = []
        for _ in range(count):
            address = data[pos : pos + ADDRESS_SIZE]
            present = data[pos + ADDRESS_SIZE]
            if present > 1:
                raise StorageError(f"undo record marks an account with {present}, expected 0 or 1")
            pos += ADDRESS_SIZE + 1
            if present:
                entries.append((address, decode_account(data[pos : pos + _ACCOUNT.size])))
                pos += _ACCOUNT.size
            else:
                entries.append((address, None))
        records: list[tuple[bytes, JobRecord | None]] = []
        if pos < len(data):
            (count,) = _U32.unpack_from(data, pos)
            pos += 4
            for _ in range(count):
                offer_id = data[pos : pos + 32]
                present = data[pos + 32]
                if present > 1:
                    raise StorageError(f"undo record marks a job record with {present}, expected 0 or 1")
                pos += 33
                if present:
                    records.append((offer_id, decode_record(data[pos : pos + _RECORD.size])))
                    pos += _RECORD.size
                else:
                    records.append((offer_id, None))
    except (struct.error, IndexError) as e:
        raise StorageError("undo record is truncated") from e
    if pos != len(data):
        raise StorageError(f"undo record has {len(data) - pos} trailing bytes")
    return BlockUndo(tuple(entries), tuple(records))


@dataclass(frozen=True)
class Meta:
    """Identifies what a database holds."""

    schema: int
    network: str
    genesis_id: bytes


def encode_meta(meta: Meta) -> bytes:
    """The meta record."""
    name = meta.network.encode("ascii")
    return _U32.pack(meta.schema) + bytes([len(name)]) + name + meta.genesis_id


def decode_meta(data: bytes) -> Meta:
    """Parse the meta record; ``StorageError`` if malformed."""
    if len(data) < 5 or len(data) != 5 + data[4] + 32:
        raise StorageError("meta record is malformed")
    (schema,) = _U32.unpack_from(data, 0)
    name_len = data[4]
    return Meta(schema, data[5 : 5 + name_len].decode("ascii", "replace"), data[5 + name_len :])
