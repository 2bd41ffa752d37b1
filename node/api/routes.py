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
``PUT /blobs?claim_of=OFFER_ID`` takes the int32 ``m x n`` product of a live
(open or claimed) job offer, held for that offer (node/claims.py) whether or
not this node holds the job, and served only once a claim with its ``root_C``
has confirmed; it answers ``{"blob", "root_c", "h_c"}``. An offer that is not
live is refused before any body is read, any other dtype or shape from the
header.

The explorer is one read-only HTML page whose script makes one JSON-RPC call
of the same origin per view (``node.api.explorer``: home, block, transaction,
address, search; ``getmatmuljob`` for a job). It is served with a Content
Security Policy that allows only its own inline script and style (by hash),
requests to this origin, and no framing, so hostile text a page shows
(addresses, memos) could not run even if it were not escaped.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from collections.abc import Callable
from concurrent.futures import Executor
from importlib import resources
from typing import Protocol

import numpy as np
from aiohttp import web

from pouw.constants import VALUE_MAX, VALUE_MIN

from ..blobs import NPY_MAX_HEADER, BlobError, BlobStore, NpyHeader, load_matrix, parse_npy_header
from ..claims import ClaimError
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


_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.S)


def explorer_headers(page: str) -> dict[str, str]:
    """The security headers of the explorer page: a CSP naming the page's inline script and style by hash."""
    sources: dict[str, list[str]] = {"script": [], "style": []}
    for tag, body in _INLINE.findall(page):
        digest = base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode("ascii")
        sources[tag].append(f"'sha256-{digest}'")
    script = " ".join(sources["script"]) or "'none'"
    style = " ".join(sources["style"]) or "'none'"
    csp = (f"default-src 'none'; script-src {script}; style-src {style}; connect-src 'self'; img-src 'self'; "
           "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return {"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY"}


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


class ClaimUploads(Protocol):
    """Where ``?claim_of=`` products go (``node.claims.ClaimProducts``)."""

    def claim_shape(self, offer_id_hex: str) -> tuple[int, int] | None: ...

    def take_upload(self, offer_id_hex: str, data: bytes) -> dict: ...


def blob_routes(blobs: BlobStore, work: Executor, *, max_elements: int = DEFAULT_MAX_ELEMENTS,
                product_shape: Callable[[str], tuple[int, int] | None] | None = None,
                claims: ClaimUploads | None = None) -> Callable[[web.Application], None]:
    """A function that adds the blob and explorer routes to an ``aiohttp`` application.

    ``max_elements``: the job service's limit on a padded matrix. ``product_shape``:
    the ``(m, n)`` product a waiting job takes, or None (``JobService.product_shape``);
    without it ``?product_of=`` is refused. ``claims``: takes ``?claim_of=`` products
    (without it they are refused).
    """

    async def put_blob(request: web.Request) -> web.Response:
        limit = blobs.max_bytes
        product_of = request.query.get("product_of")
        claim_of = request.query.get("claim_of")
        want: tuple[int, int] | None = None
        if claim_of is not None:
            if product_of is not None:
                return _json_error(400, E.INVALID_PARAMETER, "give product_of or claim_of, not both")
            if not HASH_RE.match(claim_of):
                return _json_error(400, E.INVALID_PARAMETER, "claim_of: an offer id is 64 lowercase hex digits")
            want = claims.claim_shape(claim_of) if claims is not None else None
            if want is None:
                return _json_error(404, E.OFFER_NOT_FOUND, f"claim_of: no live (open or claimed) offer {claim_of}")
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
            if claim_of is not None and claims is not None:
                return web.json_response(await loop.run_in_executor(work, claims.take_upload, claim_of, data))
            digest = await loop.run_in_executor(work, blobs.put, data)
        except BlobError as e:
            return _blob_error(e)
        except ClaimError as e:
            status = {"not-found": 404, "full": 507}.get(e.kind, 400)
            code = {"not-found": E.OFFER_NOT_FOUND, "full": E.JOB_QUEUE_FULL}.get(e.kind, E.JOB_MATRIX_INVALID)
            return _json_error(status, code, str(e))
        return web.json_response({"hash": digest, "size": size, "shape": shape, "dtype": dtype})

    async def get_blob(request: web.Request) -> web.StreamResponse:
        digest = request.match_info["digest"]
        if not HASH_RE.match(digest):
            return _json_error(400, E.INVALID_PARAMETER, "a blob hash is 64 lowercase hex digits")
        if not blobs.has(digest) or blobs.is_withheld(digest):  # a claimed product before its claim confirms
            return _json_error(404, E.JOB_BLOB_NOT_FOUND, f"no blob {digest}")
        return web.FileResponse(blobs.path(digest), headers={"Content-Type": "application/octet-stream"})

    async def explorer(request: web.Request) -> web.Response:
        page = resources.files("node").joinpath("explorer.html").read_text(encoding="utf-8")
        return web.Response(text=page, content_type="text/html", headers=explorer_headers(page))

    def add(app: web.Application) -> None:
        app.router.add_put("/blobs", put_blob)
        app.router.add_get("/blobs/{digest}", get_blob)
        app.router.add_get("/explorer", explorer)

    return add
