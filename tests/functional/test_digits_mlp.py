"""``examples/digits_mlp.py`` against a real mining regtest ``pouwd``: the network's int8 MLP predicts exactly as
the local one does.

The example runs as a user runs it (a subprocess, ``--rpc-url`` and ``--cookie`` of the node), on 20 test
images. Its own comparison is checked, and so is the node's side: the jobs it reports were really
submitted to and mined by this node, not computed in the example's process.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from tests.functional.harness import ROOT

EXAMPLE = ROOT / "examples" / "digits_mlp.py"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("sklearn") is None,
    reason="scikit-learn is not installed (the 'examples' extra: pip install -e '.[examples]'; make test installs it)")


def test_digits_mlp_network_predictions_equal_local(node_factory):
    node = node_factory("miner", "--mine").start()
    r = subprocess.run([sys.executable, str(EXAMPLE), "--rpc-url", node.url, "--cookie", str(node.datadir / ".cookie"),
                        "--limit", "20", "--timeout", "120", "--json"],
                       cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    out = json.loads(r.stdout)
    assert out["samples"] == 20 and out["layers"] == [[64, 32], [32, 10]]
    assert out["identical_products"] is True and out["identical_predictions"] is True
    acc = out["accuracy"]
    assert acc["int8_local"] == acc["int8_network"]
    assert acc["float"] >= 0.75 and acc["int8_local"] >= 0.75  # a trained model, not noise (chance is 0.1)
    # The products came from this node's miner: the jobs exist there and are done.
    done = node.rpc("listmatmuljobs", "done")
    assert out["sub_jobs"] >= 2 and 1 <= len(done) <= out["sub_jobs"]
    assert sum(out["computed_by"].values()) >= 1
    assert out["bytes_up"] > 0 and out["bytes_down"] > 0

    # The text report a user reads, on the same node (5 images: other matrices, so new jobs).
    r = subprocess.run([sys.executable, str(EXAMPLE), "--rpc-url", node.url, "--limit", "5", "--timeout", "120"],
                       cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    for needle in ("accuracy  float", "int8 local", "int8 network", "local vs network: identical", "sub-jobs",
                   "computed by:"):
        assert needle in r.stdout, (needle, r.stdout)


def test_digits_mlp_mine_the_inference_mines_blocks(node_factory):
    # A node that does not mine: the example's own int8 products are the only mining work. On all 450 test
    # images they draw about 350 tickets, and regtest's target lets about one in a hundred win, so a run
    # finds a block with probability about 0.97; a run that found none is repeated (new template, new
    # lottery), at most six times in all (all six empty: about 1e-9).
    node = node_factory("quiet").start()
    before = node.rpc("getblockcount")
    runs = []
    for _ in range(6):
        r = subprocess.run([sys.executable, str(EXAMPLE), "--rpc-url", node.url, "--cookie",
                            str(node.datadir / ".cookie"), "--mine", "--json"],
                           cwd=ROOT, capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
        out = json.loads(r.stdout)
        assert out["identical_products"] is True and out["identical_predictions"] is True
        mined = out["mined"]
        assert mined["matmuls"] >= 2 and mined["tickets"] > 100 and mined["useful_share"] == 1.0
        runs.append(mined)
        if mined["blocks"]:
            break
    found = [b for m in runs for b in m["blocks"]]
    assert found, runs
    height = node.rpc("getblockcount")
    assert height >= before + 1
    chain = {node.rpc("getblockhash", h) for h in range(before + 1, height + 1)}
    assert set(found) <= chain  # every block the inference found is on the node's chain
    assert node.rpc("verifychain")["ok"]
