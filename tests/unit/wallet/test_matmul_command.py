"""``pouw-wallet matmul``: the command around ``Client.matmul`` (the node is an in-process double)."""

import json

import numpy as np
import pytest

import wallet.matmul as mm
from tests.support.matmul_nodes import InProcessNode
from wallet import cli


@pytest.fixture
def node(monkeypatch):
    n = InProcessNode()
    monkeypatch.setattr(mm, "RpcNode", lambda url, auth, timeout: n)
    return n


def run(capsys, *argv):
    rc = cli.main(["--rpc-url", "http://127.0.0.1:1/", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_matmul_saves_the_exact_product(tmp_path, capsys, node):
    rng = np.random.default_rng(1)
    a = rng.integers(-32768, 32768, (20, 300), dtype=np.int16)
    b = rng.integers(-128, 128, (300, 7), dtype=np.int8)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    rc, out, _ = run(capsys, "matmul", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--out",
                     str(tmp_path / "c.npy"))
    assert rc == 0 and "saved" in out and "sub-jobs" in out and "computed by: this node" in out
    c = np.load(tmp_path / "c.npy")
    assert c.dtype == np.int64 and np.array_equal(c, a.astype(np.int64) @ b.astype(np.int64))
    rc, out, _ = run(capsys, "matmul", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--out",
                     str(tmp_path / "c2.npy"), "--json")
    d = json.loads(out)
    assert rc == 0 and d["shape"] == [20, 7] and d["exact"] is True and d["sub_jobs"] == 3 * 2


def test_matmul_quantizes_floats_and_refuses_them_without(tmp_path, capsys, node):
    rng = np.random.default_rng(2)
    np.save(tmp_path / "a.npy", rng.standard_normal((8, 40)))
    np.save(tmp_path / "b.npy", rng.standard_normal((40, 3)))
    args = ["matmul", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--out", str(tmp_path / "c.npy")]
    rc, _, err = run(capsys, *args)
    assert rc == 1 and "quantize" in err and not (tmp_path / "c.npy").exists()
    rc, out, _ = run(capsys, *args, "--quantize", "int8")
    assert rc == 0 and "quantized to int8" in out and np.load(tmp_path / "c.npy").dtype == np.float64


def test_matmul_input_errors(tmp_path, capsys, node):
    (tmp_path / "bad.npy").write_bytes(b"not npy")
    np.save(tmp_path / "v.npy", np.ones(3, np.int8))
    rc, _, err = run(capsys, "matmul", str(tmp_path / "missing.npy"), str(tmp_path / "v.npy"), "--out", "c.npy")
    assert rc == 1 and "cannot read A" in err
    rc, _, err = run(capsys, "matmul", str(tmp_path / "bad.npy"), str(tmp_path / "v.npy"), "--out", "c.npy")
    assert rc == 1 and "not a valid .npy" in err
    rc, _, err = run(capsys, "matmul", str(tmp_path / "bad.npy"), str(tmp_path / "v.npy"), "--out", "c.npy",
                     "--timeout", "0")
    assert rc == 1 and "--timeout must be positive" in err
