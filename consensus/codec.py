"""Every byte layout of the chain, in one place (docs/protocol.md sections 4, 8 and 10).

```
TxBody    = u8 kind(=1) || u32 chain_id || u64 nonce || pubkey 32 || to 20 || u64 amount || u64 fee
            || u16 len(memo) || memo
JobTxBody = u8 kind(2..8) || u32 chain_id || u64 nonce || pubkey 32 || u64 fee || id 32 || payload
Tx        = TxBody || signature 64,  or  JobTxBody || signature 64
Coinbase = u8 version || u64 height || to 20 || u64 amount                         (37 bytes)
Block    = Header 212 || Certificate || u32 tx_count || (u32 len || tx) * tx_count
```

The header and certificate layouts are ``pouw``'s (``pouw.header``,
``pouw.certificate``); this module only frames them inside a block:

- A certificate is self-delimiting once ``k`` is known (``A_blk`` and ``Bt_blk``
  are ``16*k`` bytes each, each path is preceded by its u8 count), so the block
  decoder reads it with the header's ``k``. Whether its length is the one the
  header allows is a verification rule (``pouw.verify``), not a decoding rule.
- The genesis block (height 0) carries no certificate: zero bytes. Its
  transactions are all ``Coinbase`` records (the allocations). In every other
  block transaction 0 is a ``Coinbase`` and the rest are ``Tx``.

Decoders accept exactly one encoding of each value (no trailing bytes, lengths
must match), so ``encode(decode(b)) == b`` for every accepted ``b``; they raise
only ``consensus.errors.DecodeError``. Encoders raise ``ValueError`` for fields
out of range (a local programming error, not a peer's fault).

The first byte of a transaction is its kind, and the kind fixes the layout, so
``decode_tx`` reads it first: kind 1 is a transfer, kinds 2 to 8 the job
transactions of section 11 (payloads below), any other first byte raises
``BadTxKind`` (a ``DecodeError``).

Job payloads (section 11), each of an exact length:

```
offer  (2): u32 m || u32 k || u32 n || root_A 32 || root_B 32 || u64 reward || u64 deposit || u64 bond
            || u64 deadline                                                        (108 bytes)
claim  (3): root_C 32
accept (4), reject (5), settle (6), refund (7): nothing
fraud  (8): u32 I || u32 J || tile 1024 || u8 len(path_C) || path_C || A_blk (16 k_p) || u8 len(path_A)
            || path_A || Bt_blk (16 k_p) || u8 len(path_B) || path_B
```

A fraud proof does not state ``k_p``; the decoder takes it from the length.
With ``R`` the bytes after ``path_C`` (signature excluded),
``R = 32 k_p + 2 + 32 (a + b)`` for path lengths ``a, b``. Paths of ``A`` and
``B`` are at most ``MAX_FRAUD_PATH`` (32) long (a valid one has at most 16
siblings: ``m, n <= 2^20``), so ``32 (a + b) < 4096 = 32 * 128`` and, ``k_p``
being a multiple of 128, ``k_p = 128 * ((R - 2) // 4096)``: one reading, so
one encoding. That the payload length fixes ``k_p`` is this implementation's
reading of "every payload has an exact length" (the record's ``k`` must then
match, a state rule).
"""

from __future__ import annotations

import struct

from pouw import errors as pouw_errors
from pouw.certificate import Certificate
from pouw.certificate import decode_certificate as _pouw_decode_certificate
from pouw.constants import HEADER_SIZE, TILE
from pouw.header import Header

from .errors import BadTxKind, DecodeError
from .types import (
    ADDRESS_SIZE,
    KIND_CLAIM,
    KIND_FRAUD,
    KIND_OFFER,
    PUBKEY_SIZE,
    SIGNATURE_SIZE,
    TX_KIND_TRANSFER,
    Block,
    ClaimPayload,
    Coinbase,
    FraudPayload,
    JobPayload,
    JobTxBody,
    OfferPayload,
    Transaction,
    Tx,
    TxBody,
)

_TX_FIXED = struct.Struct("<BIQ32s20sQQH")
_JOB_FIXED = struct.Struct("<BIQ32sQ32s")
_OFFER = struct.Struct("<III32s32sQQQQ")
_FRAUD_HEAD = struct.Struct("<II")
_COINBASE = struct.Struct("<BQ20sQ")
_U32 = struct.Struct("<I")

TX_FIXED_SIZE = _TX_FIXED.size
"""Bytes of a TxBody before the memo (83)."""
TX_MIN_SIZE = TX_FIXED_SIZE + SIGNATURE_SIZE
"""Bytes of a transfer with an empty memo (147)."""
COINBASE_SIZE = _COINBASE.size
"""Bytes of a coinbase (37)."""

JOB_FIXED_SIZE = _JOB_FIXED.size
"""Bytes of a JobTxBody before its payload (85)."""
OFFER_PAYLOAD_SIZE = _OFFER.size
"""Bytes of an offer's payload (108)."""
TILE_SIZE = TILE * TILE * 4
"""Bytes of one product tile in a fraud proof (1024)."""
MAX_FRAUD_PATH = 32
"""Most siblings a fraud proof's path may list (a valid path has at most 32 for C, 16 for A and B)."""

assert TX_FIXED_SIZE == 83 and COINBASE_SIZE == 37 and JOB_FIXED_SIZE == 85 and OFFER_PAYLOAD_SIZE == 108


def _check_uint(name: str, value: int, bits: int) -> None:
    if not isinstance(value, int) or not 0 <= value < (1 << bits):
        raise ValueError(f"{name} must be an unsigned {bits}-bit integer, found {value!r}")


def _check_bytes(name: str, value: bytes, size: int) -> None:
    if not isinstance(value, (bytes, bytearray)) or len(value) != size:
        raise ValueError(f"{name} must be {size} bytes, found {value!r}")


# --- transfers --------------------------------------------------------------------------------


def encode_tx_body(body: TxBody | JobTxBody) -> bytes:
    """The signed bytes of a transfer or a job transaction."""
    if isinstance(body, JobTxBody):
        return encode_job_tx_body(body)
    _check_uint("kind", body.kind, 8)
    _check_uint("chain_id", body.chain_id, 32)
    for name in ("nonce", "amount", "fee"):
        _check_uint(name, getattr(body, name), 64)
    _check_bytes("pubkey", body.pubkey, PUBKEY_SIZE)
    _check_bytes("to", body.to, ADDRESS_SIZE)
    if not isinstance(body.memo, (bytes, bytearray)) or len(body.memo) > 0xFFFF:
        raise ValueError(f"memo must be at most 65535 bytes, found {len(body.memo)}")
    return _TX_FIXED.pack(body.kind, body.chain_id, body.nonce, bytes(body.pubkey), bytes(body.to),
                          body.amount, body.fee, len(body.memo)) + bytes(body.memo)


def encode_tx(tx: Tx) -> bytes:
    """``TxBody || signature``."""
    _check_bytes("signature", tx.signature, SIGNATURE_SIZE)
    return encode_tx_body(tx.body) + bytes(tx.signature)


def check_tx_kind(kind: int) -> None:
    """Raise ``BadTxKind`` unless ``kind`` is a transfer's (1) or a job transaction's (2 to 8)."""
    if not TX_KIND_TRANSFER <= kind <= KIND_FRAUD:
        raise BadTxKind(f"expected kind 1 (transfer) or 2 to 8 (job transactions), found kind {kind}")


def decode_tx(data: bytes) -> Tx:
    """Parse exactly one transaction; an unknown first byte raises before any other field is read."""
    data = bytes(data)
    if data:
        check_tx_kind(data[0])
        if data[0] != TX_KIND_TRANSFER:
            return decode_job_tx(data)
    if len(data) < TX_MIN_SIZE:
        raise DecodeError(f"a transfer needs at least {TX_MIN_SIZE} bytes, found {len(data)}")
    kind, chain_id, nonce, pubkey, to, amount, fee, memo_len = _TX_FIXED.unpack_from(data)
    want = TX_MIN_SIZE + memo_len
    if len(data) != want:
        raise DecodeError(f"a transfer with a {memo_len}-byte memo is {want} bytes, found {len(data)}")
    memo = data[TX_FIXED_SIZE : TX_FIXED_SIZE + memo_len]
    body = TxBody(kind, chain_id, nonce, pubkey, to, amount, fee, memo)
    return Tx(body, data[TX_FIXED_SIZE + memo_len :])


# --- job transactions (section 11) -----------------------------------------------------------


def _encode_path(name: str, path: tuple[bytes, ...]) -> bytes:
    if len(path) > MAX_FRAUD_PATH:
        raise ValueError(f"{name} has {len(path)} siblings, at most {MAX_FRAUD_PATH}")
    for sibling in path:
        _check_bytes(name, sibling, 32)
    return bytes([len(path)]) + b"".join(bytes(p) for p in path)


def encode_job_payload(kind: int, payload: JobPayload) -> bytes:
    """The payload bytes of a job transaction of ``kind``."""
    if kind == KIND_OFFER:
        if not isinstance(payload, OfferPayload):
            raise ValueError("an offer carries an OfferPayload")
        for name in ("m", "k", "n"):
            _check_uint(name, getattr(payload, name), 32)
        for name in ("reward", "deposit", "bond", "deadline"):
            _check_uint(name, getattr(payload, name), 64)
        _check_bytes("root_a", payload.root_a, 32)
        _check_bytes("root_b", payload.root_b, 32)
        return _OFFER.pack(payload.m, payload.k, payload.n, bytes(payload.root_a), bytes(payload.root_b),
                           payload.reward, payload.deposit, payload.bond, payload.deadline)
    if kind == KIND_CLAIM:
        if not isinstance(payload, ClaimPayload):
            raise ValueError("a claim carries a ClaimPayload")
        _check_bytes("root_c", payload.root_c, 32)
        return bytes(payload.root_c)
    if kind == KIND_FRAUD:
        if not isinstance(payload, FraudPayload):
            raise ValueError("a fraud proof carries a FraudPayload")
        _check_uint("tile_i", payload.tile_i, 32)
        _check_uint("tile_j", payload.tile_j, 32)
        _check_bytes("tile", payload.tile, TILE_SIZE)
        size = len(payload.a_blk)
        if size != len(payload.bt_blk) or size % (TILE * 128) or size < TILE * 256:
            raise ValueError("a_blk and bt_blk must both be 16 * k_p bytes, k_p a multiple of 128, at least 256")
        return b"".join((
            _FRAUD_HEAD.pack(payload.tile_i, payload.tile_j), bytes(payload.tile),
            _encode_path("path_c", payload.path_c), bytes(payload.a_blk), _encode_path("path_a", payload.path_a),
            bytes(payload.bt_blk), _encode_path("path_b", payload.path_b),
        ))
    if payload is not None:
        raise ValueError(f"a kind-{kind} job transaction carries no payload")
    return b""


def encode_job_tx_body(body: JobTxBody) -> bytes:
    """The signed bytes of a job transaction."""
    if not KIND_OFFER <= body.kind <= KIND_FRAUD:
        raise ValueError(f"a job transaction has kind 2 to 8, found {body.kind}")
    _check_uint("chain_id", body.chain_id, 32)
    _check_uint("nonce", body.nonce, 64)
    _check_uint("fee", body.fee, 64)
    _check_bytes("pubkey", body.pubkey, PUBKEY_SIZE)
    _check_bytes("id", body.id, 32)
    head = _JOB_FIXED.pack(body.kind, body.chain_id, body.nonce, bytes(body.pubkey), body.fee, bytes(body.id))
    return head + encode_job_payload(body.kind, body.payload)


def _read_path(data: bytes, pos: int, end: int, name: str) -> tuple[tuple[bytes, ...], int]:
    if pos >= end:
        raise DecodeError(f"fraud proof truncated before the length of {name}")
    count = data[pos]
    if count > MAX_FRAUD_PATH:
        raise DecodeError(f"{name} lists {count} siblings, at most {MAX_FRAUD_PATH}")
    pos += 1
    if pos + 32 * count > end:
        raise DecodeError(f"fraud proof truncated inside {name}")
    return tuple(data[pos + 32 * i : pos + 32 * (i + 1)] for i in range(count)), pos + 32 * count


def _decode_fraud(data: bytes, pos: int, end: int) -> FraudPayload:
    fixed = _FRAUD_HEAD.size + TILE_SIZE
    if end - pos < fixed:
        raise DecodeError(f"a fraud proof's payload has at least {fixed} bytes before path_C")
    tile_i, tile_j = _FRAUD_HEAD.unpack_from(data, pos)
    pos += _FRAUD_HEAD.size
    tile = data[pos : pos + TILE_SIZE]
    path_c, pos = _read_path(data, pos + TILE_SIZE, end, "path_C")
    rest = end - pos - 2
    k_p = 128 * (rest // (32 * 128)) if rest >= 0 else 0
    if k_p < 256:
        raise DecodeError(f"a fraud proof's blocks need 16 * k_p bytes each with k_p >= 256; {end - pos} bytes remain")
    blk = TILE * k_p
    a_blk = data[pos : pos + blk]
    path_a, pos = _read_path(data, pos + blk, end, "path_A")
    if pos + blk > end:
        raise DecodeError("fraud proof truncated inside Bt_blk")
    bt_blk = data[pos : pos + blk]
    path_b, pos = _read_path(data, pos + blk, end, "path_B")
    if pos != end:
        raise DecodeError(f"fraud proof has {end - pos} bytes its k_p = {k_p} and paths do not account for")
    return FraudPayload(tile_i, tile_j, tile, path_c, a_blk, path_a, bt_blk, path_b)


def decode_job_tx(data: bytes) -> Tx:
    """Parse exactly one job transaction (kinds 2 to 8)."""
    data = bytes(data)
    if len(data) < JOB_FIXED_SIZE + SIGNATURE_SIZE:
        raise DecodeError(f"a job transaction needs at least {JOB_FIXED_SIZE + SIGNATURE_SIZE} bytes, "
                          f"found {len(data)}")
    kind, chain_id, nonce, pubkey, fee, id_ = _JOB_FIXED.unpack_from(data)
    pos, end = JOB_FIXED_SIZE, len(data) - SIGNATURE_SIZE
    payload: JobPayload
    if kind == KIND_OFFER:
        if end - pos != OFFER_PAYLOAD_SIZE:
            raise DecodeError(f"an offer's payload is {OFFER_PAYLOAD_SIZE} bytes, found {end - pos}")
        m, k, n, root_a, root_b, reward, deposit, bond, deadline = _OFFER.unpack_from(data, pos)
        payload = OfferPayload(m, k, n, root_a, root_b, reward, deposit, bond, deadline)
    elif kind == KIND_CLAIM:
        if end - pos != 32:
            raise DecodeError(f"a claim's payload is 32 bytes, found {end - pos}")
        payload = ClaimPayload(data[pos:end])
    elif kind == KIND_FRAUD:
        payload = _decode_fraud(data, pos, end)
    else:
        if end != pos:
            raise DecodeError(f"a kind-{kind} job transaction has no payload, found {end - pos} bytes")
        payload = None
    return Tx(JobTxBody(kind, chain_id, nonce, pubkey, fee, id_, payload), data[end:])


# --- coinbase ---------------------------------------------------------------------------------


def encode_coinbase(cb: Coinbase) -> bytes:
    """The 37 bytes of a coinbase."""
    _check_uint("version", cb.version, 8)
    _check_uint("height", cb.height, 64)
    _check_uint("amount", cb.amount, 64)
    _check_bytes("to", cb.to, ADDRESS_SIZE)
    return _COINBASE.pack(cb.version, cb.height, bytes(cb.to), cb.amount)


def decode_coinbase(data: bytes) -> Coinbase:
    """Parse exactly one coinbase."""
    if len(data) != COINBASE_SIZE:
        raise DecodeError(f"a coinbase is {COINBASE_SIZE} bytes, found {len(data)}")
    return Coinbase(*_COINBASE.unpack(bytes(data)))


def encode_transaction(tx: Transaction) -> bytes:
    """Bytes of a coinbase or a transfer (the bytes its id is computed over)."""
    if isinstance(tx, Coinbase):
        return encode_coinbase(tx)
    if isinstance(tx, Tx):
        return encode_tx(tx)
    raise ValueError(f"not a transaction: {type(tx).__name__}")


# --- header and certificate -------------------------------------------------------------------


def encode_header(header: Header) -> bytes:
    """The 212 bytes of a header (``pouw.header.Header.encode``; raises its ``EncodeError``, a ``ValueError``)."""
    return header.encode()


def decode_header(data: bytes) -> Header:
    """Parse exactly 212 header bytes."""
    try:
        return Header.decode(bytes(data))
    except pouw_errors.DecodeError as e:
        raise DecodeError(str(e)) from e


def encode_certificate(cert: Certificate | None) -> bytes:
    """Certificate bytes; ``None`` (genesis: no certificate) encodes as zero bytes."""
    if cert is None:
        return b""
    return cert.encode()


def certificate_end(data: bytes, start: int, k: int) -> int:
    """Offset just past the certificate that starts at ``start`` for inner dimension ``k``."""
    pos = start + 2 * TILE * k
    for name in ("path_A", "path_B"):
        if pos >= len(data):
            raise DecodeError(f"block truncated before the length of the certificate's {name}")
        pos += 1 + 32 * data[pos]
    if pos > len(data):
        raise DecodeError("block truncated inside the certificate")
    return pos


def decode_certificate(data: bytes, k: int) -> Certificate:
    """Parse exactly one certificate for inner dimension ``k``."""
    try:
        return _pouw_decode_certificate(bytes(data), k)
    except pouw_errors.DecodeError as e:
        raise DecodeError(str(e)) from e


# --- block ------------------------------------------------------------------------------------


def encode_block(block: Block) -> bytes:
    """``Header || Certificate || u32 tx_count || (u32 len || tx) * tx_count``."""
    return encode_header(block.header) + encode_certificate(block.certificate) + encode_block_body(block)


def decode_block(data: bytes) -> Block:
    """Parse exactly one block."""
    data = bytes(data)
    if len(data) < HEADER_SIZE:
        raise DecodeError(f"a block starts with a {HEADER_SIZE}-byte header, found {len(data)} bytes")
    header = decode_header(data[:HEADER_SIZE])
    pos = HEADER_SIZE
    genesis = header.pre.height == 0
    certificate = None
    if not genesis:
        end = certificate_end(data, pos, header.pre.k)
        certificate = decode_certificate(data[pos:end], header.pre.k)
        pos = end
    transactions, pos = _decode_transactions(data, pos, genesis)
    if pos != len(data):
        raise DecodeError(f"block has {len(data) - pos} trailing bytes")
    return Block(header, certificate, transactions)


def decode_block_body(data: bytes, genesis: bool) -> tuple[Transaction, ...]:
    """Parse ``u32 tx_count || (u32 len || tx) * tx_count`` on its own (a stored block body)."""
    transactions, pos = _decode_transactions(bytes(data), 0, genesis)
    if pos != len(data):
        raise DecodeError(f"block body has {len(data) - pos} trailing bytes")
    return transactions


def encode_block_body(block: Block) -> bytes:
    """The transactions part of a block (``u32 tx_count || ...``)."""
    if not block.transactions:
        raise ValueError("a block holds at least its coinbase")
    parts = [_U32.pack(len(block.transactions))]
    for tx in block.transactions:
        raw = encode_transaction(tx)
        parts.append(_U32.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def _decode_transactions(data: bytes, pos: int, genesis: bool) -> tuple[tuple[Transaction, ...], int]:
    if pos + 4 > len(data):
        raise DecodeError("block truncated before tx_count")
    (count,) = _U32.unpack_from(data, pos)
    pos += 4
    if count == 0:
        raise DecodeError("a block holds at least its coinbase (tx_count = 0)")
    if count * (4 + COINBASE_SIZE) > len(data) - pos:
        raise DecodeError(f"tx_count {count} cannot fit in the {len(data) - pos} remaining bytes")
    out: list[Transaction] = []
    for i in range(count):
        if pos + 4 > len(data):
            raise DecodeError(f"block truncated before the length of transaction {i}")
        (size,) = _U32.unpack_from(data, pos)
        pos += 4
        if pos + size > len(data):
            raise DecodeError(f"transaction {i} announces {size} bytes, {len(data) - pos} remain")
        raw = data[pos : pos + size]
        pos += size
        out.append(decode_coinbase(raw) if (i == 0 or genesis) else decode_tx(raw))
    return tuple(out), pos
