"""MatMul job RPC methods.

Matrices travel as NumPy ``.npy`` bytes: upload with ``PUT /blobs`` (the body
is the file; the answer is its BLAKE3 hash; ``node.api.routes``), or inline as
base64 in ``submitmatmuljob`` for small ones. Products come back as a blob hash
(``GET /blobs/<hash>``) or inline when small. Job errors use codes -40..-47.

External miners (``pouw-miner``) take job work from ``getblocktemplate``
(node/api/mining.py: a lease, node/jobs.py) and hand the product back with
``submitmatmulresult``: a blob hash, or the int32 ``.npy`` inline (up to
``MAX_INLINE_PRODUCT_BYTES``; ``PUT /blobs`` takes int8 matrices only, so a
product travels inline).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any

import numpy as np

from ..blobs import BlobError, BlobStore, load_matrix
from ..jobs import DONE, FAILED, STATUSES, WAITING, WORKER_PATTERN, Job, JobError, JobService, ProductRejected
from ..miner import MinerClaimer
from ..rpc import errors as E
from ..rpc.errors import RpcError
from ..rpc.registry import Param, rpc_method

MAX_INLINE_BYTES = 1 << 20
"""Largest decoded inline matrix or product (1 MiB); bigger ones go through /blobs."""
MAX_INLINE_PRODUCT_BYTES = 8 << 20
"""Largest decoded inline product in ``submitmatmulresult`` (8 MiB: its base64 fits the 16 MiB request limit)."""
HASH_RE = re.compile(r"^[0-9a-f]{64}$")
JOB_ID = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
MATRIX = {"type": "string", "minLength": 1, "maxLength": 2 * MAX_INLINE_BYTES,
          "description": "A blob hash (64 hex digits) from PUT /blobs, or a base64 .npy file (int8, 2-D)."}

BLOB_CODES = {"missing": E.JOB_BLOB_NOT_FOUND, "invalid": E.JOB_MATRIX_INVALID, "too-large": E.JOB_TOO_LARGE,
              "no-space": E.JOB_QUEUE_FULL}
"""``BlobError.kind`` to RPC codes; a full blob store (``no-space``) is, like a full queue, "retry later"."""
_JOB_CODES = {"not-found": E.JOB_NOT_FOUND, "queue-full": E.JOB_QUEUE_FULL, "cannot-cancel": E.JOB_NOT_CANCELLABLE,
              "too-large": E.JOB_TOO_LARGE, "invalid": E.JOB_MATRIX_INVALID, "no-space": E.JOB_QUEUE_FULL,
              "not-waiting": E.INVALID_PARAMETER}


def blob_rpc_error(e: BlobError) -> RpcError:
    return RpcError(BLOB_CODES.get(e.kind, E.JOB_MATRIX_INVALID), str(e))


def job_rpc_error(e: JobError) -> RpcError:
    if isinstance(e, ProductRejected):
        return RpcError(E.JOB_VERIFICATION_FAILED, str(e))
    return RpcError(_JOB_CODES.get(e.kind, E.MISC_ERROR), str(e))


class JobMethods:
    """Submit, follow, fetch and cancel MatMul jobs."""

    def __init__(self, jobs: JobService, blobs: BlobStore, *, work: Executor,
                 announce: Callable[[Job], Awaitable[None]],
                 offers: Callable[[bytes], list[dict]] | None = None, claimer: MinerClaimer | None = None) -> None:
        self.jobs = jobs
        self.claimer = claimer
        """With a claim key, a paid job's product handed in is claimed before it is served (node/claimer.py)."""
        self.blobs = blobs
        self.work = work
        self.announce = announce
        self.offers = offers
        """``getjoboffer`` dicts of a job's paid offers (``node.api.offers``); none without it."""

    async def _run_work(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.work, fn, *args)

    async def _store_matrix(self, spec: str, name: str) -> tuple[str, np.ndarray | None]:
        """A blob hash for ``spec`` (an existing blob's hash, or an inline base64 .npy, stored), and
        the parsed matrix when it was inline (a stored blob is parsed when the job is made)."""
        if HASH_RE.match(spec):
            if not self.blobs.has(spec):
                raise RpcError(E.JOB_BLOB_NOT_FOUND, f"{name}: no blob {spec}; upload it with PUT /blobs first")
            return spec, None
        try:
            raw = base64.b64decode(spec, validate=True)
        except (binascii.Error, ValueError):
            raise RpcError(E.JOB_MATRIX_INVALID,
                           f"{name}: neither a blob hash (64 hex digits) nor base64 .npy") from None
        if len(raw) > MAX_INLINE_BYTES:
            raise RpcError(E.JOB_TOO_LARGE, f"{name}: inline matrices are limited to {MAX_INLINE_BYTES} bytes, "
                           f"found {len(raw)}; upload it with PUT /blobs")
        try:
            matrix = await self._run_work(load_matrix, raw, name)
            return await self._run_work(self.blobs.put, raw), matrix
        except BlobError as e:
            raise blob_rpc_error(e) from None

    def _get(self, job_id: str) -> Job:
        try:
            return self.jobs.get(job_id)
        except JobError as e:
            raise job_rpc_error(e) from None

    @rpc_method(params=[Param("a", MATRIX, description="A (m x k), int8 in [-64, 63]."),
                        Param("b", MATRIX, description="B (k x n), int8 in [-64, 63].")],
                errors=[E.JOB_BLOB_NOT_FOUND, E.JOB_MATRIX_INVALID, E.JOB_TOO_LARGE, E.JOB_QUEUE_FULL])
    async def submitmatmuljob(self, a: str, b: str) -> dict:
        """Queue C = A @ B; the miner multiplies it as its work. Returns the (content-addressed) job id and status."""
        a_blob, a_matrix = await self._store_matrix(a, "a")
        b_blob, b_matrix = await self._store_matrix(b, "b")
        matrices = (a_matrix, b_matrix) if a_matrix is not None and b_matrix is not None else None
        try:
            job = await self._run_work(self.jobs.submit, a_blob, b_blob, matrices)
        except BlobError as e:
            raise blob_rpc_error(e) from None
        except JobError as e:
            raise job_rpc_error(e) from None
        await self.announce(job)
        return {"job_id": job.job_id, "status": str(job.status)}

    @rpc_method(params=[Param("job_id", JOB_ID)], errors=[E.JOB_NOT_FOUND])
    async def getmatmuljob(self, job_id: str) -> dict:
        """Job status (queued, mining, done, failed, cancelled), timestamps, blocks, and its paid offers' escrow."""
        out = self._get(job_id).to_json()
        out["offers"] = self.offers(bytes.fromhex(job_id)) if self.offers is not None else []
        return out

    @rpc_method(params=[Param("job_id", JOB_ID),
                        Param("inline", {"type": "boolean", "default": False}, required=False,
                              description="Also return the product as base64 .npy when it is at most 1 MiB.")],
                errors=[E.JOB_NOT_FOUND, E.JOB_RESULT_NOT_READY, E.JOB_VERIFICATION_FAILED])
    async def getmatmulresult(self, job_id: str, inline: bool = False) -> dict:
        """The product C (int32, m x n as submitted): blob hash for GET /blobs/<hash>, H(C) and the Freivalds evidence."""  # noqa: E501 - the summary line is the API's documentation (OpenRPC), unchanged
        job = self._get(job_id)
        if job.status == FAILED:
            raise RpcError(E.JOB_VERIFICATION_FAILED, f"job {job_id} failed: {job.error}")
        if job.status != DONE or job.result is None:
            why = f" ({job.error})" if job.error else ""
            raise RpcError(E.JOB_RESULT_NOT_READY, f"job {job_id} is {job.status}{why}; the result is not ready")
        m, k, n = job.shape
        result = job.result
        out = {"job_id": job_id, "shape": {"m": m, "n": n}, "dtype": "int32", "c": result["c"],
               "download": f"/blobs/{result['c']}", "c_blake3": result["c_blake3"],
               "freivalds": result["freivalds"], "computed_by": result.get("computed_by", "this node"),
               "blocks": list(job.blocks or [])}
        if inline:
            size = self.blobs.size(result["c"])
            if size > MAX_INLINE_BYTES:
                raise RpcError(E.JOB_TOO_LARGE, f"the product is {size} bytes; download it from {out['download']}")
            out["c_npy_base64"] = base64.b64encode(await self._run_work(self.blobs.get, result["c"])).decode()
        return out

    @rpc_method(params=[Param("job_id", JOB_ID),
                        Param("c", {"type": "string", "minLength": 1,
                                    "maxLength": 4 * (MAX_INLINE_PRODUCT_BYTES // 3 + 1)},
                              description="The product C (m x n, int32): a blob hash, or a base64 .npy file."),
                        Param("worker", {"type": "string", "pattern": WORKER_PATTERN}, required=False,
                              description="Who computed it (the pouw-miner's name; default: anonymous).")],
                errors=[E.JOB_NOT_FOUND, E.INVALID_PARAMETER, E.JOB_BLOB_NOT_FOUND, E.JOB_MATRIX_INVALID,
                        E.JOB_TOO_LARGE, E.JOB_VERIFICATION_FAILED, E.JOB_QUEUE_FULL])
    async def submitmatmulresult(self, job_id: str, c: str, worker: str = "anonymous") -> dict:
        """Hand in a waiting job's product (an external miner's); checked with Freivalds before the job is done."""
        self._get(job_id)
        if HASH_RE.match(c):
            if not self.blobs.has(c):
                raise RpcError(E.JOB_BLOB_NOT_FOUND, f"c: no blob {c}")
            try:
                raw = await self._run_work(self.blobs.get, c)
            except BlobError as e:
                raise blob_rpc_error(e) from None
        else:
            try:
                raw = base64.b64decode(c, validate=True)
            except (binascii.Error, ValueError):
                raise RpcError(E.JOB_MATRIX_INVALID,
                               "c: neither a blob hash (64 hex digits) nor base64 .npy") from None
            if len(raw) > MAX_INLINE_PRODUCT_BYTES:
                raise RpcError(E.JOB_TOO_LARGE, f"c: an inline product is limited to {MAX_INLINE_PRODUCT_BYTES} "
                               f"bytes, found {len(raw)}")
        waiting = self._get(job_id)
        held = self.claimer is not None and waiting.status in WAITING and await self.claimer.hold(waiting)
        try:
            job = await self._run_work(self.jobs.finish_from_miner, job_id, raw, worker)
        except JobError as e:
            if held and self.claimer is not None:
                await self.claimer.release(waiting)  # not done: nothing to claim
            raise job_rpc_error(e) from None
        if held and self.claimer is not None:
            await self.claimer.claimed(job)  # the roots are recomputed from the blobs
        result = job.result or {}
        return {"job_id": job_id, "status": str(job.status), "c": result.get("c"),
                "c_blake3": result.get("c_blake3"), "computed_by": result.get("computed_by")}

    @rpc_method(params=[Param("status", {"type": "string", "enum": [str(s) for s in STATUSES]}, required=False)])
    async def listmatmuljobs(self, status: str | None = None) -> list:
        """Jobs, oldest first, optionally only those with a status."""
        return [j.to_json() for j in self.jobs.list(status)]

    @rpc_method(params=[Param("job_id", JOB_ID)], errors=[E.JOB_NOT_FOUND, E.JOB_NOT_CANCELLABLE])
    async def cancelmatmuljob(self, job_id: str) -> dict:
        """Cancel a queued or mining job (a finished, failed or cancelled job cannot be cancelled)."""
        try:
            return (await self._run_work(self.jobs.cancel, job_id)).to_json()
        except JobError as e:
            raise job_rpc_error(e) from None
