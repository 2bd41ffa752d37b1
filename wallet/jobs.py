"""MatMul job files on the client side: read ``.npy`` matrices, check a product, save it.

The wallet does not trust the node's word for a product. Before ``C`` is
saved, ``check_product`` runs Freivalds' test locally (docs/protocol.md section 9,
``pouw.jobs.freivalds_check``: ``A.(B.x) == C.x (mod 2^61-1)`` for the vector
drawn from the job id and ``H(C)``), so a wrong ``C`` is caught with
probability ``1 - 2^-61``. When ``A`` and ``B`` come from the node as well,
``check_job_inputs`` first recomputes the job id from them (the id is a
commitment to the padded matrices), so a node cannot swap in other matrices
that fit a wrong product.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np

from pouw.commit import commit_pair
from pouw.errors import InvalidMatrixError
from pouw.jobs import compute_job_id, freivalds_check, product_hash
from pouw.matrix import pad_pair


class JobFileError(ValueError):
    """A matrix file that cannot be used (missing, not ``.npy``, wrong dtype or shape)."""


class ProductRejected(ValueError):
    """A product (or the matrices it came with) failed a local check; nothing was saved."""


def load_npy_bytes(data: bytes, name: str) -> np.ndarray:
    """Parse ``.npy`` bytes (no pickles) as a 2-D array."""
    try:
        x = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:  # np.load raises many kinds of exception on garbage
        raise JobFileError(f"{name} is not a valid .npy file ({type(e).__name__}: {e})") from None
    if not isinstance(x, np.ndarray) or x.ndim != 2:
        raise JobFileError(f"{name} must hold one 2-D matrix, found {getattr(x, 'ndim', '?')} dimensions")
    return x


def read_matrix_file(path: str | Path, name: str) -> tuple[bytes, np.ndarray]:
    """The bytes and the int8 matrix of a job input file (entries in [-64, 63])."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise JobFileError(f"cannot read {name} file {path}: {e.strerror}") from None
    x = load_npy_bytes(data, f"{name} ({path})")
    if x.dtype != np.int8:
        raise JobFileError(f"{name} ({path}) has dtype {x.dtype}; job matrices are int8 with entries in [-64, 63] "
                           "(split wider integers into int7 digits, docs/protocol.md section 9)")
    if x.size and (int(x.min()) < -64 or int(x.max()) > 63):
        raise JobFileError(f"{name} ({path}) has entries outside [-64, 63]")
    return data, x


def compute_local_job_id(a: np.ndarray, b: np.ndarray) -> bytes:
    """The job id of ``(A, B)`` (docs/protocol.md section 9): submitted shape and roots of the padded pair."""
    try:
        pa, pb = pad_pair(np.ascontiguousarray(a), np.ascontiguousarray(b))
    except InvalidMatrixError as e:
        raise ProductRejected(f"A and B do not form a job: {e}") from None
    c = commit_pair(pa, pb)
    m, k = a.shape
    return compute_job_id(m, k, b.shape[1], c.root_a, c.root_b)


def check_job_inputs(a: np.ndarray, b: np.ndarray, job_id: bytes) -> None:
    """Raise ``ProductRejected`` unless ``A`` and ``B`` are the matrices of ``job_id``."""
    got = compute_local_job_id(a, b)
    if got != job_id:
        raise ProductRejected(f"A and B are not the matrices of job {job_id.hex()} (they give job id {got.hex()}); "
                              "pass the files you submitted with --a and --b")


def check_product(a: np.ndarray, b: np.ndarray, c: np.ndarray, job_id: bytes) -> None:
    """Raise ``ProductRejected`` unless ``C`` is an int32 ``m x n`` matrix passing Freivalds' test."""
    m, k = a.shape
    if b.shape[0] != k:
        raise ProductRejected(f"A is {m}x{k} but B is {b.shape[0]}x{b.shape[1]}: they cannot be multiplied")
    n = b.shape[1]
    if c.shape != (m, n):
        raise ProductRejected(f"the product is {c.shape[0]}x{c.shape[1]}, expected {m}x{n}")
    if c.dtype != np.int32:
        raise ProductRejected(f"the product has dtype {c.dtype}, expected int32")
    if not freivalds_check(a, b, c, job_id):
        raise ProductRejected("the product failed the local Freivalds check: it is not A @ B; nothing was saved")


def encode_npy(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(x), allow_pickle=False)
    return buf.getvalue()


def save_verified_product(out: str | Path, a: np.ndarray, b: np.ndarray, c: np.ndarray, job_id: bytes) -> str:
    """Check ``C`` against ``A``, ``B`` and the job id, then write it atomically to ``out``; returns ``H(C)`` hex.

    On ``ProductRejected`` nothing is written (an existing ``out`` is left as it is).
    """
    check_product(a, b, c, job_id)
    write_atomic(out, encode_npy(c))
    return product_hash(c).hex()


def write_atomic(out: str | Path, data: bytes) -> None:
    """Write ``out`` atomically: a temporary file in the same directory, fsync'd, then a rename."""
    out = Path(out)
    directory = out.parent if str(out.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
