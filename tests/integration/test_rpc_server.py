"""The JSON-RPC server over real HTTP and WebSocket on 127.0.0.1 (port 0)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat

import aiohttp
import pytest
from aiohttp import web

from node.metrics import Metrics
from node.rpc import errors as E
from node.rpc.errors import RpcError
from node.rpc.guard import is_loopback
from node.rpc.registry import Param, Registry
from node.rpc.server import RpcServer


def make_registry(calls: list | None = None) -> Registry:
    r = Registry()

    @r.method(result={"type": "integer"})
    async def getblockcount() -> int:
        """Return the height of the best chain."""
        return 7

    @r.method(params=[Param("height", {"type": "integer", "minimum": 0}, description="A height.")],
              result={"type": "string"}, errors=[E.INVALID_PARAMETER])
    async def getblockhash(height: int) -> str:
        """Return the hash of the block at a height."""
        if height > 7:
            raise RpcError(E.INVALID_PARAMETER, f"block height {height} out of range (tip is 7)")
        return f"{height:064x}"

    @r.method(params=[Param("value", {})])
    async def record(value) -> None:
        """Remember a value (for notification tests)."""
        if calls is not None:
            calls.append(value)

    @r.method()
    async def crash() -> None:
        """Fail with an unexpected exception."""
        raise ZeroDivisionError("internal detail")

    @r.method()
    async def notjson() -> object:
        """Return something JSON cannot carry."""
        return {1, 2}

    return r


@pytest.fixture
def calls() -> list:
    return []


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(version="test")


@pytest.fixture
async def server(calls, metrics):
    async with RpcServer(make_registry(calls), "127.0.0.1", 0, metrics=metrics, max_body_bytes=64 * 1024) as s:
        yield s


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


async def post(session: aiohttp.ClientSession, url: str, body, **kw):
    data = json.dumps(body) if isinstance(body, (dict, list, int)) else body
    kw["headers"] = {"Content-Type": "application/json", **kw.get("headers", {})}
    async with session.post(url, data=data, **kw) as resp:
        raw = await resp.read()
        return resp.status, (json.loads(raw) if raw else None)


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def req(method: str, params=None, id_=1) -> dict:
    out = {"jsonrpc": "2.0", "method": method, "id": id_}
    if params is not None:
        out["params"] = params
    return out


def assert_error(answer: dict, code: int, *needles: str, id_=None) -> None:
    assert set(answer) == {"jsonrpc", "id", "error"}, answer
    assert answer["jsonrpc"] == "2.0" and answer["id"] == id_, answer
    assert answer["error"]["code"] == code, answer
    for needle in needles:
        assert needle in answer["error"]["message"], answer


# -- single requests -----------------------------------------------------------------------------

async def test_single_call_and_id_echo(server, session):
    for id_ in (1, "abc", None, 0):
        status, answer = await post(session, server.url, req("getblockhash", [3], id_))
        assert status == 200
        assert answer == {"jsonrpc": "2.0", "id": id_, "result": f"{3:064x}"}
    status, answer = await post(session, server.url, {"jsonrpc": "2.0", "method": "getblockcount", "id": 2,
                                                      "params": None})
    assert answer["result"] == 7


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
async def test_a_post_that_is_not_json_is_refused_before_it_runs(server, session, calls, content_type):
    # The three types a web page can send without a CORS preflight.
    status, answer = await post(session, server.url, req("record", ["x"]), headers={"Content-Type": content_type})
    assert status == 415 and "application/json" in answer["error"]["message"] and calls == []


@pytest.mark.parametrize("body", ["{", "", "[1,", '{"jsonrpc":"2.0","id":1,"method":"x","params":[NaN]}',
                                  b"\xff\xfe{"])
async def test_parse_error(server, session, body):
    status, answer = await post(session, server.url, body)
    assert status == 200
    assert_error(answer, E.PARSE_ERROR, "Parse error")


@pytest.mark.parametrize(
    ("body", "needle", "id_"),
    [
        (5, "expected a JSON object, got integer 5", None),
        ("null", "expected a JSON object, got null", None),
        ({"jsonrpc": "1.0", "method": "getblockcount", "id": 3}, '"jsonrpc" must be "2.0", got string "1.0"', 3),
        ({"jsonrpc": 2.0, "method": "getblockcount", "id": 3}, '"jsonrpc" must be "2.0", got number 2.0', 3),
        ({"method": "getblockcount", "id": 3}, '"jsonrpc" must be "2.0", got nothing', 3),
        ({"jsonrpc": "2.0", "method": 5, "id": 3}, '"method" must be a string, got integer 5', 3),
        ({"jsonrpc": "2.0", "id": 3}, '"method" must be a string, got nothing', 3),
        ({"jsonrpc": "2.0", "method": "getblockcount", "id": True}, '"id" must be', None),
        ({"jsonrpc": "2.0", "method": "getblockcount", "id": 1.5}, '"id" must be', None),
        ({"jsonrpc": "2.0", "method": "getblockcount", "id": [1]}, '"id" must be', None),
        ({"jsonrpc": "2.0", "method": "getblockcount", "id": 4, "params": "x"}, '"params" must be an array', 4),
        ({"jsonrpc": "2.0", "method": 1, "params": "bar"}, '"method" must be a string', None),
    ],
)
async def test_invalid_request(server, session, body, needle, id_):
    status, answer = await post(session, server.url, body if isinstance(body, str) else json.dumps(body))
    assert status == 200
    assert_error(answer, E.INVALID_REQUEST, "Invalid request", needle, id_=id_)


async def test_method_level_errors(server, session):
    _, answer = await post(session, server.url, req("getblok", [], 9))
    assert_error(answer, E.METHOD_NOT_FOUND, '"getblok"', id_=9)
    _, answer = await post(session, server.url, req("getblockhash", [True]))
    assert_error(answer, E.INVALID_PARAMS, '"height"', "expected integer", "got boolean true", id_=1)
    _, answer = await post(session, server.url, req("getblockhash", {"height": 1, "h": 2}))
    assert_error(answer, E.INVALID_PARAMS, 'unknown parameter "h"', id_=1)
    _, answer = await post(session, server.url, req("getblockhash", [1, 2]))
    assert_error(answer, E.INVALID_PARAMS, "too many parameters", id_=1)
    _, answer = await post(session, server.url, req("getblockhash", []))
    assert_error(answer, E.INVALID_PARAMS, 'missing required parameter "height"', id_=1)
    _, answer = await post(session, server.url, req("getblockhash", [8]))
    assert_error(answer, E.INVALID_PARAMETER, "out of range", id_=1)
    _, answer = await post(session, server.url, req("crash"))
    assert_error(answer, E.INTERNAL_ERROR, "Internal error", id_=1)
    assert "detail" not in answer["error"]["message"] and "ZeroDivision" not in answer["error"]["message"]
    _, answer = await post(session, server.url, req("notjson"))
    assert_error(answer, E.INTERNAL_ERROR, "Internal error", id_=1)
    _, answer = await post(session, server.url, req("subscribe", ["newblock"]))
    assert_error(answer, E.METHOD_NOT_FOUND, "WebSocket", "/ws", id_=1)


# -- notifications and batches -------------------------------------------------------------------

async def test_notifications_get_no_response(server, session, calls):
    async with session.post(server.url, json={"jsonrpc": "2.0", "method": "record", "params": [1]}) as resp:
        assert resp.status == 204 and await resp.read() == b""
    batch = [{"jsonrpc": "2.0", "method": "record", "params": [2]},
             {"jsonrpc": "2.0", "method": "nosuchmethod"},
             {"jsonrpc": "2.0", "method": "record", "params": {"value": 3}}]
    async with session.post(server.url, json=batch) as resp:
        assert resp.status == 204 and await resp.read() == b""
    status, answer = await post(session, server.url, [
        {"jsonrpc": "2.0", "method": "record", "params": [4]}, req("getblockcount", id_="a"),
        {"jsonrpc": "2.0", "method": "crash"}, req("getblockhash", [1], id_="b")])
    assert status == 200
    assert [a["id"] for a in answer] == ["a", "b"] and [a["result"] for a in answer] == [7, f"{1:064x}"]
    assert calls == [1, 2, 3, 4]


async def test_batch_mixes_results_and_errors_in_order(server, session):
    status, answer = await post(session, server.url, [req("getblockcount", id_=1), 5, req("nope", id_=2),
                                                      {"jsonrpc": "2.0", "method": 3, "id": 9}])
    assert status == 200 and len(answer) == 4
    assert answer[0]["result"] == 7
    assert_error(answer[1], E.INVALID_REQUEST, "got integer 5")
    assert_error(answer[2], E.METHOD_NOT_FOUND, id_=2)
    assert_error(answer[3], E.INVALID_REQUEST, '"method"', id_=9)


async def test_empty_batch(server, session):
    status, answer = await post(session, server.url, "[]")
    assert status == 200
    assert_error(answer, E.INVALID_REQUEST, "empty batch")


async def test_batch_limit_1000_ok_1001_rejected(calls, session):
    async with RpcServer(make_registry(calls), "127.0.0.1", 0) as server:
        status, answer = await post(session, server.url, [req("getblockhash", [i % 8], i) for i in range(1000)])
        assert status == 200 and len(answer) == 1000
        assert [a["id"] for a in answer] == list(range(1000))
        assert answer[999]["result"] == f"{999 % 8:064x}"
        status, answer = await post(session, server.url, [req("getblockcount", id_=i) for i in range(1001)])
        assert status == 200 and isinstance(answer, dict)
        assert_error(answer, E.INVALID_REQUEST, "1001", "limit of 1000")


# -- body size -----------------------------------------------------------------------------------

async def test_oversized_body_is_413_with_json_rpc_error(server, session):
    body = json.dumps(req("record", ["x" * (64 * 1024)]))
    status, answer = await post(session, server.url, body)
    assert status == 413
    assert_error(answer, E.INVALID_REQUEST, "too large", str(64 * 1024))

    async def chunked():  # no Content-Length: the limit is enforced while reading
        for _ in range(80):
            yield b" " * 1024

    status, answer = await post(session, server.url, chunked())
    assert status == 413
    assert_error(answer, E.INVALID_REQUEST, "too large")
    status, answer = await post(session, server.url, req("getblockcount"))  # server still fine
    assert answer["result"] == 7


# -- health, metrics, help -----------------------------------------------------------------------

async def test_health(server, session):
    async with session.get(server.url + "health") as resp:
        assert resp.status == 200 and await resp.json() == {"status": "ok"}


async def test_metrics_count_calls_per_method_and_code(server, session, metrics):
    await post(session, server.url, req("getblockcount"))
    await post(session, server.url, req("getblockcount"))
    await post(session, server.url, req("getblockhash", ["x"]))
    await post(session, server.url, req("no_such_method_1"))
    await post(session, server.url, req("no_such_method_2"))
    await post(session, server.url, "{")
    async with session.get(server.url + "metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    assert 'pouw_rpc_requests_total{code="0",method="getblockcount"} 2.0' in text
    assert 'pouw_rpc_requests_total{code="-32602",method="getblockhash"} 1.0' in text
    assert 'pouw_rpc_requests_total{code="-32601",method="unknown"} 2.0' in text
    assert 'pouw_rpc_requests_total{code="-32700",method="unknown"} 1.0' in text
    assert "no_such_method" not in text
    assert 'pouw_rpc_request_duration_seconds_count{method="getblockcount"} 2.0' in text
    assert 'pouw_build_info{version="test"} 1.0' in text


async def test_help_and_discover_over_http(server, session):
    _, answer = await post(session, server.url, req("help"))
    names = [line.split()[0] for line in answer["result"].splitlines()]
    assert names == sorted(["getblockcount", "getblockhash", "record", "crash", "notjson", "help", "rpc.discover"])
    _, answer = await post(session, server.url, req("help", ["getblockhash"]))
    assert answer["result"].startswith("getblockhash height\n") and "1. height" in answer["result"]
    _, answer = await post(session, server.url, req("rpc.discover"))
    methods = {m["name"]: m for m in answer["result"]["methods"]}
    assert answer["result"]["openrpc"] == "1.2.6"
    assert methods["getblockhash"]["params"] == [
        {"name": "height", "required": True, "schema": {"type": "integer", "minimum": 0},
         "description": "A height."}]
    assert methods["getblockhash"]["errors"][0]["code"] == E.INVALID_PARAMETER


# -- auth ----------------------------------------------------------------------------------------

def test_loopback_detection_and_refusal_off_loopback(tmp_path):
    assert is_loopback("127.0.0.1") and is_loopback("127.8.9.10") and is_loopback("::1")
    assert is_loopback("localhost") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("10.0.0.1")
    assert not is_loopback("example.org") and not is_loopback("")
    with pytest.raises(ValueError, match="requires authentication"):
        RpcServer(Registry(), "0.0.0.0", 0)
    with pytest.raises(ValueError, match="without authentication"):
        RpcServer(Registry(), "0.0.0.0", 0, require_auth=False, cookie_path=tmp_path / ".cookie")
    assert RpcServer(Registry(), "0.0.0.0", 0, cookie_path=tmp_path / ".cookie").auth_required
    assert not RpcServer(Registry(), "127.0.0.1", 0).auth_required


async def test_auth_with_cookie_and_user_password(tmp_path, session):
    cookie = tmp_path / "datadir" / ".cookie"
    routes_seen = []

    def extra_routes(app: web.Application) -> None:
        async def blob(request):
            return web.Response(text="blob")
        app.router.add_get("/blobs/{hash}", blob)
        routes_seen.append(app)

    async with RpcServer(make_registry(), "127.0.0.1", 0, cookie_path=cookie, require_auth=True,
                         rpc_user="alice", rpc_password="s3cret", extra_routes=extra_routes) as server:
        assert routes_seen == [server.app]
        assert stat.S_IMODE(os.stat(cookie).st_mode) == 0o600
        user, _, password = cookie.read_text().partition(":")
        assert user == "__cookie__" and len(password) == 64 and int(password, 16) >= 0
        assert server.cookie == (user, password)

        for auth in ({}, basic("__cookie__", "0" * 64), basic("alice", "wrong"), basic("bob", "s3cret"),
                     {"Authorization": "Bearer " + password}):
            async with session.post(server.url, json=req("getblockcount"), headers=auth) as resp:
                assert resp.status == 401
                assert resp.headers["WWW-Authenticate"].startswith("Basic")
        async with session.post(server.url, json=req("getblockcount"),
                                headers={"Authorization": "Basic !!notbase64"}) as resp:
            assert resp.status == 401
        for auth in (basic(user, password), basic("alice", "s3cret")):
            status, answer = await post(session, server.url, req("getblockcount"), headers=auth)
            assert status == 200 and answer["result"] == 7
        async with session.get(server.url + "blobs/ab") as resp:
            assert resp.status == 401
        async with session.get(server.url + "blobs/ab", headers=basic(user, password)) as resp:
            assert await resp.text() == "blob"
        async with session.get(server.url + "health") as resp:
            assert resp.status == 200
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(server.ws_url)
        assert info.value.status == 401
    assert not cookie.exists()


async def test_cookie_of_another_node_is_left_alone(tmp_path):
    cookie = tmp_path / ".cookie"
    async with RpcServer(make_registry(), "127.0.0.1", 0, cookie_path=cookie):
        cookie.write_text("__cookie__:" + "1" * 64)  # another node took over the file
    assert cookie.read_text() == "__cookie__:" + "1" * 64


async def test_two_servers_in_one_process_have_their_own_metrics(session):
    m1, m2 = Metrics(), Metrics()
    async with RpcServer(make_registry(), "127.0.0.1", 0, metrics=m1) as s1, \
            RpcServer(make_registry(), "127.0.0.1", 0, metrics=m2) as s2:
        assert s1.port != s2.port and s1.port > 0
        await post(session, s1.url, req("getblockcount"))
    assert m1.rpc_requests.labels(method="getblockcount", code="0")._value.get() == 1
    assert m2.rpc_requests.labels(method="getblockcount", code="0")._value.get() == 0


# -- WebSocket -----------------------------------------------------------------------------------

async def ws_call(ws, method, params=None, id_=1):
    await ws.send_json(req(method, params, id_))
    return await ws.receive_json()


async def test_ws_calls_and_subscriptions(server, session):
    async with session.ws_connect(server.ws_url) as ws, session.ws_connect(server.ws_url) as other:
        assert (await ws_call(ws, "getblockcount"))["result"] == 7
        await ws.send_json([req("getblockcount", id_=1), req("getblockhash", [2], id_=2)])
        assert [a["id"] for a in await ws.receive_json()] == [1, 2]
        assert_error(await ws_call(ws, "subscribe", ["nosuchtopic"]), E.INVALID_PARAMS, '"topic"',
                     '"job", "newblock", "newtx"', 'got string "nosuchtopic"', id_=1)

        blocks = (await ws_call(ws, "subscribe", ["newblock"]))["result"]
        jobs = (await ws_call(ws, "subscribe", {"topic": "job", "filter": {"job_id": "j1"}}))["result"]
        other_sub = (await ws_call(other, "subscribe", {"topic": "newblock"}))["result"]
        assert isinstance(blocks, str) and blocks != jobs
        assert server.subscriber_count("newblock") == 2 and server.subscriber_count() == 3

        assert server.publish("newblock", {"height": 8}) == 2
        assert server.publish("job", {"job_id": "j2", "status": "done"}) == 0  # filtered out
        assert server.publish("job", {"job_id": "j1", "status": "done"}) == 1
        assert server.publish("newtx", {"txid": "00"}) == 0
        assert await ws.receive_json() == {"jsonrpc": "2.0", "method": "subscription", "params": {
            "subscription": blocks, "topic": "newblock", "result": {"height": 8}}}
        assert (await ws.receive_json())["params"] == {"subscription": jobs, "topic": "job",
                                                       "result": {"job_id": "j1", "status": "done"}}
        assert (await other.receive_json())["params"]["subscription"] == other_sub

        assert (await ws_call(ws, "unsubscribe", [blocks]))["result"] is True
        assert_error(await ws_call(ws, "unsubscribe", [blocks], id_=5), E.INVALID_PARAMETER, blocks, id_=5)
        assert_error(await ws_call(ws, "unsubscribe", [other_sub], id_=6), E.INVALID_PARAMETER, id_=6)
        assert server.publish("newblock", {"height": 9}) == 1
        assert (await other.receive_json())["params"]["result"] == {"height": 9}
        assert (await ws_call(ws, "getblockcount", id_=7))["id"] == 7  # nothing else was queued for ws
        with pytest.raises(ValueError, match="unknown topic"):
            server.publish("nosuchtopic", {})
    # Subscriptions go with their connection.
    await wait_until(lambda: server.subscriber_count() == 0 and server.websocket_count == 0)


async def test_publish_from_another_thread(server, session):
    async with session.ws_connect(server.ws_url) as ws:
        sub = (await ws_call(ws, "subscribe", ["newtx"]))["result"]
        await asyncio.to_thread(server.publish_threadsafe, "newtx", {"txid": "ab"})
        assert (await ws.receive_json())["params"] == {"subscription": sub, "topic": "newtx",
                                                       "result": {"txid": "ab"}}


async def wait_until(condition, limit: int = 10_000) -> None:
    """Yield to the loop until ``condition()`` holds (bounded by iterations, not time)."""
    for _ in range(limit):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


async def test_slow_ws_client_is_dropped_without_blocking_publisher(session, caplog):
    async with RpcServer(make_registry(), "127.0.0.1", 0, ws_queue_size=8) as server:
        slow = await session.ws_connect(server.ws_url)
        fast = await session.ws_connect(server.ws_url)
        for ws in (slow, fast):
            assert "result" in await ws_call(ws, "subscribe", ["newblock"])
        blob = "x" * (256 * 1024)
        for i in range(2000):  # the slow one never reads: its buffers, then its queue, fill up
            server.publish("newblock", {"i": i, "blob": blob})
            assert (await fast.receive_json())["params"]["result"]["i"] == i
            if server.websocket_count == 1:
                break
        else:
            raise AssertionError("the slow client was never dropped")
        assert server.subscriber_count("newblock") == 1
        assert any("dropping WebSocket client" in r.getMessage() for r in caplog.records)
        while (msg := await slow.receive()).type == aiohttp.WSMsgType.TEXT:
            pass
        assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR)
        assert server.publish("newblock", {"i": -1}) == 1
        assert (await fast.receive_json())["params"]["result"] == {"i": -1}
        await fast.close()
        await slow.close()


async def test_stop_closes_websockets(calls, session):
    server = RpcServer(make_registry(calls), "127.0.0.1", 0)
    async with server:
        ws = await session.ws_connect(server.ws_url)
        await ws_call(ws, "subscribe", ["newtx"])
        stopping = asyncio.ensure_future(server.stop())
        msg = await ws.receive()
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        await stopping
        assert server.websocket_count == 0
        await ws.close()


# --- browser defences ---------------------------------------------------------------------------


def guarded_registry(calls: list) -> Registry:
    r = make_registry(calls)

    async def stop() -> str:
        """Stop (a control method)."""
        calls.append("stop")
        return "stopping"

    r.register("stop", stop, result={"type": "string"}, control=True)
    return r


@pytest.fixture
async def guarded(calls):
    async with RpcServer(guarded_registry(calls), "127.0.0.1", 0, cookie_path=None,
                         allowed_hosts=["node0"], cors_origins=["https://app.example"]) as s:
        yield s


@pytest.fixture
async def guarded_with_cookie(calls, tmp_path):
    async with RpcServer(guarded_registry(calls), "127.0.0.1", 0, cookie_path=tmp_path / ".cookie") as s:
        yield s, {"Authorization": "Basic " + base64.b64encode((tmp_path / ".cookie").read_bytes()).decode()}


async def test_a_foreign_host_is_refused_and_nothing_runs(guarded, session, calls):
    # DNS rebinding: the page's own name arrives as the Host header.
    status, answer = await post(session, guarded.url, req("record", ["x"]), headers={"Host": "evil.example"})
    assert status == 403 and "evil.example" in answer["error"]["message"] and calls == []
    for host in ("localhost", f"127.0.0.1:{guarded.port}", f"[::1]:{guarded.port}", "node0:18445"):
        status, answer = await post(session, guarded.url, req("getblockcount"), headers={"Host": host})
        assert status == 200 and answer["result"] == 7, host


async def test_a_foreign_origin_is_refused_on_post_and_websocket(guarded, session, calls):
    status, answer = await post(session, guarded.url, req("record", ["x"]),
                                headers={"Origin": "http://evil.example"})
    assert status == 403 and "--rpc-cors" in answer["error"]["message"] and calls == []
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await session.ws_connect(guarded.ws_url, headers={"Origin": "http://evil.example"})
    assert e.value.status == 403


async def test_the_nodes_own_pages_and_allowed_origins_get_answers(guarded, session):
    same = f"http://127.0.0.1:{guarded.port}"
    status, answer = await post(session, guarded.url, req("getblockcount"), headers={"Origin": same})
    assert status == 200 and answer["result"] == 7
    async with session.post(guarded.url, data=json.dumps(req("getblockcount")),
                            headers={"Content-Type": "application/json", "Origin": "https://app.example"}) as r:
        assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    async with session.options(guarded.url, headers={"Origin": "https://app.example",
                                                     "Access-Control-Request-Method": "POST"}) as r:
        assert r.status == 204 and "Content-Type" in r.headers["Access-Control-Allow-Headers"]
    ws = await session.ws_connect(guarded.ws_url, headers={"Origin": same})
    await ws.send_str(json.dumps(req("getblockcount")))
    assert json.loads((await ws.receive()).data)["result"] == 7
    await ws.close()


async def test_control_methods_need_credentials_even_on_loopback(guarded_with_cookie, session, calls):
    server, auth = guarded_with_cookie
    status, answer = await post(session, server.url, req("stop"))
    assert status == 200 and answer["error"]["code"] == E.CREDENTIALS_REQUIRED and calls == []
    status, answer = await post(session, server.url, req("getblockcount"))  # the rest stays open on loopback
    assert answer["result"] == 7
    ws = await session.ws_connect(server.ws_url)
    await ws.send_str(json.dumps(req("stop")))
    assert json.loads((await ws.receive()).data)["error"]["code"] == E.CREDENTIALS_REQUIRED
    await ws.close()
    assert calls == []
    status, answer = await post(session, server.url, req("stop"), headers=auth)
    assert answer["result"] == "stopping" and calls == ["stop"]
    ws = await session.ws_connect(server.ws_url, headers=auth)
    await ws.send_str(json.dumps(req("stop")))
    assert json.loads((await ws.receive()).data)["result"] == "stopping"
    await ws.close()
