"""docs/p2p.md is the wire spec a foreign peer implements from: hold it to the code.

- Every test vector (a fenced block whose first line is ``vector: NAME``, hex on
  the following lines) decodes with the project's decoders and re-encodes to the
  same bytes, and equals what the project's own encoders build again from the
  doc's mined block: the vectors cannot drift from the code.
- The mined block is a valid devnet block 1 (certificate checked), and a node
  holding it answers the doc's request vectors with exactly the doc's response
  vectors (the request handlers ``PeerNetwork`` registers on its host).
- Every row of the constants table (section "Constants") equals the code's
  value, and every constant this test knows is in the table.

Regenerate the vectors section (mines block 1 again, about 2 s of CPU):
``.venv/bin/python -m tests.unit.p2p.test_wire_doc``.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import numpy as np
import pytest
from blake3 import blake3

from consensus.codec import (
    COINBASE_SIZE,
    TX_FIXED_SIZE,
    TX_MIN_SIZE,
    decode_block,
    decode_header,
    decode_tx,
    encode_block,
    encode_header,
    encode_tx,
)
from consensus.genesis import make_genesis_block
from consensus.keys import devnet_keypairs
from consensus.networks import DEVNET, NETWORKS
from consensus.tx import compute_sighash, compute_tx_id, is_signature_valid, make_transfer
from consensus.types import Block, Coinbase, Tx
from consensus.validation import make_parent_info, validate_block
from kernels.base import prepare
from node import app as node_app
from node import jobrelay, mempool, netadapter
from node.blobs import encode_npy
from node.chain import BlockStatus, ChainService
from node.config import DEFAULT_PORTS, NodeConfig
from p2p import identity, network, orphans, scoring
from p2p import protocol as p
from p2p.network import PeerNetwork
from p2p.scoring import Offence, ScoreBook
from p2p.types import Verdict
from pouw.constants import HEADER_PRE_SIZE, HEADER_SIZE
from pouw.hashing import H
from pouw.header import compute_work
from pouw.jobs import compute_job_id, product_hash
from pouw.matrix import pad_pair
from tests.support.chainaccess import ChainServiceAccess
from tests.support.memstore import MemoryStore

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "p2p.md"
PEER = "12D3KooWPeerOfTheWireDocTest"

# --- what the vectors are made of ---------------------------------------------------------------

BLOCK_TIME = DEVNET.genesis_time + DEVNET.block_spacing
"""Block 1 of the vectors: one spacing after the devnet genesis."""
MEMO = b"docs/p2p.md"
JOB_A = np.array([[1, -2, 3], [-4, 5, -6]], dtype=np.int8)
JOB_B = np.array([[7, -8], [9, 10], [-11, 12]], dtype=np.int8)
JOB_ROUND = 1
"""The job announcement vector is the first re-announcement."""
UNKNOWN_ID = bytes([0xEE]) * 32
"""A block id nobody has (second entry of the blocks-by-id request)."""

VECTOR_NAMES = (
    "block_full", "block_header_only", "tx_batch", "job_announcement", "job_result",
    "status_request", "status_response", "headers_request", "headers_response",
    "blocks_request", "blocks_response", "blob_request", "blob_response",
)


def transfer() -> Tx:
    """5 coins from devnet key 0 (nonce 0) to devnet key 1, fee 1000, with a memo."""
    k0, k1 = devnet_keypairs(2)
    return make_transfer(k0, DEVNET.chain_id, 0, k1.address, 5 * 10**8, 1000, MEMO)


def mine_block() -> Block:
    """Devnet block 1 carrying ``transfer()``, mined for real (numpy backend, fixed matrices)."""
    from tests.support.blockgen import BlockMaker

    genesis = make_genesis_block(DEVNET)
    miner = devnet_keypairs(1)[0].address
    return BlockMaker(DEVNET).mine(make_parent_info(genesis.header), BLOCK_TIME, miner, [transfer()])


def job_parts() -> dict[str, bytes | int]:
    a_npy, b_npy = encode_npy(JOB_A), encode_npy(JOB_B)
    m, k = JOB_A.shape
    n = JOB_B.shape[1]
    commitment = prepare(*pad_pair(JOB_A, JOB_B)).commitment
    c = (JOB_A.astype(np.int32) @ JOB_B.astype(np.int32)).astype(np.int32)
    return {"a_npy": a_npy, "blob_b": H(b_npy), "job_id": compute_job_id(m, k, n, commitment.root_a, commitment.root_b),
            "m": m, "k": k, "n": n, "blob_c": H(encode_npy(c)), "c_blake3": product_hash(c)}


def build_vectors(block: Block) -> dict[str, bytes]:
    """Every vector, from the project's encoders, given block 1 (mining is the only slow part)."""
    raw = encode_block(block)
    header = raw[:HEADER_SIZE]
    block_id = block.header.block_id
    genesis = make_genesis_block(DEVNET)
    gid = genesis.header.block_id
    genesis_work = compute_work(genesis.header.pre.target)
    job = job_parts()
    a_npy = job["a_npy"]
    return {
        "block_full": p.BlockAnnouncement.for_block(raw).encode(),
        "block_header_only": p.BlockAnnouncement(False, header).encode(),
        "tx_batch": p.encode_tx_batch([encode_tx(transfer())]),
        "job_announcement": p.JobAnnouncement(job["job_id"], H(a_npy), job["blob_b"], job["m"], job["k"],
                                              job["n"], JOB_ROUND).encode(),
        "job_result": p.JobResultAnnouncement(job["job_id"], job["blob_c"], job["c_blake3"], 0).encode(),
        # A node that holds only its genesis block asks one that holds block 1.
        "status_request": p.Status(DEVNET.chain_id, gid, gid, 0, genesis_work).encode(),
        "status_response": p.Status(DEVNET.chain_id, gid, block_id, 1,
                                    genesis_work + compute_work(block.header.pre.target)).encode(),
        "headers_request": p.encode_headers_request([gid], p.MAX_HEADERS),
        "headers_response": p.encode_headers_response([header]),
        "blocks_request": p.encode_blocks_request([block_id, UNKNOWN_ID]),
        "blocks_response": p.encode_blocks_response([raw, None]),
        "blob_request": p.encode_blob_request(H(a_npy), 0),
        "blob_response": p.encode_blob_page(a_npy, 0),
    }


def vectors_markdown(vectors: dict[str, bytes], width: int = 96) -> str:
    out = []
    for name in VECTOR_NAMES:
        hexed = vectors[name].hex()
        lines = [hexed[i:i + width] for i in range(0, len(hexed), width)]
        out.append("```\nvector: " + name + "\n" + "\n".join(lines) + "\n```")
    return "\n\n".join(out)


# --- reading the doc ----------------------------------------------------------------------------


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def doc_vectors() -> dict[str, bytes]:
    """``{name: bytes}`` of every fenced ``vector: NAME`` block (hex lines joined)."""
    out: dict[str, bytes] = {}
    for body in re.findall(r"^```[^\n]*\n(.*?)^```", doc_text(), flags=re.S | re.M):
        lines = body.strip().splitlines()
        if not lines or not lines[0].startswith("vector:"):
            continue
        name = lines[0].split(":", 1)[1].strip()
        assert name not in out, f"vector {name} appears twice"
        out[name] = bytes.fromhex("".join(line.strip() for line in lines[1:]))
    return out


def doc_constants() -> dict[str, str]:
    """``{name: value}`` of the table rows of the section whose heading says "Constants"."""
    text = doc_text()
    match = re.search(r"^## [^\n]*Constants[^\n]*\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert match, "docs/p2p.md has no '## ... Constants' section"
    out: dict[str, str] = {}
    for line in match.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue  # not a row, or the header / separator row
        name, value = cells[0].strip("`"), cells[1].strip("`")
        assert name not in out, f"constant {name} appears twice"
        out[name] = value
    return out


def parse_value(text: str) -> object:
    if text in ("true", "false"):
        return text == "true"
    if text == "ban":
        return None
    for cast in (int, float):
        try:
            return cast(text.replace(",", "_"))
        except ValueError:
            pass
    return text


# --- what the code says -------------------------------------------------------------------------


def _call_kwargs(path: Path, callee: str) -> dict[str, object]:
    """Literal keyword arguments of the (single) call of ``callee`` in ``path``."""
    calls = [n for n in ast.walk(ast.parse(path.read_text()))
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == callee]
    assert len(calls) == 1, f"{path.name}: expected one call of {callee}, found {len(calls)}"
    out: dict[str, object] = {}
    for kw in calls[0].keywords:
        if kw.arg is None:
            continue
        try:
            out[kw.arg] = ast.literal_eval(kw.value)
        except ValueError:
            out[kw.arg] = ast.unparse(kw.value)
    return out


def _default(fn: object, name: str) -> object:
    return inspect.signature(fn).parameters[name].default  # type: ignore[arg-type]


def code_constants() -> dict[str, object]:
    from libp2p.pubsub.gossipsub import GossipSub
    from libp2p.pubsub.pubsub import Pubsub

    from p2p import host

    gossipsub = _call_kwargs(ROOT / "p2p" / "host.py", "GossipSub")
    pubsub = _call_kwargs(ROOT / "p2p" / "host.py", "Pubsub")
    pouwd_host = _call_kwargs(ROOT / "node" / "app.py", "P2PHost")
    pouwd_book = _call_kwargs(ROOT / "node" / "app.py", "ScoreBook")
    pouwd_net = _call_kwargs(ROOT / "node" / "app.py", "PeerNetwork")
    rr = host.P2PHost(seed=bytes(32))._rr_config(1.0)
    meshsub = {"MESHSUB_V12": host.MESHSUB_V12, "MESHSUB_V11": host.MESHSUB_V11, "MESHSUB_V10": host.MESHSUB_V10}
    offered = " ".join(meshsub[name.strip()] for name in str(gossipsub["protocols"]).strip("[]").split(","))

    def gs(name: str) -> object:
        return gossipsub.get(name, _default(GossipSub.__init__, name))

    def net(name: str) -> object:
        assert name not in pouwd_net, f"pouwd passes {name} to PeerNetwork: the table shows the default"
        return _default(PeerNetwork.__init__, name)

    def host_default(name: str) -> object:
        assert name not in pouwd_host, f"pouwd passes {name} to P2PHost: the table shows the default"
        return _default(host.P2PHost.__init__, name)

    book = ScoreBook(None)
    values: dict[str, object] = {
        # sizes and caps
        "MAX_GOSSIP_BYTES": p.MAX_GOSSIP_BYTES,
        "PUBSUB_RPC_FRAME_BYTES": {"DefaultMaxMessageSize": host.DefaultMaxMessageSize}.get(
            str(pubsub["max_inbound_rpc_size"]), pubsub["max_inbound_rpc_size"]),
        "MAX_REQUEST_BYTES": p.MAX_REQUEST_BYTES,
        "MAX_RESPONSE_BYTES": p.MAX_RESPONSE_BYTES,
        "MAX_PAGE_BYTES": p.MAX_PAGE_BYTES,
        "MAX_HEADERS": p.MAX_HEADERS,
        "MAX_IDS": p.MAX_IDS,
        "MAX_LOCATOR": p.MAX_LOCATOR,
        "BLOB_CHUNK_BYTES": p.BLOB_CHUNK_BYTES,
        "MAX_TX_BATCH": p.MAX_TX_BATCH,
        "STATUS_SIZE": p.STATUS_SIZE,
        "JOB_ANNOUNCEMENT_SIZE": p.JOB_ANNOUNCEMENT_SIZE,
        "JOB_RESULT_SIZE": p.JOB_RESULT_SIZE,
        "BLOCK_FULL": p.BLOCK_FULL,
        "BLOCK_HEADER_ONLY": p.BLOCK_HEADER_ONLY,
        "HEADER_SIZE": HEADER_SIZE,
        "HEADER_PRE_SIZE": HEADER_PRE_SIZE,
        "TX_FIXED_SIZE": TX_FIXED_SIZE,
        "TX_MIN_SIZE": TX_MIN_SIZE,
        "COINBASE_SIZE": COINBASE_SIZE,
        # libp2p
        "LIBP2P_VERSION": host.LIBP2P_VERSION,
        "SECURITY_PROTOCOL": host.NOISE_ID,
        "MUXER_PROTOCOL": host.YAMUX_ID,
        "GOSSIPSUB_PROTOCOLS": offered,
        "GOSSIPSUB_D": gossipsub["degree"],
        "GOSSIPSUB_D_LOW": gossipsub["degree_low"],
        "GOSSIPSUB_D_HIGH": gossipsub["degree_high"],
        "GOSSIPSUB_GOSSIP_WINDOW": gs("gossip_window"),
        "GOSSIPSUB_GOSSIP_HISTORY": gs("gossip_history"),
        "GOSSIPSUB_FANOUT_TTL_SECONDS": gs("time_to_live"),
        "GOSSIPSUB_PRUNE_BACKOFF_SECONDS": gs("prune_back_off"),
        "GOSSIPSUB_PEER_EXCHANGE": gs("do_px"),
        "HEARTBEAT_SECONDS": host_default("heartbeat_interval"),
        "SEEN_TTL_SECONDS": pubsub.get("seen_ttl", _default(Pubsub.__init__, "seen_ttl")),
        "STRICT_SIGNING": pubsub["strict_signing"],
        "VALIDATION_TIMEOUT_SECONDS": host_default("validation_timeout"),
        "HANDLER_TIMEOUT_SECONDS": host_default("handler_timeout"),
        "MAX_CONNECTIONS": NodeConfig().max_connections,  # pouwd's --max-connections default
        "OUTBOUND_SLOTS": NodeConfig().outbound_slots,
        "MAX_INBOUND_PER_IP": NodeConfig().max_inbound_per_ip,
        "MAX_CONCURRENT_INBOUND": rr.max_concurrent_inbound,
        # the node's behaviour
        "REQUEST_TIMEOUT_SECONDS": net("request_timeout"),
        "STATUS_INTERVAL_SECONDS": net("status_interval"),
        "TX_BATCH_DELAY_SECONDS": net("tx_batch_delay"),
        "BODY_CHUNK": net("body_chunk"),
        "PARALLEL_FETCHES": net("parallel_fetches"),
        "MAX_PENDING_ORPHANS": net("max_pending_orphans"),
        "MAX_PENDING_ORPHAN_BYTES": orphans.MAX_PENDING_ORPHAN_BYTES,
        "MAX_ORPHANS_PER_PEER": orphans.MAX_ORPHANS_PER_PEER,
        "MAX_ORPHAN_BYTES_PER_PEER": orphans.MAX_ORPHAN_BYTES_PER_PEER,
        "MAX_ORPHAN_CHECKS": netadapter.MAX_ORPHAN_CHECKS,
        "MAX_ORPHAN_CHECKS_PER_PEER": orphans.MAX_ORPHAN_CHECKS_PER_PEER,
        "MAX_ORPHAN_CHECKS_WAITING": orphans.MAX_ORPHAN_CHECKS_WAITING,
        "MAX_KNOWN_BLOCKS": network.MAX_KNOWN_BLOCKS,
        "FREE_DUPLICATE_SECONDS": network.FREE_DUPLICATE_SECONDS,
        "MAX_TX_BACKLOG": network.MAX_TX_BACKLOG,
        "MAX_TX_BACKLOG_PER_PEER": network.MAX_TX_BACKLOG_PER_PEER,
        "MAX_TX_BACKLOG_BYTES": network.MAX_TX_BACKLOG_BYTES,
        "MAX_TX_BACKLOG_BYTES_PER_PEER": network.MAX_TX_BACKLOG_BYTES_PER_PEER,
        "BAN_GRACE_SECONDS": net("ban_grace"),
        "MAX_BLOB_BYTES": NodeConfig().max_blob_bytes if pouwd_net.get("max_blob_bytes") == "config.max_blob_bytes"
        else pouwd_net.get("max_blob_bytes"),
        "MAX_FETCHES": netadapter.MAX_FETCHES,
        "MAX_FETCHES_PER_PEER": netadapter.MAX_FETCHES_PER_PEER,
        "FETCH_ATTEMPTS": netadapter.FETCH_ATTEMPTS,
        "FETCH_BACKOFF_SECONDS": netadapter.FETCH_BACKOFF,
        "MEMPOOL_MAX_GAP": mempool.MAX_GAP,
        "JOB_FIRST_RETRY_SECONDS": _default(jobrelay.JobRelay.__init__, "first_retry"),
        "JOB_MAX_RETRY_SECONDS": _default(jobrelay.JobRelay.__init__, "max_retry"),
        "JOB_RESULT_GAP_SECONDS": _default(jobrelay.JobRelay.__init__, "result_gap"),
        # scores and bans
        "BAN_THRESHOLD": pouwd_book.get("ban_threshold", book.ban_threshold),
        "BAN_SECONDS": pouwd_book.get("default_ban_seconds", book.default_ban_seconds),
        "SCORE_BAN_SECONDS": pouwd_book.get("score_ban_seconds", book.score_ban_seconds),
        "RECOVERY_PER_SECOND": pouwd_book.get("recovery_per_second", book.recovery_per_second),
        "BAN_FILE": scoring.BAN_FILE,
        "NODE_KEY_FILE": identity.KEY_FILE,
    }
    for offence in Offence:
        values[f"Offence.{offence.name}"] = offence.points
    for name, params in NETWORKS.items():
        genesis = make_genesis_block(params)
        values[f"{name}.chain_id"] = params.chain_id
        values[f"{name}.p2p_port"] = DEFAULT_PORTS[name][1]
        values[f"{name}.genesis_id"] = genesis.header.block_id.hex()
        values[f"{name}.genesis_work"] = compute_work(genesis.header.pre.target)
        values[f"{name}.max_block_size"] = params.max_block_size
        values[f"{name}.max_tx_count"] = params.max_tx_count
        values[f"{name}.max_memo"] = params.max_memo
    return values


# --- the tests ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vectors() -> dict[str, bytes]:
    return doc_vectors()


@pytest.fixture(scope="module")
def block(vectors: dict[str, bytes]) -> Block:
    return decode_block(p.BlockAnnouncement.decode(vectors["block_full"]).data)


def test_the_doc_has_every_vector_once(vectors):
    assert sorted(vectors) == sorted(VECTOR_NAMES)


def test_the_block_is_a_valid_devnet_block_1_with_the_transfer(block):
    genesis = make_genesis_block(DEVNET)
    assert block.header.pre.height == 1 and block.header.pre.prev_id == genesis.header.block_id
    assert block.header.pre.time == BLOCK_TIME
    validate_block(block, make_parent_info(genesis.header), DEVNET, BLOCK_TIME)  # certificate included
    coinbase, tx = block.transactions
    assert isinstance(coinbase, Coinbase) and tx == transfer()


def test_every_vector_is_what_the_encoders_build(vectors, block):
    assert build_vectors(block) == vectors


def test_gossip_vectors_round_trip(vectors, block):
    raw = vectors["block_full"]
    ann = p.BlockAnnouncement.decode(raw)
    assert ann.full and ann.encode() == raw and raw[0] == p.BLOCK_FULL
    assert encode_block(decode_block(ann.data)) == ann.data == encode_block(block)
    assert len(raw) <= p.MAX_GOSSIP_BYTES

    raw = vectors["block_header_only"]
    ann = p.BlockAnnouncement.decode(raw)
    assert not ann.full and ann.encode() == raw and raw[0] == p.BLOCK_HEADER_ONLY and len(raw) == 1 + HEADER_SIZE
    assert encode_header(decode_header(ann.header)) == ann.header == encode_header(block.header)

    raw = vectors["tx_batch"]
    (tx_raw,) = p.decode_tx_batch(raw)
    assert p.encode_tx_batch([tx_raw]) == raw and encode_tx(decode_tx(tx_raw)) == tx_raw
    assert is_signature_valid(decode_tx(tx_raw)) and len(tx_raw) == TX_MIN_SIZE + len(MEMO)

    raw = vectors["job_announcement"]
    job = p.decode_job_message(raw)
    assert isinstance(job, p.JobAnnouncement) and job.encode() == raw and len(raw) == p.JOB_ANNOUNCEMENT_SIZE
    assert (job.m, job.k, job.n, job.round) == (*JOB_A.shape, JOB_B.shape[1], JOB_ROUND)

    raw = vectors["job_result"]
    result = p.decode_job_message(raw)
    assert isinstance(result, p.JobResultAnnouncement) and result.encode() == raw
    assert len(raw) == p.JOB_RESULT_SIZE and result.job_id == job.job_id


def test_request_and_response_vectors_round_trip(vectors):
    for name in ("status_request", "status_response"):
        assert p.Status.decode(vectors[name]).encode() == vectors[name]
        assert len(vectors[name]) == p.STATUS_SIZE

    locator, max_count = p.decode_headers_request(vectors["headers_request"])
    assert p.encode_headers_request(locator, max_count) == vectors["headers_request"]
    headers = p.decode_headers_response(vectors["headers_response"])
    assert p.encode_headers_response(headers) == vectors["headers_response"]
    assert [encode_header(decode_header(h)) for h in headers] == headers

    ids = p.decode_blocks_request(vectors["blocks_request"])
    assert p.encode_blocks_request(ids) == vectors["blocks_request"]
    entries = p.decode_blocks_response(vectors["blocks_response"], len(ids))
    assert p.encode_blocks_response(entries) == vectors["blocks_response"]
    assert entries[1] is None and encode_block(decode_block(entries[0])) == entries[0]

    digest, offset = p.decode_blob_request(vectors["blob_request"])
    assert p.encode_blob_request(digest, offset) == vectors["blob_request"]
    chunk = p.decode_blob_response(vectors["blob_response"])
    assert chunk is not None and p.encode_blob_response(chunk) == vectors["blob_response"]
    assert chunk.total == len(chunk.data) and H(chunk.data) == digest


class _StubHost:
    """Just enough of ``P2PHost`` for ``PeerNetwork`` to register its handlers on."""

    def __init__(self) -> None:
        self.topics: dict[str, object] = {}
        self.handlers: dict[str, object] = {}
        self.running = False

    def set_gater(self, gater: object) -> None:
        pass

    def subscribe(self, topic: str, handler: object) -> None:
        self.topics[topic] = handler

    def set_request_handler(self, protocol: str, handler: object) -> None:
        self.handlers[protocol] = handler

    def on_peer_connected(self, fn: object) -> None:
        pass

    def on_peer_disconnected(self, fn: object) -> None:
        pass


def _node(*blocks: Block) -> tuple[_StubHost, PeerNetwork, ChainServiceAccess, ScoreBook]:
    chain = ChainService(MemoryStore(), DEVNET, clock=lambda: BLOCK_TIME + 60)
    for b in blocks:
        assert chain.submit_block(b).status == BlockStatus.CONNECTED
    a_npy = encode_npy(JOB_A)
    access = ChainServiceAccess(chain, blobs={H(a_npy).hex(): a_npy})
    host, book = _StubHost(), ScoreBook(None)
    net = PeerNetwork(host, access, chain_id=DEVNET.chain_id, genesis_id=chain.genesis_id,  # type: ignore[arg-type]
                      scoring=book)
    return host, net, access, book


async def test_a_node_holding_block_1_answers_the_requests_with_the_responses(vectors, block):
    host, _, _, book = _node(block)
    ids = p.protocol_ids(DEVNET.chain_id)
    for protocol, name in ((ids.status, "status"), (ids.headers, "headers"), (ids.blocks_by_id, "blocks"),
                           (ids.blob, "blob")):
        answer = await host.handlers[protocol](PEER, vectors[f"{name}_request"])
        assert answer == vectors[f"{name}_response"], name
    assert book.score(PEER) == 0 and not book.is_banned(PEER)


async def test_a_fresh_node_takes_the_gossip_vectors_and_calls_a_bare_tx_malformed(vectors):
    host, net, access, book = _node()
    ids = p.protocol_ids(DEVNET.chain_id)
    assert net.our_status().encode() == vectors["status_request"]  # a node with only its genesis block
    assert await host.topics[ids.blocks](PEER, vectors["block_full"]) is Verdict.ACCEPT
    assert access.chain.height == 1
    # A transfer batch is queued for admission and announced again in our own batches (docs/p2p.md 4.4).
    assert await host.topics[ids.txs](PEER, vectors["tx_batch"]) is Verdict.IGNORE
    await net._admit_tx_batch(*net._tx_backlog.popleft())
    assert net.stats.txs_accepted == 1
    assert await host.topics[ids.jobs](PEER, vectors["job_announcement"]) is Verdict.ACCEPT
    assert await host.topics[ids.jobs](PEER, vectors["job_result"]) is Verdict.ACCEPT
    assert book.score(PEER) == 0
    bare_tx = p.decode_tx_batch(vectors["tx_batch"])[0]
    assert await host.topics[ids.txs](PEER, bare_tx) is Verdict.REJECT
    assert book.score(PEER) == pytest.approx(-Offence.MALFORMED.points, abs=0.5)


async def test_another_chain_in_a_status_bans_at_once(vectors):
    host, _, _, book = _node()
    theirs = p.Status.decode(vectors["status_request"])
    other = p.Status(theirs.chain_id + 1, theirs.genesis_id, theirs.tip_id, theirs.height, theirs.work)
    answer = await host.handlers[p.protocol_ids(DEVNET.chain_id).status](PEER, other.encode())
    assert answer == vectors["status_request"]  # it still gets our status, then the ban
    assert book.is_banned(PEER)


def test_the_hash_formulas_of_the_doc(vectors, block):
    # Section 1 and 7, computed with plain BLAKE3 rather than the project's helpers.
    def k(name: str) -> bytes:
        return blake3(b"pouw/v1/" + name.encode()).digest()

    header = vectors["block_header_only"][1:]
    assert blake3(header, key=k("block")).digest() == block.header.block_id
    (tx_raw,) = p.decode_tx_batch(vectors["tx_batch"])
    tx = decode_tx(tx_raw)
    body = tx_raw[:-64]
    assert blake3(body, key=k("sighash")).digest() == compute_sighash(tx.body)
    assert blake3(tx_raw, key=k("tx")).digest() == compute_tx_id(tx)
    assert blake3(tx.body.pubkey, key=k("address")).digest()[:20] == devnet_keypairs(1)[0].address
    from p2p.host import message_id

    class _Msg:
        data = vectors["tx_batch"]

    assert message_id(_Msg()) == blake3(vectors["tx_batch"]).digest()


def test_the_constants_table_matches_the_code():
    documented = doc_constants()
    expected = code_constants()
    assert sorted(set(expected) - set(documented)) == [], "constants missing from docs/p2p.md"
    assert sorted(set(documented) - set(expected)) == [], "docs/p2p.md states constants this test cannot check"
    wrong = {name: (documented[name], expected[name]) for name in expected
             if parse_value(documented[name]) != expected[name]}
    assert wrong == {}, "docs/p2p.md (doc, code)"


def test_the_topic_and_protocol_ids_in_the_doc_are_the_code_s():
    text = doc_text()
    ids = p.protocol_ids(DEVNET.chain_id)
    for value in vars(ids).values():
        template = value.replace(f"/{DEVNET.chain_id}/", "/<chain_id>/")
        assert f"`{template}`" in text, template


def test_pouwd_builds_the_network_as_the_doc_says():
    # The doc describes pouwd's PeerNetwork; these are the arguments it is given.
    assert set(_call_kwargs(ROOT / "node" / "app.py", "PeerNetwork")) == {
        "chain_id", "genesis_id", "scoring", "bootstrap", "max_blob_bytes"}
    assert callable(node_app.open_node)


if __name__ == "__main__":
    print(vectors_markdown(build_vectors(mine_block())))
