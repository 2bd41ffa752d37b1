"""Content-addressed matrix blobs: ``.npy`` bytes stored as files named by their hash, within a disk quota.

A blob's name is the hex BLAKE3 of its bytes. Files are written to a temporary
name in the same directory, flushed, then renamed, so a crash never leaves a
half-written blob under a real name. Matrices travel as NumPy ``.npy`` bytes
(the format users already have); ``load_matrix`` parses them without pickle
and checks dtype, dimensionality, size and range.

Bounds:

- one blob is at most ``max_bytes`` (``--max-blob-bytes``, 64 MiB);
- all blobs together, plus what is being written, stay within ``quota_bytes``
  (``--blob-quota-bytes``, 4 GiB). A write that does not fit evicts blobs that
  no live job or held claim product references (``set_referenced`` and
  ``add_referenced``; ``node.jobs`` and ``node.claims`` say which),
  least recently written or used first, but none used in the last
  ``evict_min_age`` seconds (an upload waiting for its ``submitmatmuljob``).
  If that cannot free enough, nothing is evicted and the write is refused
  (``BlobError`` kind ``no-space``);
- a ``.npy`` header is at most ``NPY_MAX_HEADER`` bytes, so a matrix's file is
  at most ``rows * cols * itemsize + NPY_MAX_HEADER`` bytes (``npy_max_size``),
  which bounds a fetch by the shape a peer announced before it starts.

Blobs from peers are streamed (``writer``): each page goes to a temporary file
while its BLAKE3 is computed; ``BlobWriter.commit`` checks the hash and the
content (``matrix_check``) before the rename, and anything wrong deletes the
temporary file. Peers are served one page at a time (``serve_page``), except
blobs the store is told to withhold (``set_withheld``: a claimed product before
its claim has confirmed, ``node.claims``), which peers and ``GET /blobs`` do
not get; the node itself reads them (``get``, ``read_page``).

Thread-safe: one lock guards the bookkeeping. The ``referenced`` callback is
called with that lock held, so it must not call back into the store (the job
service never calls the store while it holds its own lock).
"""

from __future__ import annotations

import io
import os
import re
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from blake3 import blake3

from pouw.constants import VALUE_MAX, VALUE_MIN
from pouw.hashing import H

HASH_RE = re.compile(r"^[0-9a-f]{64}$")
DEFAULT_MAX_BLOB_BYTES = 64 * 1024 * 1024
DEFAULT_QUOTA_BYTES = 4 * 1024 * 1024 * 1024
EVICT_MIN_AGE = 600.0
"""Seconds a blob written or used (``put``, ``touch``) is safe from eviction."""
NPY_MAX_HEADER = 1024
"""Largest ``.npy`` header accepted (magic, length and the header dict); ``np.save`` writes 128 bytes for a matrix."""
NPY_MAGIC = b"\x93NUMPY"


class BlobError(ValueError):
    """A blob is missing, malformed, too large or does not fit the quota.

    ``kind`` is ``missing``, ``invalid``, ``too-large`` or ``no-space``.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def blob_hash(data: bytes) -> str:
    return H(data).hex()


@dataclass(frozen=True)
class NpyHeader:
    """What a ``.npy`` header says: the array's shape and dtype, and where its data starts."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    data_offset: int
    """Bytes of magic, length and header before the data."""

    @property
    def size(self) -> int:
        """Bytes of the whole file: header and data."""
        return self.data_offset + int(np.prod(self.shape, dtype=object)) * self.dtype.itemsize


def parse_npy_header(prefix: bytes) -> NpyHeader | None:
    """The header at the start of ``.npy`` bytes; ``None`` if ``prefix`` is too short to hold it all.

    Raises ``BlobError("invalid")`` for bytes that are not a ``.npy`` file, a
    header longer than ``NPY_MAX_HEADER`` bytes, or a dtype that needs pickle.
    """
    head = bytes(prefix[:len(NPY_MAGIC)])
    if not NPY_MAGIC.startswith(head):
        raise BlobError("invalid", "not a .npy file (no \\x93NUMPY magic)")
    if len(prefix) < 8:
        return None
    major = prefix[6]
    if major == 1:
        length_format, start = "<H", 10
    elif major == 2:
        length_format, start = "<I", 12
    else:
        raise BlobError("invalid", f"unsupported .npy format version {major}.{prefix[7]}")
    if len(prefix) < start:
        return None
    (header_len,) = struct.unpack(length_format, bytes(prefix[8:start]))
    if start + header_len > NPY_MAX_HEADER:
        raise BlobError("invalid", f".npy header of {start + header_len} bytes is over {NPY_MAX_HEADER}")
    if len(prefix) < start + header_len:
        return None
    fp = io.BytesIO(bytes(prefix[:start + header_len]))
    try:
        np.lib.format.read_magic(fp)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(fp)
    except Exception as e:  # whatever numpy raises on a garbled header
        raise BlobError("invalid", f"not a valid .npy header ({type(e).__name__}: {e})") from None
    if dtype.hasobject:
        raise BlobError("invalid", "a .npy array of objects (it would need pickle)")
    return NpyHeader(tuple(int(d) for d in shape), dtype, bool(fortran), start + header_len)


def npy_header_size(shape: tuple[int, ...], dtype: Any) -> int:
    """Bytes of the header ``np.save`` writes for an array of ``shape`` and ``dtype`` (128 for a matrix)."""
    d = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": tuple(shape)}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, d)
    return len(buf.getvalue())


def npy_size(shape: tuple[int, ...], dtype: Any) -> int:
    """Bytes of ``np.save`` of an array of ``shape`` and ``dtype``: its header plus its data."""
    return npy_header_size(shape, dtype) + int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize


def npy_max_size(shape: tuple[int, ...], dtype: Any) -> int:
    """Most bytes a ``.npy`` file of ``shape`` and ``dtype`` may have here (data plus ``NPY_MAX_HEADER``)."""
    return int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize + NPY_MAX_HEADER


class BlobStore:
    """Blobs in one directory, one file each, within ``quota_bytes``."""

    def __init__(self, directory: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BLOB_BYTES, *,
                 quota_bytes: int = DEFAULT_QUOTA_BYTES, evict_min_age: float = EVICT_MIN_AGE,
                 clock: Callable[[], float] = time.time) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.quota_bytes = quota_bytes
        self.evict_min_age = evict_min_age
        self.clock = clock
        self._lock = threading.Lock()
        self._referenced: Callable[[], set[str]] = set
        self._more_referenced: list[Callable[[], set[str]]] = []
        self._withheld: Callable[[str], bool] = lambda digest: False
        self._sizes: dict[str, int] = {}
        self._used_at: dict[str, float] = {}
        self._used = 0
        self._reserved = 0
        for entry in self.dir.iterdir():
            if entry.name.startswith(".tmp-"):  # leftovers of a crash mid-write
                entry.unlink(missing_ok=True)
            elif HASH_RE.match(entry.name) and entry.is_file():
                st = entry.stat()
                self._sizes[entry.name] = st.st_size
                self._used_at[entry.name] = st.st_mtime
                self._used += st.st_size

    def set_referenced(self, referenced: Callable[[], set[str]]) -> None:
        """``referenced()``: the hashes of blobs that must not be evicted (the live jobs' blobs)."""
        self._referenced = referenced

    def add_referenced(self, referenced: Callable[[], set[str]]) -> None:
        """Another ``referenced()`` beside the job service's (claim products); the union is kept."""
        self._more_referenced.append(referenced)

    def _keep(self) -> set[str]:
        """(lock held) Every blob some owner references."""
        keep = set(self._referenced())
        for more in self._more_referenced:
            keep |= more()
        return keep

    def set_withheld(self, withheld: Callable[[str], bool]) -> None:
        """``withheld(digest)``: a blob the node holds but must not serve yet (``serve_page``, ``GET /blobs``)."""
        self._withheld = withheld

    def is_withheld(self, digest: str) -> bool:
        return self._withheld(digest)

    def path(self, digest: str) -> Path:
        if not HASH_RE.match(digest or ""):
            raise BlobError("invalid", f"a blob hash is 64 lowercase hex digits, found {digest!r}")
        return self.dir / digest

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    def usage(self) -> int:
        """Bytes of stored blobs plus bytes reserved for blobs being written."""
        with self._lock:
            return self._used + self._reserved

    # --- writing -------------------------------------------------------------------------------

    def put(self, data: bytes) -> str:
        """Store ``data``; return its hash (idempotent: storing it again counts as a use)."""
        if len(data) > self.max_bytes:
            raise BlobError("too-large", f"blob of {len(data)} bytes exceeds the limit of {self.max_bytes} bytes")
        digest = blob_hash(data)
        target = self.path(digest)
        if target.exists():
            self.touch(digest)
            return digest
        with self._lock:
            self._make_room(len(data))
            self._reserved += len(data)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            with self._lock:
                self._reserved -= len(data)
            raise
        with self._lock:
            self._reserved -= len(data)
            self._record(digest, len(data))
        return digest

    def writer(self, digest: str, max_size: int) -> BlobWriter:
        """A streaming write of the blob named ``digest``, of at most ``max_size`` bytes (reserved now)."""
        self.path(digest)
        if max_size > self.max_bytes:
            raise BlobError("too-large", f"a blob of up to {max_size} bytes exceeds the limit of "
                            f"{self.max_bytes} bytes")
        with self._lock:
            self._make_room(max_size)
            self._reserved += max_size
        try:
            return BlobWriter(self, digest, max_size)
        except BaseException:
            self._unreserve(max_size)
            raise

    def _unreserve(self, n: int) -> None:
        with self._lock:
            self._reserved -= n

    def _record(self, digest: str, size: int) -> None:
        """(lock held) A blob is on disk under its name."""
        self._used += size - self._sizes.get(digest, 0)
        self._sizes[digest] = size
        self._used_at[digest] = self.clock()

    def _make_room(self, nbytes: int) -> None:
        """(lock held) Evict unreferenced blobs, oldest first, until ``nbytes`` more fit; else refuse."""
        excess = self._used + self._reserved + nbytes - self.quota_bytes
        if excess <= 0:
            return
        keep = self._keep()
        now = self.clock()
        candidates = sorted((t, d) for d, t in self._used_at.items()
                            if d not in keep and now - t >= self.evict_min_age)
        if sum(self._sizes[d] for _, d in candidates) < excess:
            raise BlobError("no-space", f"the blob store is full: {nbytes} more bytes do not fit its quota of "
                            f"{self.quota_bytes} bytes ({self._used} stored, {self._reserved} being written; "
                            f"blobs of live jobs and of the last {self.evict_min_age:g} s are kept)")
        for _, digest in candidates:
            if excess <= 0:
                break
            excess -= self._forget(digest)
            (self.dir / digest).unlink(missing_ok=True)

    def _forget(self, digest: str) -> int:
        """(lock held) Drop a blob from the bookkeeping; its size."""
        size = self._sizes.pop(digest, 0)
        self._used_at.pop(digest, None)
        self._used -= size
        return size

    def touch(self, digest: str) -> None:
        """Count a use of the blob: it is safe from eviction for ``evict_min_age`` seconds and evicted last."""
        p = self.path(digest)
        now = self.clock()
        with self._lock:
            if digest in self._sizes:
                self._used_at[digest] = now
        try:
            os.utime(p, (now, now))
        except OSError:
            pass

    def delete(self, digest: str) -> None:
        p = self.path(digest)
        with self._lock:
            self._forget(digest)
            p.unlink(missing_ok=True)

    def discard_unreferenced(self, digests: Iterable[str]) -> list[str]:
        """Delete those of ``digests`` that no live job references now; the ones deleted."""
        out = []
        with self._lock:
            keep = self._keep()
            for digest in dict.fromkeys(digests):
                if digest not in keep and HASH_RE.match(digest or "") and digest in self._sizes:
                    self._forget(digest)
                    (self.dir / digest).unlink(missing_ok=True)
                    out.append(digest)
        return out

    # --- reading -------------------------------------------------------------------------------

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

    def read_page(self, digest: str, offset: int, length: int) -> tuple[int, bytes] | None:
        """``(total size, bytes [offset, offset + length))`` of a blob, read with one seek; ``None`` if missing."""
        try:
            with open(self.path(digest), "rb") as f:
                total = os.fstat(f.fileno()).st_size
                if offset >= total:
                    return total, b""
                f.seek(offset)
                return total, f.read(min(length, total - offset))
        except FileNotFoundError:
            return None

    def serve_page(self, digest: str, offset: int, length: int) -> tuple[int, bytes] | None:
        """``read_page`` for a peer: ``None`` (as if missing) for a blob that is withheld."""
        if self._withheld(digest):
            return None
        return self.read_page(digest, offset, length)

    def header(self, digest: str) -> NpyHeader:
        """The ``.npy`` header of a stored blob, read from its first bytes; ``BlobError`` if it has none."""
        page = self.read_page(digest, 0, NPY_MAX_HEADER)
        if page is None:
            raise BlobError("missing", f"no blob {digest}")
        header = parse_npy_header(page[1])
        if header is None:
            raise BlobError("invalid", f"blob {digest}: truncated .npy header")
        return header


class BlobWriter:
    """One blob being written by pages to a temporary file in the store's directory (``BlobStore.writer``).

    ``write`` each page, then ``commit`` (checks, renames into place) or
    ``discard``; a writer that is neither leaves its temporary file to the next
    start-up's clean-up. Usable as a context manager, which discards unless
    committed.
    """

    def __init__(self, store: BlobStore, digest: str, max_size: int) -> None:
        self.store = store
        self.digest = digest
        self.max_size = max_size
        self.size = 0
        self._hash = blake3()
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=store.dir)
        self.tmp = Path(tmp)
        self._file: io.BufferedWriter | None = os.fdopen(fd, "wb")
        self._done = False

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()

    def write(self, data: bytes) -> None:
        if self._file is None:
            raise ValueError("the blob writer is closed")
        if self.size + len(data) > self.max_size:
            raise BlobError("too-large", f"blob {self.digest[:16]} is over the {self.max_size} bytes expected")
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)

    def commit(self, check: Callable[[Path], object] | None = None) -> str:
        """Check the bytes (hash, then ``check(path)``, which raises ``BlobError``), then rename into place."""
        if self._done or self._file is None:
            raise ValueError("the blob writer is closed")
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            if self._hash.hexdigest() != self.digest:
                raise BlobError("invalid", f"blob {self.digest[:16]}: the bytes do not hash to its name")
            if check is not None:
                check(self.tmp)
            os.replace(self.tmp, self.store.dir / self.digest)
        except BaseException:
            self.discard()
            raise
        self._done = True
        with self.store._lock:
            self.store._reserved -= self.max_size
            self.store._record(self.digest, self.size)
        return self.digest

    def discard(self) -> None:
        """Delete the temporary file and give back the reservation (nothing if committed or discarded)."""
        if self._done:
            return
        self._done = True
        if self._file is not None:
            self._file.close()
            self._file = None
        self.tmp.unlink(missing_ok=True)
        self.store._unreserve(self.max_size)


def encode_npy(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(x), allow_pickle=False)
    return buf.getvalue()


def load_matrix(data: bytes, name: str, *, max_dim: int = 1 << 20) -> np.ndarray:
    """Parse ``.npy`` bytes as a 2-D int8 matrix with entries in ``[-64, 63]``; raise ``BlobError``.

    The bytes must be exactly one array: a header of at most ``NPY_MAX_HEADER``
    bytes and the data, nothing after it.
    """
    header = _header_of(data, name)
    try:
        x = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:  # np.load raises many kinds on garbage
        raise BlobError("invalid", f"{name}: not a valid .npy file ({type(e).__name__}: {e})") from None
    if not isinstance(x, np.ndarray):
        raise BlobError("invalid", f"{name}: expected one array, found {type(x).__name__}")
    if x.dtype != np.int8:
        raise BlobError("invalid", f"{name}: dtype must be int8 with entries in [{VALUE_MIN}, {VALUE_MAX}], "
                        f"found {x.dtype} (split wider integers into int7 digits, see docs/protocol.md section 9)")
    if x.ndim != 2:
        raise BlobError("invalid", f"{name}: expected a 2-D matrix, found {x.ndim} dimensions")
    if min(x.shape) < 1:
        raise BlobError("invalid", f"{name}: empty matrix {x.shape}")
    if max(x.shape) > max_dim:
        raise BlobError("too-large", f"{name}: dimension {max(x.shape)} exceeds {max_dim}")
    if header.size != len(data):
        raise BlobError("invalid", f"{name}: {len(data)} bytes for a .npy matrix of {header.size}")
    lo, hi = int(x.min()), int(x.max())
    if lo < VALUE_MIN or hi > VALUE_MAX:
        bad = lo if lo < VALUE_MIN else hi
        raise BlobError("invalid", f"{name}: entries must lie in [{VALUE_MIN}, {VALUE_MAX}], found {bad}")
    return np.ascontiguousarray(x)


def _header_of(data: bytes, name: str) -> NpyHeader:
    try:
        header = parse_npy_header(data[:NPY_MAX_HEADER])
    except BlobError as e:
        raise BlobError("invalid", f"{name}: {e}") from None
    if header is None:
        raise BlobError("invalid", f"{name}: truncated .npy header")
    return header


def matrix_check(shape: tuple[int, int], name: str) -> Callable[[Path], None]:
    """A ``BlobWriter.commit`` check: the file is a ``load_matrix`` matrix of exactly ``shape``."""
    def check(path: Path) -> None:
        with open(path, "rb") as f:  # the header first: garbage is refused before the whole file is read
            header = _header_of(f.read(NPY_MAX_HEADER), name)
            size = os.fstat(f.fileno()).st_size
            if header.shape != tuple(shape) or header.dtype != np.int8 or header.size != size:
                raise BlobError("invalid", f"{name}: expected an int8 {_dims(shape)} .npy matrix, found "
                                f"{header.dtype} {_dims(header.shape)} in {size} bytes")
            f.seek(0)
            data = f.read()
        load_matrix(data, name)

    return check


def product_check(shape: tuple[int, int]) -> Callable[[Path], None]:
    """A ``BlobWriter.commit`` check: the file is an int32 ``.npy`` matrix of exactly ``shape``, nothing more."""
    def check(path: Path) -> None:
        with open(path, "rb") as f:
            header = _header_of(f.read(NPY_MAX_HEADER), "C")
            size = os.fstat(f.fileno()).st_size
        if header.dtype != np.dtype("<i4") or header.shape != tuple(shape) or header.size != size:
            raise BlobError("invalid", f"C: expected an int32 {_dims(shape)} .npy matrix, found {header.dtype} "
                            f"{_dims(header.shape)} in {size} bytes")

    return check


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)
