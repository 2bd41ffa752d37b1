"""Every method and route answers malformed input with the right error code, and the node keeps serving."""

import io
import json

import numpy as np
import pytest

from tests.functional.harness import RpcFailure


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    from tests.functional.harness import NodeProcess

    n = NodeProcess(tmp_path_factory.mktemp("bad") / "node").start()
    n.rpc("generatetoaddress", 1, "preg1q2j87kdl0l0j2a086yas59cmeu850pf6295gkm")
    yield n
    n.stop()


def code_of(node, method, params):
    answer = node.call({"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
    assert answer["id"] == 7
    return answer["error"]["code"] if "error" in answer else None


WRONG = {"string": 12345, "integer": "twelve", "boolean": "yes", "object": [], "array": {}}


def methods(node):
    doc = node.rpc("rpc.discover")
    return {m["name"]: m for m in doc["methods"]}


def test_every_method_rejects_extra_and_too_many_params(node):
    for name, m in methods(node).items():
        assert code_of(node, name, {"no_such_param": 1}) == -32602, name
        assert code_of(node, name, [0] * (len(m["params"]) + 1)) == -32602, name


def test_every_method_rejects_missing_and_mistyped_params(node):
    for name, m in methods(node).items():
        required = [p for p in m["params"] if p.get("required")]
        if required:
            assert code_of(node, name, []) == -32602, name
        for p in m["params"]:
            kind = p["schema"].get("type")
            if isinstance(kind, str) and kind in WRONG:
                assert code_of(node, name, {p["name"]: WRONG[kind]}) == -32602, (name, p["name"])


@pytest.mark.parametrize("method,params,code", [
    ("getblockhash", [10_000], -8),
    ("getblock", ["00" * 32], -5),
    ("getblockheader", ["ab" * 32], -5),
    ("gettransaction", ["cd" * 32], -5),
    ("getaccount", ["pdev1notanaddress"], -5),
    ("getaccount", ["preg1q2j87kdl0l0j2a086yas59cmeu850pf6295gkn"], -5),  # checksum
    ("sendrawtransaction", ["00"], -22),
    ("sendrawtransaction", ["zz"], -32602),
    ("submitblock", ["0011"], -22),
    ("getmatmuljob", ["ee" * 32], -43),
    ("getmatmulresult", ["ee" * 32], -43),
    ("cancelmatmuljob", ["ee" * 32], -43),
    ("submitmatmuljob", ["ff" * 32, "ff" * 32], -40),
    ("submitmatmuljob", ["not base64!", "x"], -41),
    ("generatetoaddress", [0, "preg1q2j87kdl0l0j2a086yas59cmeu850pf6295gkm"], -32602),
    ("nosuchmethod", [], -32601),
])
def test_specific_errors(node, method, params, code):
    assert code_of(node, method, params) == code


def npy(x):
    buf = io.BytesIO()
    np.save(buf, x, allow_pickle=False)
    return buf.getvalue()


def test_protocol_level_errors(node):
    assert node.call(b"{not json")["error"]["code"] == -32700
    assert node.call({"jsonrpc": "1.0", "id": 1, "method": "getblockcount"})["error"]["code"] == -32600
    assert node.call([])["error"]["code"] == -32600
    assert node.call({"jsonrpc": "2.0", "method": "getblockcount"}) is None  # notification: no answer
    batch = [{"jsonrpc": "2.0", "id": i, "method": "getblockcount"} for i in range(1000)]
    answers = node.call(batch)
    assert len(answers) == 1000 and all(a["result"] == 1 for a in answers)
    too_many = node.call(batch + [{"jsonrpc": "2.0", "id": 1000, "method": "getblockcount"}])
    assert too_many["error"]["code"] == -32600
    status, body = node.http("POST", "/", b"[" + b" " * (17 * 1024 * 1024) + b"]", {"Content-Type": "application/json"})
    assert status == 413 and json.loads(body)["error"]["code"] == -32600


@pytest.mark.parametrize("payload,code", [
    (b"garbage", -41),
    (npy(np.full((16, 256), 64, np.int8)), -41),  # out of range
    (npy(np.zeros((16, 256), np.float32)), -41),  # wrong dtype
    (npy(np.zeros((4, 4, 4), np.int8)), -41),  # not 2-D
])
def test_blob_upload_errors(node, payload, code):
    status, body = node.http("PUT", "/blobs", payload)
    assert status == 400 and json.loads(body)["error"]["code"] == code


def test_blob_download_errors(node):
    assert node.http("GET", "/blobs/" + "ab" * 32)[0] == 404
    assert node.http("GET", "/blobs/nothex")[0] == 400


def test_inner_dimensions_must_agree(node):
    a = node.http("PUT", "/blobs", npy(np.zeros((16, 256), np.int8)))
    b = node.http("PUT", "/blobs", npy(np.zeros((300, 16), np.int8)))
    with pytest.raises(RpcFailure) as e:
        node.rpc("submitmatmuljob", json.loads(a[1])["hash"], json.loads(b[1])["hash"])
    assert e.value.code == -41 and "inner dimensions" in e.value.message


def test_node_still_serves_after_all_that(node):
    assert node.rpc("getblockcount") == 1
    assert node.rpc("verifychain")["ok"]
