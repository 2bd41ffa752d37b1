"""``python -m pouw mine`` pads A and B like a job (the README's 100x300 @ 300x70) and says so."""

import json
import subprocess
import sys

import numpy as np

from pouw.jobs import product_hash
from pouw.matrix import padded_shape

TARGET = hex((1 << 256) // (20 * 256 * 256))  # a tile wins with probability ~1/20 per nonce


def run(*args):
    return subprocess.run([sys.executable, "-m", "pouw", *args], capture_output=True, text=True, timeout=120)


def test_mine_pads_the_readme_shape_like_a_job(tmp_path):
    rng = np.random.default_rng(5)
    a = rng.integers(-64, 64, (100, 300), dtype=np.int8)
    b = rng.integers(-64, 64, (300, 70), dtype=np.int8)
    np.save(tmp_path / "A.npy", a)
    np.save(tmp_path / "B.npy", b)
    r = run("mine", "--a", str(tmp_path / "A.npy"), "--b", str(tmp_path / "B.npy"), "--target", TARGET,
            "--time", "1700000000", "--backend", "numpy", "--out", str(tmp_path / "r.json"),
            "--product", str(tmp_path / "C.npy"))
    assert r.returncode == 0, r.stderr
    assert padded_shape(100, 300, 70) == (112, 384, 80)  # the node pads this job to the same shape
    assert "padded A 100x300 and B 300x70 with zeros to 112x384 and 384x80, as a job is" in r.stderr
    assert "(mined over the zero-padded 112x384 @ 384x80)" in r.stdout
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["shape"] == {"m": 100, "k": 300, "n": 70} and res["padded_shape"] == {"m": 112, "k": 384, "n": 80}
    c = np.load(tmp_path / "C.npy")
    assert c.shape == (100, 70) and np.array_equal(c, a.astype(np.int64) @ b.astype(np.int64))
    assert res["product_blake3"] == product_hash(c).hex()
    header = bytes.fromhex(res["header"])
    assert len(header) == 212
    ok = run("verify", str(tmp_path / "r.json"), "--expected-target", TARGET)
    assert ok.returncode == 0 and ok.stdout.startswith("valid"), ok.stdout


def test_mine_of_an_exact_shape_says_nothing_about_padding(tmp_path):
    np.save(tmp_path / "A.npy", np.ones((16, 256), np.int8))
    np.save(tmp_path / "B.npy", np.ones((256, 16), np.int8))
    r = run("mine", "--a", str(tmp_path / "A.npy"), "--b", str(tmp_path / "B.npy"), "--target", TARGET,
            "--time", "1700000000", "--backend", "numpy", "--out", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr
    assert "padded" not in r.stderr + r.stdout
    assert json.loads((tmp_path / "r.json").read_text())["padded_shape"] == {"m": 16, "k": 256, "n": 16}


def test_mine_still_refuses_what_no_padding_fixes(tmp_path):
    np.save(tmp_path / "A.npy", np.zeros((16, 300), np.int8))
    np.save(tmp_path / "B.npy", np.zeros((200, 16), np.int8))
    np.save(tmp_path / "V.npy", np.zeros(300, np.int8))
    r = run("mine", "--a", str(tmp_path / "A.npy"), "--b", str(tmp_path / "B.npy"), "--target", "1",
            "--out", str(tmp_path / "r.json"))
    assert r.returncode == 1 and "inner dimensions differ" in r.stderr
    r = run("mine", "--a", str(tmp_path / "V.npy"), "--b", str(tmp_path / "B.npy"), "--target", "1",
            "--out", str(tmp_path / "r.json"))
    assert r.returncode == 1 and "2-D" in r.stderr and "Traceback" not in r.stderr
