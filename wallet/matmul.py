"""``matmul(A, B)`` on the network: any integer width, any size, checked locally, shared among the miners.

    from wallet.matmul import Client
    C = Client("http://127.0.0.1:18445/").matmul(A, B)   # == A.astype(int64) @ B.astype(int64)

A job multiplies int7 matrices (entries in ``[-64, 63]``) of bounded shape
(docs/protocol.md section 9), so one product becomes many sub-jobs:

- Digits (``wallet.digits``): every entry becomes balanced radix-128 digits;
  ``A @ B = sum 128^(i+j) A_i @ B_j``. A digit matrix that is all zero is not
  sent (the high digit of small values).
- Tiling: m and n are cut to the tile (default 2048, 4096, 2048: a 2048x4096
  int8 ``A``, a 4096x2048 ``B`` and their 2048x2048 int32 product fit the
  node's default limits of 4096*4096 entries per padded matrix and 64 MiB per
  blob), k into slices whose partial products are summed.
- Content addressing: a sub-job's id is the hash of its matrices (its job
  id), so a repeated block (equal digit tiles) is computed once and used
  wherever it occurs; a blob is uploaded once however many jobs use it.
- Everything is submitted at once (as far as the node's queue allows: a full
  queue is retried as jobs finish), so every miner on the network can take
  some; each product is checked here with Freivalds' test against the local
  tiles before it is used (the node's word is not trusted); a product that
  fails is fetched and submitted again, and one that keeps failing raises.
- The sum is exact: partial products are int32 (|digit| <= 64 and k <= 65536
  keep them below 2^31); they are combined modulo 2^64 (uint64 wraps), which
  is exact because ``k * max|A| * max|B| < 2^63`` is checked first.

Floats go through ``quantize="int8"`` (or ``"int16"``): symmetric scales per
row of A and per column of B, the exact integer product on the network, then
rescaled. A timeout or any exception (KeyboardInterrupt too) cancels the
sub-jobs still waiting on the node.

The node is reached through the ``MatmulNode`` protocol (``RpcNode`` speaks
JSON-RPC and the ``/blobs`` routes); tests put a double behind it.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pouw.commit import leaf_a, leaf_b, tree_levels
from pouw.constants import K_MAX
from pouw.errors import InvalidMatrixError
from pouw.hashing import H
from pouw.jobs import compute_job_id
from pouw.matrix import padded_shape, transpose_int8

from .digits import SUPPORTED, digit_count, to_digits
from .jobs import JobFileError, ProductRejected, check_product, encode_npy, load_npy_bytes
from .rpc import NodeError, RpcClient, RpcError, read_cookie
from .ui import Progress

DEFAULT_TILE = (2048, 4096, 2048)
"""``(m, k, n)`` of the largest sub-job (see the module's docstring for why these fit the node's defaults)."""
MAX_RETRIES = 3
"""Times one sub-job is submitted again (failed, cancelled, or a product that failed the local check)."""
QUANTIZE = {"int8": 127, "int16": 32767}
"""Symmetric quantization: the largest magnitude of each kind."""
BATCH = 200
"""Job records asked for in one JSON-RPC batch while polling (the node takes up to 1000)."""
QUEUE_FULL = -45
BLOB_NOT_FOUND = -40
TOO_LARGE = -42
FETCH_RETRY = (-40, -43, -44, -47)
"""Errors fetching a done job's product that a new submission cures: blob, job or result gone, job failed."""
WAITING = ("queued", "mining")


class MatmulError(Exception):
    """A product could not be computed; ``job_ids`` names the sub-jobs concerned (hex), when there are any."""

    def __init__(self, message: str, job_ids: Iterable[str] = ()) -> None:
        self.job_ids = list(job_ids)
        if self.job_ids:
            shown = ", ".join(self.job_ids[:8]) + (f" and {len(self.job_ids) - 8} more" if len(self.job_ids) > 8
                                                    else "")
            message = f"{message} (jobs: {shown})"
        super().__init__(message)


class MatmulNode(Protocol):
    """What the client needs of a node: the blob routes and the job methods (docs/protocol.md section 9)."""

    label: str

    def put_blob(self, data: bytes) -> str:
        """Upload ``.npy`` bytes; the blob's hash (hex)."""
        ...

    def get_blob(self, digest: str) -> bytes: ...

    def submit(self, a_hash: str, b_hash: str) -> dict:
        """``submitmatmuljob``: ``{"job_id", "status"}``."""
        ...

    def jobs(self, job_ids: list[str]) -> list[dict]:
        """``getmatmuljob`` of each id, in order."""
        ...

    def result(self, job_id: str) -> dict:
        """``getmatmulresult``: ``{"c": blob hash, "computed_by", ...}``."""
        ...

    def cancel(self, job_id: str) -> None: ...


class RpcNode:
    """``MatmulNode`` over JSON-RPC and ``/blobs``; one HTTP client per thread (uploads run in parallel)."""

    def __init__(self, url: str, auth: tuple[str, str] | None, timeout: float) -> None:
        self.url, self.auth, self.timeout = url, auth, timeout
        self.label = url
        self._local = threading.local()

    @property
    def client(self) -> RpcClient:
        c = getattr(self._local, "client", None)
        if c is None:
            c = self._local.client = RpcClient(self.url, self.auth, timeout=self.timeout)
        return c

    def put_blob(self, data: bytes) -> str:
        return str(self.client.put_blob(data)["hash"])

    def get_blob(self, digest: str) -> bytes:
        return self.client.get_blob(digest)

    def submit(self, a_hash: str, b_hash: str) -> dict:
        return dict(self.client.call("submitmatmuljob", a_hash, b_hash))

    def jobs(self, job_ids: list[str]) -> list[dict]:
        out: list[dict] = []
        for i in range(0, len(job_ids), BATCH):
            out += self.client.batch([("getmatmuljob", [j]) for j in job_ids[i : i + BATCH]])
        return out

    def result(self, job_id: str) -> dict:
        return dict(self.client.call("getmatmulresult", job_id))

    def cancel(self, job_id: str) -> None:
        self.client.call("cancelmatmuljob", job_id)


# --- planning --------------------------------------------------------------------------------------


@dataclass
class _Tile:
    """One digit tile (an int7 matrix) as it is uploaded: bytes, blob hash, and its Merkle root padded."""

    matrix: np.ndarray
    npy: bytes
    blob: str
    blob_lock: threading.Lock = field(default_factory=threading.Lock)
    uploaded: bool = False


@dataclass
class _SubJob:
    """One distinct product ``a @ b`` (a job) and where it goes in ``C``: ``(row0, col0, weight exponent)``."""

    job_id: str
    a: _Tile
    b: _Tile
    uses: list[tuple[int, int, int]]
    attempts: int = 0
    status: str = "new"
    retry_at: float = 0.0


def tile_ranges(size: int, tile: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` cutting ``range(size)`` into pieces of at most ``tile`` (the last one ragged)."""
    return [(s, min(s + tile, size)) for s in range(0, size, tile)]


def check_int64_bound(a: np.ndarray, b: np.ndarray) -> None:
    """Raise ``MatmulError`` unless every entry of ``A @ B`` provably fits int64: ``k*max|A|*max|B| < 2^63``.

    Exact, with Python integers; the magnitudes are those of the actual entries, so an int32 matrix with
    small values passes.
    """
    k = a.shape[1]
    max_a = max(abs(int(a.max())), abs(int(a.min()))) if a.size else 0
    max_b = max(abs(int(b.max())), abs(int(b.min()))) if b.size else 0
    if k * max_a * max_b >= 1 << 63:
        raise MatmulError(f"the product may not fit int64: k * max|A| * max|B| = {k} * {max_a} * {max_b} "
                          f"= {k * max_a * max_b} >= 2^63; scale the inputs down or split k yourself")


class _Plan:
    """The distinct sub-jobs of ``A @ B`` for a tile shape, with their padded commitments computed once per tile."""

    def __init__(self, a: np.ndarray, b: np.ndarray, tile: tuple[int, int, int]) -> None:
        tm, tk, tn = tile
        self.m, self.k = a.shape
        self.n = b.shape[1]
        self.tiles: dict[str, _Tile] = {}
        self.roots: dict[tuple[str, str], bytes] = {}
        self.jobs: dict[str, _SubJob] = {}
        self.uses = 0
        a_digits, b_digits = to_digits(a), to_digits(b)
        rows, inner, cols = tile_ranges(self.m, tm), tile_ranges(self.k, tk), tile_ranges(self.n, tn)
        # Each digit tile once (None: all zero, its products are zero and are not sent).
        a_tiles = {(r0, s0): [(i, t) for i, d in enumerate(a_digits) if (t := self._tile(d[r0:r1, s0:s1]))]
                   for r0, r1 in rows for s0, s1 in inner}
        b_tiles = {(s0, c0): [(j, t) for j, d in enumerate(b_digits) if (t := self._tile(d[s0:s1, c0:c1]))]
                   for s0, s1 in inner for c0, c1 in cols}
        for r0, _ in rows:
            for s0, _ in inner:
                for c0, _ in cols:
                    for i, ta in a_tiles[r0, s0]:
                        for j, tb in b_tiles[s0, c0]:
                            self.uses += 1
                            job_id = self._job_id(ta, tb)
                            sub = self.jobs.get(job_id)
                            if sub is None:
                                sub = self.jobs[job_id] = _SubJob(job_id, ta, tb, [])
                            sub.uses.append((r0, c0, i + j))

    def _tile(self, x: np.ndarray) -> _Tile | None:
        if not bool(x.any()):
            return None
        x = np.ascontiguousarray(x)
        data = encode_npy(x)
        blob = H(data).hex()
        t = self.tiles.get(blob)
        if t is None:
            t = self.tiles[blob] = _Tile(x, data, blob)
        return t

    def _root(self, t: _Tile, side: str, pk: int, other: int) -> bytes:
        """The Merkle root of ``t`` zero-padded as side ``A`` or ``B`` of a job (``other``: its padded m or n)."""
        key = (t.blob, side)
        root = self.roots.get(key)
        if root is None:
            if side == "A":
                p = np.zeros((other, pk), np.int8)
                p[: t.matrix.shape[0], : t.matrix.shape[1]] = t.matrix
                root = tree_levels(leaf_a, p)[-1][0]
            else:
                p = np.zeros((pk, other), np.int8)
                p[: t.matrix.shape[0], : t.matrix.shape[1]] = t.matrix
                root = tree_levels(leaf_b, transpose_int8(p))[-1][0]
            self.roots[key] = root
        return root

    def _job_id(self, ta: _Tile, tb: _Tile) -> str:
        """The content address of ``ta @ tb``: the job id the node gives it (docs/protocol.md section 9)."""
        m, k = ta.matrix.shape
        n = tb.matrix.shape[1]
        try:
            pm, pk, pn = padded_shape(m, k, n)
        except InvalidMatrixError as e:
            raise MatmulError(f"a {m}x{k}x{n} sub-job breaks the job shape rules: {e}") from None
        return compute_job_id(m, k, n, self._root(ta, "A", pk, pm), self._root(tb, "B", pk, pn)).hex()


# --- the client ------------------------------------------------------------------------------------


class Client:
    """Exact matrix products computed by the network's miners, checked locally (see the module's docstring).

    ``rpc_url``: the node's JSON-RPC URL (``http://127.0.0.1:18445/`` on devnet).
    Credentials: ``cookie`` (the node's ``<datadir>/.cookie``) or ``user`` and
    ``password``; none for a node that does not ask. ``timeout``: seconds one
    ``matmul`` may take (then its waiting sub-jobs are cancelled and
    ``MatmulError`` names them). ``progress``: a status line on stderr; None
    shows it only when stderr is a terminal.

    For tests and tuning: ``tile`` (largest sub-job ``(m, k, n)``; m and n
    multiples of 16 and k of 128 avoid padding), ``max_retries``,
    ``concurrency`` (parallel uploads/downloads), ``poll_interval`` (seconds
    between status polls), ``node`` (a ``MatmulNode`` instead of JSON-RPC).

    After each ``matmul``, ``last_stats`` holds: ``sub_jobs`` (distinct jobs),
    ``reused`` (digit-tile products found twice or more and computed once),
    ``retries``, ``bytes_up``, ``bytes_down``, ``seconds`` and ``computed_by``
    (``{label: count}``: the node's ``computed_by`` of each product, ``"this
    node"`` or ``"peer"``).
    """

    def __init__(self, rpc_url: str, *, cookie: str | Path | None = None, user: str | None = None,
                 password: str | None = None, timeout: float = 600.0, progress: bool | None = None,
                 tile: tuple[int, int, int] = DEFAULT_TILE, max_retries: int = MAX_RETRIES, concurrency: int = 4,
                 poll_interval: float = 0.2, node: MatmulNode | None = None) -> None:
        if not (timeout > 0):
            raise ValueError(f"timeout must be positive, found {timeout}")
        tm, tk, tn = (int(v) for v in tile)
        if tm < 1 or tn < 1 or tk < 1 or tk > K_MAX:
            raise ValueError(f"tile (m, k, n) must be positive with k <= {K_MAX}, found {tile}")
        if not 1 <= concurrency <= 64:
            raise ValueError(f"concurrency must be in [1, 64], found {concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, found {max_retries}")
        self.tile = (tm, tk, tn)
        self.timeout = float(timeout)
        self.progress = progress
        self.max_retries = max_retries
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        if node is None:
            auth: tuple[str, str] | None = None
            if user is not None or password is not None:
                auth = (user or "", password or "")
            elif cookie is not None:
                auth = read_cookie(cookie)
            node = RpcNode(rpc_url, auth, timeout=min(60.0, self.timeout))
        self.node: MatmulNode = node
        self.last_stats: dict[str, Any] = {}

    # --- public ----------------------------------------------------------------------------------

    def matmul(self, a: np.ndarray, b: np.ndarray, *, quantize: str | None = None) -> np.ndarray:
        """``A @ B``: exactly ``A.astype(int64) @ B.astype(int64)`` for integer matrices (int8, uint8, int16,
        uint16, int32, uint32, int64 when the product provably fits int64); for floats, with
        ``quantize="int8"`` (or ``"int16"``), the rescaled exact product of the quantized matrices (float64).

        Raises ``MatmulError`` (bad input, a timeout, a product that keeps failing its check) and lets
        ``NodeError`` (node unreachable, credentials, an RPC error) through.
        """
        a, b = _as_matrix(a, "A"), _as_matrix(b, "B")
        if a.shape[1] != b.shape[0]:
            raise MatmulError(f"A is {a.shape[0]}x{a.shape[1]} and B is {b.shape[0]}x{b.shape[1]}: "
                              "A's columns must equal B's rows")
        if quantize is not None:
            if quantize not in QUANTIZE:
                raise MatmulError(f"quantize must be one of {', '.join(QUANTIZE)}, found {quantize!r}")
            if not (np.issubdtype(a.dtype, np.floating) and np.issubdtype(b.dtype, np.floating)):
                raise MatmulError(f"quantize is for float matrices; A is {a.dtype} and B is {b.dtype} "
                                  "(integer matrices are multiplied exactly without it)")
            qa, sa = quantize_rows(a, QUANTIZE[quantize])
            qb, sb = quantize_rows(b.T, QUANTIZE[quantize])
            c = self._exact(qa, qb.T.copy())
            return c.astype(np.float64) * sa[:, None] * sb[None, :]
        for name, x in (("A", a), ("B", b)):
            if x.dtype.type not in SUPPORTED:
                hint = " (pass quantize='int8' for float matrices)" if np.issubdtype(x.dtype, np.floating) else ""
                raise MatmulError(f"{name} has dtype {x.dtype}; supported: "
                                  f"{', '.join(np.dtype(t).name for t in SUPPORTED)}{hint}")
        return self._exact(a, b)

    # --- the exact product -----------------------------------------------------------------------

    def _exact(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        start = time.monotonic()
        check_int64_bound(a, b)
        m, n = a.shape[0], b.shape[1]
        stats: dict[str, Any] = {"sub_jobs": 0, "reused": 0, "retries": 0, "bytes_up": 0, "bytes_down": 0,
                                 "seconds": 0.0, "computed_by": {}}
        self.last_stats = stats
        acc = np.zeros((m, n), np.uint64)
        if a.size and b.size:
            plan = _Plan(a, b, self.tile)
            stats["sub_jobs"] = len(plan.jobs)
            stats["reused"] = plan.uses - len(plan.jobs)
            _Run(self, plan, acc, stats, start + self.timeout).run()
        stats["seconds"] = round(time.monotonic() - start, 3)
        return acc.view(np.int64)


def _as_matrix(x: Any, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.ndim != 2:
        raise MatmulError(f"{name} must be a 2-D matrix, found {x.ndim} dimensions")
    if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise MatmulError(f"{name} has dtype {x.dtype}; give integers or floats (with quantize)")
    return x


def quantize_rows(x: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-row quantization: ``(q, scale)`` with ``q = round(x / scale)`` in ``[-top, top]``.

    ``scale = max|row| / top`` (1 for an all-zero row); NaN or infinity raise ``MatmulError``.
    """
    x = np.asarray(x, np.float64)
    if not np.all(np.isfinite(x)):
        raise MatmulError("the matrix holds NaN or infinity; it cannot be quantized")
    peak = np.max(np.abs(x), axis=1) if x.shape[1] else np.zeros(x.shape[0])
    scale = np.where(peak > 0, peak / top, 1.0)
    q = np.clip(np.rint(x / scale[:, None]), -top, top)
    return q.astype(np.int8 if top <= 127 else np.int16), scale


class _Run:
    """One ``matmul``'s sub-jobs on the node: submit, poll, fetch, check, accumulate (main thread), clean up."""

    def __init__(self, client: Client, plan: _Plan, acc: np.ndarray, stats: dict, deadline: float) -> None:
        self.c = client
        self.node = client.node
        self.plan = plan
        self.acc = acc
        self.stats = stats
        self.deadline = deadline
        self.start = time.monotonic()
        self.total = len(plan.jobs)
        self.done = 0
        self.to_submit: deque[_SubJob] = deque(plan.jobs.values())
        self.waiting: dict[str, _SubJob] = {}
        """Submitted, not finished on the node yet."""
        self.in_flight: dict[Future, tuple[str, _SubJob]] = {}
        self.lock = threading.Lock()
        enabled = client.progress if client.progress is not None else sys.stderr.isatty()
        self.progress = Progress(enabled=bool(enabled))

    # --- worker-thread tasks -----------------------------------------------------------------

    def _count(self, key: str, amount: int) -> None:
        with self.lock:
            self.stats[key] += amount

    def _upload(self, t: _Tile, again: bool = False) -> None:
        with t.blob_lock:
            if t.uploaded and not again:
                return
            got = self.node.put_blob(t.npy)
            self._count("bytes_up", len(t.npy))
            if got != t.blob:
                raise MatmulError(f"the node stored a tile under blob {got}, expected {t.blob}")
            t.uploaded = True

    def _submit(self, sub: _SubJob) -> dict | None:
        """Upload the tiles (once) and submit; the job record, or None when the queue is full (retry later)."""
        self._upload(sub.a)
        self._upload(sub.b)
        for _ in range(2):
            try:
                job = self.node.submit(sub.a.blob, sub.b.blob)
                break
            except RpcError as e:
                if e.code == QUEUE_FULL:
                    return None
                if e.code == BLOB_NOT_FOUND:  # evicted between upload and submit (a busy blob store): again
                    self._upload(sub.a, again=True)
                    self._upload(sub.b, again=True)
                    continue
                if e.code == TOO_LARGE:
                    raise MatmulError(f"the node refused a {sub.a.matrix.shape[0]}x{sub.a.matrix.shape[1]}x"
                                      f"{sub.b.matrix.shape[1]} sub-job as too large ({e.message}); use a smaller "
                                      "Client(tile=...)", [sub.job_id]) from None
                raise
        else:
            raise MatmulError("the node lost the uploaded tiles twice", [sub.job_id])
        if job.get("job_id") != sub.job_id:
            raise MatmulError(f"the node gave job id {job.get('job_id')} to matrices whose id is {sub.job_id}",
                              [sub.job_id])
        return job

    def _fetch(self, sub: _SubJob) -> tuple[np.ndarray | None, str]:
        """``(product, who computed it)``, the product checked with Freivalds against the local tiles; or
        ``(None, why)`` when it failed the check or could not be fetched (the job vanished or failed meanwhile,
        its product was evicted): then it is submitted again."""
        m, n = sub.a.matrix.shape[0], sub.b.matrix.shape[1]
        try:
            result = self.node.result(sub.job_id)
            shape = result.get("shape")
            if isinstance(shape, dict) and (shape.get("m"), shape.get("n")) != (m, n):
                return None, f"announced a {shape.get('m')}x{shape.get('n')} product, not {m}x{n}"
            data = self.node.get_blob(str(result["c"]))
        except RpcError as e:
            if e.code in FETCH_RETRY:
                return None, f"could not be fetched ({e.message})"
            raise
        self._count("bytes_down", len(data))
        try:
            c = load_npy_bytes(data, f"the product of job {sub.job_id}")
            check_product(sub.a.matrix, sub.b.matrix, c, bytes.fromhex(sub.job_id))
        except (JobFileError, ProductRejected) as e:
            return None, f"gave a product failing the local check ({e})"
        return c, str(result.get("computed_by", "this node"))

    # --- main thread -------------------------------------------------------------------------

    def run(self) -> None:
        pool = ThreadPoolExecutor(max_workers=self.c.concurrency, thread_name_prefix="matmul")
        try:
            self._loop(pool)
        except BaseException:
            # Let running uploads and submissions end first, so that no job appears after the cancellation.
            pool.shutdown(wait=True, cancel_futures=True)
            self._cancel_waiting()
            self.progress.done()
            raise
        pool.shutdown(wait=True)
        self.progress.done(f"matmul: {self.total} sub-jobs done")

    def _launch(self, pool: ThreadPoolExecutor, kind: str, sub: _SubJob, fn: Callable[[_SubJob], Any]) -> None:
        self.in_flight[pool.submit(fn, sub)] = (kind, sub)

    def _retry(self, sub: _SubJob, why: str) -> None:
        sub.attempts += 1
        if sub.attempts > self.c.max_retries:
            raise MatmulError(f"a sub-job failed {sub.attempts} times (last: it {why}); giving up", [sub.job_id])
        self.stats["retries"] += 1
        sub.status = "new"
        self.to_submit.append(sub)

    def _loop(self, pool: ThreadPoolExecutor) -> None:
        next_poll = 0.0
        limit = 2 * self.c.concurrency
        while self.done < self.total:
            now = time.monotonic()
            if now > self.deadline:
                pending = [s.job_id for s in self.plan.jobs.values() if s.status != "used"]
                raise MatmulError(f"timed out after {self.c.timeout:g} s with {len(pending)} of {self.total} "
                                  "sub-jobs unfinished; the waiting ones were cancelled", pending)
            postponed: list[_SubJob] = []
            while self.to_submit and len(self.in_flight) < limit:
                sub = self.to_submit.popleft()
                if sub.retry_at > now:
                    postponed.append(sub)
                    continue
                sub.status = "submitting"
                self._launch(pool, "submit", sub, self._submit)
            self.to_submit.extend(postponed)
            if self.in_flight:
                finished, _ = wait(list(self.in_flight), timeout=self.c.poll_interval, return_when=FIRST_COMPLETED)
            else:
                finished = set()
                time.sleep(min(self.c.poll_interval, max(0.0, next_poll - now)) or 0.01)
            for f in finished:
                kind, sub = self.in_flight.pop(f)
                self._handle(pool, kind, sub, f.result())  # a worker's exception propagates here
            if self.waiting and time.monotonic() >= next_poll:
                next_poll = time.monotonic() + self.c.poll_interval
                self._poll(pool)
            self._show()

    def _handle(self, pool: ThreadPoolExecutor, kind: str, sub: _SubJob, value: Any) -> None:
        if kind == "submit":
            if value is None:  # the node's queue is full: again a little later (jobs finish meanwhile)
                sub.status, sub.retry_at = "new", time.monotonic() + min(1.0, 5 * self.c.poll_interval)
                self.to_submit.append(sub)
            elif value.get("status") == "done":
                sub.status = "fetching"
                self._launch(pool, "fetch", sub, self._fetch)
            elif value.get("status") in WAITING:
                sub.status = "waiting"
                self.waiting[sub.job_id] = sub
            else:
                self._retry(sub, f"ended {value.get('status')} on submission")
            return
        c, who = value
        if c is None:
            self._retry(sub, who)
            return
        wide = c.astype(np.int64).view(np.uint64)
        for r0, c0, exp in sub.uses:  # modulo 2^64, exact (see the module's docstring)
            block = self.acc[r0 : r0 + c.shape[0], c0 : c0 + c.shape[1]]
            block += wide << np.uint64(7 * exp)
        sub.status = "used"
        self.done += 1
        computed = self.stats["computed_by"]
        computed[who] = computed.get(who, 0) + 1

    def _poll(self, pool: ThreadPoolExecutor) -> None:
        ids = list(self.waiting)
        for sub, job in zip([self.waiting[i] for i in ids], self.node.jobs(ids), strict=True):
            status = job.get("status")
            if status in WAITING:
                continue
            del self.waiting[sub.job_id]
            if status == "done":
                sub.status = "fetching"
                self._launch(pool, "fetch", sub, self._fetch)
            else:
                self._retry(sub, f"ended {status}" + (f" ({job['error']})" if job.get("error") else ""))

    def _cancel_waiting(self) -> None:
        """Cancel what this run left on the node (best effort: the node may be gone, a job may have finished)."""
        for sub in self.plan.jobs.values():
            if sub.status in ("waiting", "submitting"):
                try:
                    self.node.cancel(sub.job_id)
                except (NodeError, OSError):
                    pass

    def _show(self) -> None:
        if not self.progress.enabled:
            return
        s = self.stats
        self.progress.update(f"matmul: {self.done}/{self.total} sub-jobs done, {len(self.waiting)} on the network, "
                             f"{s['bytes_up'] / 1e6:.1f} MB up, {s['bytes_down'] / 1e6:.1f} MB down")


def load_matrix_file(path: str | Path, name: str) -> np.ndarray:
    """A 2-D matrix from a ``.npy`` file (no pickles), for the command; ``MatmulError`` when it is not one."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise MatmulError(f"cannot read {name} file {path}: {e.strerror}") from None
    try:
        return load_npy_bytes(data, f"{name} ({path})")
    except JobFileError as e:
        raise MatmulError(str(e)) from None


__all__ = ["DEFAULT_TILE", "Client", "MatmulError", "MatmulNode", "RpcNode", "check_int64_bound", "digit_count",
           "quantize_rows", "tile_ranges"]
