"""`pouw-devnet up` starts three peered nodes that agree on a growing height, and its printed commands work."""

import json
import shlex
import socket
import subprocess
import sys
import time

from testnet.devnet import rpc
from tests.functional.harness import ROOT, wait_until


def free_base_port() -> int:
    for base in range(21000, 40000, 50):
        ok = True
        for port in range(base, base + 6):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port range")


def devnet(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "testnet.devnet", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_devnet_up_status_commands_down(tmp_path):
    datadir = tmp_path / "devnet"
    base = free_base_port()
    up = devnet("up", "--datadir", str(datadir), "--base-port", str(base), "--detach")
    try:
        assert up.returncode == 0, up.stderr
        out = up.stdout
        urls = [f"http://127.0.0.1:{base + 2 * i + 1}/" for i in range(3)]
        for url in urls:
            assert url in out
        assert "abandon abandon" in out and "pdev1" in out

        def agree_and_grow():
            heights = [rpc(u, "getblockcount") for u in urls]
            return len(set(heights)) == 1 and heights[0] >= 2

        wait_until(agree_and_grow, timeout=60, interval=0.1, what="three nodes at the same height >= 2")
        assert all(len(rpc(u, "getpeerinfo")) == 2 for u in urls)

        commands = [line.strip() for line in out.splitlines() if line.startswith("  /") and "pouw-" in line]
        assert len(commands) == 5, out
        balance = subprocess.run(shlex.split(commands[0]), capture_output=True, text=True, timeout=60)
        assert balance.returncode == 0 and json.loads(balance.stdout)["balance"] > 0
        for cmd in commands[1:3]:  # send 1.5 --wait; job submit --wait
            r = subprocess.run(shlex.split(cmd), capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, (cmd, r.stdout, r.stderr)
        # The paid job, as printed: node0 claims it with address 1, serves C, and the client accepts.
        paid = subprocess.run(shlex.split(commands[3]), capture_output=True, text=True, timeout=120)
        assert paid.returncode == 0, (commands[3], paid.stdout, paid.stderr)
        offer_id = next(line.split()[1] for line in paid.stdout.splitlines() if line.startswith("offer "))
        result = subprocess.run(shlex.split(commands[4].replace("<offer id>", offer_id)), cwd=tmp_path,
                                capture_output=True, text=True, timeout=180)
        assert result.returncode == 0 and "accepted" in result.stdout, (result.stdout, result.stderr)
        assert (tmp_path / "C.npy").exists()
        claimant = out.split("claims them as ", 1)[1].split(",", 1)[0]
        wait_until(lambda: rpc(urls[0], "getjoboffer", offer_id)["status"] == "accepted", timeout=60,
                   what="the accept in a block")
        assert rpc(urls[0], "getjoboffer", offer_id)["claimant"] == claimant

        status = devnet("status", "--datadir", str(datadir))
        assert status.returncode == 0 and status.stdout.count(" yes ") == 3
        before = rpc(urls[2], "getblockcount")
        wait_until(lambda: rpc(urls[2], "getblockcount") > before, timeout=60, what="the height to grow")
    finally:
        down = devnet("down", "--datadir", str(datadir))
    assert down.returncode == 0 and "stopped 3 nodes" in down.stdout
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            rpc(urls[0], "getblockcount", timeout=1)
        except OSError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("node0 still answers after down")
