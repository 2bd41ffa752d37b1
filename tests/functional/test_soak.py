"""The 60-second version of bench/soak.py: three nodes, a miner, 50 tx/s and a job every 5 s; nothing lost."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from soak import run_soak


def test_sixty_second_soak_loses_nothing():
    report = run_soak(seconds=60, tx_rate=50, job_every=5, watch_tips=False)  # losses, not propagation
    print(report)
    assert report["txs_sent"] >= 0.9 * 60 * 50
    assert report["txs_lost"] == 0, report
    assert report["jobs_sent"] >= 10 and report["jobs_lost"] == 0, report
    assert report["nodes_agree"] and report["verifychain_ok"], report
    assert report["height"] >= 5
