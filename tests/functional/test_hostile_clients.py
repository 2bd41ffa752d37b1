"""Hostile JSON-RPC clients: schema-driven fuzzing, blob size limits, slow and many connections.

The node must answer every request (never an HTTP 500, never a crash), and a
rejected call must change nothing.
"""

import io
import json
import socket
import string
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.functional.harness import NodeProcess

ADDR = "preg1q2j87kdl0l0j2a086yas59cmeu850pf6295gkm"
NEVER = {"stop"}  # a successful stop would end the test

junk = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40) | st.sampled_from(["00" * 32, "ff" * 212, ADDR, "preg1", "0x1f", ""]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def value_for(schema):
    kind = schema.get("type")
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) | junk
    if kind == "integer":
        lo, hi = schema.get("minimum", -(2**64)), schema.get("maximum", 2**64)
        return st.integers(lo - 2, hi + 2) | junk
    if kind == "string":
        return st.text(string.hexdigits, max_size=130) | st.text(max_size=60) | junk
    if kind == "boolean":
        return st.booleans() | junk
    return junk


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = NodeProcess(tmp_path_factory.mktemp("fuzz") / "node", env={"POUW_MAX_BLOB_BYTES": "200000"}).start()
    n.rpc("generatetoaddress", 2, ADDR)
    yield n
    assert n.proc.poll() is None, "the node died during the hostile-client tests"
    n.stop()


def snapshot(node):
    return (node.rpc("getbestblockhash"), tuple(sorted(node.rpc("getrawmempool"))),
            tuple((j["job_id"], j["status"]) for j in node.rpc("listmatmuljobs")))


@pytest.fixture(scope="module")
def methods(node):
    return [m for m in node.rpc("rpc.discover")["methods"] if m["name"] not in NEVER]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzz_every_method_from_its_openrpc_schema(node, methods, data):
    method = data.draw(st.sampled_from(methods))
    params = method["params"]
    by_name = data.draw(st.booleans())
    if by_name:
        chosen = {p["name"]: data.draw(value_for(p["schema"])) for p in params if data.draw(st.booleans())}
        if data.draw(st.integers(0, 9)) == 0:
            chosen[data.draw(st.text(max_size=6))] = 1
        args = chosen
    else:
        args = [data.draw(value_for(p["schema"])) for p in params[: data.draw(st.integers(0, len(params) + 1))]]
        if len(args) < data.draw(st.integers(0, len(params) + 1)):
            args.append(data.draw(junk))
    before = snapshot(node)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method["name"], "params": args}).encode()
    status, raw = node.http("POST", "/", body, {"Content-Type": "application/json", **node.auth_header()})
    assert status == 200, (method["name"], args, raw[:300])
    answer = json.loads(raw)
    assert ("result" in answer) != ("error" in answer)
    if "error" in answer:  # rejected: a precise error, and nothing changed
        assert answer["error"]["code"] != -32603, (method["name"], args, answer)
        assert snapshot(node) == before, (method["name"], args)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_fuzz_raw_bodies(node, body):
    status, raw = node.http("POST", "/", body, {"Content-Type": "application/json"})
    assert status in (200, 204)
    if status == 200:
        answer = json.loads(raw)
        items = answer if isinstance(answer, list) else [answer]
        assert all(a["error"]["code"] != -32603 for a in items if "error" in a)


def npy(x):
    buf = io.BytesIO()
    np.save(buf, x, allow_pickle=False)
    return buf.getvalue()


def test_blob_uploads_at_and_beyond_the_limit(node):
    limit = 200_000  # POUW_MAX_BLOB_BYTES of the fixture's node
    header = len(npy(np.zeros((1, 200), np.int8))) - 200  # .npy header bytes for this shape family
    rows = (limit - header) // 200
    at = npy(np.ones((rows, 200), np.int8))
    over = npy(np.ones((rows + 1, 200), np.int8))
    assert len(at) <= limit < len(over)
    status, body = node.http("PUT", "/blobs", at)
    assert status == 200, body
    status, body = node.http("PUT", "/blobs", over)
    assert status == 413 and json.loads(body)["error"]["code"] == -42
    assert node.rpc("getblockcount") == 2


def test_slow_clients_do_not_block_others(node):
    host, port = node.url.split("//")[1].split(":")
    slow = []
    for _ in range(40):  # open connections that send half a request and stall
        s = socket.create_connection((host, int(port)), timeout=5)
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"jsonrpc\"")
        slow.append(s)
    try:
        start = time.monotonic()
        assert node.rpc("getblockcount") == 2
        assert time.monotonic() - start < 2.0
    finally:
        for s in slow:
            s.close()


def test_many_concurrent_connections(node):
    barrier = threading.Barrier(100)

    def one(_):
        barrier.wait(timeout=30)
        return node.rpc("getblockcount")

    with ThreadPoolExecutor(100) as pool:
        results = list(pool.map(one, range(100)))
    assert results == [2] * 100
