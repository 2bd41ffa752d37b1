"""Verification: a mined pair verifies; every tamper is rejected with the rule that it breaks."""

import pytest

from pouw.errors import VerificationError
from pouw.verify import verify
from tests.helpers import mined_pair

M, K, N = 64, 256, 48
# Threshold ~ 2^256 / 1000: a tile wins with probability ~1/1000, so a tampered
# header almost surely loses its ticket (the inputs are fixed, so this is deterministic).
TARGET = (1 << 256) // (1000 * 256 * K)

HEADER_REGIONS = {
    "version": (0, 4), "height": (4, 12), "prev_id": (12, 44), "tx_root": (44, 76), "time": (76, 84),
    "target": (84, 116), "nonce": (116, 124), "m": (124, 128), "n": (128, 132), "k": (132, 136),
    "r": (136, 138), "b": (138, 140), "root_a": (140, 172), "root_b": (172, 204),
    "tile_i": (204, 208), "tile_j": (208, 212),
}


@pytest.fixture(scope="module")
def pair():
    header, cert, result, prepared = mined_pair(M, K, N, seed=11, target=TARGET)
    return header, cert


def rule_of(header, cert, target=TARGET):
    with pytest.raises(VerificationError) as e:
        verify(header, cert, target)
    return e.value.rule


def flip(data: bytes, pos: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[pos] ^= mask
    return bytes(out)


def test_mined_pair_verifies(pair):
    header, cert = pair
    v = verify(header, cert, TARGET)
    assert v.target_checked
    assert int.from_bytes(v.ticket, "little") <= v.threshold
    assert not verify(header, cert).target_checked


@pytest.mark.parametrize("region", sorted(HEADER_REGIONS))
@pytest.mark.parametrize("where", ["first", "last"])
def test_every_header_region_tamper_is_rejected(pair, region, where):
    header, cert = pair
    lo, hi = HEADER_REGIONS[region]
    pos = lo if where == "first" else hi - 1
    rule = rule_of(flip(header, pos, 0x40), cert)
    assert rule in {"version", "shape", "tile-index", "target", "certificate-length", "merkle-a",
                    "merkle-b", "ticket"}


@pytest.mark.parametrize("region,rule", [
    ("version", "version"), ("target", "target"), ("height", "ticket"), ("prev_id", "ticket"),
    ("tx_root", "ticket"), ("time", "ticket"), ("nonce", "ticket"), ("root_a", "merkle-a"),
    ("root_b", "merkle-b"), ("r", "shape"), ("b", "shape"),
])
def test_header_tamper_names_the_rule(pair, region, rule):
    header, cert = pair
    assert rule_of(flip(header, HEADER_REGIONS[region][0]), cert) == rule


@pytest.mark.parametrize("field,value", [("m", 65), ("n", 8), ("k", 300), ("k", 128)])
def test_bad_shape_is_rejected_as_shape(pair, field, value):
    header, cert = pair
    lo, hi = HEADER_REGIONS[field]
    bad = header[:lo] + value.to_bytes(hi - lo, "little") + header[hi:]
    assert rule_of(bad, cert) == "shape"


@pytest.mark.parametrize("field,value", [("tile_i", M // 16), ("tile_j", N // 16), ("tile_i", 2**32 - 1)])
def test_tile_out_of_range(pair, field, value):
    header, cert = pair
    lo, hi = HEADER_REGIONS[field]
    assert rule_of(header[:lo] + value.to_bytes(4, "little") + header[hi:], cert) == "tile-index"


def test_header_of_wrong_size(pair):
    header, cert = pair
    assert rule_of(header[:-1], cert) == "header-size"
    assert rule_of(header + b"\0", cert) == "header-size"


def test_wrong_expected_target(pair):
    header, cert = pair
    assert rule_of(header, cert, TARGET + 1) == "target"
    assert rule_of(header, cert, TARGET // 2) == "target"


def test_target_is_checked_before_the_certificate(pair):
    header, cert = pair
    assert rule_of(header, cert[:-1], TARGET + 1) == "target"


def test_every_certificate_region_tamper_is_rejected(pair):
    header, cert = pair
    blk = 16 * K
    depth_a = cert[2 * blk]
    pa = 2 * blk + 1
    pb_len = pa + 32 * depth_a
    pb = pb_len + 1
    cases = {
        "A_blk first": (0, "merkle-a"), "A_blk last": (blk - 1, "merkle-a"),
        "Bt_blk first": (blk, "merkle-b"), "Bt_blk last": (2 * blk - 1, "merkle-b"),
        "path_A hash": (pa, "merkle-a"), "path_A last hash": (pb_len - 1, "merkle-a"),
        "path_B hash": (pb, "merkle-b"), "path_B last byte": (len(cert) - 1, "merkle-b"),
        "len(path_A)": (2 * blk, "certificate-length"), "len(path_B)": (pb_len, "certificate-length"),
    }
    for name, (pos, rule) in cases.items():
        assert rule_of(header, flip(cert, pos)) == rule, name


def test_certificate_length_must_be_exact(pair):
    header, cert = pair
    assert rule_of(header, cert + b"\0") == "certificate-length"
    assert rule_of(header, cert[:-1]) == "certificate-length"
    assert rule_of(header, b"") == "certificate-length"
    # Right total length, but the path counts shifted between A and B.
    blk = 16 * K
    da, pos_b = cert[2 * blk], 2 * blk + 1 + 32 * cert[2 * blk]
    if da >= 1:
        moved = bytearray(cert)
        moved[2 * blk] = da - 1
        moved[pos_b] = cert[pos_b] + 1
        assert rule_of(header, bytes(moved)) == "certificate-length"


@pytest.mark.parametrize("value", [64, 127, -65 & 0xFF, 0x80])
@pytest.mark.parametrize("block", ["A", "B"])
def test_out_of_range_entries_are_rejected_before_merkle(pair, value, block):
    header, cert = pair
    pos = 5 if block == "A" else 16 * K + 5
    bad = bytearray(cert)
    bad[pos] = value
    assert rule_of(header, bytes(bad)) == "entry-range"


def test_ticket_that_does_not_win():
    # Mine at an easy target, then claim a much harder one in a self-consistent header:
    # only the ticket rule can catch it.
    header, cert, result, prepared = mined_pair(M, K, N, seed=12, target=TARGET)
    lo, hi = HEADER_REGIONS["target"]
    hard = header[:lo] + (1).to_bytes(32, "little") + header[hi:]
    assert rule_of(hard, cert, 1) == "ticket"
