"""Reading chain records back: blocks reassembled from their records, and account views.

``load_block`` rebuilds a stored block from its header, certificate and body
records. The account views are what ``consensus.state.apply_block`` reads:
``StoreView`` (the accounts on disk, or in a snapshot of it), ``PlannedView``
(changes planned in memory on top of another view, for reorgs) and
``DictView`` (a plain dict, for genesis and replays).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from consensus.codec import decode_block_body, decode_certificate, decode_header
from consensus.errors import DecodeError
from consensus.state import AccountView
from consensus.types import Account, Block

from . import schema
from .errors import StorageError
from .store import KeyValueReader

T = TypeVar("T")


class StoreView:
    """``AccountView`` reading accounts from a store or a snapshot of one."""

    def __init__(self, store: KeyValueReader) -> None:
        self.store = store

    def get_account(self, address: bytes) -> Account | None:
        raw = self.store.get(schema.account_key(address))
        return None if raw is None else schema.decode_account(raw)


class PlannedView:
    """``AccountView`` of planned (not yet written) changes on top of another view."""

    def __init__(self, base: AccountView) -> None:
        self.base = base
        self.changes: dict[bytes, Account | None] = {}

    def get_account(self, address: bytes) -> Account | None:
        if address in self.changes:
            return self.changes[address]
        return self.base.get_account(address)

    def set(self, address: bytes, account: Account | None) -> None:
        self.changes[address] = account


class DictView:
    """``AccountView`` over a plain dict (genesis, replays)."""

    def __init__(self, accounts: dict[bytes, Account]) -> None:
        self.accounts = accounts

    def get_account(self, address: bytes) -> Account | None:
        return self.accounts.get(address)


def decode_stored(decoder: Callable[..., T], *args: object) -> T:
    """``decoder(*args)``, a ``DecodeError`` turned into ``StorageError`` (a stored record is corrupt)."""
    try:
        return decoder(*args)
    except DecodeError as e:
        raise StorageError(f"stored record does not decode: {e}") from e


def load_block(store: KeyValueReader, block_id: bytes) -> Block:
    """Reassemble a stored block from its header, certificate and body records."""
    raw_header = store.get(schema.header_key(block_id))
    raw_cert = store.get(schema.certificate_key(block_id))
    raw_body = store.get(schema.body_key(block_id))
    if raw_header is None or raw_cert is None or raw_body is None:
        raise StorageError(f"block {block_id.hex()} is indexed but its data is missing")
    header = decode_stored(decode_header, raw_header)
    genesis = header.pre.height == 0
    certificate = None if genesis else decode_stored(decode_certificate, raw_cert, header.pre.k)
    transactions = decode_stored(decode_block_body, raw_body, genesis)
    return Block(header, certificate, transactions)
