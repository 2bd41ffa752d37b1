"""Fixed byte vectors of the chain codecs (docs/protocol.md section 10).

Each vector is checked two ways: against a hand-assembled byte string (the
layout of the spec, field by field) and against a pinned hex string, so a
change to any layout, domain key or id formula fails here first.
"""

from __future__ import annotations

import struct

from consensus.address import encode_address
from consensus.codec import decode_block, decode_coinbase, decode_tx, encode_block, encode_coinbase, encode_tx
from consensus.genesis import make_genesis_block
from consensus.keys import keypair_from_private
from consensus.networks import DEVNET
from consensus.tx import compute_sighash, compute_tx_id, compute_tx_root, make_transfer, validate_tx
from consensus.types import Coinbase
from pouw.hashing import HK, K

KEY = keypair_from_private(bytes(range(32)))  # a fixed test key (RFC 8032 signatures are deterministic)
TO = bytes([0xAA]) * 20

TX_HEX = (
    "0139050000070000000000000003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaae803000000000000e803000000000000050068656c6c6f"
    "c5e1b8c5bd937eaf0bfc0abdea07218520892c9d419e612fa80b084c5c075e6c3aaec3a19859426543245971e1576869be2d4cb2926ecc577331c91227f5a80f"
)
"""Kind 1 on chain 1337, nonce 7, 1000 base units to ``0xaa * 20``, fee 1000 (minimum: 152), memo hello."""


def test_transfer_vector():
    tx = make_transfer(KEY, 1337, 7, TO, 1000, 1000, b"hello")
    body = (bytes([1]) + struct.pack("<I", 1337) + struct.pack("<Q", 7) + KEY.public_key + TO
            + struct.pack("<Q", 1000) + struct.pack("<Q", 1000) + struct.pack("<H", 5) + b"hello")
    raw = encode_tx(tx)
    assert raw == body + tx.signature
    assert raw.hex() == TX_HEX
    assert decode_tx(raw) == tx
    assert compute_sighash(tx.body) == HK(K("sighash"), body)
    assert compute_sighash(tx.body).hex() == "4a01e2dd2c402cfbad8bda0cc7e3e2bd5cf32b4d0b462e83b51b297ff6be9fe7"
    assert compute_tx_id(tx) == HK(K("tx"), raw)
    assert compute_tx_id(tx).hex() == "af482ef1e9d30370c04003ccb869a1ac62e408ed9e0d4642b9d67143edbdfc48"
    validate_tx(tx, DEVNET)  # a valid transfer, minimum fee included


def test_address_vector():
    assert KEY.public_key.hex() == "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
    assert KEY.address.hex() == "05699114c7d72aedd4a1139c685d6556fba4ae56"


def test_coinbase_vector():
    cb = Coinbase(1, 5, bytes([0xBB]) * 20, 5_000_000_000)
    raw = encode_coinbase(cb)
    assert raw == bytes([1]) + struct.pack("<Q", 5) + bytes([0xBB]) * 20 + struct.pack("<Q", 5_000_000_000)
    assert raw.hex() == "010500000000000000bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb00f2052a01000000"
    assert decode_coinbase(raw) == cb
    assert compute_tx_id(cb).hex() == "285ca80dd15b5b86ce125cba49c8b947561ae1680ec39c19ee360aa3f6ca506d"


def test_tx_root_vectors():
    ids = [bytes([i]) * 32 for i in (1, 2, 3)]
    assert compute_tx_root(ids[:1]) == ids[0]
    assert compute_tx_root(ids[:2]) == HK(K("tx-node"), ids[0] + ids[1])
    assert compute_tx_root(ids) == HK(K("tx-node"), HK(K("tx-node"), ids[0] + ids[1]) + ids[2])
    assert compute_tx_root(ids).hex() == "b2774135d05dacd923cde2486ae6eb93701cac5c7799078086ab272ee8bd0202"


def test_devnet_genesis_block_vector():
    genesis = make_genesis_block(DEVNET)
    raw = encode_block(genesis)
    header = raw[:212]
    # No certificate: the tx count follows the header directly.
    body = struct.pack("<I", 10) + b"".join(struct.pack("<I", 37) + encode_coinbase(t) for t in genesis.transactions)
    assert raw == header + body
    assert decode_block(raw) == genesis
    assert genesis.header.block_id == HK(K("block"), header)
    assert genesis.header.block_id.hex() == "0adc34699f2b96a12808886dee13d76afb48cead62733d73bd285a07fdca14d5"
    assert header[:4] == struct.pack("<I", 1) and header[4:12] == bytes(8) and header[12:44] == bytes(32)


def test_devnet_first_address_text():
    assert encode_address(DEVNET.allocations[0].address, "pdev") == "pdev1q2j87kdl0l0j2a086yas59cmeu850pf63pnn54"
