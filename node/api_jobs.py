"""MatMul job methods and the ``/blobs`` HTTP routes.

Matrices travel as NumPy ``.npy`` bytes: upload with ``PUT /blobs`` (the body
is the file; the answer is its BLAKE3 hash), or inline as base64 in
``submitmatmuljob`` for small ones. Products come back as a blob hash
(``GET /blobs/<hash>``) or inline when small. Job errors use codes -40..-47.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import TYPE_CHECKING

from aiohttp import web

from .blobs import BlobError, load_matrix
from .jobs import DONE, FAILED, STATUSES, JobError
from .rpc import errors as E
from .rpc.errors import RpcError
from .rpc.registry import Param, Registry

if TYPE_CHECKING:
    from .node import Node

MAX_INLINE_BYTES = 1 << 20
"""Largest decoded inline matrix or product (1 MiB); bigger ones go through /blobs."""
HASH_RE = re.compile(r"^[0-9a-f]{64}$")
JOB_ID = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
MATRIX = {"type": "string", "minLength": 1, "maxLength": 2 * MAX_INLINE_BYTES,
          "description": "A blob hash (64 hex digits) from PUT /blobs, or a base64 .npy file (int8, 2-D)."}

_BLOB_CODES = {"missing": E.JOB_BLOB_NOT_FOUND, "invalid": E.JOB_MATRIX_INVALID, "too-large": E.JOB_TOO_LARGE}
_JOB_CODES = {"not-found": E.JOB_NOT_FOUND, "queue-full": E.JOB_QUEUE_FULL, "cannot-cancel": E.JOB_NOT_CANCELLABLE,
              "too-large": E.JOB_TOO_LARGE, "invalid": E.JOB_MATRIX_INVALID}


def blob_rpc_error(e: BlobError) -> RpcError:
    return RpcError(_BLOB_CODES.get(e.kind, E.JOB_MATRIX_INVALID), str(e))


def job_rpc_error(e: JobError) -> RpcError:
    return RpcError(_JOB_CODES.get(e.kind, E.MISC_ERROR), str(e))


def register_job_methods(reg: Registry, node: Node) -> None:
    async def store_matrix(spec: str, name: str) -> str:
        """A blob hash for ``spec``: an existing blob's hash, or an inline base64 .npy (stored)."""
        if HASH_RE.match(spec):
            if not node.blobs.has(spec):
                raise RpcError(E.JOB_BLOB_NOT_FOUND, f"{name}: no blob {spec}; upload it with PUT /blobs first")
            return spec
        try:
            raw = base64.b64decode(spec, validate=True)
        except (binascii.Error, ValueError):
            raise RpcError(E.JOB_MATRIX_INVALID, f"{name}: neither a blob hash (64 hex digits) nor base64 .npy") from None
        if len(raw) > MAX_INLINE_BYTES:
            raise RpcError(E.JOB_TOO_LARGE, f"{name}: inline matrices are limited to {MAX_INLINE_BYTES} bytes, "
                           f"found {len(raw)}; upload it with PUT /blobs")
        try:
            await node.run_work(load_matrix, raw, name)
            return node.blobs.put(raw)
        except BlobError as e:
            raise blob_rpc_error(e) from None

    @reg.method(params=[Param("a", MATRIX, description="A (m x k), int8 in [-64, 63]."),
                        Param("b", MATRIX, description="B (k x n), int8 in [-64, 63].")],
                errors=[E.JOB_BLOB_NOT_FOUND, E.JOB_MATRIX_INVALID, E.JOB_TOO_LARGE, E.JOB_QUEUE_FULL])
    async def submitmatmuljob(a: str, b: str) -> dict:
        """Queue C = A @ B; the miner multiplies it as its work. Returns the (content-addressed) job id and status."""
        a_blob = await store_matrix(a, "a")
        b_blob = await store_matrix(b, "b")
        try:
            job = await node.run_work(node.jobs.submit, a_blob, b_blob)
        except BlobError as e:
            raise blob_rpc_error(e) from None
        except JobError as e:
            raise job_rpc_error(e) from None
        await node.announce_job(job)
        return {"job_id": job.job_id, "status": job.status}

    def get(job_id: str):
        try:
            return node.jobs.get(job_id)
        except JobError as e:
            raise job_rpc_error(e) from None

    @reg.method(params=[Param("job_id", JOB_ID)], errors=[E.JOB_NOT_FOUND])
    async def getmatmuljob(job_id: str) -> dict:
        """Job status (queued, mining, done, failed, cancelled) with timestamps and blocks mined while working on it."""
        return get(job_id).to_json()

    @reg.method(params=[Param("job_id", JOB_ID),
                        Param("inline", {"type": "boolean", "default": False}, required=False,
                              description="Also return the product as base64 .npy when it is at most 1 MiB.")],
                errors=[E.JOB_NOT_FOUND, E.JOB_RESULT_NOT_READY, E.JOB_VERIFICATION_FAILED])
    async def getmatmulresult(job_id: str, inline: bool = False) -> dict:
        """The product C (int32, m x n as submitted): blob hash for GET /blobs/<hash>, H(C) and the Freivalds evidence."""
        job = get(job_id)
        if job.status == FAILED:
            raise RpcError(E.JOB_VERIFICATION_FAILED, f"job {job_id} failed: {job.error}")
        if job.status != DONE:
            raise RpcError(E.JOB_RESULT_NOT_READY, f"job {job_id} is {job.status}; the result is not ready")
        m, k, n = job.shape
        out = {"job_id": job_id, "shape": {"m": m, "n": n}, "dtype": "int32", "c": job.result["c"],
               "download": f"/blobs/{job.result['c']}", "c_blake3": job.result["c_blake3"],
               "freivalds": job.result["freivalds"], "computed_by": job.result.get("computed_by", "this node"),
               "blocks": list(job.blocks or [])}
        if inline:
            size = node.blobs.size(job.result["c"])
            if size > MAX_INLINE_BYTES:
                raise RpcError(E.JOB_TOO_LARGE, f"the product is {size} bytes; download it from {out['download']}")
            out["c_npy_base64"] = base64.b64encode(node.blobs.get(job.result["c"])).decode()
        return out

    @reg.method(params=[Param("status", {"type": "string", "enum": list(STATUSES)}, required=False)])
    async def listmatmuljobs(status: str | None = None) -> list:
        """Jobs, oldest first, optionally only those with a status."""
        return [j.to_json() for j in node.jobs.list(status)]

    @reg.method(params=[Param("job_id", JOB_ID)], errors=[E.JOB_NOT_FOUND, E.JOB_NOT_CANCELLABLE])
    async def cancelmatmuljob(job_id: str) -> dict:
        """Cancel a queued job (a job being mined or finished cannot be cancelled)."""
        try:
            return node.jobs.cancel(job_id).to_json()
        except JobError as e:
            raise job_rpc_error(e) from None


def _json_error(status: int, code: int, message: str) -> web.Response:
    return web.Response(status=status, content_type="application/json",
                        text=json.dumps({"error": {"code": code, "message": message}}))


def blob_routes(node: Node):
    """``PUT /blobs`` (upload a .npy matrix), ``GET /blobs/<hash>`` (download any blob) and ``GET /explorer``.

    The explorer is one read-only HTML page whose script calls the JSON-RPC
    methods of the same origin (latest blocks, a block with its certificate
    check, the mempool, jobs).
    """

    async def put_blob(request: web.Request) -> web.Response:
        limit = node.blobs.max_bytes
        if request.content_length is not None and request.content_length > limit:
            return _json_error(413, E.JOB_TOO_LARGE, f"blob of {request.content_length} bytes exceeds the "
                               f"limit of {limit} bytes")
        chunks, size = [], 0
        async for chunk in request.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > limit:
                return _json_error(413, E.JOB_TOO_LARGE, f"blob exceeds the limit of {limit} bytes")
            chunks.append(chunk)
        data = b"".join(chunks)
        try:
            x = await node.run_work(load_matrix, data, "blob")
            digest = await node.run_work(node.blobs.put, data)
        except BlobError as e:
            status = 413 if e.kind == "too-large" else 400
            return _json_error(status, _BLOB_CODES.get(e.kind, E.JOB_MATRIX_INVALID), str(e))
        return web.json_response({"hash": digest, "size": size, "shape": list(x.shape), "dtype": str(x.dtype)})

    async def get_blob(request: web.Request) -> web.StreamResponse:
        digest = request.match_info["digest"]
        if not HASH_RE.match(digest):
            return _json_error(400, E.INVALID_PARAMETER, "a blob hash is 64 lowercase hex digits")
        if not node.blobs.has(digest):
            return _json_error(404, E.JOB_BLOB_NOT_FOUND, f"no blob {digest}")
        return web.FileResponse(node.blobs.path(digest), headers={"Content-Type": "application/octet-stream"})

    async def explorer(request: web.Request) -> web.Response:
        from importlib import resources

        page = resources.files("node").joinpath("explorer.html").read_text(encoding="utf-8")
        return web.Response(text=page, content_type="text/html")

    def add(app: web.Application) -> None:
        app.router.add_put("/blobs", put_blob)
        app.router.add_get("/blobs/{digest}", get_blob)
        app.router.add_get("/explorer", explorer)

    return add
