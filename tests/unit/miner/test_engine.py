"""The engine against a fake node: workers find blocks, switch to each new template at the next matmul, do the
leased job once and exactly, and never mine a template they found a block on."""

from __future__ import annotations

import io
import threading
import time
from dataclasses import replace

import numpy as np
import pytest

from consensus.validation import make_parent_info
from kernels.base import BackendError
from kernels.select import get_backend
from miner.devices import Device, gpu_count, open_devices, parse_devices
from miner.engine import JOB_RETRY, Engine, WorkBox
from miner.report import EventLog, Stats, rate_line
from miner.work import parse_template
from pouw.header import Header
from tests.functional.harness import wait_until
from tests.unit.miner.support import FakeNode, answer_of


def engine_for(node: FakeNode, devices: int = 2) -> tuple[Engine, io.StringIO]:
    out = io.StringIO()
    backend = get_backend("numpy")
    devs = [Device(f"cpu{i}", backend) for i in range(devices)]
    engine = Engine(node, node, devs, (16, 256, 16), Stats([d.name for d in devs]), EventLog(out),
                    longpoll_timeout=1.0)
    return engine, out


def test_workers_find_blocks_and_every_block_builds_on_the_last():
    node = FakeNode()
    engine, _ = engine_for(node)
    engine.start()
    try:
        wait_until(lambda: len(node.blocks) >= 5, 20.0, what="five blocks")
    finally:
        engine.close()
    heights = [b.height for b in node.blocks]
    assert heights == list(range(1, len(heights) + 1))
    snap = engine.stats.snapshot()
    assert snap["blocks_found"] == len(node.blocks) and snap["blocks_rejected"] == len(node.refused)
    assert snap["stale_matmuls"] <= len(node.blocks) * 2  # at most the one in flight per worker and tip change


def test_a_template_with_a_found_block_is_not_mined_again():
    box = WorkBox()
    work = box.put(parse_template(answer_of(FakeNode()._template())))
    assert box.current(0.0) is work
    box.spend(work.generation)
    assert box.current(0.05) is None
    newer = box.put(parse_template(answer_of(FakeNode()._template())))
    assert box.current(0.0) is newer


def test_a_job_is_claimed_once_and_again_only_after_a_failure():
    now = [0.0]
    box = WorkBox(clock=lambda: now[0])
    assert box.claim_job("j") and not box.claim_job("j")
    box.job_ended("j", ok=False)
    assert not box.claim_job("j")
    now[0] += JOB_RETRY
    assert box.claim_job("j")
    box.job_ended("j", ok=True)
    now[0] += 10 * JOB_RETRY
    assert not box.claim_job("j")


def test_the_leased_job_is_done_once_and_exactly():
    node = FakeNode(target=0)  # no tile ever wins: only the job counts here
    rng = np.random.default_rng(9)
    a = rng.integers(-64, 64, (20, 40), dtype=np.int8)
    b = rng.integers(-64, 64, (40, 12), dtype=np.int8)
    node.matrices = {"aa" * 32: a, "bb" * 32: b}
    node.job = {"job_id": "11" * 32, "a": "aa" * 32, "b": "bb" * 32, "shape": {"m": 20, "k": 40, "n": 12},
                "padded_shape": {"m": 32, "k": 256, "n": 16}, "lease_expires": time.time() + 60}
    engine, out = engine_for(node)
    engine.start()
    try:
        wait_until(lambda: "11" * 32 in node.products, 20.0, what="the job's product")
    finally:
        engine.close()
    assert np.array_equal(node.products["11" * 32], a.astype(np.int64) @ b.astype(np.int64))
    assert engine.stats.snapshot()["jobs_done"] == 1
    assert out.getvalue().count('"event": "job"') == 1


def test_a_new_tip_reaches_every_worker_at_its_next_matmul():
    node = FakeNode(target=0)
    engine, out = engine_for(node)
    engine.start()
    try:
        wait_until(lambda: all(engine.stats.snapshot()["matmuls"][d] > 3 for d in ("cpu0", "cpu1")), 20.0)
        with node.changed:  # the tip moves under the miner (a block from elsewhere)
            other = FakeNode()._template()
            node.parent = make_parent_info(replace_prev(other, node.parent), node.parent)
            node.revision += 1
            node.changed.notify_all()
        moved = time.monotonic()
        new_prev = node.parent.block_id.hex()
        wait_until(lambda: out.getvalue().count(f'"prev": "{new_prev}"') >= 3, 10.0, what="both workers switched")
        assert time.monotonic() - moved < 5.0
    finally:
        engine.close()


def replace_prev(template, parent):
    """A header whose id stands in for a block found elsewhere on ``parent``."""
    return Header(replace(template.pre, prev_id=parent.block_id, height=parent.height + 1), bytes(32), bytes(32),
                  0, 0)


def test_the_report_line_and_devices():
    stats = Stats(["cpu"])
    before = stats.snapshot()
    stats.matmul("cpu", 2_000_000_000, stale=False)
    stats.count("blocks_found")
    line, rates = rate_line(before, stats.snapshot(), 2.0)
    assert rates == {"cpu": 1e9} and "cpu 1.000 GMAC/s" in line and "blocks 1" in line
    assert parse_devices("cpu") == ["cpu"] and parse_devices("0, 1") == ["0", "1"] and parse_devices("all") == ["all"]
    for bad in ("", "gpu", "0,0", "all,0", "99"):
        with pytest.raises(ValueError):
            parse_devices(bad)


def test_threads_end_on_close():
    node = FakeNode(target=0)
    engine, _ = engine_for(node, devices=1)
    engine.start()
    wait_until(lambda: engine.stats.snapshot()["matmuls"]["cpu0"] > 0, 20.0)
    engine.close()
    assert not any(t.is_alive() for t in engine._threads[1:])
    assert threading.active_count() >= 1


def test_devices_open_self_tested_backends_and_a_missing_gpu_is_a_clear_error():
    assert [d.name for d in open_devices(["cpu"])] == ["cpu"]
    if gpu_count() == 0:  # this machine: no CUDA device, so `all` falls back to the CPU and a GPU number fails
        assert [d.name for d in open_devices(["all"])] == ["cpu"]
        with pytest.raises(BackendError, match="GPU 0|CuPy|CUDA"):
            open_devices(["0"])
    else:
        assert [d.name for d in open_devices(["all"])] == [f"gpu{i}" for i in range(gpu_count())]
