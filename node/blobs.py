"""Content-addressed matrix blobs: ``.npy`` bytes stored as files named by their hash.

A blob's name is the hex BLAKE3 of its bytes. Files are written to a temporary
name in the same directory, flushed, then renamed, so a crash never leaves a
half-written blob under a real name. Matrices travel as NumPy ``.npy`` bytes
(the format users already have); ``load_matrix`` parses them without pickle
and checks dtype, dimensionality, size and range.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from pouw.constants import VALUE_MAX, VALUE_MIN
from pouw.hashing import H

HASH_RE = re.compile(r"^[0-9a-f]{64}$")
DEFAULT_MAX_BLOB_BYTES = 64 * 1024 * 1024


class BlobError(ValueError):
    """A blob is missing, malformed or too large; ``kind`` is ``missing``, ``invalid`` or ``too-large``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def blob_hash(data: bytes) -> str:
    return H(data).hex()


class BlobStore:
    """Blobs in one directory, one file each."""

    def __init__(self, directory: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BLOB_BYTES) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        for stale in self.dir.glob(".tmp-*"):  # leftovers of a crash mid-write
            stale.unlink(missing_ok=True)

    def path(self, digest: str) -> Path:
        if not HASH_RE.match(digest or ""):
            raise BlobError("invalid", f"a blob hash is 64 lowercase hex digits, found {digest!r}")
        return self.dir / digest

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    def put(self, data: bytes) -> str:
        """Store ``data``; return its hash (idempotent)."""
        if len(data) > self.max_bytes:
            raise BlobError("too-large", f"blob of {len(data)} bytes exceeds the limit of {self.max_bytes} bytes")
        digest = blob_hash(data)
        target = self.path(digest)
        if target.exists():
            return digest
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def get(self, digest: str) -> bytes:
        p = self.path(digest)
        try:
            return p.read_bytes()
        except FileNotFoundError:
            raise BlobError("missing", f"no blob {digest}") from None

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise BlobError("missing", f"no blob {digest}") from None


def encode_npy(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(x), allow_pickle=False)
    return buf.getvalue()


def load_matrix(data: bytes, name: str, *, max_dim: int = 1 << 20) -> np.ndarray:
    """Parse ``.npy`` bytes as a 2-D int8 matrix with entries in ``[-64, 63]``; raise ``BlobError``."""
    try:
        x = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:  # np.load raises many kinds on garbage
        raise BlobError("invalid", f"{name}: not a valid .npy file ({type(e).__name__}: {e})") from None
    if not isinstance(x, np.ndarray):
        raise BlobError("invalid", f"{name}: expected one array, found {type(x).__name__}")
    if x.dtype != np.int8:
        raise BlobError("invalid", f"{name}: dtype must be int8 with entries in [{VALUE_MIN}, {VALUE_MAX}], "
                        f"found {x.dtype} (split wider integers into int7 digits, see PROTOCOL.md section 9)")
    if x.ndim != 2:
        raise BlobError("invalid", f"{name}: expected a 2-D matrix, found {x.ndim} dimensions")
    if min(x.shape) < 1:
        raise BlobError("invalid", f"{name}: empty matrix {x.shape}")
    if max(x.shape) > max_dim:
        raise BlobError("too-large", f"{name}: dimension {max(x.shape)} exceeds {max_dim}")
    lo, hi = int(x.min()), int(x.max())
    if lo < VALUE_MIN or hi > VALUE_MAX:
        bad = lo if lo < VALUE_MIN else hi
        raise BlobError("invalid", f"{name}: entries must lie in [{VALUE_MIN}, {VALUE_MAX}], found {bad}")
    return np.ascontiguousarray(x)
