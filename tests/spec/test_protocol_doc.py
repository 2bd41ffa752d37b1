"""``docs/protocol.md`` describes the code as it is: every vector, constant, preset and layout it states is checked.

The document marks what a test can read:

- a line ``vector: <name>`` inside a fenced block starts a vector; its value is the following lines
  of the block (up to the next marker or the end of the block), stripped and joined;
- a line ``<!-- checked: <what> -->`` is followed by a Markdown table: ``constants``
  (name | value | defined in | meaning), ``network <name>`` (parameter | value | meaning) or
  ``layout <record>`` (offset | size | field | type | meaning).

Values in tables are Python literals in backticks (``bytes(N)`` is also accepted). Every constant
defined at the top level of a ``pouw`` or ``consensus`` module, every preset and every preset field
must appear, so a new or changed constant fails here until the document says so.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC_PATH = ROOT / "docs" / "protocol.md"
VECTORS_JSON = json.loads((Path(__file__).parent / "vectors.json").read_text())
JOB_VECTORS_JSON = json.loads((Path(__file__).parent / "job_vectors.json").read_text())

CONSTANT_MODULES = sorted(
    str(p.relative_to(ROOT)) for d in ("pouw", "consensus") for p in (ROOT / d).glob("*.py")
)
"""Every module whose top-level constants the constants table must list."""


# --- parsing the document ----------------------------------------------------------------------


def _read_doc() -> str:
    return DOC_PATH.read_text(encoding="utf-8")


def parse_vectors(text: str) -> dict[str, str]:
    """``name -> value`` of every ``vector:`` marker inside a fenced block."""
    vectors: dict[str, str] = {}
    in_block, name, parts = False, None, []

    def flush() -> None:
        if name is not None:
            assert name not in vectors, f"vector {name!r} appears twice in {DOC_PATH.name}"
            assert parts, f"vector {name!r} has no value"
            vectors[name] = "".join(parts)

    for line in text.splitlines():
        if line.startswith("```"):
            if in_block:
                flush()
                name, parts = None, []
            in_block = not in_block
            continue
        if not in_block:
            continue
        if line.startswith("vector: "):
            flush()
            name, parts = line[len("vector: "):].strip(), []
        elif name is not None and line.strip():
            parts.append(line.strip())
    assert not in_block, "unterminated fenced block"
    return vectors


def parse_checked_tables(text: str) -> dict[str, list[list[str]]]:
    """``what -> rows`` (cells stripped, header and separator rows dropped) of every checked table."""
    lines = text.splitlines()
    tables: dict[str, list[list[str]]] = {}
    for i, line in enumerate(lines):
        m = re.fullmatch(r"<!-- checked: (.+?) -->", line.strip())
        if not m:
            continue
        what = m.group(1)
        assert what not in tables, f"checked table {what!r} appears twice"
        rows = []
        j = i + 1
        while j < len(lines) and lines[j].startswith("|"):
            rows.append([c.strip() for c in lines[j].strip().strip("|").split("|")])
            j += 1
        assert len(rows) > 2, f"checked table {what!r} is not followed by a table"
        tables[what] = rows[2:]
    return tables


def unquote(cell: str) -> str:
    cell = cell.strip()
    if cell.startswith("`") and cell.endswith("`"):
        return cell[1:-1]
    return cell


def literal(cell: str):
    """The Python literal in a table cell."""
    text = unquote(cell)
    m = re.fullmatch(r"bytes\((\d+)\)", text)
    if m:
        return bytes(int(m.group(1)))
    return ast.literal_eval(text)


DOC = _read_doc()
DOC_VECTORS = parse_vectors(DOC)
TABLES = parse_checked_tables(DOC)


# --- what the code computes --------------------------------------------------------------------


@functools.cache
def fixed() -> dict:
    """The fixed-input vectors, recomputed by the code (``tests/spec/vectors.py``)."""
    from tests.spec.vectors import compute_vectors

    return compute_vectors()


@functools.cache
def job_fixed() -> dict:
    """The job market's fixed vectors, recomputed by the code (``tests/spec/job_vectors.py``)."""
    from tests.spec.job_vectors import compute_job_vectors

    return compute_job_vectors()


@functools.cache
def chain_objects():
    from consensus.keys import keypair_from_private
    from consensus.tx import make_transfer
    from consensus.types import Coinbase

    key = keypair_from_private(bytes(range(32)))
    tx = make_transfer(key, 1337, 7, bytes([0xAA]) * 20, 1000, 1000, b"hello")
    cb = Coinbase(1, 5, bytes([0xBB]) * 20, 5_000_000_000)
    return key, tx, cb


def _k(name: str) -> str:
    from pouw.hashing import K

    return K(name).hex()


ASERT_VECTORS = [(0, 0), (10, 600), (10, 43_800), (10, -42_600), (100, 27_600), (1000, 59_999), (5, 10**9),
                 (5, -(10**9))]
"""``(h, t_p - genesis.time)`` of the shared spec's ASERT vectors (section 10)."""


def _asert(height: int, offset: int) -> str:
    """The spec's vector parameters: genesis.target = 2^200, S = 60, halflife = 43200, pow_limit = 2^240."""
    from consensus.difficulty import compute_asert_target
    from consensus.networks import MAINNET

    params = dataclasses.replace(MAINNET, block_spacing=60, halflife=43_200, max_future=3_600, pow_limit=1 << 240)
    return hex(compute_asert_target(1 << 200, offset, height, params))


def _preset_asert(network: str, halflives: int) -> str:
    """A preset's target for a parent at height 100, ``halflives`` half-lives behind schedule."""
    from consensus.difficulty import compute_next_target
    from consensus.networks import get_network

    p = get_network(network)
    return hex(compute_next_target(100, p.genesis_time + 100 * p.block_spacing + halflives * p.halflife, p))


def _genesis(network: str):
    from consensus.genesis import make_genesis_block
    from consensus.networks import get_network

    return make_genesis_block(get_network(network))


def _code_vectors() -> dict:
    from consensus.address import encode_address
    from consensus.codec import encode_block, encode_coinbase, encode_tx
    from consensus.networks import DEVNET, MAINNET
    from consensus.tx import compute_sighash, compute_tx_id, compute_tx_root
    from pouw.hashing import XOF, H, K
    from pouw.header import compute_work
    from pouw.transcript import win_threshold

    key = lambda: chain_objects()[0]  # noqa: E731
    tx = lambda: chain_objects()[1]  # noqa: E731
    cb = lambda: chain_objects()[2]  # noqa: E731
    f = fixed
    out = {
        f'K("{n}")': functools.partial(_k, n)
        for n in ("leaf-A", "leaf-B", "node", "block", "job", "seed-B", "seed-A", "job-id", "freivalds",
                  "sighash", "tx", "tx-node", "address", "leaf-C", "offer")
    }
    out.update({
        'H("")': lambda: H(b"").hex(),
        'XOF(K("freivalds"), "abc", 64)': lambda: XOF(K("freivalds"), b"abc", 64).hex(),
        "H(A fixed)": lambda: f()["A_blake3"],
        "H(B fixed)": lambda: f()["B_blake3"],
        "root_A (fixed inputs)": lambda: f()["root_a"],
        "root_B (fixed inputs)": lambda: f()["root_b"],
        "HeaderPre (fixed inputs)": lambda: f()["header_pre"],
        "Header (fixed inputs, tile 2, 1)": lambda: f()["header"],
        "block id (fixed inputs)": lambda: f()["block_id"],
        "work(2^200 - 1)": lambda: hex(compute_work((1 << 200) - 1)),
        "job_key (fixed inputs)": lambda: f()["job_key"],
        "seed_B (fixed inputs)": lambda: f()["seed_b"],
        "seed_A (fixed inputs)": lambda: f()["seed_a"],
        "H(E_AL block 1) (fixed inputs)": lambda: f()["eal_block_1"],
        "H(E_BR block 1, transposed) (fixed inputs)": lambda: f()["ebr_block_t_1"],
        "fA[0:8] (fixed inputs)": lambda: str(f()["fa_sa_first8"][0]),
        "sA[0:8] (fixed inputs)": lambda: str(f()["fa_sa_first8"][1]),
        "fB[0:8] (fixed inputs)": lambda: str(f()["fb_sb_first8"][0]),
        "sB[0:8] (fixed inputs)": lambda: str(f()["fb_sb_first8"][1]),
        "T(2, 1) (fixed inputs)": lambda: str(f()["transcript_2_1"]),
        "ticket(2, 1) (fixed inputs)": lambda: f()["ticket_2_1"],
        "H(all tickets) (fixed inputs)": lambda: f()["tickets_blake3"],
        "win_threshold(5, k=256)": lambda: hex(win_threshold(5, 256)),
        "win_threshold(2^244 + 12345, k=384)": lambda: hex(win_threshold((1 << 244) + 12345, 384)),
        "H(C) (fixed inputs)": lambda: f()["product_blake3"],
        "certificate length (fixed inputs, tile 2, 1)": lambda: str(f()["certificate_len"]),
        "H(certificate) (fixed inputs, tile 2, 1)": lambda: f()["certificate_blake3"],
        "job id (fixed inputs)": lambda: f()["job_id"],
        "Freivalds x[0:4] (fixed inputs)": lambda: str([int(v) for v in f()["freivalds_first4"]]),
        "public key (seed 0..31)": lambda: key().public_key.hex(),
        "address (seed 0..31)": lambda: key().address.hex(),
        "address text (seed 0..31, devnet)": lambda: encode_address(key().address, DEVNET.hrp),
        "transfer bytes": lambda: encode_tx(tx()).hex(),
        "transfer sighash": lambda: compute_sighash(tx().body).hex(),
        "transfer id": lambda: compute_tx_id(tx()).hex(),
        "coinbase bytes": lambda: encode_coinbase(cb()).hex(),
        "coinbase id": lambda: compute_tx_id(cb()).hex(),
        "tx_root (01, 02, 03)": lambda: compute_tx_root([bytes([i]) * 32 for i in (1, 2, 3)]).hex(),
        **{f"asert(h={h}, dt={dt})": functools.partial(_asert, h, dt) for h, dt in ASERT_VECTORS},
        "asert(testnet, h=100, on schedule)": lambda: _preset_asert("testnet", 0),
        "asert(testnet, h=100, one halflife behind)": lambda: _preset_asert("testnet", 1),
        "asert(mainnet, h=100, one halflife ahead)": lambda: _preset_asert("mainnet", -1),
        "asert(devnet, h=100, 10 halflives behind)": lambda: _preset_asert("devnet", 10),
        "subsidy(mainnet, 2099999)": lambda: str(MAINNET.subsidy(2_099_999)),
        "subsidy(mainnet, 2100000)": lambda: str(MAINNET.subsidy(2_100_000)),
        "subsidy(mainnet, 134400000)": lambda: str(MAINNET.subsidy(134_400_000)),
        "genesis header (devnet)": lambda: _genesis("devnet").header.encode().hex(),
        "genesis header (testnet)": lambda: _genesis("testnet").header.encode().hex(),
        "genesis block size (devnet)": lambda: str(len(encode_block(_genesis("devnet")))),
        "genesis block size (testnet)": lambda: str(len(encode_block(_genesis("testnet")))),
        "first allocation address text (devnet)": lambda: encode_address(DEVNET.allocations[0].address, DEVNET.hrp),
    })
    out.update({name: functools.partial(lambda key: str(job_fixed()[key]), key)
                for name, key in JOB_DOC_VECTORS.items()})
    for network in ("devnet", "regtest", "testnet", "mainnet"):
        out[f"genesis id ({network})"] = functools.partial(lambda n: _genesis(n).header.block_id.hex(), network)
    return out


JOB_DOC_VECTORS = {
    "leafC(1, 2) (fixed tile)": "leaf_c", "root_A (job fixture)": "root_a", "root_B (job fixture)": "root_b",
    "job id (job fixture)": "job_id", "root_C (job fixture)": "root_c", "offer id (job fixture)": "offer_id",
    "offer bytes (job fixture)": "offer_tx", "claim bytes (job fixture)": "claim_tx",
    "accept bytes (job fixture)": "accept_tx", "fraud length (job fixture)": "fraud_size",
    "H(fraud bytes) (job fixture)": "fraud_tx_blake3", "fraud id (job fixture)": "fraud_tx_id",
}
"""Doc vectors of section 11 and the key of ``tests/spec/job_vectors.json`` that also holds each."""

CODE_VECTORS = _code_vectors()

JSON_VECTORS = {
    'K("leaf-A")': "K_leaf_A", 'K("block")': "K_block", 'H("")': "H_empty",
    'XOF(K("freivalds"), "abc", 64)': "XOF_64", "H(A fixed)": "A_blake3", "H(B fixed)": "B_blake3",
    "root_A (fixed inputs)": "root_a", "root_B (fixed inputs)": "root_b",
    "HeaderPre (fixed inputs)": "header_pre", "Header (fixed inputs, tile 2, 1)": "header",
    "block id (fixed inputs)": "block_id", "job_key (fixed inputs)": "job_key",
    "seed_B (fixed inputs)": "seed_b", "seed_A (fixed inputs)": "seed_a",
    "H(E_AL block 1) (fixed inputs)": "eal_block_1", "H(E_BR block 1, transposed) (fixed inputs)": "ebr_block_t_1",
    "fA[0:8] (fixed inputs)": ("fa_sa_first8", 0), "sA[0:8] (fixed inputs)": ("fa_sa_first8", 1),
    "fB[0:8] (fixed inputs)": ("fb_sb_first8", 0), "sB[0:8] (fixed inputs)": ("fb_sb_first8", 1),
    "T(2, 1) (fixed inputs)": "transcript_2_1", "ticket(2, 1) (fixed inputs)": "ticket_2_1",
    "H(all tickets) (fixed inputs)": "tickets_blake3", "H(C) (fixed inputs)": "product_blake3",
    "certificate length (fixed inputs, tile 2, 1)": "certificate_len",
    "H(certificate) (fixed inputs, tile 2, 1)": "certificate_blake3", "job id (fixed inputs)": "job_id",
    "Freivalds x[0:4] (fixed inputs)": "freivalds_first4",
}
"""Doc vectors that ``tests/spec/vectors.json`` also holds: ``name -> key`` (or ``(key, index)``)."""


def _json_value(ref) -> str:
    value = VECTORS_JSON[ref[0]][ref[1]] if isinstance(ref, tuple) else VECTORS_JSON[ref]
    if ref == "freivalds_first4":
        value = [int(v) for v in value]
    return value if isinstance(value, str) else str(value)


# --- vectors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DOC_VECTORS))
def test_doc_vector_equals_code(name):
    assert name in CODE_VECTORS, f"{DOC_PATH.name} has vector {name!r}, which this test does not know how to compute"
    assert DOC_VECTORS[name] == CODE_VECTORS[name](), f"vector {name!r} in {DOC_PATH.name} differs from the code"


@pytest.mark.parametrize("name", sorted(JSON_VECTORS))
def test_doc_vector_equals_vectors_json(name):
    assert DOC_VECTORS.get(name) == _json_value(JSON_VECTORS[name])


@pytest.mark.parametrize("name", sorted(JOB_DOC_VECTORS))
def test_job_doc_vector_equals_job_vectors_json(name):
    assert DOC_VECTORS.get(name) == str(JOB_VECTORS_JSON[JOB_DOC_VECTORS[name]])


def test_domain_key_vectors_equal_job_vectors_json():
    assert DOC_VECTORS['K("leaf-C")'] == JOB_VECTORS_JSON["K_leaf_C"]
    assert DOC_VECTORS['K("offer")'] == JOB_VECTORS_JSON["K_offer"]


def test_doc_keeps_every_vector():
    missing = sorted(set(CODE_VECTORS) - set(DOC_VECTORS))
    assert not missing, f"vectors missing from {DOC_PATH.name}: {missing}"


def test_every_domain_key_of_the_code_has_a_vector():
    used = set()
    for path in CONSTANT_MODULES:
        used |= set(re.findall(r'\bK\("([A-Za-z0-9-]+)"\)', (ROOT / path).read_text(encoding="utf-8")))
    missing = sorted(n for n in used if f'K("{n}")' not in DOC_VECTORS)
    assert not missing, f"domain keys used by the code but without a vector in {DOC_PATH.name}: {missing}"


def test_vector_parser_joins_wrapped_lines():
    text = "```text\nvector: a\n01\n02\nvector: b\n[1, 2]\n```\nvector: outside\n"
    assert parse_vectors(text) == {"a": "0102", "b": "[1, 2]"}


# --- constants ---------------------------------------------------------------------------------


def _module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def _top_level_constants(path: str) -> list[str]:
    """Upper-case names assigned at the top level of ``path`` whose values are plain data."""
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    names = []
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        for t in targets:
            if isinstance(t, ast.Name) and t.id.isupper() and not t.id.startswith("_"):
                names.append(t.id)
    module = importlib.import_module(_module_name(path))
    return [n for n in names if isinstance(getattr(module, n), (int, bytes, str, tuple))]


def _constant_rows() -> dict[tuple[str, str], object]:
    """``(source, name) -> value``: one name may be defined in two modules (``SIGNATURE_SIZE``)."""
    rows = {}
    for row in TABLES["constants"]:
        key = (unquote(row[2]), unquote(row[0]))
        assert key not in rows, f"constant {key[1]} of {key[0]} listed twice"
        rows[key] = literal(row[1])
    return rows


def test_constants_table_matches_code():
    for (source, name), value in _constant_rows().items():
        module = importlib.import_module(_module_name(source))
        assert hasattr(module, name), f"{name} is not defined in {source} any more"
        actual = getattr(module, name)
        assert actual == value and type(actual) is type(value), (
            f"{name} is {actual!r} in {source}, {DOC_PATH.name} says {value!r}"
        )


def test_constants_table_lists_every_constant():
    listed = set(_constant_rows())
    missing = [f"{path}: {name}" for path in CONSTANT_MODULES for name in _top_level_constants(path)
               if (path, name) not in listed]
    assert not missing, f"constants not in the table of {DOC_PATH.name}: {missing}"


# --- network presets ---------------------------------------------------------------------------


def _expected_preset_rows(params) -> dict[str, object]:
    rows = {f.name: getattr(params, f.name) for f in dataclasses.fields(params) if f.name != "allocations"}
    rows["allocations.count"] = len(params.allocations)
    rows["allocations.total"] = sum(a.amount for a in params.allocations)
    return rows


def test_network_tables_cover_every_preset():
    from consensus.networks import NETWORKS

    documented = {w.removeprefix("network ") for w in TABLES if w.startswith("network ")}
    assert documented == set(NETWORKS), (
        f"{DOC_PATH.name} has network tables {sorted(documented)}, the code has presets {sorted(NETWORKS)}"
    )


@pytest.mark.parametrize("network", ["devnet", "regtest", "testnet", "mainnet"])
def test_network_table_matches_preset(network):
    from consensus.networks import get_network

    expected = _expected_preset_rows(get_network(network))
    table = {unquote(row[0]): literal(row[1]) for row in TABLES[f"network {network}"]}
    assert sorted(table) == sorted(expected), f"rows of the {network} table differ from the preset's fields"
    for name, value in expected.items():
        assert table[name] == value and type(table[name]) is type(value), (
            f"{network}.{name} is {value!r}, {DOC_PATH.name} says {table[name]!r}"
        )


# --- byte layouts ------------------------------------------------------------------------------


def _read_field(raw: bytes, offset: int, size: int, kind: str):
    chunk = raw[offset:offset + size]
    assert len(chunk) == size
    if re.fullmatch(r"u(8|16|32|64|256)", kind):
        assert int(kind[1:]) == 8 * size, f"type {kind} does not have size {size}"
        return int.from_bytes(chunk, "little")
    assert kind == f"bytes[{size}]", f"unknown type {kind} of size {size}"
    return chunk


def _check_layout(what: str, raw: bytes, total: int, field_value) -> None:
    pos = 0
    for row in TABLES[f"layout {what}"]:
        offset, size, field, kind = row[0], row[1], unquote(row[2]), unquote(row[3])
        if not (offset.isdigit() and size.isdigit()):
            continue  # variable-length parts (memo, signature) follow the fixed ones
        assert int(offset) == pos, f"{what}.{field} starts at {offset}, expected {pos}"
        assert _read_field(raw, pos, int(size), kind) == field_value(field), f"{what}.{field} does not decode"
        pos += int(size)
    assert pos == total, f"the fixed part of {what} is {pos} bytes in {DOC_PATH.name}, {total} in the code"


def test_header_layout_table():
    from pouw.constants import HEADER_SIZE
    from pouw.header import Header

    raw = bytes.fromhex(DOC_VECTORS["Header (fixed inputs, tile 2, 1)"])
    h = Header.decode(raw)
    _check_layout("header", raw, HEADER_SIZE, lambda f: getattr(h.pre, f) if hasattr(h.pre, f) else getattr(h, f))


def test_transfer_layout_table():
    from consensus.codec import TX_FIXED_SIZE, decode_tx

    raw = bytes.fromhex(DOC_VECTORS["transfer bytes"])
    body = decode_tx(raw).body
    _check_layout("txbody", raw, TX_FIXED_SIZE, lambda f: len(body.memo) if f == "memo_len" else getattr(body, f))


def test_job_tx_layout_tables():
    from consensus.codec import JOB_FIXED_SIZE, OFFER_PAYLOAD_SIZE, decode_tx

    raw = bytes.fromhex(DOC_VECTORS["offer bytes (job fixture)"])
    body = decode_tx(raw).body
    _check_layout("jobtxbody", raw, JOB_FIXED_SIZE, lambda f: getattr(body, f))
    _check_layout("offer", raw[JOB_FIXED_SIZE:], OFFER_PAYLOAD_SIZE, lambda f: getattr(body.payload, f))
    assert len(raw) == JOB_FIXED_SIZE + OFFER_PAYLOAD_SIZE + 64


def test_coinbase_layout_table():
    from consensus.codec import COINBASE_SIZE, decode_coinbase

    raw = bytes.fromhex(DOC_VECTORS["coinbase bytes"])
    cb = decode_coinbase(raw)
    _check_layout("coinbase", raw, COINBASE_SIZE, lambda f: getattr(cb, f))


# --- revision 2 --------------------------------------------------------------------------------


REVISION_2_HEADING = "\n## Revision 2: not yet implemented\n"


def _revision_2_gaps() -> str:
    return DOC.split(REVISION_2_HEADING, 1)[1]


@pytest.mark.parametrize("changes", [
    {"initial_subsidy": 1 << 62, "halving_interval": 4},  # sum(allocations) + 2 * subsidy * interval >= 2^64
    {"max_future": 86_400 // 12 + 1},  # halflife < 12 * max_future
    {"min_fee_per_byte": 0},
    {"bond_bp": 9_999},
    {"bond_bp": 20_000, "deposit_bp": 10_000},  # deposit_bp < bond_bp
    {"fraud_fee_mult": 1},
])
def test_presets_that_break_a_revision_2_bound_cannot_be_built(changes):
    """The document says nothing of revision 2 is left; the preset bounds are the last item that landed."""
    from consensus.networks import DEVNET

    assert REVISION_2_HEADING in DOC and "Nothing of revision 2 is left unimplemented" in _revision_2_gaps()
    with pytest.raises(ValueError):
        dataclasses.replace(DEVNET, **changes)


def test_landed_revision_2_rules_are_not_listed_as_gaps():
    """ASERT, the time rules, launch genesis times, the minimum fee, the kind byte, exact sums and the job market."""
    from consensus import errors
    from consensus.codec import decode_tx
    from consensus.networks import NetworkParams

    fields = {f.name for f in dataclasses.fields(NetworkParams)}
    assert {"halflife", "max_future", "min_fee_per_byte"} <= fields and "wtema_n" not in fields
    job_fields = {"job_window", "bond_bp", "deposit_bp", "fraud_fee_mult", "max_job_lifetime", "max_job_mn",
                  "max_job_k"}
    assert job_fields <= fields
    assert hasattr(errors, "FeeTooLow") and not hasattr(errors, "TxKindNotYet")
    assert decode_tx(bytes.fromhex(DOC_VECTORS["claim bytes (job fixture)"])).body.kind == 3  # kinds 2-8 decode
    gaps = _revision_2_gaps()
    assert "tx-kind-not-yet" not in DOC, f"{DOC_PATH.name} still describes kinds 2 to 8 as refused"
    for item in ("**ASERT", "**Minimum fee", "**Transaction kind", "**Genesis time", "**Time rules",
                 "**The job market"):
        assert item not in gaps, f"{item.strip('*')} landed: remove it from the revision-2 section of {DOC_PATH.name}"
    assert "WTEMA" not in DOC.split(REVISION_2_HEADING, 1)[0], f"{DOC_PATH.name} still describes the WTEMA"

