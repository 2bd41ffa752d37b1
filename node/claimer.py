"""The claim-key miner (PROTOCOL.md section 11, "the honest path"): claim computed paid jobs, serve, settle.

With ``--claim-key KEYSTORE --claim-passphrase-file FILE [--claim-index I]``
the node holds one key of a wallet keystore (wallet/keystore.py; the key is
never logged). After a paid job's product is computed (its miner, or a
``pouw-miner`` with ``submitmatmulresult``):

1. ``hold``: before the job is marked done, its result is withheld (no
   announcement), if an open offer carries the job;
2. ``claimed``: the job id is recomputed from the matrices' roots (those the
   node committed from the blobs) and must be the offer's; ``root_C`` of the
   product is computed, and a claim of the best open offer (highest reward)
   is sent to the mempool (and gossiped like any transaction), if the key's
   balance covers the bond and the fee. The product is held by
   ``ClaimProducts`` and served once the claim has ``claim_confirmations``;
   if no claim can be sent, the result is announced as it would be without a
   claim key;
3. ``on_tip``: the claimer's claims past their window (``tip + 1 > claim_height
   + W``, record still claimed) are settled, unless a settle of the offer is
   pending already; claims and settles of this key seen in connected blocks
   are counted (``getmininginfo``'s ``claim``).

Without a claim key, ``hold`` says no: paid jobs are mined and announced as
free ones. The tip handler still refreshes the offer index and serves held
products (uploads, peers' products) once their claims confirm.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Protocol

from consensus.address import encode_address
from consensus.errors import ConsensusError
from consensus.keys import KeyPair
from consensus.networks import NetworkParams
from consensus.tx import compute_min_fee, compute_tx_id, make_job_tx
from consensus.types import (
    KIND_CLAIM,
    KIND_OFFER,
    KIND_SETTLE,
    RECORD_CLAIMED,
    Block,
    ClaimPayload,
    JobRecord,
    JobTxBody,
    Tx,
)
from p2p.protocol import JobResultAnnouncement
from pouw.commit import commit_pair
from pouw.jobs import compute_job_id
from pouw.matrix import pad_pair

from .blobs import BlobError, load_matrix
from .claims import INDEX_LIMIT, ClaimError, ClaimProduct, ClaimProducts, OfferIndex, load_product, product_root
from .errors import StartupError
from .jobs import DONE, Job, JobError, JobService
from .mempoolqueue import MempoolError
from .snapshot import ChainSnapshot

log = logging.getLogger(__name__)
MAX_PASSPHRASE_BYTES = 4096
"""A passphrase file larger than this is refused unread (it is not a passphrase)."""
MAX_REMEMBERED = 4096
"""Txids of this node's own claims and settles remembered for the counts (oldest forgotten)."""


def load_claim_key(keystore: Path, passphrase_file: Path | None, index: int, network: str) -> KeyPair:
    """The key at ``index`` of a wallet keystore; ``StartupError`` with the reason otherwise (never the key)."""
    from wallet.hd import HDWallet
    from wallet.keystore import KeystoreError, WrongPassphrase, load

    if passphrase_file is None:
        raise StartupError("--claim-key needs --claim-passphrase-file FILE (the keystore's passphrase)")
    if not Path(keystore).is_file():
        raise StartupError(f"--claim-key: no keystore file at {keystore}")
    try:
        size = Path(passphrase_file).stat().st_size
        if size > MAX_PASSPHRASE_BYTES:
            raise StartupError(f"--claim-passphrase-file: {passphrase_file} is {size} bytes, more than a "
                               f"passphrase ({MAX_PASSPHRASE_BYTES} at most)")
        passphrase = Path(passphrase_file).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as e:
        raise StartupError(f"--claim-passphrase-file: cannot read {passphrase_file}: {e}") from None
    try:
        ks = load(Path(keystore))
        if ks.network != network:
            raise StartupError(f"--claim-key: keystore {keystore} is for {ks.network}, this node runs {network}")
        secret = ks.unlock(passphrase)
    except WrongPassphrase:
        raise StartupError(f"--claim-passphrase-file: wrong passphrase for keystore {keystore}") from None
    except KeystoreError as e:
        raise StartupError(f"--claim-key: cannot open keystore {keystore}: {e}") from None
    if not 0 <= index < 1 << 31:
        raise StartupError(f"--claim-index must be in [0, 2^31), found {index}")
    return HDWallet(secret.mnemonic, secret.bip39_passphrase, ks.account).keypair(index)


class ClaimMempool(Protocol):
    def pending_nonce(self, sender: bytes) -> int: ...

    def pending_cost(self, sender: bytes) -> int: ...

    def __contains__(self, tx_id: bytes) -> bool: ...


class ClaimTxs(Protocol):
    async def submit(self, tx: Tx, source: str) -> bytes: ...


def build_claim(key: KeyPair, params: NetworkParams, nonce: int, offer_id: bytes, root_c: bytes) -> Tx:
    """A claim of ``offer_id`` with ``root_c``, paying the minimum fee (its size is fixed)."""
    draft = make_job_tx(key, params.chain_id, nonce, KIND_CLAIM, offer_id, ClaimPayload(root_c), 0)
    return make_job_tx(key, params.chain_id, nonce, KIND_CLAIM, offer_id, ClaimPayload(root_c),
                       compute_min_fee(draft, params.min_fee_per_byte))


def build_settle(key: KeyPair, params: NetworkParams, nonce: int, offer_id: bytes) -> Tx:
    draft = make_job_tx(key, params.chain_id, nonce, KIND_SETTLE, offer_id, None, 0)
    return make_job_tx(key, params.chain_id, nonce, KIND_SETTLE, offer_id, None,
                       compute_min_fee(draft, params.min_fee_per_byte))


def best_offer(offers: list[tuple[bytes, JobRecord]], job: Job, roots: tuple[bytes, bytes], height: int
               ) -> tuple[bytes, JobRecord] | None:
    """The open offer to claim for ``job``: its job id recomputed from ``roots`` must be the offer's, its
    deadline not passed at the next block; the highest reward (then the lowest offer id)."""
    m, k, n = job.shape
    recomputed = compute_job_id(m, k, n, *roots)
    fit = [(o, r) for o, r in offers
           if r.job_id == recomputed and (r.m, r.k, r.n) == (m, k, n) and (r.root_a, r.root_b) == roots
           and height + 1 <= r.deadline]
    return min(fit, key=lambda x: (-x[1].reward, x[0])) if fit else None


class Claimer:
    """Claims, serves and settles for one claim key (or only serves, without one). Runs on the event loop."""

    def __init__(self, *, key: KeyPair | None, params: NetworkParams, snapshot: Callable[[], ChainSnapshot],
                 read_records: Callable[[int], Awaitable[list[tuple[bytes, JobRecord]]]], txs: ClaimTxs,
                 mempool: ClaimMempool, products: ClaimProducts, index: OfferIndex, jobs: JobService,
                 work: Executor) -> None:
        self.key = key
        self.params = params
        self.snapshot = snapshot
        self.read_records = read_records
        self.txs = txs
        self.mempool = mempool
        self.products = products
        self.index = index
        self.jobs = jobs
        self.work = work
        self.announce: Callable[[bytes], Awaitable[object]] | None = None
        """Sends a job-topic message to peers (set once the network runs)."""
        self.claims_sent = 0
        self.claims_won = 0
        self.settles_sent = 0
        self.settled = 0
        self._mine: dict[bytes, str] = {}
        """Txids of claims and settles this node sent -> ``"claim"`` / ``"settle"`` (counted when mined)."""
        self._settling: dict[bytes, bytes] = {}
        """Offer id -> txid of the settle sent for it."""
        self._tip_lock = asyncio.Lock()
        self._tasks: set[asyncio.Future] = set()

    @property
    def address(self) -> bytes | None:
        return None if self.key is None else self.key.address

    async def _work(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.work, fn, *args)

    def info(self) -> dict:
        """``getmininginfo``'s ``claim``."""
        return {"address": None if self.key is None else encode_address(self.key.address, self.params.hrp),
                "confirmations": self.products.confirmations, "claims_sent": self.claims_sent,
                "claims_won": self.claims_won, "settles_sent": self.settles_sent, "settled": self.settled,
                "products": self.products.counts()}

    # --- a product was computed ------------------------------------------------------------------

    async def hold(self, job: Job) -> bool:
        """Before ``job`` is marked done: withhold its result if this node will claim it (the index is read again
        first when it knows no open offer of the job: an offer mined a moment ago is not missed)."""
        if self.key is None:
            return False
        if not self.index.open_offers_for_job(bytes.fromhex(job.job_id)):
            await self.refresh()
            if not self.index.open_offers_for_job(bytes.fromhex(job.job_id)):
                return False
        self.products.hold_job(bytes.fromhex(job.job_id))
        return True

    async def claimed(self, job: Job, roots: tuple[bytes, bytes] | None = None) -> bytes | None:
        """After a held job is done: send the claim and hold the product (else release it); the claim's txid."""
        job_id = bytes.fromhex(job.job_id)
        try:
            return await self._claim(job, roots)
        except (ClaimError, BlobError, JobError, MempoolError, ConsensusError) as e:
            log.warning("job %s: no claim sent: %s", job.job_id[:16], e)
            return None
        finally:
            self.products.release_job(job_id)
            if self.products.withholds_job(job_id) is False:
                await self._announce_job(job)

    async def release(self, job: Job) -> None:
        """A held job took no product after all (a pouw-miner's was refused): stop withholding its result."""
        job_id = bytes.fromhex(job.job_id)
        self.products.release_job(job_id)
        if not self.products.withholds_job(job_id):
            await self._announce_job(job)

    async def _claim(self, job: Job, roots: tuple[bytes, bytes] | None) -> bytes | None:
        if self.key is None or job.status != DONE or job.result is None:
            return None
        if roots is None:  # recompute the roots from the blobs (a pouw-miner's product)
            roots = await self._work(self._roots_of, job)
        height = self.snapshot().height
        choice = best_offer(self.index.open_offers_for_job(bytes.fromhex(job.job_id)), job, roots, height)
        if choice is None:
            raise ClaimError("not-found", "no open offer whose job id the matrices give (or all past deadline)")
        offer_id, rec = choice
        data = await self._work(self.jobs.blobs.get, job.result["c"])
        c = load_product(data, (rec.m, rec.n))
        root_c = await self._work(product_root, c, rec)
        me = self.key.address
        nonce = self.mempool.pending_nonce(me)
        tx = build_claim(self.key, self.params, nonce, offer_id, root_c)
        balance = self.snapshot().get_account(me).balance - self.mempool.pending_cost(me)
        if balance < rec.bond + tx.body.fee:
            raise ClaimError("full", f"the claim key's spendable balance {balance} does not cover the bond "
                             f"{rec.bond} plus the fee {tx.body.fee}")
        product = ClaimProduct(offer_id, rec.job_id, job.result["c"], bytes.fromhex(job.result["c_blake3"]),
                               root_c, rec.m, rec.n, len(data), True,
                               "mined" if job.result.get("computed_by") == "this node" else "miner",
                               self.products.clock(), claimant=me)
        self.products.add(product)
        try:
            txid = await self.txs.submit(tx, "miner")
        except BaseException:
            self.products.drop(offer_id)
            raise
        self._remember(txid, "claim")
        self.claims_sent += 1
        log.info("job %s: claimed offer %s (claim %s)", job.job_id[:16], offer_id.hex()[:16], txid.hex()[:16])
        return txid

    def _roots_of(self, job: Job) -> tuple[bytes, bytes]:
        a = load_matrix(self.jobs.blobs.get(job.a), "A")
        b = load_matrix(self.jobs.blobs.get(job.b), "B")
        c = commit_pair(*pad_pair(a, b))
        return c.root_a, c.root_b

    async def _announce_job(self, job: Job) -> None:
        """Announce a done job's result, as a node without a claim key does."""
        try:
            job = self.jobs.get(job.job_id)
        except JobError:
            return
        if job.status == DONE and job.result is not None and self.announce is not None:
            await self.announce(JobResultAnnouncement(bytes.fromhex(job.job_id), bytes.fromhex(job.result["c"]),
                                                      bytes.fromhex(job.result["c_blake3"]), 0).encode())

    async def _announce_product(self, p: ClaimProduct) -> None:
        if self.announce is not None:
            await self.announce(JobResultAnnouncement(p.job_id, bytes.fromhex(p.blob), p.h_c, 0).encode())

    # --- the chain moved ----------------------------------------------------------------------

    async def refresh(self) -> None:
        """Read the live records into the index (start-up and every tip change)."""
        snap = self.snapshot()
        self.index.refresh(await self.read_records(INDEX_LIMIT), snap.height)

    def tip_moved(self, connected: tuple[Block, ...], disconnected: tuple[Block, ...],
                  snapshot: ChainSnapshot) -> None:
        """The ``TipMoved`` handler: ``on_tip`` in the background, one at a time, in order (a block's
        submission does not wait for the index to be read again)."""
        task = asyncio.ensure_future(self._on_tip_in_order(connected, disconnected, snapshot))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_tip_in_order(self, connected: tuple[Block, ...], disconnected: tuple[Block, ...],
                               snapshot: ChainSnapshot) -> None:
        async with self._tip_lock:
            try:
                await self.on_tip(connected, disconnected, snapshot)
            except Exception:
                log.exception("claims: handling the new tip failed")

    async def close(self) -> None:
        """Stop the background tip handling (the node is stopping)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _remember(self, txid: bytes, kind: str) -> None:
        self._mine[txid] = kind
        while len(self._mine) > MAX_REMEMBERED:
            del self._mine[next(iter(self._mine))]

    async def on_tip(self, connected: tuple[Block, ...], disconnected: tuple[Block, ...],
                     snapshot: ChainSnapshot) -> None:
        await self.refresh()
        for block in connected:
            for tx in block.signed:
                kind = self._mine.get(compute_tx_id(tx))
                if kind == "claim":
                    self.claims_won += 1
                elif kind == "settle":
                    self.settled += 1
        for block in disconnected:
            for tx in block.signed:
                kind = self._mine.get(compute_tx_id(tx))
                if kind == "claim":
                    self.claims_won -= 1
                elif kind == "settle":
                    self.settled -= 1
        await self._claim_done_jobs(connected)
        served, gone = await self._work(self.products.update, snapshot.get_job_record, snapshot.height)
        for p in served:
            log.info("offer %s: claim confirmed, product %s served", p.offer_id.hex()[:16], p.blob[:16])
            await self._announce_product(p)
        for p in gone:
            log.info("offer %s: claim lost or offer gone; the product is announced as a plain result",
                     p.offer_id.hex()[:16])
            await self._announce_product(p)
        await self._settle(snapshot)

    async def _claim_done_jobs(self, connected: tuple[Block, ...]) -> None:
        """Offers for jobs this node has done already (a free job paid for afterwards, the same matrices
        offered again): claim them with the product at hand, as for a job mined now (any computation of C
        may claim, section 11). The roots are recomputed from the blobs first, as always."""
        if self.key is None:
            return
        offered = {tx.body.id for block in connected for tx in block.signed
                   if isinstance(tx.body, JobTxBody) and tx.body.kind == KIND_OFFER}
        for job_id in offered:
            try:
                job = self.jobs.get(job_id.hex())
            except JobError:
                continue
            if job.status != DONE or job.result is None:
                continue  # mined later: ``hold`` and ``claimed`` take it
            if all(self.products.get(o) is not None for o, _ in self.index.open_offers_for_job(job_id)):
                continue  # claimed (or held) already: a block seen again after a reorg sends nothing new
            try:
                await self._claim(job, None)
            except (ClaimError, BlobError, JobError, MempoolError, ConsensusError) as e:
                log.info("job %s: offered after it was done; no claim sent: %s", job.job_id[:16], e)

    async def _settle(self, snapshot: ChainSnapshot) -> None:
        if self.key is None:
            return
        window = self.params.job_window
        for offer_id, rec in self.index.claimed_by(self.key.address):
            if rec.status != RECORD_CLAIMED or not snapshot.height + 1 > rec.claim_height + window:
                continue
            pending = self._settling.get(offer_id)
            if pending is not None and pending in self.mempool:
                continue
            tx = build_settle(self.key, self.params, self.mempool.pending_nonce(self.key.address), offer_id)
            try:
                txid = await self.txs.submit(tx, "miner")
            except (MempoolError, ConsensusError) as e:
                log.info("offer %s: settle not sent: %s", offer_id.hex()[:16], e)
                continue
            self._settling[offer_id] = txid
            self._remember(txid, "settle")
            self.settles_sent += 1
            log.info("offer %s: settle sent (%s)", offer_id.hex()[:16], txid.hex()[:16])
        live = {o for o, _ in self.index.claimed_by(self.key.address)}
        for offer_id in [o for o in self._settling if o not in live]:
            del self._settling[offer_id]
