"""Round trips of every chain codec, and Hypothesis fuzzing: only ``consensus.errors.DecodeError`` escapes a decoder."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus import codec
from consensus.errors import BadTxKind, DecodeError
from consensus.genesis import make_genesis_block
from consensus.networks import DEVNET, MAINNET
from consensus.types import Block, Certificate, Coinbase, Header, HeaderPre, Tx, TxBody

u = lambda bits: st.integers(0, (1 << bits) - 1)  # noqa: E731
b20 = st.binary(min_size=20, max_size=20)
b32 = st.binary(min_size=32, max_size=32)

bodies = st.builds(TxBody, st.just(1), u(32), u(64), b32, b20, u(64), u(64), st.binary(max_size=300))
"""Transfers: kind 1 is the only layout the codec decodes (section 10)."""
txs = st.builds(Tx, bodies, st.binary(min_size=64, max_size=64))
coinbases = st.builds(Coinbase, u(8), u(64), b20, u(64))


@st.composite
def blocks(draw):
    k = draw(st.sampled_from([0, 1, 2, 8]))
    genesis = draw(st.booleans())
    height = 0 if genesis else draw(st.integers(1, (1 << 64) - 1))
    pre = HeaderPre(draw(u(32)), height, draw(b32), draw(b32), draw(u(64)), draw(u(256)), draw(u(64)),
                    draw(u(32)), draw(u(32)), k, draw(u(16)), draw(u(16)))
    header = Header(pre, draw(b32), draw(b32), draw(u(32)), draw(u(32)))
    if genesis:
        return Block(header, None, tuple(draw(st.lists(coinbases, min_size=1, max_size=4))))
    cert = Certificate(draw(st.binary(min_size=16 * k, max_size=16 * k)),
                       draw(st.binary(min_size=16 * k, max_size=16 * k)),
                       tuple(draw(st.lists(b32, max_size=3))), tuple(draw(st.lists(b32, max_size=3))))
    return Block(header, cert, (draw(coinbases), *draw(st.lists(txs, max_size=4))))


@given(txs)
def test_tx_round_trip(tx):
    raw = codec.encode_tx(tx)
    assert len(raw) == codec.TX_MIN_SIZE + len(tx.body.memo)
    assert codec.decode_tx(raw) == tx
    assert raw.startswith(codec.encode_tx_body(tx.body))


@given(coinbases)
def test_coinbase_round_trip(cb):
    raw = codec.encode_coinbase(cb)
    assert len(raw) == codec.COINBASE_SIZE == 37
    assert codec.decode_coinbase(raw) == cb


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(blocks())
def test_block_round_trip(block):
    raw = codec.encode_block(block)
    assert codec.decode_block(raw) == block
    assert codec.encode_block(codec.decode_block(raw)) == raw


@pytest.mark.parametrize("params", [DEVNET, MAINNET])
def test_genesis_round_trip(params):
    genesis = make_genesis_block(params)
    raw = codec.encode_block(genesis)
    assert codec.decode_block(raw) == genesis
    assert genesis.certificate is None
    assert raw[212:216] == len(genesis.transactions).to_bytes(4, "little")  # no certificate bytes


def _only_decode_error(fn, data):
    try:
        fn(data)
    except DecodeError:
        pass


@given(st.binary(max_size=600))
def test_tx_decoder_raises_only_decode_error(data):
    _only_decode_error(codec.decode_tx, data)


@given(st.binary(max_size=80))
def test_coinbase_decoder_raises_only_decode_error(data):
    _only_decode_error(codec.decode_coinbase, data)


@given(st.binary(max_size=300))
def test_header_decoder_raises_only_decode_error(data):
    _only_decode_error(codec.decode_header, data)


@given(st.binary(max_size=400), st.integers(0, 1 << 32))
def test_certificate_decoder_raises_only_decode_error(data, k):
    _only_decode_error(lambda d: codec.decode_certificate(d, k), data)


@given(st.binary(max_size=1200))
def test_block_decoder_raises_only_decode_error(data):
    _only_decode_error(codec.decode_block, data)


@given(st.binary(max_size=400), st.booleans())
def test_block_body_decoder_raises_only_decode_error(data, genesis):
    _only_decode_error(lambda d: codec.decode_block_body(d, genesis), data)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(blocks(), st.data())
def test_mutated_block_decodes_or_raises_decode_error(block, data):
    """Flip, cut or extend a valid encoding: the decoder answers with a block or a DecodeError."""
    raw = bytearray(codec.encode_block(block))
    action = data.draw(st.sampled_from(["flip", "cut", "extend"]))
    if action == "flip":
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= 1 << data.draw(st.integers(0, 7))
    elif action == "cut":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        raw += data.draw(st.binary(min_size=1, max_size=8))
    try:
        decoded = codec.decode_block(bytes(raw))
    except DecodeError:
        return
    assert codec.encode_block(decoded) == bytes(raw)


def test_decoder_rejects_trailing_bytes_and_zero_tx_count():
    genesis = make_genesis_block(DEVNET)
    raw = codec.encode_block(genesis)
    with pytest.raises(DecodeError, match="trailing"):
        codec.decode_block(raw + b"\x00")
    with pytest.raises(DecodeError, match="tx_count"):
        codec.decode_block(raw[:212] + bytes(4))


def test_decoder_rejects_huge_tx_count_without_looping():
    genesis = make_genesis_block(DEVNET)
    raw = codec.encode_block(genesis)
    with pytest.raises(DecodeError, match="cannot fit"):
        codec.decode_block(raw[:212] + (0xFFFFFFFF).to_bytes(4, "little") + bytes(100))


@given(u(8), st.binary(max_size=300))
def test_tx_decoder_decodes_only_kinds_1_to_8(kind, rest):
    raw = bytes([kind]) + rest
    if 1 <= kind <= 8:
        try:
            codec.decode_tx(raw)
        except DecodeError as e:
            assert not isinstance(e, BadTxKind)
        return
    with pytest.raises(BadTxKind):
        codec.decode_tx(raw)


def test_tx_encoder_still_encodes_any_kind_byte():
    """Encoding is layout only; the kind rules are the decoder's and ``validate_tx``'s."""
    raw = codec.encode_tx(Tx(TxBody(3, 1, 0, bytes(32), bytes(20), 1, 1), bytes(64)))
    assert raw[0] == 3


def test_tx_length_prefix_must_match_memo_length():
    tx = Tx(TxBody(1, 1, 0, bytes(32), bytes(20), 1, 1, b"abc"), bytes(64))
    raw = codec.encode_tx(tx)
    with pytest.raises(DecodeError):
        codec.decode_tx(raw + b"x")
    with pytest.raises(DecodeError):
        codec.decode_tx(raw[:-1])


@pytest.mark.parametrize("field,value", [("amount", 1 << 64), ("nonce", -1), ("to", bytes(19)), ("pubkey", bytes(31))])
def test_tx_encoder_rejects_out_of_range_fields(field, value):
    from dataclasses import replace

    body = replace(TxBody(1, 1, 0, bytes(32), bytes(20), 1, 1), **{field: value})
    with pytest.raises(ValueError):
        codec.encode_tx(Tx(body, bytes(64)))
