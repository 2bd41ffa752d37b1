"""Crash safety: SIGKILL a process that is connecting blocks to LevelDB, reopen, and check state == replay.

The blocks are real mined blocks (NumPy backend, ``m = n = 16``, ``k = 256``,
saturating target) and the worker checks every certificate. The sequence
holds two deep reorgs (20 and 30 blocks), so kills land in connects,
disconnects and side-branch stores alike. The worker runs with LevelDB's
``sync=True`` (an fsync per batch): that spreads a reorg's batches over tens of
milliseconds, so random kills often land between the batches of one reorg.
A power cut is not simulated.

This file is also the worker: ``python test_storage_crash.py worker DB BLOCKS``.
"""

from __future__ import annotations

import os
import random
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _params():
    from tests.support.blockgen import easy_params

    return easy_params()


def _clock(params):
    return lambda: params.genesis_time + 10**7


def worker(db_path: str, blocks_path: str) -> None:
    from consensus.codec import decode_block
    from node.chain import ChainService

    params = _params()
    data = Path(blocks_path).read_bytes()
    chain = ChainService.open(db_path, params, clock=_clock(params), sync=True)
    print("ready", flush=True)
    blocks = []
    pos = 0
    while pos < len(data):
        (size,) = struct.unpack_from("<I", data, pos)
        blocks.append((decode_block(data[pos + 4 : pos + 4 + size]), size))
        pos += 4 + size
    for i, (block, size) in enumerate(blocks):
        if block.prev_id != chain.tip_id and chain.get_entry(block.prev_id) is not None:
            # A branch starts: weigh its headers first, as headers-first sync does, so the chain takes
            # its bodies before the branch's stored part has caught up with the tip.
            run = [block.header]
            for later, _ in blocks[i + 1:]:
                if later.prev_id != run[-1].block_id:
                    break
                run.append(later.header)
            chain.check_headers(run)
        chain.submit_block(block, size)
        print("ok", flush=True)
    chain.close()
    print("done", flush=True)


def build_blocks():
    """A: 60 blocks; B forks after A40 and grows to height 70 (reorg 20 deep); A grows to 80 (reorg 30 deep)."""
    from consensus.keys import devnet_keypairs
    from consensus.tx import make_transfer
    from tests.support.blockgen import ChainBuilder

    params = _params()
    keys = devnet_keypairs(4)

    def pay(sender, nonce, to, amount):
        return make_transfer(keys[sender], params.chain_id, nonce, keys[to].address, amount, 1000)

    builder = ChainBuilder(params, coinbase_to=keys[3].address)
    a = []
    parent = builder.genesis_id
    for h in range(1, 81):
        a.append(builder.child(parent, [pay(0, h - 1, 1, h), pay(1, h - 1, 2, 1)]))
        parent = a[-1].header.block_id
    b = []
    parent = a[39].header.block_id
    for h in range(41, 71):
        b.append(builder.child(parent, [pay(0, h - 1, 2, 1000 + h)], spacing=7, coinbase_to=keys[2].address))
        parent = b[-1].header.block_id
    order = a[:60] + b + a[60:]
    return order, a


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    from consensus.codec import encode_block

    order, a = build_blocks()
    path = tmp_path_factory.mktemp("blocks") / "blocks.bin"
    path.write_bytes(b"".join(struct.pack("<I", len(raw)) + raw for raw in map(encode_block, order)))
    known = {blk.header.block_id for blk in order}
    return path, known, a[-1].header.block_id


def run_worker(db: Path, blocks: Path, kill_after_block: int | None, delay: float = 0.0) -> bool:
    """Run the worker; SIGKILL it ``delay`` seconds after it reported block number ``kill_after_block``.

    The worker keeps going while the parent reads and sleeps, so the kill lands at
    an arbitrary point a little after that block: inside a batch, between batches,
    in the middle of a reorg. Returns True if the worker finished on its own.
    """
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, __file__, "worker", str(db), str(blocks)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read()
        if kill_after_block is not None:
            for _ in range(kill_after_block):
                if not proc.stdout.readline():
                    break
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = proc.stdout.read()
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"worker failed ({proc.returncode}): {proc.stderr.read()}")
    return proc.returncode == 0 and "done" in out


def check_database(db: Path, known: set[bytes]):
    """The database as the kill left it equals a replay of its main chain; so does it after opening."""
    from node import schema
    from node.chain import ChainService
    from node.chaincheck import verify_store
    from node.store import LevelDBStore

    params = _params()
    if not (db / "CURRENT").exists():
        return None, -1  # killed before LevelDB created the database
    raw = LevelDBStore(str(db), create=False)
    try:
        if raw.get(schema.META_KEY) is not None:  # the genesis batch (which writes the meta record) happened
            report = verify_store(raw, params)
            assert report.ok, report.problems
    finally:
        raw.close()
    chain = ChainService(LevelDBStore(str(db)), params, clock=_clock(params))
    try:
        report = chain.verify_chain()
        assert report.ok, report.problems
        main = [chain.get_block_id(h) for h in range(chain.height + 1)]
        assert all(block_id in known for block_id in main[1:])
        return chain.tip_id, chain.height
    finally:
        chain.close()


def test_sigkill_at_random_points_keeps_state_equal_to_replay(tmp_path, sequence):
    """Six kills at increasing random points of one database's life; each restart resumes (duplicates skipped)."""
    blocks, known, final_tip = sequence
    db = tmp_path / "db"
    rng = random.Random(int(os.environ.get("POUW_CRASH_SEED", "7")))
    heights = []
    for target in sorted(rng.sample(range(1, 140), 6)):
        run_worker(db, blocks, kill_after_block=target, delay=rng.uniform(0.0, 0.005))
        heights.append(check_database(db, known)[1])
    assert run_worker(db, blocks, kill_after_block=None)
    tip, height = check_database(db, known)
    assert (tip, height) == (final_tip, 80), heights


def test_sigkill_on_a_fresh_database_each_round(tmp_path, sequence):
    """Each round starts empty and is killed around a random block, reorg windows (blocks 80 and 130) included."""
    blocks, known, _ = sequence
    rng = random.Random(11)
    for round_, target in enumerate([75, 78, 125, rng.randrange(1, 140)]):
        db = tmp_path / f"db{round_}"
        run_worker(db, blocks, kill_after_block=target, delay=rng.uniform(0.0, 0.02))
        check_database(db, known)


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "worker":
    worker(sys.argv[2], sys.argv[3])
