"""SIGKILL a mining pouwd at random moments, 20 times: nothing reported is lost, state stays consistent."""

import json
import random
import time

import numpy as np

from tests.functional.harness import wait_until
from tests.functional.test_jobs import download_product, npy

ROUNDS = 20


def test_kill_a_mining_node_twenty_times(node_factory):
    rng = random.Random(2026)
    mats = np.random.default_rng(5)
    node = node_factory("victim", "--mine").start()
    reported = node.rpc("getblockcount")
    done_jobs: dict[str, np.ndarray] = {}
    pending: dict[str, np.ndarray] = {}
    for round_no in range(ROUNDS):
        if round_no % 4 == 0:  # a new job now and then, killed at whatever stage it is in
            a = mats.integers(-64, 64, (32, 256), dtype=np.int8)
            b = mats.integers(-64, 64, (256, 16), dtype=np.int8)
            hashes = [json.loads(node.http("PUT", "/blobs", npy(x))[1])["hash"] for x in (a, b)]
            pending[node.rpc("submitmatmuljob", *hashes)["job_id"]] = a.astype(np.int64) @ b.astype(np.int64)
        deadline = time.monotonic() + rng.uniform(0.05, 0.8)
        while time.monotonic() < deadline:
            reported = max(reported, node.rpc("getblockcount"))
        node.kill()

        node.start("--mine")
        height = node.rpc("getblockcount")
        assert height >= reported, f"round {round_no}: height {height} went below the reported {reported}"
        check = node.rpc("verifychain")
        assert check["ok"], check["problems"]
        for job_id in list(pending):
            status = node.rpc("getmatmuljob", job_id)["status"]
            assert status in ("queued", "mining", "done"), status
            if status == "done":
                done_jobs[job_id] = pending.pop(job_id)
        for job_id, want in done_jobs.items():  # finished results survive every kill
            assert np.array_equal(download_product(node, job_id), want)
        wait_until(lambda h=height: node.rpc("getblockcount") > h, timeout=30, what="mining to resume")

    for job_id in list(pending):
        wait_until(lambda j=job_id: node.rpc("getmatmuljob", j)["status"] == "done", timeout=60, what="pending jobs")
        assert np.array_equal(download_product(node, job_id), pending[job_id])
    assert reported > 20
