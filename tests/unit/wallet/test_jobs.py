"""Local checks of a MatMul product before it is saved: Freivalds and the job id of A and B."""

from __future__ import annotations

import numpy as np
import pytest

from wallet.jobs import (
    JobFileError,
    ProductRejected,
    check_job_inputs,
    compute_local_job_id,
    read_matrix_file,
    save_verified_product,
)


@pytest.fixture
def job():
    rng = np.random.default_rng(3)
    a = rng.integers(-64, 64, (20, 40), dtype=np.int8)
    b = rng.integers(-64, 64, (40, 9), dtype=np.int8)
    c = (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)
    return a, b, c, compute_local_job_id(a, b)


def test_correct_product_is_saved(job, tmp_path):
    a, b, c, job_id = job
    out = tmp_path / "C.npy"
    save_verified_product(out, a, b, c, job_id)
    assert np.array_equal(np.load(out), c)
    assert [p.name for p in tmp_path.iterdir()] == ["C.npy"]


@pytest.mark.parametrize("tamper", [
    lambda c: c.__setitem__((3, 4), c[3, 4] + 1),
    lambda c: c.__setitem__((0, 0), -c[0, 0] - 1),
    lambda c: c.fill(0),
])
def test_tampered_product_is_refused_and_nothing_written(job, tmp_path, tamper):
    a, b, c, job_id = job
    bad = c.copy()
    tamper(bad)
    out = tmp_path / "C.npy"
    with pytest.raises(ProductRejected, match="Freivalds"):
        save_verified_product(out, a, b, bad, job_id)
    assert list(tmp_path.iterdir()) == []
    out.write_bytes(b"old")  # an existing file stays as it was
    with pytest.raises(ProductRejected):
        save_verified_product(out, a, b, bad, job_id)
    assert out.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["C.npy"]


def test_wrong_shape_or_dtype_is_refused(job, tmp_path):
    a, b, c, job_id = job
    with pytest.raises(ProductRejected, match="expected 20x9"):
        save_verified_product(tmp_path / "x.npy", a, b, c[:, :8], job_id)
    with pytest.raises(ProductRejected, match="int32"):
        save_verified_product(tmp_path / "x.npy", a, b, c.astype(np.int64), job_id)


def test_matrices_of_another_job_are_refused(job):
    a, b, _, job_id = job
    check_job_inputs(a, b, job_id)
    other = a.copy()
    other[0, 0] ^= 1
    with pytest.raises(ProductRejected, match="not the matrices of job"):
        check_job_inputs(other, b, job_id)


def test_read_matrix_file_errors(tmp_path):
    p = tmp_path / "a.npy"
    np.save(p, np.ones((2, 2), dtype=np.int32))
    with pytest.raises(JobFileError, match="int8"):
        read_matrix_file(p, "A")
    np.save(p, np.full((2, 2), 100, dtype=np.int8))
    with pytest.raises(JobFileError, match=r"\[-64, 63\]"):
        read_matrix_file(p, "A")
    p.write_bytes(b"not npy")
    with pytest.raises(JobFileError, match="not a valid .npy"):
        read_matrix_file(p, "A")
    with pytest.raises(JobFileError, match="cannot read"):
        read_matrix_file(tmp_path / "missing.npy", "A")
