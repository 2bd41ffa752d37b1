"""The JSON-RPC client: results, typed errors, batches, auth."""

from __future__ import annotations

import base64

import pytest

from tests.unit.wallet.conftest import FakeError
from wallet.rpc import NodeUnreachable, RpcAuthError, RpcClient, RpcError, read_cookie


def test_call_and_batch(fake_node):
    fake_node.handlers["getblockcount"] = lambda p: 7
    fake_node.handlers["getblockhash"] = lambda p: f"hash{p[0]}"
    c = RpcClient(fake_node.url)
    assert c.call("getblockcount") == 7
    assert c.batch([("getblockhash", [1]), ("getblockhash", [2])]) == ["hash1", "hash2"]


def test_rpc_error_is_typed(fake_node):
    def reject(p):
        raise FakeError(-26, "tx-balance: balance 1 does not cover amount + fee (5)")
    fake_node.handlers["sendrawtransaction"] = reject
    with pytest.raises(RpcError) as exc:
        RpcClient(fake_node.url).call("sendrawtransaction", "00")
    assert exc.value.code == -26 and "tx-balance" in exc.value.message


def test_unreachable(dead_url):
    with pytest.raises(NodeUnreachable) as exc:
        RpcClient(dead_url, timeout=2).call("getblockcount")
    assert dead_url in str(exc.value)


def test_basic_auth_and_cookie(fake_node, tmp_path):
    fake_node.require_auth = "Basic " + base64.b64encode(b"__cookie__:abc123").decode()
    fake_node.handlers["getblockcount"] = lambda p: 1
    with pytest.raises(RpcAuthError):
        RpcClient(fake_node.url).call("getblockcount")
    cookie = tmp_path / ".cookie"
    cookie.write_text("__cookie__:abc123")
    assert RpcClient(fake_node.url, read_cookie(cookie)).call("getblockcount") == 1
    with pytest.raises(RpcAuthError, match="cannot read"):
        read_cookie(tmp_path / "missing")
