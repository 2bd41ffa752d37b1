"""The method registry: declaration checks, strict parameter binding, help and OpenRPC."""

from __future__ import annotations

import logging

import pytest

from node.rpc import errors as E
from node.rpc.errors import RpcError
from node.rpc.registry import Param, Registry
from node.rpc.schema import describe_schema

HASH = {"type": "string", "pattern": "^[0-9a-f]{64}$", "maxLength": 64}


@pytest.fixture
def registry() -> Registry:
    r = Registry(info={"title": "test", "version": "9.9"})

    @r.method(
        params=[
            Param("hash", HASH, description="Block hash, hex."),
            Param("verbosity", {"type": "integer", "minimum": 0, "maximum": 2, "default": 1}, required=False,
                  description="0 hex, 1 object, 2 with txs."),
        ],
        result={"type": "object", "description": "The block."},
        errors=[E.INVALID_ADDRESS_OR_KEY],
    )
    async def getblock(hash: str, verbosity: int) -> dict:
        """Return a block by hash.

        Looks the block up in the index, best chain or not.
        """
        return {"hash": hash, "verbosity": verbosity}

    @r.method(params=[
        Param("flag", {"type": "boolean"}),
        Param("amount", {"type": "number"}, required=False),
        Param("kind", {"enum": ["a", "b"]}, required=False),
        Param("items", {"type": "array", "items": {"type": "integer"}, "maxItems": 3}, required=False),
        Param("opts", {"type": "object", "properties": {"limit": {"type": "integer"}},
                       "required": ["limit"], "additionalProperties": False}, required=False),
        Param("maybe", {"type": ["string", "null"]}, required=False),
    ])
    async def echo(flag, amount=None, kind=None, items=None, opts=None, maybe="absent"):
        """Echo the arguments."""
        return {"flag": flag, "amount": amount, "kind": kind, "items": items, "opts": opts, "maybe": maybe}

    async def boom():
        raise KeyError("secret internal detail")

    r.register("boom", boom, summary="Always fails.")

    async def refuse():
        raise RpcError(E.JOB_QUEUE_FULL, "job queue full: 64 of 64 slots taken", data={"slots": 64})

    r.register("refuse", refuse)
    return r


async def params_error(registry: Registry, method: str, params) -> str:
    with pytest.raises(RpcError) as info:
        await registry.call(method, params)
    assert info.value.code == E.INVALID_PARAMS, info.value.message
    return info.value.message


# -- binding -------------------------------------------------------------------------------------

async def test_positional_and_named_params_bind_the_same(registry):
    h = "ab" * 32
    assert await registry.call("getblock", [h, 2]) == {"hash": h, "verbosity": 2}
    assert await registry.call("getblock", {"hash": h, "verbosity": 2}) == {"hash": h, "verbosity": 2}


async def test_schema_default_is_passed_and_python_default_applies(registry):
    assert await registry.call("getblock", ["ab" * 32]) == {"hash": "ab" * 32, "verbosity": 1}
    assert (await registry.call("echo", [True]))["maybe"] == "absent"
    assert (await registry.call("echo", {"flag": False, "maybe": None}))["maybe"] is None


async def test_missing_required_param_is_named(registry):
    msg = await params_error(registry, "getblock", [])
    assert '"hash"' in msg and "missing required" in msg and "string" in msg
    msg = await params_error(registry, "getblock", {"verbosity": 1})
    assert '"hash"' in msg and "missing required" in msg


async def test_unknown_named_param_is_named(registry):
    msg = await params_error(registry, "getblock", {"hash": "ab" * 32, "verbose": 1})
    assert '"verbose"' in msg and "unknown parameter" in msg and "hash, verbosity" in msg


async def test_too_many_positional_params(registry):
    msg = await params_error(registry, "getblock", ["ab" * 32, 1, 2])
    assert "too many parameters" in msg and "at most 2" in msg and "got 3" in msg
    msg = await params_error(registry, "boom", [1])
    assert "takes no parameters" in msg


@pytest.mark.parametrize(
    ("params", "expected", "found"),
    [
        ({"hash": 5}, "expected string", "got integer 5"),
        ({"hash": "zz"}, "matching ^[0-9a-f]{64}$", '"zz"'),
        ({"hash": "a" * 65}, "at most 64 characters", "65 characters"),
        ({"hash": "ab" * 32, "verbosity": True}, "expected integer", "got boolean true"),
        ({"hash": "ab" * 32, "verbosity": 1.0}, "expected integer", "got number 1.0"),
        ({"hash": "ab" * 32, "verbosity": "1"}, "expected integer", 'got string "1"'),
        ({"hash": "ab" * 32, "verbosity": 3}, "integer <= 2", "got 3"),
        ({"hash": "ab" * 32, "verbosity": -1}, "integer >= 0", "got -1"),
        ({"hash": "ab" * 32, "verbosity": None}, "expected integer", "got null"),
        ({"hash": "ab" * 32, "verbosity": [1]}, "expected integer", "got array"),
        ({"hash": "ab" * 32, "verbosity": {}}, "expected integer", "got object"),
    ],
)
async def test_type_and_range_mismatches_name_param_expected_and_found(registry, params, expected, found):
    msg = await params_error(registry, "getblock", params)
    name = "verbosity" if "verbosity" in params else "hash"
    assert f'"{name}"' in msg and expected in msg and found in msg, msg


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"flag": 1}, '"flag": expected boolean, got integer 1'),
        ({"flag": "true"}, '"flag": expected boolean, got string "true"'),
        ({"flag": True, "amount": "1.5"}, '"amount": expected number, got string "1.5"'),
        ({"flag": True, "amount": False}, '"amount": expected number, got boolean false'),
        ({"flag": True, "kind": "c"}, '"kind": expected one of "a", "b", got string "c"'),
        ({"flag": True, "items": [1, "x"]}, '"items[1]": expected integer, got string "x"'),
        ({"flag": True, "items": [1, 2, 3, 4]}, '"items": expected array of at most 3 items, got 4 items'),
        ({"flag": True, "opts": {"limit": "5"}}, '"opts.limit": expected integer'),
        ({"flag": True, "opts": {}}, '"opts.limit"'),
        ({"flag": True, "opts": {"limit": 1, "x": 2}}, 'unknown field "x"'),
        ({"flag": True, "maybe": 3}, '"maybe": expected string or null, got integer 3'),
    ],
)
async def test_every_json_type_is_told_apart(registry, params, needle):
    assert needle in await params_error(registry, "echo", params)


async def test_number_accepts_integers_and_floats(registry):
    assert (await registry.call("echo", [True, 2]))["amount"] == 2
    assert (await registry.call("echo", [True, 2.5]))["amount"] == 2.5


async def test_params_of_wrong_structure(registry):
    assert "array or an object" in await params_error(registry, "getblock", "ab")


# -- failures of handlers ------------------------------------------------------------------------

async def test_unknown_method(registry):
    with pytest.raises(RpcError) as info:
        await registry.call("getblok", [])
    assert info.value.code == E.METHOD_NOT_FOUND and '"getblok"' in info.value.message


async def test_handler_exception_is_internal_error_without_leak(registry, caplog):
    with caplog.at_level(logging.ERROR, logger="node.rpc.registry"), pytest.raises(RpcError) as info:
        await registry.call("boom")
    assert info.value.code == E.INTERNAL_ERROR
    assert "secret" not in info.value.message and "KeyError" not in info.value.message
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)


async def test_rpc_error_passes_through_with_data(registry):
    with pytest.raises(RpcError) as info:
        await registry.call("refuse", None)
    assert info.value.to_dict() == {"code": -45, "message": "job queue full: 64 of 64 slots taken",
                                    "data": {"slots": 64}}


# -- declaration checks --------------------------------------------------------------------------

def test_registration_refuses_bad_declarations():
    r = Registry(builtins=False)

    async def ok(a):
        return a

    def sync(a):
        return a

    async def needs_b(a, b):
        return a

    with pytest.raises(TypeError, match="async"):
        r.register("sync", sync, params=[Param("a")])
    with pytest.raises(TypeError, match="'b'"):
        r.register("needs_b", needs_b, params=[Param("a")])
    with pytest.raises(TypeError, match="'c'"):
        r.register("ok", ok, params=[Param("a"), Param("c", required=False)])
    with pytest.raises(ValueError, match="unsupported schema keyword"):
        r.register("ok", ok, params=[Param("a", {"type": "string", "contentEncoding": "base64"})])
    with pytest.raises(ValueError, match="unknown type"):
        Param("a", {"type": "int"})
    r.register("ok", ok, params=[Param("a")])
    with pytest.raises(ValueError, match="already registered"):
        r.register("ok", ok, params=[Param("a")])


def test_error_codes_table():
    assert (E.PARSE_ERROR, E.INVALID_REQUEST, E.METHOD_NOT_FOUND, E.INVALID_PARAMS, E.INTERNAL_ERROR) == (
        -32700, -32600, -32601, -32602, -32603)
    assert (E.MISC_ERROR, E.TYPE_ERROR, E.INVALID_ADDRESS_OR_KEY, E.INVALID_PARAMETER, E.DESERIALIZATION_ERROR,
            E.VERIFY_ERROR, E.VERIFY_REJECTED, E.VERIFY_ALREADY_IN_CHAIN, E.IN_WARMUP) == (
        -1, -3, -5, -8, -22, -25, -26, -27, -28)
    assert [E.JOB_BLOB_NOT_FOUND, E.JOB_MATRIX_INVALID, E.JOB_TOO_LARGE, E.JOB_NOT_FOUND, E.JOB_RESULT_NOT_READY,
            E.JOB_QUEUE_FULL, E.JOB_NOT_CANCELLABLE, E.JOB_VERIFICATION_FAILED] == list(range(-40, -48, -1))
    assert E.CREDENTIALS_REQUIRED == -32001  # the one code of the server range
    codes = [v for k, v in vars(E).items() if k.isupper() and isinstance(v, int)]
    assert len(codes) == len(set(codes)) == len(E.ERROR_MESSAGES)


# -- help and rpc.discover -----------------------------------------------------------------------

async def test_help_lists_every_method_sorted(registry):
    text = await registry.call("help", [])
    lines = text.strip().splitlines()
    assert [line.split()[0] for line in lines] == sorted(registry.names())
    assert any(line.startswith("getblock hash ( verbosity )") and "Return a block by hash." in line
               for line in lines)


async def test_help_for_one_method(registry):
    text = await registry.call("help", ["getblock"])
    assert text.startswith("getblock hash ( verbosity )\n")
    assert "Looks the block up in the index" in text
    assert "1. hash" in text and "required" in text and "Block hash, hex." in text
    assert "2. verbosity" in text and "optional, default=1" in text
    assert "-5" in text and "Invalid address or key" in text
    with pytest.raises(RpcError) as info:
        await registry.call("help", {"command": "nope"})
    assert info.value.code == E.INVALID_PARAMETER and "nope" in info.value.message


async def test_rpc_discover_is_an_openrpc_document(registry):
    doc = await registry.call("rpc.discover")
    assert doc["openrpc"] == "1.2.6" and doc["info"] == {"title": "test", "version": "9.9"}
    methods = {m["name"]: m for m in doc["methods"]}
    assert set(methods) == set(registry.names())
    getblock = methods["getblock"]
    assert getblock["summary"] == "Return a block by hash."
    assert [(p["name"], p["required"]) for p in getblock["params"]] == [("hash", True), ("verbosity", False)]
    assert getblock["params"][0]["schema"] == HASH
    assert getblock["result"]["schema"]["type"] == "object"
    assert getblock["errors"] == [{"code": -5, "message": "Invalid address or key"}]
    assert registry.openrpc_document({"title": "x", "version": "1"})["info"]["title"] == "x"


# -- wording of schemas in help and messages -----------------------------------------------------

@pytest.mark.parametrize(
    ("schema", "phrase"),
    [
        ({"type": "string", "minLength": 1, "maxLength": 2097152}, "string of 1 to 2097152 characters"),
        ({"type": "string", "maxLength": 128}, "string of at most 128 characters"),
        ({"type": "string", "minLength": 1}, "string of at least 1 character"),
        ({"type": "string", "minLength": 64, "maxLength": 64}, "string of exactly 64 characters"),
        (HASH, "string of at most 64 characters matching ^[0-9a-f]{64}$"),
        ({"type": "string", "enum": ["add", "remove", "onetry"]}, 'one of "add", "remove", "onetry"'),
        ({"type": "integer", "minimum": 0, "maximum": 2}, "integer from 0 to 2"),
        ({"type": "integer", "minimum": 0}, "integer of at least 0"),
        ({"type": "integer", "maximum": 2**64 - 1}, "integer of at most 18446744073709551615"),
        ({"type": "number", "exclusiveMinimum": 0, "maximum": 1.5}, "number greater than 0 and at most 1.5"),
        ({"type": "array"}, "array"),
        ({"type": "array", "items": {"type": "string"}}, "array of strings"),
        ({"type": "array", "items": {"type": "integer"}, "maxItems": 3}, "array of at most 3 integers"),
        ({"type": "array", "items": {"enum": ["a", "b"]}}, 'array of items, each one of "a", "b"'),
        ({"type": "object"}, "object"),
        ({"type": "object", "properties": {"limit": {"type": "integer"}}}, "object with field limit"),
        ({"type": ["string", "null"]}, "string or null"),
        ({"type": ["string", "null"], "maxLength": 5}, "string of at most 5 characters or null"),
        ({"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]}, "integer of at least 1 or null"),
        ({}, "any value"),
    ],
)
def test_describe_schema_wording(schema, phrase):
    assert describe_schema(schema) == phrase


def test_help_text_reads_well_and_omits_an_unknown_result():
    r = Registry(builtins=False)

    async def sample(a, verbosity=1):
        """Sample method."""

    r.register("sample", sample, params=[
        Param("a", {"type": "string", "minLength": 1, "maxLength": 2097152}),
        Param("verbosity", {"type": "integer", "minimum": 0, "maximum": 2, "default": 1}, required=False),
    ])
    assert r.help_text("sample") == (
        "sample a ( verbosity )\n"
        "\n"
        "Sample method.\n"
        "\n"
        "Arguments:\n"
        "1. a          (string of 1 to 2097152 characters, required)\n"
        "2. verbosity  (integer from 0 to 2, optional, default=1)\n"
    )
    assert "any value" not in r.help_text("sample") and "Result:" not in r.help_text("sample")
    # Not declaring a result changes nothing in the OpenRPC document.
    assert r.get("sample").openrpc()["result"] == {"name": "sampleResult", "schema": {}}


def test_help_text_result_section_when_something_is_known(registry):
    text = registry.help_text("getblock")
    assert "\nResult:\n(object) The block.\n" in text
    assert "2. verbosity  (integer from 0 to 2, optional, default=1) 0 hex, 1 object, 2 with txs.\n" in text
    assert text.endswith("Errors:\n      -5  Invalid address or key\n")
    assert "Result:" not in registry.help_text("boom")

    async def described():
        """Untyped result with a description."""

    registry.register("described", described, result={"description": "Whatever the plugin returns."})
    assert "\nResult:\nWhatever the plugin returns.\n" in registry.help_text("described")
    assert "any value" not in registry.help_text("described")


async def test_messages_use_the_same_wording(registry):
    msg = await params_error(registry, "getblock", [])
    assert msg == ('missing required parameter "hash" (string of at most 64 characters matching '
                   "^[0-9a-f]{64}$) for getblock")
    assert '"opts.limit": expected field "limit" (integer), got nothing' in await params_error(
        registry, "echo", {"flag": True, "opts": {}})

    async def named(name):
        return name

    registry.register("named", named, params=[Param("name", {"type": "string", "minLength": 1, "maxLength": 1})])
    assert '"name": expected string of at least 1 character, got 0 characters' in await params_error(
        registry, "named", [""])
    assert '"name": expected string of at most 1 character, got 2 characters' in await params_error(
        registry, "named", ["ab"])
    assert '"items": expected array of at most 3 items, got 4 items' in await params_error(
        registry, "echo", {"flag": True, "items": [1, 2, 3, 4]})
