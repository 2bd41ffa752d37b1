"""Account state transition with undo data (docs/protocol.md section 10).

State is ``address -> Account(balance, nonce)``. ``apply_block`` reads what it
needs through an ``AccountView`` and returns a ``StateChange``: the new value of
every address it touched and the ``BlockUndo`` that restores the old ones
(``None`` = the address had no account). It never writes; the caller stores
both in one batch.

Order inside a block: the transfers in block order (each sees the state the
ones before it left), then the coinbase credit. The coinbase is credited last,
so a miner cannot spend its own reward in the block that creates it. In the
genesis block every allocation record is credited.

Per transfer (``check_transfer``): the nonce must equal the sender's next nonce
and the balance must cover ``amount + fee``; the sender's nonce then grows by
one and ``amount`` moves to the recipient (a transfer to oneself only costs the
fee). The fee goes to the miner through the coinbase amount. No balance or
nonce may leave u64: sums are exact Python integers, compared with ``2^64 - 1``
before anything is stored, never wrapped.

The minimum fee (``consensus.tx.validate_tx``, at least one base unit per
byte) is what keeps an unfunded key from creating a record here: its balance of
0 never covers the fee, so ``check_transfer`` refuses it before the sender's
account (or the recipient's) is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .errors import AmountOverflow, BadNonce, BlockTxInvalid, InsufficientBalance, InvalidTx
from .tx import U64_MAX, get_sender
from .types import Account, Block, Coinbase, Tx


class AccountView(Protocol):
    """Read access to account state."""

    def get_account(self, address: bytes) -> Account | None:
        """The account of ``address``, or ``None`` if it has never been touched."""
        ...


@dataclass(frozen=True)
class BlockUndo:
    """What disconnecting a block restores: the prior account of every address it touched."""

    entries: tuple[tuple[bytes, Account | None], ...]
    """``(address, account before the block or None)``, sorted by address."""


@dataclass(frozen=True)
class StateChange:
    """Result of applying one block."""

    accounts: tuple[tuple[bytes, Account], ...]
    """``(address, account after the block)`` for every touched address, sorted by address."""
    undo: BlockUndo


def check_transfer(tx: Tx, sender: Account) -> None:
    """Raise ``BadNonce`` or ``InsufficientBalance`` unless ``sender`` may send ``tx`` now."""
    body = tx.body
    if body.nonce != sender.nonce:
        raise BadNonce(f"expected nonce {sender.nonce}, found {body.nonce}", sender.nonce, body.nonce)
    if sender.nonce >= U64_MAX:
        raise AmountOverflow("the sender's nonce cannot grow past u64")
    if sender.balance < body.amount + body.fee:
        raise InsufficientBalance(
            f"expected a balance of at least amount + fee = {body.amount + body.fee}, found {sender.balance}"
        )


class _Overlay:
    """Accounts read once from a view, then kept and changed in memory."""

    def __init__(self, view: AccountView) -> None:
        self.view = view
        self.prior: dict[bytes, Account | None] = {}
        self.current: dict[bytes, Account] = {}

    def get(self, address: bytes) -> Account:
        if address not in self.current:
            prior = self.view.get_account(address)
            self.prior[address] = prior
            self.current[address] = prior if prior is not None else Account()
        return self.current[address]

    def credit(self, address: bytes, amount: int) -> None:
        account = self.get(address)
        if account.balance + amount > U64_MAX:
            raise AmountOverflow(f"balance {account.balance} + {amount} does not fit in u64")
        self.current[address] = Account(account.balance + amount, account.nonce)


def apply_block(view: AccountView, block: Block) -> StateChange:
    """Apply ``block`` on top of ``view``; raise ``BlockTxInvalid`` on a nonce, balance or overflow fault.

    Expects a block that passed ``consensus.validation.validate_block`` (or the
    genesis block).
    """
    state = _Overlay(view)
    for index, tx in enumerate(block.transactions):
        if not isinstance(tx, Tx):
            continue
        sender_address = get_sender(tx)
        try:
            sender = state.get(sender_address)
            check_transfer(tx, sender)
            state.current[sender_address] = Account(sender.balance - tx.body.amount - tx.body.fee, sender.nonce + 1)
            state.credit(tx.body.to, tx.body.amount)
        except InvalidTx as e:
            raise BlockTxInvalid(index, e) from e
    for index, tx in enumerate(block.transactions):
        if isinstance(tx, Coinbase):
            try:
                state.credit(tx.to, tx.amount)
            except InvalidTx as e:
                raise BlockTxInvalid(index, e) from e
    touched = sorted(state.current)
    return StateChange(
        accounts=tuple((a, state.current[a]) for a in touched),
        undo=BlockUndo(tuple((a, state.prior[a]) for a in touched)),
    )
