"""What a web page can try against a node on the same machine (CSRF, DNS rebinding, WebSocket
hijacking) against a real pouwd: all refused, nothing changed; the node's own clients keep working."""

from __future__ import annotations

import json
import subprocess
import sys

import aiohttp
import pytest

from consensus.address import encode_address
from consensus.keys import devnet_keypairs

ADDR = encode_address(devnet_keypairs(1)[0].address, "preg")


def body(method, *params) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()


@pytest.fixture
def node(node_factory):
    return node_factory().start()


def test_a_simple_cross_site_post_is_refused(node):
    # A form or a fetch without preflight: text/plain, a foreign Origin. The call must not run.
    for headers in ({"Content-Type": "text/plain"},
                    {"Content-Type": "text/plain", "Origin": "http://evil.example"},
                    {"Content-Type": "application/x-www-form-urlencoded"}):
        status, _ = node.http("POST", "/", body("generatetoaddress", 1, ADDR), headers)
        assert status in (403, 415), headers
    assert node.rpc("getblockcount") == 0


def test_dns_rebinding_and_foreign_origins_are_refused(node):
    json_type = {"Content-Type": "application/json"}
    for extra in ({"Host": "evil.example"}, {"Origin": "http://evil.example"},
                  {"Host": "evil.example", "Origin": "http://evil.example"}):
        status, raw = node.http("POST", "/", body("submitmatmuljob", "00" * 32, "00" * 32), {**json_type, **extra})
        assert status == 403, extra
        assert "not allowed" in json.loads(raw)["error"]["message"]
    assert node.rpc("listmatmuljobs") == []


async def test_a_websocket_from_a_foreign_origin_is_refused(node):
    ws_url = node.url.replace("http://", "ws://") + "/ws"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await session.ws_connect(ws_url, headers={"Origin": "http://evil.example"})
        assert e.value.status == 403
        ws = await session.ws_connect(ws_url)  # a non-browser client (no Origin) still connects
        await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": ["newblock"]}))
        assert "result" in json.loads((await ws.receive()).data)
        await ws.send_str(body("stop").decode())  # and still cannot stop the node without the cookie
        assert json.loads((await ws.receive()).data)["error"]["code"] == -32001
        await ws.close()
    assert node.rpc("getblockcount") == 0


def test_control_methods_need_the_cookie_and_the_clients_send_it(node):
    for method, params in (("stop", []), ("generatetoaddress", [1, ADDR]), ("faucet", [ADDR]),
                           ("setban", ["12D3KooWQLLj44zBSTzx1zsYtFrj3s4puZbe63hnTFLmfvTg3BR8", "add"]),
                           ("addnode", ["/ip4/127.0.0.1/tcp/1/p2p/12D3KooWQLLj44zBSTzx1zsYtFrj3s4puZbe63hnTFLmfvTg3BR8",
                                        "onetry"])):
        answer = node.call({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, auth=False)
        assert answer["error"]["code"] == -32001, method
    assert node.rpc("getblockcount") == 0
    cli = [sys.executable, "-m", "node.cli", "--rpc-url", node.url + "/"]
    mined = subprocess.run([*cli, "--datadir", str(node.datadir), "generatetoaddress", "1", ADDR],
                           capture_output=True, text=True, timeout=60)
    assert mined.returncode == 0, mined.stderr
    refused = subprocess.run([*cli, "generatetoaddress", "1", ADDR], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "credentials" in refused.stderr
    assert node.rpc("getblockcount") == 1
