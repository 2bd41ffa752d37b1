"""The JSON-RPC 2.0 server of the node: HTTP POST ``/``, WebSocket ``/ws``, ``/health``, ``/metrics``.

``RpcServer`` is an async context manager around an aiohttp application::

    async with RpcServer(registry, "127.0.0.1", 0, metrics=metrics) as server:
        print(server.url)             # http://127.0.0.1:<the port it got>
        server.publish("newblock", {"height": 7, "hash": "..."})

Protocol rules (https://www.jsonrpc.org/specification), strictly:

- a request is an object with ``"jsonrpc": "2.0"``, a string ``method``, optional
  ``params`` (array or object; ``null`` is taken as absent) and an optional ``id``
  (string, integer or null); a request without ``id`` is a notification and is
  never answered, not even with an error;
- a batch is a non-empty array of at most ``max_batch`` requests, answered by
  an array without the notifications' entries; a batch of only notifications
  (like a single notification) gets HTTP 204 and an empty body;
- JSON-RPC-level errors are HTTP 200 with an ``error`` member; the exceptions
  are a body over ``max_body_bytes`` (HTTP 413, with a JSON-RPC error body),
  bad credentials (HTTP 401 with ``WWW-Authenticate``, no JSON) and the
  browser defences below (403, 415).

Browser defences (what geth does, so no web page can drive the node), in
``node.rpc.guard``: a POST to ``/`` must be ``application/json`` (415); the
``Host`` header must be loopback, the bind address or an ``allowed_hosts``
name (403); an ``Origin`` must be the server's own pages or one of
``cors_origins`` (403, WebSocket upgrades too). Control methods
(``Method.control``: ``stop``, ``addnode``, ``setban``, ``generatetoaddress``,
``faucet``) need credentials even where the rest does not (loopback): without
them they answer ``CREDENTIALS_REQUIRED``. ``/health`` is exempt.

Authentication: required when the server binds to a non-loopback address
(anything but 127.0.0.0/8, ::1, ``localhost``) or when ``require_auth=True``.
Credentials are HTTP Basic: the cookie (``__cookie__`` and a random 32-byte hex
password, written to ``cookie_path`` with mode 0600 at start and removed at
stop) or the configured ``rpc_user``/``rpc_password``, compared in constant
time. ``/health`` is always open.

WebSocket ``/ws`` takes the same requests (single or batch) plus ``subscribe``
(``[topic]`` or ``{"topic", "filter"?}``; returns a subscription id) and
``unsubscribe`` (``[id]``; returns ``true``). ``publish(topic, payload)`` sends
``{"jsonrpc":"2.0","method":"subscription","params":{"subscription":id,
"topic":topic,"result":payload}}`` to every matching subscriber. A filter is an
object; by default a payload matches when it is an object whose fields equal
every field of the filter (``topics`` may give a topic its own matcher). Each
connection has a bounded outgoing queue; a client that lets it overflow is
disconnected (and logged), so a slow reader never blocks a publisher.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import math
import os
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from node.metrics import Metrics
from node.rpc import COOKIE_USER, DEFAULT_RPC_PORT
from node.rpc import errors as E
from node.rpc.errors import RpcError
from node.rpc.guard import BrowserGuard, auth_required
from node.rpc.registry import Method, Param, Registry
from node.rpc.schema import describe_found

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_BATCH = 1000
DEFAULT_WS_QUEUE_SIZE = 1024
DEFAULT_TOPICS = ("newblock", "newtx", "job")
MAX_SUBSCRIPTIONS_PER_CONNECTION = 256

#: A topic's matcher: ``(filter, payload) -> bool``.
Matcher = Callable[[Mapping[str, Any], Any], bool]

#: Where route handlers added by ``extra_routes`` find the server: ``request.app[RPC_SERVER_KEY]``.
RPC_SERVER_KEY: web.AppKey[RpcServer] = web.AppKey("rpc_server")


def match_fields(filter_: Mapping[str, Any], payload: Any) -> bool:
    """The default matcher: ``payload`` is an object with every field of ``filter_`` equal."""
    return isinstance(payload, Mapping) and all(k in payload and payload[k] == v for k, v in filter_.items())


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def loads(body: bytes | str) -> Any:
    """Strict JSON decoding (no NaN/Infinity); raises ``ValueError`` with the reason."""
    try:
        return json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def error_response(request_id: Any, code: int, message: str, data: Any = None) -> str:
    """An encoded JSON-RPC error response."""
    error = RpcError(code, message, data).to_dict()
    return f'{{"jsonrpc":"2.0","id":{dumps(request_id)},"error":{dumps(error)}}}'


def _valid_id(value: Any) -> bool:
    return value is None or isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


class _Subscription:
    __slots__ = ("id", "topic", "filter", "conn")

    def __init__(self, sub_id: str, topic: str, filter_: Mapping[str, Any] | None, conn: _WsConnection) -> None:
        self.id = sub_id
        self.topic = topic
        self.filter = filter_
        self.conn = conn


class _WsConnection:
    """One WebSocket client: its subscriptions and its bounded outgoing queue."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, queue_size: int) -> None:
        self.ws = ws
        self.peer = request.remote
        self.transport = request.transport
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self.subscriptions: dict[str, _Subscription] = {}
        self.closed = False
        self.authorized = False
        """The upgrade request carried valid credentials (control methods need them)."""
        self.writer: asyncio.Task[None] | None = None

    def send(self, text: str) -> bool:
        """Queue one message; on overflow drop the connection. False when not queued."""
        if self.closed:
            return False
        try:
            self.queue.put_nowait(text)
            return True
        except asyncio.QueueFull:
            log.warning("dropping WebSocket client %s: its outgoing queue is full (%d messages); "
                        "it reads too slowly", self.peer, self.queue.maxsize)
            self.abort()
            return False

    def abort(self) -> None:
        """Drop the connection now: a client that cannot keep up cannot take a close frame either."""
        self.closed = True
        if self.writer is not None:
            self.writer.cancel()
        if self.transport is not None:
            self.transport.abort()

    async def run_writer(self) -> None:
        try:
            while True:
                text = await self.queue.get()
                await self.ws.send_str(text)
        except (ConnectionError, RuntimeError):
            self.closed = True


class RpcServer:
    """The node's JSON-RPC server; start and stop it with ``async with``.

    ``registry`` answers the methods; ``host``/``port`` is where to listen
    (``port=0`` picks a free port, read it from ``.port`` after start).
    ``cookie_path`` (normally ``<datadir>/.cookie``) is written at start when
    given; ``rpc_user``/``rpc_password`` are accepted too. ``require_auth``
    forces auth on (``True``) or off (``False``, refused off loopback);
    ``None`` means "only off loopback". ``metrics`` counts every call and
    enables ``GET /metrics``. ``topics`` are the WebSocket subscription topics
    (names, or a name -> matcher map). ``extra_routes(app)`` is called once to
    add more routes (``/blobs``, ``/explorer``); they sit behind the same auth.
    """

    def __init__(
        self,
        registry: Registry,
        host: str = "127.0.0.1",
        port: int = DEFAULT_RPC_PORT,
        *,
        cookie_path: str | os.PathLike[str] | None = None,
        rpc_user: str | None = None,
        rpc_password: str | None = None,
        require_auth: bool | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_batch: int = DEFAULT_MAX_BATCH,
        metrics: Metrics | None = None,
        topics: Iterable[str] | Mapping[str, Matcher | None] = DEFAULT_TOPICS,
        ws_queue_size: int = DEFAULT_WS_QUEUE_SIZE,
        extra_routes: Callable[[web.Application], None] | None = None,
        auth_exempt_paths: Iterable[str] = ("/health",),
        allowed_hosts: Iterable[str] = (),
        cors_origins: Iterable[str] = (),
    ) -> None:
        self.auth_required = auth_required(host, cookie_path, rpc_user, rpc_password, require_auth)
        if max_batch < 1 or max_body_bytes < 1 or ws_queue_size < 1:
            raise ValueError("max_batch, max_body_bytes and ws_queue_size must be positive")

        self.registry = registry
        self.host = "127.0.0.1" if host.lower() == "localhost" else host
        self._requested_port = port
        self._port: int | None = None
        self.cookie_path = Path(cookie_path) if cookie_path is not None else None
        self.max_body_bytes = max_body_bytes
        self.max_batch = max_batch
        self.metrics = metrics
        self.ws_queue_size = ws_queue_size
        self._auth_exempt = frozenset(auth_exempt_paths)
        self._guard = BrowserGuard(self.host, allowed_hosts, cors_origins, exempt=self._auth_exempt)
        self._credentials: list[bytes] = []
        if rpc_user is not None:
            self._credentials.append(f"{rpc_user}:{rpc_password}".encode())
        self._cookie: str | None = None

        if isinstance(topics, Mapping):
            self._matchers = {t: (m or match_fields) for t, m in topics.items()}
        else:
            self._matchers = {t: match_fields for t in topics}
        self._subs: dict[str, dict[str, _Subscription]] = {t: {} for t in self._matchers}
        self._connections: set[_WsConnection] = set()
        self._ws_methods = {
            "subscribe": Method("subscribe", _not_called, params=(
                Param("topic", {"type": "string", "enum": sorted(self._matchers)}),
                Param("filter", {"type": "object"}, required=False))),
            "unsubscribe": Method("unsubscribe", _not_called, params=(
                Param("subscription", {"type": "string"}),)),
        }

        self.app = self._build_app(metrics, extra_routes)
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _build_app(self, metrics: Metrics | None,
                   extra_routes: Callable[[web.Application], None] | None) -> web.Application:
        middlewares = [self._guard.middleware, *([self._auth_middleware] if self.auth_required else [])]
        app = web.Application(client_max_size=self.max_body_bytes, middlewares=middlewares)
        app[RPC_SERVER_KEY] = self
        app.router.add_post("/", self._handle_post)
        app.router.add_get("/health", self._handle_health)
        app.router.add_get("/ws", self._handle_ws)
        if metrics is not None:
            app.router.add_get("/metrics", self._handle_metrics)
        if extra_routes is not None:
            extra_routes(app)
        app.on_shutdown.append(self._close_websockets)
        return app

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (known once started)."""
        if self._port is None:
            raise RuntimeError("the RPC server is not started")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1) + "ws"

    @property
    def cookie(self) -> tuple[str, str] | None:
        """The cookie credentials ``(user, password)`` while running with a cookie file."""
        return (COOKIE_USER, self._cookie) if self._cookie else None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.cookie_path is not None:
            self._write_cookie()
        try:
            self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=5.0)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, self._requested_port)
            await site.start()
            self._port = self._runner.addresses[0][1]
        except BaseException:
            await self.stop()
            raise
        log.info("JSON-RPC listening on %s (auth %s)", self.url, "required" if self.auth_required else "off")

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        self._remove_cookie()

    async def __aenter__(self) -> RpcServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- auth ------------------------------------------------------------------------------------

    def _write_cookie(self) -> None:
        assert self.cookie_path is not None
        password = secrets.token_hex(32)
        self.cookie_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cookie_path.with_name(self.cookie_path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, f"{COOKIE_USER}:{password}".encode())
        finally:
            os.close(fd)
        os.replace(tmp, self.cookie_path)
        self._cookie = password
        self._credentials.append(f"{COOKIE_USER}:{password}".encode())

    def _remove_cookie(self) -> None:
        if self._cookie is None or self.cookie_path is None:
            return
        expected = f"{COOKIE_USER}:{self._cookie}"
        self._credentials.remove(expected.encode())
        self._cookie = None
        try:
            if self.cookie_path.read_text() == expected:  # not another node's cookie
                self.cookie_path.unlink()
        except OSError as exc:
            log.warning("could not remove the cookie file %s: %s", self.cookie_path, exc)

    def _is_authorized(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        ok = False
        for expected in self._credentials:
            ok |= hmac.compare_digest(given, expected)
        return ok

    @web.middleware
    async def _auth_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path in self._auth_exempt or self._is_authorized(request.headers.get("Authorization")):
            return await handler(request)
        log.info("rejected RPC request from %s: bad or missing credentials", request.remote)
        return web.Response(status=401, text="401 Unauthorized: use HTTP Basic auth with the cookie "
                            "(<datadir>/.cookie) or the configured rpc user/password\n",
                            headers={"WWW-Authenticate": 'Basic realm="jsonrpc"'})

    def authorized(self, request: web.Request) -> bool:
        """Whether ``request`` may call control methods: it carries valid credentials."""
        return self._is_authorized(request.headers.get("Authorization"))

    # -- HTTP ------------------------------------------------------------------------------------

    async def _handle_health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _handle_metrics(self, request: web.Request) -> web.Response:
        assert self.metrics is not None
        return web.Response(body=self.metrics.generate(), headers={"Content-Type": self.metrics.content_type})

    async def _handle_post(self, request: web.Request) -> web.Response:
        body = await self._read_body(request)
        if body is None:
            self._record(None, E.INVALID_REQUEST, None)
            text = error_response(None, E.INVALID_REQUEST,
                                  f"request body too large: the limit is {self.max_body_bytes} bytes")
            return web.Response(status=413, body=text.encode(), content_type="application/json")
        out = await self.handle_body(body, authorized=self.authorized(request))
        if out is None:
            return web.Response(status=204)
        return web.Response(body=out.encode(), content_type="application/json")

    async def _read_body(self, request: web.Request) -> bytes | None:
        """The body, or ``None`` when it is over ``max_body_bytes`` (not read further)."""
        length = request.content_length
        if length is not None and length > self.max_body_bytes:
            return None
        chunks = []
        size = 0
        while chunk := await request.content.readany():
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    # -- JSON-RPC --------------------------------------------------------------------------------

    async def handle_body(self, body: bytes | str, conn: _WsConnection | None = None, *,
                          authorized: bool = False) -> str | None:
        """Answer one request body (single or batch): the encoded response, or ``None`` for no response.

        ``authorized``: the caller presented valid credentials (control methods need them).
        """
        try:
            payload = loads(body)
        except ValueError as exc:
            self._record(None, E.PARSE_ERROR, None)
            return error_response(None, E.PARSE_ERROR, f"Parse error: {exc}")
        if not isinstance(payload, list):
            return await self._handle_one(payload, conn, authorized)
        if not payload:
            self._record(None, E.INVALID_REQUEST, None)
            return error_response(None, E.INVALID_REQUEST, "Invalid request: empty batch")
        if len(payload) > self.max_batch:
            self._record(None, E.INVALID_REQUEST, None)
            return error_response(None, E.INVALID_REQUEST, f"Invalid request: batch of {len(payload)} requests "
                                                           f"is over the limit of {self.max_batch}")
        responses = []
        for item in payload:
            out = await self._handle_one(item, conn, authorized)
            if out is not None:
                responses.append(out)
        return "[" + ",".join(responses) + "]" if responses else None

    def _invalid(self, request_id: Any, message: str) -> str:
        self._record(None, E.INVALID_REQUEST, None)
        return error_response(request_id, E.INVALID_REQUEST, f"Invalid request: {message}")

    async def _handle_one(self, obj: Any, conn: _WsConnection | None, authorized: bool) -> str | None:
        if not isinstance(obj, dict):
            return self._invalid(None, f"expected a JSON object, got {describe_found(obj)}")
        is_call = "id" in obj
        request_id = obj.get("id")
        if not _valid_id(request_id):
            found = describe_found(request_id)
            return self._invalid(None, f'"id" must be a string, an integer or null, got {found}')
        if obj.get("jsonrpc") != "2.0" or not isinstance(obj.get("jsonrpc"), str):
            found = describe_found(obj["jsonrpc"]) if "jsonrpc" in obj else "nothing"
            return self._invalid(request_id, f'"jsonrpc" must be "2.0", got {found}')
        method = obj.get("method")
        if not isinstance(method, str):
            found = describe_found(method) if "method" in obj else "nothing"
            return self._invalid(request_id, f'"method" must be a string, got {found}')
        params = obj.get("params")
        if params is not None and not isinstance(params, (list, dict)):
            found = describe_found(params)
            return self._invalid(request_id, f'"params" must be an array or an object, got {found}')

        known = method in self.registry or (conn is not None and method in self._ws_methods)
        started = time.perf_counter()
        try:
            if conn is not None and method in self._ws_methods:
                result = self._call_ws_method(conn, method, params)
            elif method in self._ws_methods and method not in self.registry:
                raise RpcError(E.METHOD_NOT_FOUND, f'Method "{method}" is only available over WebSocket at /ws')
            elif not authorized and self._is_control(method):
                raise RpcError(E.CREDENTIALS_REQUIRED, f"{method} needs credentials even on loopback: use HTTP "
                                                       "Basic auth with the cookie (<datadir>/.cookie) or the "
                                                       "configured rpc user/password")
            else:
                result = await self.registry.call(method, params)
            code = 0
        except RpcError as exc:
            code = exc.code
            error = exc
        self._record(method if known else None, code, time.perf_counter() - started)
        if not is_call:
            return None
        if code:
            return error_response(request_id, error.code, error.message, error.data)
        try:
            return f'{{"jsonrpc":"2.0","id":{dumps(request_id)},"result":{dumps(result)}}}'
        except (TypeError, ValueError):
            log.exception("RPC method %s returned a result that is not JSON", method)
            return error_response(request_id, E.INTERNAL_ERROR, f"Internal error in {method}; see the node log")

    def _is_control(self, method: str) -> bool:
        declared = self.registry.get(method)
        return declared is not None and declared.control

    def _record(self, method: str | None, code: int, seconds: float | None) -> None:
        if self.metrics is not None:
            self.metrics.record_rpc(method, code, seconds)

    # -- WebSocket -------------------------------------------------------------------------------

    async def _handle_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=self.max_body_bytes, timeout=2.0)
        await ws.prepare(request)
        conn = _WsConnection(ws, request, self.ws_queue_size)
        conn.authorized = self.authorized(request)
        conn.writer = asyncio.create_task(conn.run_writer())
        self._connections.add(conn)
        try:
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                out = await self.handle_body(msg.data, conn, authorized=conn.authorized)
                if out is not None and not conn.send(out):
                    break
        finally:
            self._forget(conn)
            if not conn.closed:
                conn.closed = True
                conn.writer.cancel()
        return ws

    def _forget(self, conn: _WsConnection) -> None:
        self._connections.discard(conn)
        for sub in conn.subscriptions.values():
            self._subs[sub.topic].pop(sub.id, None)
        conn.subscriptions.clear()

    async def _close_websockets(self, app: web.Application) -> None:
        conns = list(self._connections)
        for conn in conns:
            self._forget(conn)
            conn.closed = True
            if conn.writer is not None:
                conn.writer.cancel()
        await asyncio.gather(*(self._close_ws(c) for c in conns), return_exceptions=True)

    @staticmethod
    async def _close_ws(conn: _WsConnection) -> None:
        try:
            await asyncio.wait_for(conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down"), 3.0)
        except (TimeoutError, ConnectionError, RuntimeError):
            conn.abort()

    def _call_ws_method(self, conn: _WsConnection, method: str, params: Any) -> Any:
        args = self._ws_methods[method].bind(params)
        if method == "subscribe":
            if len(conn.subscriptions) >= MAX_SUBSCRIPTIONS_PER_CONNECTION:
                raise RpcError(E.MISC_ERROR, f"too many subscriptions on this connection "
                                             f"(limit {MAX_SUBSCRIPTIONS_PER_CONNECTION})")
            sub = _Subscription(secrets.token_hex(8), args["topic"], args.get("filter") or None, conn)
            conn.subscriptions[sub.id] = sub
            self._subs[sub.topic][sub.id] = sub
            return sub.id
        gone = conn.subscriptions.pop(args["subscription"], None)
        if gone is None:
            raise RpcError(E.INVALID_PARAMETER, f"no subscription {args['subscription']!r} on this connection")
        self._subs[gone.topic].pop(gone.id, None)
        return True

    def publish(self, topic: str, payload: Any) -> int:
        """Send ``payload`` to the subscribers of ``topic``; returns how many got it queued.

        Call from the event loop; never blocks (see ``publish_threadsafe`` for other threads).
        """
        subs = self._subs.get(topic)
        if subs is None:
            raise ValueError(f"unknown topic {topic!r}; the server knows {sorted(self._subs)}")
        if not subs:
            return 0
        head = '{"jsonrpc":"2.0","method":"subscription","params":{"subscription":"'
        tail = f'","topic":{dumps(topic)},"result":{dumps(payload)}}}}}'
        matcher = self._matchers[topic]
        sent = 0
        for sub in list(subs.values()):
            if sub.filter is not None and not matcher(sub.filter, payload):
                continue
            if sub.conn.send(head + sub.id + tail):
                sent += 1
            elif sub.conn.closed:
                self._forget(sub.conn)
        return sent

    def publish_threadsafe(self, topic: str, payload: Any) -> None:
        """``publish`` from another thread (e.g. a worker): scheduled on the server's event loop."""
        if self._loop is None:
            raise RuntimeError("the RPC server is not started")
        self._loop.call_soon_threadsafe(self.publish, topic, payload)

    def subscriber_count(self, topic: str | None = None) -> int:
        """Live subscriptions, to ``topic`` or to any topic."""
        if topic is not None:
            return len(self._subs[topic])
        return sum(len(s) for s in self._subs.values())

    @property
    def websocket_count(self) -> int:
        """Open WebSocket connections."""
        return len(self._connections)


async def _not_called(**_: Any) -> None:  # the WS-only methods are answered by the server itself
    raise AssertionError("unreachable")
