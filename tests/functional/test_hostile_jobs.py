"""A hostile libp2p peer announces jobs to a mining pouwd and serves blobs that are not what it announced.

Attack A on the old node: every announced blob was fetched whole into memory
(up to 256 MiB) before its hash was checked, one task per job id with no
limit (three announcements took the node from 152 to 921 MiB), a blob that
hashed right was stored without being checked as a matrix, and nothing cost
the peer anything. Here the attacker (a real libp2p host, fresh identity)
announces jobs whose blobs are garbage, claim to be 200 MiB, hash right but are
no matrix or a matrix of another shape, and floods announcements; the node's
memory and blob directory must stay bounded, the attacker must be penalised
until it is banned, and a local job must still complete.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from consensus.genesis import make_genesis_block
from consensus.networks import REGTEST
from p2p.host import P2PHost
from p2p.protocol import (
    BLOB_CHUNK_BYTES,
    BlobChunk,
    JobAnnouncement,
    Status,
    decode_blob_request,
    encode_blob_page,
    encode_blob_response,
    protocol_ids,
)
from pouw.hashing import H
from tests.functional.harness import wait_until

pytestmark = pytest.mark.timeout(240)

IDS = protocol_ids(REGTEST.chain_id)
GENESIS = make_genesis_block(REGTEST)
SIDE = 2048  # announced matrices are 2048x2048 int8: 4 MiB each


def npy(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, x, allow_pickle=False)
    return buf.getvalue()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


class Watch:
    """Samples a process's RSS and a directory's size in a thread; keeps the peaks."""

    def __init__(self, pid: int, directory: Path) -> None:
        self.pid, self.dir = pid, directory
        self.peak_rss = self.peak_dir = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_rss = max(self.peak_rss, rss_mib(self.pid))
                self.peak_dir = max(self.peak_dir, dir_bytes(self.dir))
            except (OSError, RuntimeError):  # a temporary file renamed or deleted between listing and stat
                pass
            time.sleep(0.02)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Attacker:
    """A libp2p host that serves whatever each digest is mapped to (``serve[digest](offset) -> response``)."""

    def __init__(self, tip: bytes) -> None:
        self.host = P2PHost(seed=os.urandom(32))
        self.serve: dict[bytes, object] = {}
        self.requests = 0

        async def status(peer, data):
            return Status(REGTEST.chain_id, GENESIS.header.block_id, tip, 0, 1).encode()

        async def blob(peer, data):
            digest, offset = decode_blob_request(data)
            self.requests += 1
            answer = self.serve.get(digest)
            return encode_blob_response(None) if answer is None else answer(offset)

        async def ignore(peer, data):
            from p2p.types import Verdict

            return Verdict.IGNORE

        self.host.set_request_handler(IDS.status, status)
        self.host.set_request_handler(IDS.blob, blob)
        for topic in (IDS.blocks, IDS.txs, IDS.jobs):
            self.host.subscribe(topic, ignore)

    def announce(self, blob_a: bytes, shape=(SIDE, SIDE, SIDE)) -> bytes:
        m, k, n = shape
        return JobAnnouncement(os.urandom(32), blob_a, os.urandom(32), m, k, n).encode()


def garbage(size: int):
    """Pages of random bytes for a blob of ``size``: they never hash to the name asked for."""
    return lambda offset: encode_blob_response(BlobChunk(size, os.urandom(max(0, min(BLOB_CHUNK_BYTES,
                                                                                     size - offset)))))


def test_a_hostile_job_announcer_is_bounded_penalised_and_banned(node_factory):
    node = node_factory("miner", "--mine", p2p=True).start()
    blobs_dir = node.datadir / "blobs"
    tip = bytes.fromhex(node.rpc("getbestblockhash"))
    before = rss_mib(node.proc.pid)
    expected = SIDE * SIDE + 128

    not_npy = os.urandom(expected)  # hashes to its name, but is no .npy matrix
    wrong_shape = npy(np.ones((SIDE, SIDE - 16), np.int8))  # a matrix, not the 2048x2048 announced

    def banned(peer_id: str) -> list[dict]:
        return [b for b in node.rpc("listbanned") if b.get("peer_id") == peer_id]

    def score_of(peer_id: str) -> float | None:
        return next((p["score"] for p in node.rpc("getpeerinfo") if p["id"] == peer_id), None)

    async def run() -> tuple[str, int]:
        attacker = Attacker(tip)
        serve = attacker.serve
        kinds = {
            "garbage": lambda: (os.urandom(32), garbage(expected)),
            "oversized": lambda: (os.urandom(32), garbage(200 << 20)),
            "not-npy": lambda: (H(not_npy), lambda o: encode_blob_page(not_npy, o)),
            "wrong-shape": lambda: (H(wrong_shape), lambda o: encode_blob_page(wrong_shape, o)),
        }
        loop = asyncio.get_running_loop()
        async with attacker.host:
            await attacker.host.connect(node.p2p[0])
            await attacker.host.wait_for_mesh(IDS.jobs, min_peers=1, timeout=20)
            sent, penalised = 0, []

            async def publish(kind) -> None:
                nonlocal sent
                digest, answer = kind()
                serve[digest] = answer
                await attacker.host.publish(IDS.jobs, attacker.announce(digest))
                sent += 1

            for name, kind in kinds.items():  # each kind once: each costs the attacker
                score = await loop.run_in_executor(None, score_of, attacker.host.peer_id)
                await publish(kind)
                until = time.monotonic() + 20
                while time.monotonic() < until:
                    now = await loop.run_in_executor(None, score_of, attacker.host.peer_id)
                    if now is None or now <= score - 15:
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError(f"a {name} announcement cost the attacker nothing")
                penalised.append(name)
                await asyncio.sleep(0.3)  # the fetch task ends (its slot frees up) after the penalty
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # then a flood: beyond the fetch caps, not even fetched
                if await loop.run_in_executor(None, banned, attacker.host.peer_id):
                    break
                for kind in kinds.values():
                    for _ in range(4):
                        await publish(kind)
                await asyncio.sleep(0.5)
            return attacker.host.peer_id, sent

    with Watch(node.proc.pid, blobs_dir) as watch:
        peer_id, sent = asyncio.run(run())
    entries = banned(peer_id)
    assert entries and "bad-response" in entries[0]["reason"], node.rpc("listbanned")
    assert sent >= 8
    # Bounded: a few 4 MiB fetches at a time, streamed to disk page by page; the 200 MiB ones never started.
    assert watch.peak_rss - before < 200, f"RSS went from {before:.0f} to {watch.peak_rss:.0f} MiB"
    assert watch.peak_dir <= 4 * (expected + 1024), f"the blob directory reached {watch.peak_dir} bytes"
    wait_until(lambda: list(blobs_dir.iterdir()) == [], timeout=30, what="every fetched blob to be deleted")
    assert node.rpc("listmatmuljobs") == []

    # The node goes on: a local job completes.
    rng = np.random.default_rng(3)
    a = rng.integers(-64, 64, (32, 100), dtype=np.int8)
    b = rng.integers(-64, 64, (100, 24), dtype=np.int8)
    hashes = []
    for x in (a, b):
        status, body = node.http("PUT", "/blobs", npy(x))
        assert status == 200, body
        hashes.append(json.loads(body)["hash"])
    job_id = node.rpc("submitmatmuljob", *hashes)["job_id"]
    wait_until(lambda: node.rpc("getmatmuljob", job_id)["status"] == "done", timeout=120, what="the local job")
    status, body = node.http("GET", node.rpc("getmatmulresult", job_id)["download"])
    assert status == 200 and np.array_equal(np.load(io.BytesIO(body)), a.astype(np.int64) @ b.astype(np.int64))
