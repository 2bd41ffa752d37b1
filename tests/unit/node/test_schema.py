"""Database records round-trip; keys keep heights in order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consensus.state import BlockUndo
from consensus.types import Account
from node import schema
from node.errors import StorageError

u64 = st.integers(0, (1 << 64) - 1)
accounts = st.builds(Account, u64, u64)
addresses = st.binary(min_size=20, max_size=20)


@given(st.binary(min_size=32, max_size=32), u64, st.binary(min_size=32, max_size=32), u64,
       st.integers(0, (1 << 256) - 1), st.integers(0, (1 << 512) - 1), st.integers(0, 255), u64)
def test_index_round_trip(block_id, height, parent, time, target, work, status, seq):
    entry = schema.IndexEntry(block_id, height, parent, time, target, work, status, seq)
    raw = schema.encode_index(entry)
    assert len(raw) == 153
    assert schema.decode_index(block_id, raw) == entry


@given(accounts)
def test_account_round_trip(account):
    assert schema.decode_account(schema.encode_account(account)) == account


@given(st.lists(st.tuples(addresses, st.none() | accounts), max_size=20))
def test_undo_round_trip(entries):
    undo = BlockUndo(tuple(entries))
    assert schema.decode_undo(schema.encode_undo(undo)) == undo


@given(st.binary(max_size=100))
def test_undo_decoder_raises_only_storage_error(data):
    try:
        schema.decode_undo(data)
    except StorageError:
        pass


def test_meta_round_trip():
    meta = schema.Meta(1, "devnet", bytes(range(32)))
    assert schema.decode_meta(schema.encode_meta(meta)) == meta
    with pytest.raises(StorageError):
        schema.decode_meta(b"\x01")


def test_main_keys_sort_by_height():
    heights = [0, 1, 255, 256, 70000, 1 << 40]
    keys = [schema.main_key(h) for h in heights]
    assert sorted(keys) == keys
    assert [schema.decode_main_key(k) for k in keys] == heights


def test_key_prefixes_are_distinct():
    prefixes = [schema.HEADER, schema.CERTIFICATE, schema.BODY, schema.INDEX, schema.UNDO, schema.ACCOUNT,
                schema.MAIN, schema.TIP_KEY, schema.META_KEY]
    assert len(set(prefixes)) == len(prefixes) and all(len(p) == 1 for p in prefixes)
