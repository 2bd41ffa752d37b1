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
from consensus.state import StateView
from consensus.types import Account, Block, JobRecord

from . import schema
from .errors import StorageError
from .store import KeyValueReader

T = TypeVar("T")


class StoreView:
    """``StateView`` reading accounts and job records from a store or a snapshot of one."""

    def __init__(self, store: KeyValueReader) -> None:
        self.store = store

    def get_account(self, address: bytes) -> Account | None:
        raw = self.store.get(schema.account_key(address))
        return None if raw is None else schema.decode_account(raw)

    def get_job_record(self, offer_id: bytes) -> JobRecord | None:
        raw = self.store.get(schema.offer_key(offer_id))
        return None if raw is None else schema.decode_record(raw)


class PlannedView:
    """``StateView`` of planned (not yet written) changes on top of another view."""

    def __init__(self, base: StateView) -> None:
        self.base = base
        self.changes: dict[bytes, Account | None] = {}
        self.record_changes: dict[bytes, JobRecord | None] = {}

    def get_account(self, address: bytes) -> Account | None:
        if address in self.changes:
            return self.changes[address]
        return self.base.get_account(address)

    def get_job_record(self, offer_id: bytes) -> JobRecord | None:
        if offer_id in self.record_changes:
            return self.record_changes[offer_id]
        return self.base.get_job_record(offer_id)

    def set(self, address: bytes, account: Account | None) -> None:
        self.changes[address] = account

    def set_record(self, offer_id: bytes, record: JobRecord | None) -> None:
        self.record_changes[offer_id] = record


class DictView:
    """``StateView`` over plain dicts (genesis, replays)."""

    def __init__(self, accounts: dict[bytes, Account], records: dict[bytes, JobRecord] | None = None) -> None:
        self.accounts = accounts
        self.records = records if records is not None else {}

    def get_account(self, address: bytes) -> Account | None:
        return self.accounts.get(address)

    def get_job_record(self, offer_id: bytes) -> JobRecord | None:
        return self.records.get(offer_id)


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
