"""Every byte layout of the chain, in one place (docs/protocol.md sections 4, 8 and 10).

```
TxBody   = u8 kind(=1) || u32 chain_id || u64 nonce || pubkey 32 || to 20 || u64 amount || u64 fee
           || u16 len(memo) || memo
Tx       = TxBody || signature 64
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
``decode_tx`` reads it first and decodes only kind 1 (a transfer). Kinds 2 to 8
(the job transactions of section 11, not built yet) raise ``TxKindNotYet`` and
any other first byte ``BadTxKind``; both are ``DecodeError`` subclasses.
"""

from __future__ import annotations

import struct

from pouw import errors as pouw_errors
from pouw.certificate import Certificate
from pouw.certificate import decode_certificate as _pouw_decode_certificate
from pouw.constants import HEADER_SIZE, TILE
from pouw.header import Header

from .errors import BadTxKind, DecodeError, TxKindNotYet
from .types import (
    ADDRESS_SIZE,
    JOB_TX_KIND_FIRST,
    JOB_TX_KINDS,
    PUBKEY_SIZE,
    SIGNATURE_SIZE,
    TX_KIND_TRANSFER,
    Block,
    Coinbase,
    Transaction,
    Tx,
    TxBody,
)

_TX_FIXED = struct.Struct("<BIQ32s20sQQH")
_COINBASE = struct.Struct("<BQ20sQ")
_U32 = struct.Struct("<I")

TX_FIXED_SIZE = _TX_FIXED.size
"""Bytes of a TxBody before the memo (83)."""
TX_MIN_SIZE = TX_FIXED_SIZE + SIGNATURE_SIZE
"""Bytes of a transfer with an empty memo (147)."""
COINBASE_SIZE = _COINBASE.size
"""Bytes of a coinbase (37)."""

assert TX_FIXED_SIZE == 83 and COINBASE_SIZE == 37


def _check_uint(name: str, value: int, bits: int) -> None:
    if not isinstance(value, int) or not 0 <= value < (1 << bits):
        raise ValueError(f"{name} must be an unsigned {bits}-bit integer, found {value!r}")


def _check_bytes(name: str, value: bytes, size: int) -> None:
    if not isinstance(value, (bytes, bytearray)) or len(value) != size:
        raise ValueError(f"{name} must be {size} bytes, found {value!r}")


# --- transfers --------------------------------------------------------------------------------


def encode_tx_body(body: TxBody) -> bytes:
    """The signed bytes of a transfer."""
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
    """Raise ``TxKindNotYet`` for a job kind (2 to 8) and ``BadTxKind`` for any kind but a transfer's."""
    if kind == TX_KIND_TRANSFER:
        return
    index = kind - JOB_TX_KIND_FIRST
    if 0 <= index < len(JOB_TX_KINDS):
        raise TxKindNotYet(f"kind {kind} (job {JOB_TX_KINDS[index]}) is not valid before the job market")
    raise BadTxKind(f"expected kind {TX_KIND_TRANSFER} (transfer), found kind {kind}")


def decode_tx(data: bytes) -> Tx:
    """Parse exactly one transfer; a first byte other than kind 1 raises before any other field is read."""
    data = bytes(data)
    if data:
        check_tx_kind(data[0])
    if len(data) < TX_MIN_SIZE:
        raise DecodeError(f"a transfer needs at least {TX_MIN_SIZE} bytes, found {len(data)}")
    kind, chain_id, nonce, pubkey, to, amount, fee, memo_len = _TX_FIXED.unpack_from(data)
    want = TX_MIN_SIZE + memo_len
    if len(data) != want:
        raise DecodeError(f"a transfer with a {memo_len}-byte memo is {want} bytes, found {len(data)}")
    memo = data[TX_FIXED_SIZE : TX_FIXED_SIZE + memo_len]
    body = TxBody(kind, chain_id, nonce, pubkey, to, amount, fee, memo)
    return Tx(body, data[TX_FIXED_SIZE + memo_len :])


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
