"""The node as a miner needs it, over JSON-RPC and ``/blobs`` only (``wallet.rpc.RpcClient`` underneath)."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

from consensus.types import Block
from wallet.rpc import NodeUnreachable, RpcClient

from .work import Work, block_hex, parse_template

MAX_INLINE_PRODUCT_BYTES = 8 << 20
"""The node's limit on a product handed in inline (``node.api.jobs.MAX_INLINE_PRODUCT_BYTES``)."""
RPC_SLACK = 30.0
"""Seconds a long-poll's HTTP request may take beyond the wait it asks for."""


class MinerClient:
    """``getblocktemplate`` (long-polled), ``submitblock``, job matrices and ``submitmatmulresult``.

    ``address``: the coinbase address (None: the node's miner address).
    ``worker``: this miner's name; with it, templates carry job work leased to it.
    """

    def __init__(self, rpc: RpcClient, *, address: str | None = None, worker: str | None = None) -> None:
        self.rpc = rpc
        self.address = address
        self.worker = worker

    def mining_info(self) -> dict:
        return self.rpc.call("getmininginfo")

    def template(self, longpollid: str | None = None, timeout: float = 60.0, *, jobs: bool = True) -> Work:
        """A template; with ``longpollid``, once it differs from that one (or ``timeout`` seconds passed)."""
        params: dict[str, Any] = {}
        if self.address:
            params["address"] = self.address
        if longpollid:
            params["longpollid"] = longpollid
            params["longpoll_timeout"] = timeout
        if jobs and self.worker:
            params["worker"] = self.worker
        answer = self.rpc._post({"jsonrpc": "2.0", "id": 1, "method": "getblocktemplate", "params": params},
                                timeout + RPC_SLACK)
        err = self.rpc._error_of(answer)
        if err is not None:
            raise err
        if not isinstance(answer, dict) or "result" not in answer:
            raise NodeUnreachable(self.rpc.url, "the answer is not JSON-RPC 2.0")
        return parse_template(answer["result"])

    def submit_block(self, block: Block) -> str | None:
        """Hand in a block; the node's note (None: connected or on a side branch). Raises ``RpcError``."""
        return self.rpc.call("submitblock", block_hex(block))

    def fetch_matrix(self, digest: str, shape: tuple[int, int], name: str) -> np.ndarray:
        """A job's matrix from ``GET /blobs/<digest>``: an int8 ``.npy`` of ``shape`` or ``ValueError``."""
        raw = self.rpc.get_blob(digest)
        limit = 1024 + shape[0] * shape[1]
        if len(raw) > limit:
            raise ValueError(f"{name}: blob {digest} is {len(raw)} bytes, more than a {shape} int8 .npy")
        x = np.load(io.BytesIO(raw), allow_pickle=False)
        if not isinstance(x, np.ndarray) or x.dtype != np.int8 or x.shape != shape:
            raise ValueError(f"{name}: blob {digest} is not an int8 matrix of shape {shape}")
        return x

    def submit_product(self, job_id: str, c: np.ndarray) -> dict:
        """Hand in a job's product (int32, m x n); the node checks it with Freivalds. Raises ``RpcError``.

        Up to ``MAX_INLINE_PRODUCT_BYTES`` it travels inline in the call; a larger one is uploaded
        first with ``PUT /blobs?product_of=JOB`` and named by its hash.
        """
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(c, dtype=np.int32), allow_pickle=False)
        data = buf.getvalue()
        if len(data) > MAX_INLINE_PRODUCT_BYTES:
            ref = self.rpc.put_blob(data, product_of=job_id)["hash"]
        else:
            ref = base64.b64encode(data).decode()
        params = [job_id, ref]
        if self.worker:
            params.append(self.worker)
        return self.rpc.call("submitmatmulresult", *params)
