"""``MinerClient.submit_product``: small products travel inline, large ones through ``PUT /blobs?product_of=``."""

from __future__ import annotations

import base64
import io

import numpy as np

from miner.client import MAX_INLINE_PRODUCT_BYTES, MinerClient


class RecordingRpc:
    """The two ``RpcClient`` calls the product path makes, recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.uploads: list[tuple[bytes, str | None]] = []

    def call(self, method: str, *params):
        self.calls.append((method, *params))
        return {"status": "done"}

    def put_blob(self, data: bytes, *, product_of: str | None = None) -> dict:
        self.uploads.append((data, product_of))
        return {"hash": "cd" * 32}


def test_a_small_product_goes_inline_and_a_large_one_as_a_blob_of_its_job():
    rpc = RecordingRpc()
    client = MinerClient(rpc, worker="w")  # a stand-in with the two methods the product path uses
    small = np.arange(6, dtype=np.int32).reshape(2, 3)
    client.submit_product("ab" * 32, small)
    (method, job, ref, worker), = rpc.calls
    assert (method, job, worker) == ("submitmatmulresult", "ab" * 32, "w") and not rpc.uploads
    assert np.array_equal(np.load(io.BytesIO(base64.b64decode(ref))), small)

    side = int((MAX_INLINE_PRODUCT_BYTES // 4) ** 0.5) + 1  # just over the inline limit
    large = np.ones((side, side), dtype=np.int32)
    client.submit_product("ab" * 32, large)
    (data, product_of), = rpc.uploads
    assert product_of == "ab" * 32 and np.array_equal(np.load(io.BytesIO(data)), large)
    assert rpc.calls[-1] == ("submitmatmulresult", "ab" * 32, "cd" * 32, "w")
