"""What the RPC methods share: parameter schemas, block and transaction JSON, and rejection errors.

Conventions (the README's JSON-RPC reference says the same):
- hashes, ids and raw blocks/transactions are lowercase hex without ``0x``;
- amounts are integers in base units (1 coin = 10^8 base units), never floats;
- addresses are bech32m with the network's prefix;
- errors use the JSON-RPC reserved codes and the application codes of
  ``node.rpc.errors`` (``-5`` unknown block/address, ``-8`` bad parameter,
  ``-22`` undecodable bytes, ``-25`` block verification failed, ``-26``
  transaction rejected, ``-27`` already known).
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.address import decode_address, encode_address
from consensus.codec import encode_block, encode_transaction, encode_tx
from consensus.errors import AddressError, ConsensusError
from consensus.jobmarket import compute_offer_id
from consensus.tx import compute_tx_id, get_sender
from consensus.types import (
    JOB_KIND_NAMES,
    KIND_OFFER,
    Block,
    ClaimPayload,
    Coinbase,
    FraudPayload,
    JobTxBody,
    OfferPayload,
    Transaction,
    TxBody,
)

from ..chain import ChainService
from ..chainhandle import ChainHandle
from ..mempool import MempoolError
from ..rpc import errors as E
from ..rpc.errors import RpcError
from ..schema import IndexEntry

HEX32 = {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}
HEX = {"type": "string", "pattern": "^([0-9a-fA-F]{2})*$"}
ADDRESS = {"type": "string", "minLength": 1, "maxLength": 128}


def rejection(code: int, e: Exception) -> RpcError:
    """The RPC error for a refused block or transaction: ``<rule>: <what was expected and found>``.

    A consensus error's text already starts with its rule; a mempool error
    carries its reason apart from its message.
    """
    if isinstance(e, MempoolError):
        return RpcError(code, f"{e.reason}: {e}")
    if isinstance(e, ConsensusError):
        return RpcError(code, str(e))
    return RpcError(code, f"{type(e).__name__}: {e}")


class Addresses:
    """bech32m addresses of one network, both ways."""

    def __init__(self, hrp: str) -> None:
        self.hrp = hrp

    def encode(self, address: bytes) -> str:
        return encode_address(address, self.hrp)

    def decode(self, text: str) -> bytes:
        """The 20 address bytes, or ``RpcError(INVALID_ADDRESS_OR_KEY)``."""
        try:
            return decode_address(text, self.hrp)
        except (AddressError, ValueError) as e:
            raise RpcError(E.INVALID_ADDRESS_OR_KEY, f"invalid address {text!r}: {e}") from None


@dataclass(frozen=True)
class BlockPlace:
    """Where a stored block sits, read on the chain thread in one go."""

    block: Block
    entry: IndexEntry | None
    on_main: bool
    tip_height: int
    next_id: bytes | None


def place_block(chain: ChainService, block_id: bytes) -> BlockPlace | None:
    """The block ``block_id`` and its place in the chain (call it on the chain thread); None if unknown."""
    block = chain.get_block(block_id)
    if block is None:
        return None
    on_main = chain.is_main_chain(block_id)
    next_id = chain.get_block_id(block.height + 1) if on_main else None
    return BlockPlace(block, chain.get_entry(block_id), on_main, chain.height, next_id)


async def load_block(chain: ChainHandle, hash_hex: str) -> BlockPlace:
    """A stored block by id, or ``RpcError(INVALID_ADDRESS_OR_KEY)``."""
    block_id = bytes.fromhex(hash_hex)
    place = await chain.read(lambda c: place_block(c, block_id))
    if place is None:
        raise RpcError(E.INVALID_ADDRESS_OR_KEY, f"block {hash_hex} not found")
    return place


def block_json(place: BlockPlace, addresses: Addresses, verbosity: int) -> dict:
    block = place.block
    h = block.header
    p = h.pre
    entry = place.entry
    out = {
        "hash": h.block_id.hex(), "height": p.height, "version": p.version,
        "previousblockhash": p.prev_id.hex(), "tx_root": p.tx_root.hex(), "time": p.time,
        "target": f"{p.target:064x}", "nonce": p.nonce, "shape": {"m": p.m, "n": p.n, "k": p.k},
        "root_a": h.root_a.hex(), "root_b": h.root_b.hex(), "tile": [h.tile_i, h.tile_j],
        "confirmations": place.tip_height - p.height + 1 if place.on_main else 0,
        "chainwork": f"{entry.chain_work:064x}" if entry else None,
        "size": len(encode_block(block)),
        "certificate_bytes": len(block.certificate.encode()) if block.certificate else 0,
        "nextblockhash": place.next_id.hex() if place.next_id is not None else None,
    }
    if verbosity >= 2:
        out["tx"] = [tx_json(t, addresses) for t in block.transactions]
    else:
        out["tx"] = [compute_tx_id(t).hex() for t in block.transactions]
    return out


def tx_json(tx: Transaction, addresses: Addresses) -> dict:
    if isinstance(tx, Coinbase):
        return {"txid": compute_tx_id(tx).hex(), "type": "coinbase", "height": tx.height,
                "to": addresses.encode(tx.to), "amount": tx.amount, "hex": encode_transaction(tx).hex()}
    b = tx.body
    if not isinstance(b, TxBody):  # a kind beyond transfers: what every signed kind has
        return {"txid": compute_tx_id(tx).hex(), "type": f"kind-{b.kind}", "kind": b.kind,
                "from": addresses.encode(get_sender(tx)), "fee": b.fee, "nonce": b.nonce, "chain_id": b.chain_id,
                "hex": encode_transaction(tx).hex()}
    return {"txid": compute_tx_id(tx).hex(), "type": "transfer", "from": addresses.encode(get_sender(tx)),
            "to": addresses.encode(b.to), "amount": b.amount, "fee": b.fee, "nonce": b.nonce,
            "memo": b.memo.hex(), "chain_id": b.chain_id, "hex": encode_tx(tx).hex()}




def tx_fields(tx: Transaction, addresses: Addresses) -> dict:
    """A transaction as the explorer shows it, for any kind: the fields every kind shares, then its own.

    ``type`` names the kind (``coinbase``, ``transfer``, a job kind of
    ``JOB_KIND_NAMES``, or ``kind-<n>`` for a kind this view does not
    describe); ``kind`` is the first byte of a signed transaction (None for a
    coinbase). Fields a kind lacks are None, so a page can show one table for
    every kind and any extra field the server adds. A job transaction adds
    ``offer_id`` (an offer's is derived from its sender and nonce), ``job_id``
    (an offer carries it; other kinds name only the offer, so it is None here
    and the explorer fills it from its offer book) and its payload's fields.
    """
    if isinstance(tx, Coinbase):
        return {"txid": compute_tx_id(tx).hex(), "type": "coinbase", "kind": None, "from": None,
                "to": addresses.encode(tx.to), "amount": tx.amount, "fee": None, "nonce": None,
                "size": len(encode_transaction(tx))}
    b = tx.body
    sender = get_sender(tx)
    out = {"txid": compute_tx_id(tx).hex(), "type": f"kind-{b.kind}", "kind": b.kind,
           "from": addresses.encode(sender), "to": None, "amount": None, "fee": b.fee, "nonce": b.nonce,
           "size": len(encode_transaction(tx))}
    if isinstance(b, TxBody):
        out.update({"type": "transfer", "to": addresses.encode(b.to), "amount": b.amount, "memo": b.memo.hex(),
                    "memo_text": b.memo.decode("utf-8", "replace")})
    elif isinstance(b, JobTxBody) and b.kind in JOB_KIND_NAMES:
        out.update(job_fields(b, sender))
    return out


def job_fields(b: JobTxBody, sender: bytes) -> dict:
    """What a job transaction says beyond the shared fields: its kind's name, the offer and job ids, its payload."""
    out: dict = {"type": JOB_KIND_NAMES[b.kind]}
    p = b.payload
    if b.kind == KIND_OFFER and isinstance(p, OfferPayload):
        out.update({"offer_id": compute_offer_id(sender, b.nonce).hex(), "job_id": b.id.hex(),
                    "m": p.m, "k": p.k, "n": p.n, "root_a": p.root_a.hex(), "root_b": p.root_b.hex(),
                    "reward": p.reward, "deposit": p.deposit, "bond": p.bond, "deadline": p.deadline})
        return out
    out.update({"offer_id": b.id.hex(), "job_id": None})
    if isinstance(p, ClaimPayload):
        out["root_c"] = p.root_c.hex()
    elif isinstance(p, FraudPayload):
        out.update({"tile": [p.tile_i, p.tile_j], "k_p": len(p.a_blk) // 16,
                    "path_depths": [len(p.path_c), len(p.path_a), len(p.path_b)]})
    return out
