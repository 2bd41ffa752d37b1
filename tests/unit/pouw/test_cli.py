"""``python -m pouw mine`` then ``python -m pouw verify``, as a user runs them."""

import json
import subprocess
import sys

import numpy as np
import pytest

from pouw.jobs import product_hash

TARGET = hex((1 << 256) // (20 * 256 * 256))  # a tile wins with probability ~1/20


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pouw", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.fixture
def matrices(tmp_path):
    rng = np.random.default_rng(4)
    a = rng.integers(-64, 64, (64, 256), dtype=np.int8)
    b = rng.integers(-64, 64, (256, 48), dtype=np.int8)
    np.save(tmp_path / "A.npy", a)
    np.save(tmp_path / "B.npy", b)
    return tmp_path, a, b


def test_mine_then_verify_round_trip(matrices):
    d, a, b = matrices
    r = run("mine", "--a", str(d / "A.npy"), "--b", str(d / "B.npy"), "--target", TARGET, "--time", "1700000000",
            "--backend", "numpy", "--out", str(d / "r.json"), "--product", str(d / "C.npy"))
    assert r.returncode == 0, r.stderr
    res = json.loads((d / "r.json").read_text())
    assert set(res) >= {"header", "certificate", "block_id", "nonce", "tile", "ticket", "product_blake3"}
    assert len(bytes.fromhex(res["header"])) == 212
    c = np.load(d / "C.npy")
    assert np.array_equal(c, a.astype(np.int64) @ b.astype(np.int64))
    assert res["product_blake3"] == product_hash(c).hex()

    ok = run("verify", str(d / "r.json"), "--expected-target", TARGET)
    assert ok.returncode == 0 and ok.stdout.startswith("valid")
    plain = run("verify", "--header", res["header"], "--certificate", res["certificate"])
    assert plain.returncode == 0 and "only internal consistency" in plain.stdout

    wrong = run("verify", str(d / "r.json"), "--expected-target", str(int(TARGET, 16) + 1))
    assert wrong.returncode == 1 and wrong.stdout.startswith("invalid: target")
    cert = bytearray.fromhex(res["certificate"])
    cert[0] ^= 1
    tampered = run("verify", "--header", res["header"], "--certificate", cert.hex())
    assert tampered.returncode == 1 and tampered.stdout.startswith("invalid: merkle-a")


def test_mine_gives_up_with_exit_2(matrices):
    d, _, _ = matrices
    r = run("mine", "--a", str(d / "A.npy"), "--b", str(d / "B.npy"), "--target", "1", "--max-nonces", "2",
            "--backend", "numpy", "--out", str(d / "r.json"))
    assert r.returncode == 2 and "no winning tile after 2 nonces" in r.stderr
    assert not (d / "r.json").exists()


def test_mine_rejects_out_of_range_and_wrong_dtype(tmp_path):
    np.save(tmp_path / "A.npy", np.full((16, 256), 64, np.int8))
    np.save(tmp_path / "B.npy", np.zeros((256, 16), np.int8))
    np.save(tmp_path / "F.npy", np.zeros((16, 256), np.float32))
    r = run("mine", "--a", str(tmp_path / "A.npy"), "--b", str(tmp_path / "B.npy"), "--target", "1",
            "--out", str(tmp_path / "r.json"))
    assert r.returncode == 1 and "[-64, 63]" in r.stderr
    r = run("mine", "--a", str(tmp_path / "F.npy"), "--b", str(tmp_path / "B.npy"), "--target", "1",
            "--out", str(tmp_path / "r.json"))
    assert r.returncode == 1 and "int8" in r.stderr


def test_bad_target_is_a_usage_error(matrices):
    d, _, _ = matrices
    r = run("mine", "--a", str(d / "A.npy"), "--b", str(d / "B.npy"), "--target", "zz", "--out", "x")
    assert r.returncode == 2 and "decimal or 0x-hex" in r.stderr


def test_verify_unreadable_and_garbage(tmp_path):
    r = run("verify", str(tmp_path / "missing.json"))
    assert r.returncode == 2
    r = run("verify", "--header", "nothex", "--certificate", "00")
    assert r.returncode == 1 and r.stdout.startswith("invalid: hex")
    r = run("verify", "--header", "00" * 211, "--certificate", "00")
    assert r.returncode == 1 and r.stdout.startswith("invalid: header-size")
