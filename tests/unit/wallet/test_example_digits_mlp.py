"""The int8 quantization and inference of ``examples/digits_mlp.py``, without a node and without scikit-learn.

The example is a script, not a package: it is loaded from its file. Its network run is covered by
tests/functional/test_digits_mlp.py.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from tests.functional.harness import ROOT

PATH = ROOT / "examples" / "digits_mlp.py"


@pytest.fixture(scope="module")
def ex():
    spec = importlib.util.spec_from_file_location("digits_mlp_example", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_per_row_quantization_is_symmetric_int8_and_close(ex):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 17)) * rng.uniform(0.01, 100, size=(30, 1))
    x[4] = 0.0  # an all-zero row (a dead ReLU layer) must not divide by zero
    q, scale = ex.quantize_per_row(x)
    assert q.dtype == np.int8 and int(q.min()) >= -127 and int(q.max()) <= 127
    assert scale[4] == 1.0 and not q[4].any()
    peak_rows = [i for i in range(30) if i != 4]
    assert all(np.abs(q[i]).max() == 127 for i in peak_rows)  # each row uses the full range
    assert np.all(np.abs(q * scale[:, None] - x) <= scale[:, None] / 2 + 1e-12)  # rounding error at most half a step


def test_per_column_quantization(ex):
    rng = np.random.default_rng(2)
    w = rng.normal(size=(64, 10)) * np.arange(1, 11)
    q, scale = ex.quantize_per_column(w)
    assert q.shape == w.shape and q.flags.c_contiguous and scale.shape == (10,)
    assert np.all(np.abs(q).max(axis=0) == 127)
    assert np.all(np.abs(q * scale[None, :] - w) <= scale[None, :] / 2 + 1e-12)


def test_int8_inference_tracks_the_float_model(ex):
    """A random 2-layer model: int8 logits stay close to float ones, and the products are the exact int64 ones."""
    rng = np.random.default_rng(3)
    coefs = [rng.normal(size=(64, 32)) * 0.3, rng.normal(size=(32, 10)) * 0.3]
    intercepts = [rng.normal(size=32) * 0.1, rng.normal(size=10) * 0.1]
    layers = ex.quantize_model(coefs, intercepts)
    x = rng.uniform(0, 1, size=(50, 64))
    pred, products = ex.infer(layers, x, ex.local_matmul)
    h = np.maximum(x @ coefs[0] + intercepts[0], 0) @ coefs[1] + intercepts[1]
    assert np.mean(pred == np.argmax(h, axis=1)) >= 0.9
    assert [p.dtype for p in products] == [np.int64, np.int64]
    x_q, _ = ex.quantize_per_row(x)
    assert np.array_equal(products[0], x_q.astype(np.int64) @ layers[0].w_q.astype(np.int64))


def test_a_wrong_product_shape_or_dtype_is_refused(ex):
    layers = ex.quantize_model([np.ones((4, 3))], [np.zeros(3)])
    with pytest.raises(RuntimeError, match="expected int64"):
        ex.infer(layers, np.ones((2, 4)), lambda a, b: (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32))
    with pytest.raises(RuntimeError, match="expected int64"):
        ex.infer(layers, np.ones((2, 4)), lambda a, b: np.zeros((2, 2), np.int64))


def test_stats_of_the_layers_add_up(ex):
    total: dict = {}
    ex.merge_stats(total, {"sub_jobs": 4, "reused": 1, "bytes_up": 10, "computed_by": {"node-a": 3}})
    ex.merge_stats(total, {"sub_jobs": 2, "bytes_down": 5, "computed_by": {"node-a": 1, "node-b": 1}})
    assert total["sub_jobs"] == 6 and total["reused"] == 1 and total["bytes_up"] == 10 and total["bytes_down"] == 5
    assert total["computed_by"] == {"node-a": 4, "node-b": 1}


@pytest.mark.parametrize("argv,message", [
    (["--limit", "0"], "expected at least 1"),
    (["--limit", "x"], "expected a whole number"),
    (["--timeout", "-1"], "expected seconds"),
    (["--cookie", "/nonexistent/.cookie"], "does not exist"),
])
def test_bad_arguments_exit_1_before_any_work(argv, message):
    r = subprocess.run([sys.executable, str(PATH), *argv], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and message in r.stderr, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr


def test_without_scikit_learn_it_says_what_to_install():
    code = ("import runpy, sys; sys.modules['sklearn'] = None; sys.argv = ['digits_mlp.py', '--rpc-url', "
            f"'http://127.0.0.1:9/']; runpy.run_path({str(PATH)!r}, run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert "needs scikit-learn: pip install -e '.[examples]'" in r.stderr and "Traceback" not in r.stderr
