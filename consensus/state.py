"""State transition with undo data (docs/protocol.md sections 10 and 11).

State is ``address -> Account(balance, nonce)`` plus the live job records
``offer_id -> JobRecord`` of section 11. ``apply_block`` reads what it needs
through a ``StateView`` and returns a ``StateChange``: the new value of every
address and record it touched and the ``BlockUndo`` that restores the old ones
(``None`` = the address had no account, the record did not exist). It never
writes; the caller stores both in one batch.

Order inside a block: the signed transactions in block order (each sees the
state the ones before it left), then the coinbase credit. The coinbase is
credited last, so a miner cannot spend its own reward in the block that creates
it. In the genesis block every allocation record is credited.

Per transaction: the nonce must equal the sender's next nonce and the balance
must cover the fee plus what the transaction takes (a transfer's ``amount``;
an offer's ``reward + deposit``; a claim's ``bond``); the sender's nonce grows
by one and the fee is taken first. A transfer then moves ``amount`` to the
recipient (a transfer to oneself only costs the fee); a job transaction has the
effect of its row of section 11 (``consensus.jobmarket``), which may credit
the claimant or the client, burn, and create, change or delete a record. No
balance or nonce may leave u64: sums are exact Python integers, compared with
``2^64 - 1`` before anything is stored, never wrapped. ``StateChange.burned``
is what the block's job transactions burned (for the conservation check).

The minimum fee (``consensus.tx.validate_tx``, at least one base unit per
byte) is what keeps an unfunded key from creating a record here: its balance of
0 never covers the fee, so the checks refuse it before the sender's account (or
the recipient's) is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .errors import AmountOverflow, BadNonce, BlockTxInvalid, InsufficientBalance, InvalidTx
from .jobmarket import apply_job_tx
from .networks import NetworkParams
from .tx import U64_MAX, get_sender
from .types import Account, Block, Coinbase, JobRecord, Tx, TxBody


class AccountView(Protocol):
    """Read access to account state."""

    def get_account(self, address: bytes) -> Account | None:
        """The account of ``address``, or ``None`` if it has never been touched."""
        ...


class StateView(AccountView, Protocol):
    """Read access to accounts and live job records."""

    def get_job_record(self, offer_id: bytes) -> JobRecord | None:
        """The live record of ``offer_id``, or ``None`` (never offered, or final)."""
        ...


@dataclass(frozen=True)
class BlockUndo:
    """What disconnecting a block restores: the prior account of every address and record it touched."""

    entries: tuple[tuple[bytes, Account | None], ...]
    """``(address, account before the block or None)``, sorted by address."""
    records: tuple[tuple[bytes, JobRecord | None], ...] = ()
    """``(offer_id, record before the block or None)``, sorted by offer id."""


@dataclass(frozen=True)
class StateChange:
    """Result of applying one block."""

    accounts: tuple[tuple[bytes, Account], ...]
    """``(address, account after the block)`` for every touched address, sorted by address."""
    undo: BlockUndo
    records: tuple[tuple[bytes, JobRecord | None], ...] = ()
    """``(offer_id, record after the block, None when deleted)`` for every touched record, sorted."""
    burned: int = 0
    """Base units the block's job transactions burned."""


def check_transfer(tx: Tx, sender: Account) -> None:
    """Raise ``BadNonce`` or ``InsufficientBalance`` unless ``sender`` may send ``tx`` now (fee and amount)."""
    body = tx.body
    check_nonce(tx, sender)
    cost = body.fee + (body.amount if isinstance(body, TxBody) else 0)
    if sender.balance < cost:
        what = "amount + fee" if isinstance(body, TxBody) else "the fee"
        raise InsufficientBalance(f"expected a balance of at least {what} = {cost}, found {sender.balance}")


def check_nonce(tx: Tx, sender: Account) -> None:
    """Raise ``BadNonce`` unless ``tx`` carries the sender's next nonce."""
    body = tx.body
    if body.nonce != sender.nonce:
        raise BadNonce(f"expected nonce {sender.nonce}, found {body.nonce}", sender.nonce, body.nonce)
    if sender.nonce >= U64_MAX:
        raise AmountOverflow("the sender's nonce cannot grow past u64")


class StateOverlay:
    """Accounts and records read once from a view, then kept and changed in memory (a ``JobLedger``)."""

    def __init__(self, view: AccountView) -> None:
        self.view = view
        self.prior: dict[bytes, Account | None] = {}
        self.current: dict[bytes, Account] = {}
        self.prior_records: dict[bytes, JobRecord | None] = {}
        self.records: dict[bytes, JobRecord | None] = {}
        self.burned = 0

    def get(self, address: bytes) -> Account:
        if address not in self.current:
            prior = self.view.get_account(address)
            self.prior[address] = prior
            self.current[address] = prior if prior is not None else Account()
        return self.current[address]

    def balance(self, address: bytes) -> int:
        return self.get(address).balance

    def credit(self, address: bytes, amount: int) -> None:
        account = self.get(address)
        if account.balance + amount > U64_MAX:
            raise AmountOverflow(f"balance {account.balance} + {amount} does not fit in u64")
        self.current[address] = Account(account.balance + amount, account.nonce)

    def debit(self, address: bytes, amount: int) -> None:
        account = self.get(address)
        if account.balance < amount:  # checked by the caller; kept so a debit can never go negative
            raise InsufficientBalance(f"expected a balance of at least {amount}, found {account.balance}")
        self.current[address] = Account(account.balance - amount, account.nonce)

    def burn(self, amount: int) -> None:
        self.burned += amount

    def get_record(self, offer_id: bytes) -> JobRecord | None:
        if offer_id not in self.records:
            getter = getattr(self.view, "get_job_record", None)
            prior = getter(offer_id) if getter is not None else None
            self.prior_records[offer_id] = prior
            self.records[offer_id] = prior
        return self.records[offer_id]

    def set_record(self, offer_id: bytes, record: JobRecord | None) -> None:
        self.get_record(offer_id)
        self.records[offer_id] = record


def apply_tx(state: StateOverlay, tx: Tx, height: int, params: NetworkParams | None) -> None:
    """Apply one signed transaction to ``state``; raise its ``InvalidTx``."""
    sender_address = get_sender(tx)
    sender = state.get(sender_address)
    check_transfer(tx, sender)
    body = tx.body
    state.current[sender_address] = Account(sender.balance - body.fee, sender.nonce + 1)
    if isinstance(body, TxBody):
        state.debit(sender_address, body.amount)
        state.credit(body.to, body.amount)
        return
    if params is None:
        raise ValueError("applying a job transaction needs the network parameters")
    apply_job_tx(state, body, sender_address, height, params)


def apply_block(view: AccountView, block: Block, params: NetworkParams | None = None) -> StateChange:
    """Apply ``block`` on top of ``view``; raise ``BlockTxInvalid`` on a nonce, balance, record or overflow fault.

    Expects a block that passed ``consensus.validation.validate_block`` (or the
    genesis block). ``params`` is needed once a block holds a job transaction
    (its window and limits); ``view`` then also needs ``get_job_record``.
    """
    state = StateOverlay(view)
    height = block.height
    for index, tx in enumerate(block.transactions):
        if not isinstance(tx, Tx):
            continue
        try:
            apply_tx(state, tx, height, params)
        except InvalidTx as e:
            raise BlockTxInvalid(index, e) from e
    for index, tx in enumerate(block.transactions):
        if isinstance(tx, Coinbase):
            try:
                state.credit(tx.to, tx.amount)
            except InvalidTx as e:
                raise BlockTxInvalid(index, e) from e
    touched = sorted(state.current)
    offers = sorted(o for o in state.records if state.records[o] != state.prior_records[o])
    return StateChange(
        accounts=tuple((a, state.current[a]) for a in touched),
        undo=BlockUndo(tuple((a, state.prior[a]) for a in touched),
                       tuple((o, state.prior_records[o]) for o in offers)),
        records=tuple((o, state.records[o]) for o in offers),
        burned=state.burned,
    )
