"""HTTP routes beside JSON-RPC: ``PUT /blobs`` (upload a .npy matrix), ``GET /blobs/<hash>``, ``GET /explorer``.

``PUT /blobs`` refuses, as soon as the first bytes hold the ``.npy`` header, a
body that is no int8 matrix or a matrix too large for any job this node runs
(``node.jobs.check_matrix_shape``: as A or as B, padded, and with its
smallest product); a body over the blob limit is refused from its
``Content-Length`` or as it arrives. Only a whole, valid matrix is stored.
``PUT /blobs?product_of=JOB_ID`` takes instead the int32 ``m x n`` product of a
waiting job (an external miner's, handed in next with ``submitmatmulresult``):
any other dtype or shape is refused from the header, and a job that waits for
no product (unknown, done, failed, cancelled) is refused before any body is read.

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

import numpy as np
from aiohttp import web

from pouw.constants import VALUE_MAX, VALUE_MIN

from ..blobs import NPY_MAX_HEADER, BlobError, BlobStore, NpyHeader, load_matrix, parse_npy_header
from ..jobs import DEFAULT_MAX_ELEMENTS, JobError, check_matrix_shape
from ..rpc import errors as E
from .jobs import BLOB_CODES, HASH_RE

_STATUS = {"too-large": 413, "no-space": 507}
"""HTTP status of a refused upload by ``BlobError.kind`` (others: 400)."""


def _json_error(status: int, code: int, message: str) -> web.Response:
    return web.Response(status=status, content_type="application/json",
                        text=json.dumps({"error": {"code": code, "message": message}}))


def _blob_error(e: BlobError) -> web.Response:
    return _json_error(_STATUS.get(e.kind, 400), BLOB_CODES.get(e.kind, E.JOB_MATRIX_INVALID), str(e))


def check_upload(header: NpyHeader, max_blob_bytes: int, max_elements: int = DEFAULT_MAX_ELEMENTS) -> None:
    """Raise ``BlobError`` or ``JobError`` unless ``header`` announces an int8 matrix some job here could use."""
    if header.dtype != np.int8:
        raise BlobError("invalid", f"blob: dtype must be int8 with entries in [{VALUE_MIN}, {VALUE_MAX}], found "
                        f"{header.dtype} (split wider integers into int7 digits, see docs/protocol.md section 9)")
    if len(header.shape) != 2:
        raise BlobError("invalid", f"blob: expected a 2-D matrix, found {len(header.shape)} dimensions")
    rows, cols = header.shape
    if min(rows, cols) < 1:
        raise BlobError("invalid", f"blob: empty matrix {header.shape}")
    if header.size > max_blob_bytes:
        raise BlobError("too-large", f"blob: a {rows}x{cols} int8 .npy is {header.size} bytes, over the limit of "
                        f"{max_blob_bytes} bytes")
    check_matrix_shape(rows, cols, max_elements=max_elements, max_blob_bytes=max_blob_bytes)


def check_product_upload(header: NpyHeader, shape: tuple[int, int]) -> None:
    """Raise ``BlobError`` unless ``header`` announces an int32 matrix of exactly ``shape`` (a job's product)."""
    if header.dtype != np.dtype("<i4") or tuple(header.shape) != tuple(shape):
        raise BlobError("invalid", f"product: expected an int32 {shape[0]}x{shape[1]} .npy matrix, found "
                        f"{header.dtype} {'x'.join(map(str, header.shape))}")


def blob_routes(blobs: BlobStore, work: Executor, *, max_elements: int = DEFAULT_MAX_ELEMENTS,
                product_shape: Callable[[str], tuple[int, int] | None] | None = None
                ) -> Callable[[web.Application], None]:
    """A function that adds the blob and explorer routes to an ``aiohttp`` application.

    ``max_elements``: the job service's limit on a padded matrix. ``product_shape``:
    the ``(m, n)`` product a waiting job takes, or None (``JobService.product_shape``);
    without it ``?product_of=`` is refused.
    """

    async def put_blob(request: web.Request) -> web.Response:
        limit = blobs.max_bytes
        product_of = request.query.get("product_of")
        want: tuple[int, int] | None = None
        if product_of is not None:
            if not HASH_RE.match(product_of):
                return _json_error(400, E.INVALID_PARAMETER, "product_of: a job id is 64 lowercase hex digits")
            want = product_shape(product_of) if product_shape is not None else None
            if want is None:
                return _json_error(404, E.JOB_NOT_FOUND, f"product_of: no job {product_of} waits for a product")
        if request.content_length is not None and request.content_length > limit:
            return _json_error(413, E.JOB_TOO_LARGE, f"blob of {request.content_length} bytes exceeds the "
                               f"limit of {limit} bytes")
        chunks, size = [], 0
        prefix = b""
        header: NpyHeader | None = None
        async for chunk in request.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > limit:
                return _json_error(413, E.JOB_TOO_LARGE, f"blob exceeds the limit of {limit} bytes")
            chunks.append(chunk)
            if header is None:  # refuse what no job can use as soon as the .npy header says so
                prefix = (prefix + chunk)[:NPY_MAX_HEADER]
                try:
                    header = parse_npy_header(prefix)
                    if header is None and len(prefix) >= NPY_MAX_HEADER:
                        raise BlobError("invalid", "blob: no complete .npy header in the first "
                                        f"{NPY_MAX_HEADER} bytes")
                    if header is not None and want is not None:
                        check_product_upload(header, want)
                    elif header is not None:
                        check_upload(header, limit, max_elements)
                except BlobError as e:
                    return _blob_error(e)
                except JobError as e:
                    return _json_error(413, E.JOB_TOO_LARGE, str(e))
        data = b"".join(chunks)
        if header is None:
            return _blob_error(BlobError("invalid", "blob: no complete .npy header"))
        loop = asyncio.get_running_loop()
        try:
            if want is None:
                x = await loop.run_in_executor(work, load_matrix, data, "blob")
                shape, dtype = list(x.shape), str(x.dtype)
            else:  # the header said int32 m x n; Freivalds judges the entries at submitmatmulresult
                if header.size != size:
                    raise BlobError("invalid", f"product: the header announces {header.size} bytes, found {size}")
                shape, dtype = list(want), "int32"
            digest = await loop.run_in_executor(work, blobs.put, data)
        except BlobError as e:
            return _blob_error(e)
        return web.json_response({"hash": digest, "size": size, "shape": shape, "dtype": dtype})

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
