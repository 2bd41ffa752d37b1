"""HTTP routes beside JSON-RPC: ``PUT /blobs`` (upload a .npy matrix), ``GET /blobs/<hash>``, ``GET /explorer``.

The explorer is one read-only HTML page whose script calls the JSON-RPC
methods of the same origin (latest blocks, a block with its certificate
check, the mempool, jobs).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import Executor
from importlib import resources

from aiohttp import web

from ..blobs import BlobError, BlobStore, load_matrix
from ..rpc import errors as E
from .jobs import BLOB_CODES, HASH_RE


def _json_error(status: int, code: int, message: str) -> web.Response:
    return web.Response(status=status, content_type="application/json",
                        text=json.dumps({"error": {"code": code, "message": message}}))


def blob_routes(blobs: BlobStore, work: Executor) -> Callable[[web.Application], None]:
    """A function that adds the blob and explorer routes to an ``aiohttp`` application."""

    async def put_blob(request: web.Request) -> web.Response:
        limit = blobs.max_bytes
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
        loop = asyncio.get_running_loop()
        try:
            x = await loop.run_in_executor(work, load_matrix, data, "blob")
            digest = await loop.run_in_executor(work, blobs.put, data)
        except BlobError as e:
            status = 413 if e.kind == "too-large" else 400
            return _json_error(status, BLOB_CODES.get(e.kind, E.JOB_MATRIX_INVALID), str(e))
        return web.json_response({"hash": digest, "size": size, "shape": list(x.shape), "dtype": str(x.dtype)})

    async def get_blob(request: web.Request) -> web.StreamResponse:
        digest = request.match_info["digest"]
        if not HASH_RE.match(digest):
            return _json_error(400, E.INVALID_PARAMETER, "a blob hash is 64 lowercase hex digits")
        if not blobs.has(digest):
            return _json_error(404, E.JOB_BLOB_NOT_FOUND, f"no blob {digest}")
        return web.FileResponse(blobs.path(digest), headers={"Content-Type": "application/octet-stream"})

    async def explorer(request: web.Request) -> web.Response:
        page = resources.files("node").joinpath("explorer.html").read_text(encoding="utf-8")
        return web.Response(text=page, content_type="text/html")

    def add(app: web.Application) -> None:
        app.router.add_put("/blobs", put_blob)
        app.router.add_get("/blobs/{digest}", get_blob)
        app.router.add_get("/explorer", explorer)

    return add
