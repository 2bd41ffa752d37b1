"""``pouw-cli``: call the node's JSON-RPC from the shell, in the style of ``bitcoin-cli``.

    pouw-cli getblockcount
    pouw-cli getblockhash 10
    pouw-cli --named getblock hash=00ab... verbosity=2
    pouw-cli --datadir ~/.pouw/devnet help getblock
    pouw-cli --rpc-url http://10.0.0.5:18445/ --rpc-user alice --rpc-password s3cret getblockcount

Each positional parameter is parsed as JSON when it parses (numbers,
``true``/``false``/``null``, objects, arrays, quoted strings) and is passed as
a string otherwise; ``--named`` takes ``key=value`` pairs parsed the same way.
A string result is printed raw, ``null`` prints nothing, anything else as
indented JSON.

Credentials: ``--rpc-user``/``--rpc-password`` (or ``POUW_RPC_USER`` /
``POUW_RPC_PASSWORD``), else the cookie file ``<datadir>/.cookie`` of
``--datadir`` (or ``POUW_DATADIR``; for the default local devnet RPC,
``~/.pouw/devnet``). Control methods (``stop``, ``addnode``, ``setban``,
``generatetoaddress``, ``faucet``) need credentials even on loopback. The URL: ``--rpc-url`` (or ``POUW_RPC_URL``), else
``http://<--rpc-host>:<--rpc-port>/``.

Exit status: 0 success; 1 an RPC error (``error code: N`` and ``error message: ...``
on stderr), bad credentials or bad usage; 2 the node could not be reached.

Standard library only, so that it starts fast.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, NoReturn

from node.rpc import COOKIE_FILENAME, DEFAULT_RPC_PORT

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_UNREACHABLE = 2

START_HINT = "Is pouwd running? Start a development node with: pouwd --network devnet"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # usage errors exit 1: 2 means "node unreachable"
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def parse_param(text: str) -> Any:
    """``text`` as JSON when it is valid, finite JSON; otherwise the string itself."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return text
    if isinstance(value, float) and not math.isfinite(value):
        return text
    return value


def parse_named(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs to a params object (``ValueError`` for a pair without ``=``)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"named parameter {pair!r} is not of the form key=value")
        if key in params:
            raise ValueError(f"named parameter {key!r} given twice")
        params[key] = parse_param(value)
    return params


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pouw-cli",
        description="Call a pouw node's JSON-RPC method. Try: pouw-cli help",
        epilog="Exit status: 0 success, 1 RPC error or bad usage, 2 node unreachable.",
    )
    parser.add_argument("--rpc-url", default=os.environ.get("POUW_RPC_URL"),
                        help="full URL of the node's RPC (default: from --rpc-host/--rpc-port; env POUW_RPC_URL)")
    parser.add_argument("--rpc-host", default="127.0.0.1", help="RPC host (default 127.0.0.1)")
    parser.add_argument("--rpc-port", type=int, default=DEFAULT_RPC_PORT,
                        help=f"RPC port (default {DEFAULT_RPC_PORT}, devnet)")
    parser.add_argument("--datadir", help="the node's data directory, to read its .cookie")
    parser.add_argument("--rpc-user", default=os.environ.get("POUW_RPC_USER"), help="RPC user (env POUW_RPC_USER)")
    parser.add_argument("--rpc-password", default=os.environ.get("POUW_RPC_PASSWORD"),
                        help="RPC password (env POUW_RPC_PASSWORD)")
    parser.add_argument("--rpc-timeout", type=float, default=900.0, help="seconds to wait for an answer")
    parser.add_argument("--named", action="store_true", help="pass parameters as key=value pairs")
    parser.add_argument("method", help="the RPC method, e.g. getblockcount or help")
    parser.add_argument("params", nargs=argparse.REMAINDER, help="parameters (JSON when they parse)")
    return parser


def _credentials(args: argparse.Namespace) -> tuple[str, str] | None:
    if args.rpc_user is not None or args.rpc_password is not None:
        return args.rpc_user or "", args.rpc_password or ""
    datadir = args.datadir or os.environ.get("POUW_DATADIR") or _default_datadir(args)
    if datadir:
        cookie = Path(datadir).expanduser() / COOKIE_FILENAME
        try:
            user, sep, password = cookie.read_text().strip().partition(":")
        except OSError:
            return None  # node not running, or running without auth: the call will tell
        if sep:
            return user, password
    return None


def _default_datadir(args: argparse.Namespace) -> str | None:
    """The devnet node's data directory when the call goes to the default local devnet RPC."""
    if args.rpc_url is None and args.rpc_host == "127.0.0.1" and args.rpc_port == DEFAULT_RPC_PORT:
        return str(Path.home() / ".pouw" / "devnet")
    return None


def call(url: str, method: str, params: Any, auth: tuple[str, str] | None, timeout: float) -> dict[str, Any]:
    """POST one request; returns the decoded JSON-RPC response (HTTP errors with a JSON body too).

    Raises ``urllib.error.HTTPError`` for an HTTP error without a JSON-RPC body and
    ``OSError`` (``URLError`` included) when the node cannot be reached.
    """
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    # No proxies: the node is local or addressed directly.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            answer = json.loads(raw)
        except ValueError:
            raise exc from None
        if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
            return answer
        raise


def _print_result(result: Any) -> None:
    if result is None:
        return
    if isinstance(result, str):
        sys.stdout.write(result if result.endswith("\n") else result + "\n")
    else:
        print(json.dumps(result, indent=2, ensure_ascii=False))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    url = args.rpc_url or f"http://{args.rpc_host}:{args.rpc_port}/"
    try:
        params: Any = parse_named(args.params) if args.named else [parse_param(p) for p in args.params]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    auth = _credentials(args)
    try:
        answer = call(url, args.method, params, auth, args.rpc_timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            if args.rpc_user or args.rpc_password:
                where = "wrong --rpc-user/--rpc-password"
            elif args.datadir:
                where = f"the cookie in {args.datadir} was not accepted (is it this node's data directory?)"
            else:
                where = "no credentials given (use --datadir or --rpc-user/--rpc-password)"
            print(f"error: authorization failed (HTTP 401): {where}", file=sys.stderr)
        else:
            print(f"error: HTTP {exc.code} {exc.reason} from {url}", file=sys.stderr)
        return EXIT_ERROR
    except TimeoutError:
        print(f"error: the node at {url} did not answer within {args.rpc_timeout:g} s", file=sys.stderr)
        return EXIT_UNREACHABLE
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        print(f"error: could not connect to the node at {url} ({reason})\n{START_HINT}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except ValueError as exc:
        print(f"error: the node at {url} did not answer with JSON ({exc})", file=sys.stderr)
        return EXIT_ERROR
    error = answer.get("error") if isinstance(answer, dict) else None
    if error is not None:
        print(f"error code: {error.get('code')}", file=sys.stderr)
        print(f"error message: {error.get('message')}", file=sys.stderr)
        if error.get("data") is not None:
            print(f"error data: {json.dumps(error['data'])}", file=sys.stderr)
        return EXIT_ERROR
    _print_result(answer.get("result") if isinstance(answer, dict) else answer)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
