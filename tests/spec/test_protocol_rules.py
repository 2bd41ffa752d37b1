"""One test per rule of docs/protocol.md sections 1-9, named after the rule.

Where it is cheap, a rule is recomputed here independently (plain Python
integers and ``blake3`` directly) rather than through the module under test.
"""

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from blake3 import blake3

from pouw.certificate import certificate_length, decode_certificate, make_certificate
from pouw.commit import commit_pair, leaf_a, leaf_b, row_blocks
from pouw.constants import MAX_U256
from pouw.errors import InvalidMatrixError
from pouw.hashing import HK, XOF, K
from pouw.header import Header, compute_block_id, compute_work
from pouw.jobs import FREIVALDS_MODULUS, compute_job_id, freivalds_check, freivalds_vector, product_hash
from pouw.matrix import pad_pair, padded_shape, validate_pair
from pouw.noise import a_indices, compute_eal, compute_ebr, eal_block, ebr_block_t, map_bytes, noised_a, noised_b
from pouw.reference import mine_reference
from pouw.seeds import compute_seeds
from pouw.transcript import fold_words, tile_words, win_threshold, xor_tiles
from tests.spec.vectors import compute_vectors, fixed_inputs

VECTORS = json.loads((Path(__file__).parent / "vectors.json").read_text())


# -- vectors -----------------------------------------------------------------------------

def test_fixed_vectors_unchanged():
    """Every committed vector is recomputed and must match byte for byte."""
    assert compute_vectors() == VECTORS


# -- section 1: hashing ------------------------------------------------------------------

def test_s1_domain_key_is_hash_of_prefixed_name():
    assert K("leaf-A") == blake3(b"pouw/v1/leaf-A").digest()
    assert VECTORS["K_leaf_A"] == K("leaf-A").hex()


def test_s1_keyed_hash_and_xof():
    key = K("node")
    assert HK(key, b"x") == blake3(b"x", key=key).digest()
    assert XOF(key, b"x", 100)[:32] == HK(key, b"x")
    assert len(XOF(key, b"x", 100)) == 100


# -- section 2: matrices and shapes ------------------------------------------------------

def test_s2_entries_must_be_int7():
    a = np.zeros((16, 256), np.int8)
    b = np.zeros((256, 16), np.int8)
    validate_pair(a, b)
    for bad in (64, -65, 127, -128):
        a2 = a.copy()
        a2[3, 7] = bad
        with pytest.raises(InvalidMatrixError, match=r"\[-64, 63\]"):
            validate_pair(a2, b)
    with pytest.raises(InvalidMatrixError, match="int8"):
        validate_pair(a.astype(np.int16), b)


@pytest.mark.parametrize("m,k,n", [(15, 256, 16), (16, 255, 16), (16, 128, 16), (16, 384 + 64, 16),
                                   (16, 65536 + 128, 16), (16, 256, 24)])
def test_s2_shape_rules(m, k, n):
    with pytest.raises(InvalidMatrixError):
        validate_pair(np.zeros((m, k), np.int8), np.zeros((k, n), np.int8))


def test_s2_padding_meets_rules_and_keeps_product():
    rng = np.random.default_rng(0)
    a = rng.integers(-64, 64, (100, 300), dtype=np.int8)
    b = rng.integers(-64, 64, (300, 70), dtype=np.int8)
    pa, pb = pad_pair(a, b)
    assert pa.shape == (112, 384) and pb.shape == (384, 80)
    assert padded_shape(1, 1, 1) == (16, 256, 16)
    full = pa.astype(np.int64) @ pb.astype(np.int64)
    assert np.array_equal(full[:100, :70], a.astype(np.int64) @ b.astype(np.int64))


# -- section 3: commitments --------------------------------------------------------------

def test_s3_leaves_cover_row_blocks_of_a_and_column_blocks_of_b():
    a, b, _ = fixed_inputs()
    blocks_a = row_blocks(a)
    assert blocks_a[1] == a[16:32].tobytes()
    assert leaf_a(1, blocks_a[1]) == blake3(struct.pack("<I", 1) + a[16:32].tobytes(), key=K("leaf-A")).digest()
    bt1 = np.ascontiguousarray(b[:, 16:32].T).tobytes()
    assert row_blocks(b.T)[1] == bt1
    assert leaf_b(1, bt1) == blake3(struct.pack("<I", 1) + bt1, key=K("leaf-B")).digest()
    c = commit_pair(a, b)
    assert c.root_a.hex() == VECTORS["root_a"] and c.root_b.hex() == VECTORS["root_b"]


# -- section 4: header -------------------------------------------------------------------

def test_s4_header_layout():
    _, _, pre = fixed_inputs()
    raw = pre.encode()
    assert len(raw) == 140
    assert struct.unpack_from("<I", raw, 0)[0] == 1
    assert struct.unpack_from("<Q", raw, 4)[0] == 42
    assert raw[12:44] == bytes(range(32)) and raw[44:76] == bytes(range(32, 64))
    assert struct.unpack_from("<Q", raw, 76)[0] == 1_750_000_000
    assert int.from_bytes(raw[84:116], "little") == (1 << 244) + 12345
    assert struct.unpack_from("<QIIIHH", raw, 116) == (7, 48, 32, 384, 128, 16)
    h = Header(pre, b"\x01" * 32, b"\x02" * 32, 2, 1)
    full = h.encode()
    assert len(full) == 212 and full[:140] == raw
    assert full[140:172] == b"\x01" * 32 and full[172:204] == b"\x02" * 32
    assert struct.unpack_from("<II", full, 204) == (2, 1)
    assert Header.decode(full) == h


def test_s4_block_id_is_keyed_hash_of_header():
    h = bytes.fromhex(VECTORS["header"])
    assert compute_block_id(h) == blake3(h, key=K("block")).digest()
    assert compute_block_id(h).hex() == VECTORS["block_id"]


def test_s4_work_of_a_block():
    assert compute_work(MAX_U256) == 1
    assert compute_work(0) == 1 << 256
    assert compute_work((1 << 200) - 1) == 1 << 56


# -- section 5: seeds and noise ----------------------------------------------------------

def test_s5_seed_order_binds_commitments_and_shapes():
    _, _, pre = fixed_inputs()
    raw = pre.encode()
    base = compute_seeds(raw, b"A" * 32, b"B" * 32, 48, 32, 384)
    assert base.job_key == blake3(raw, key=K("job")).digest()
    assert base.seed_b == blake3(base.job_key + b"B" * 32 + struct.pack("<II", 32, 384), key=K("seed-B")).digest()
    assert base.seed_a == blake3(base.seed_b + b"A" * 32 + struct.pack("<I", 48), key=K("seed-A")).digest()
    assert base.pow_key == base.seed_a
    other_a = compute_seeds(raw, b"X" * 32, b"B" * 32, 48, 32, 384)
    assert other_a.seed_b == base.seed_b and other_a.seed_a != base.seed_a
    other_b = compute_seeds(raw, b"A" * 32, b"X" * 32, 48, 32, 384)
    assert other_b.seed_b != base.seed_b and other_b.seed_a != base.seed_a
    assert compute_seeds(raw, b"A" * 32, b"B" * 32, 48, 32, 512).seed_b != base.seed_b


def test_s5_byte_map_to_minus32_31():
    raw = bytes(range(256))
    got = map_bytes(raw).tolist()
    assert got == [(x & 63) - 32 for x in range(256)]


def test_s5_dense_blocks_random_access():
    seed = b"s" * 32
    eal = compute_eal(seed, 64)
    assert np.array_equal(eal[32:48], eal_block(seed, 2))
    raw = XOF(seed, b"EAL" + struct.pack("<I", 2), 16 * 128)
    want = [[(x & 63) - 32 for x in raw[16 * i * 8: 16 * i * 8 + 128]] for i in range(16)]
    assert eal_block(seed, 2).tolist() == want
    ebr = compute_ebr(seed, 48)
    assert np.array_equal(ebr[:, 16:32], ebr_block_t(seed, 1).T)


def test_s5_sparse_pairs_use_64_bit_product():
    seed = b"q" * 32
    k = 4096
    fa, sa = a_indices(seed, k)
    u = struct.unpack(f"<{k}I", XOF(seed, b"EAR", 4 * k))
    want_f = [x & 127 for x in u]
    want_s = [f ^ (1 + ((127 * x) >> 32)) for f, x in zip(want_f, u, strict=True)]
    assert fa.tolist() == want_f and sa.tolist() == want_s
    assert np.all(fa != sa) and fa.max() < 128 and sa.max() < 128
    # A 32-bit product would give s = f ^ 1 every time; the real rule must not.
    assert np.mean(sa == (fa ^ 1)) < 0.1


def test_s5_noised_entries_fit_int8():
    seed = b"z" * 32
    eal = compute_eal(seed, 32)
    fa, sa = a_indices(seed, 512)
    a = np.full((32, 512), -64, np.int8)
    ap = noised_a(a, eal, fa, sa)
    e = eal.astype(np.int64)[:, fa] - eal.astype(np.int64)[:, sa]
    assert np.array_equal(ap.astype(np.int64), a.astype(np.int64) + e)
    assert e.min() >= -63 and e.max() <= 63
    ebr = compute_ebr(seed, 32)
    bp = noised_b(np.full((512, 32), 63, np.int8), ebr, fa, sa)
    assert np.array_equal(bp.astype(np.int64), 63 + ebr.astype(np.int64)[fa] - ebr.astype(np.int64)[sa])


# -- section 6: transcript and tickets ---------------------------------------------------

def test_s6_tile_word_is_xor_of_bit_patterns_not_sum():
    acc = np.arange(-128, 128, dtype=np.int32).reshape(16, 16) * 7919
    want = 0
    for v in acc.ravel().tolist():
        want ^= v & 0xFFFFFFFF
    assert int(xor_tiles(acc)[0, 0]) == want
    assert want != (int(acc.sum()) & 0xFFFFFFFF)


def test_s6_fold_rotates_by_13_into_slot_c_mod_16():
    words = np.arange(1, 41, dtype=np.uint32) * np.uint32(0x9E3779B1)
    t = [0] * 16
    for c, w in enumerate(words.tolist()):
        s = c % 16
        t[s] = (((t[s] << 13) | (t[s] >> 19)) & 0xFFFFFFFF) ^ w
    assert fold_words(words).tolist() == t


def test_s6_ticket_hashes_72_bytes_under_pow_key():
    a, b, pre = fixed_inputs()
    c = commit_pair(a, b)
    seeds = compute_seeds(pre.encode(), c.root_a, c.root_b, 48, 32, 384)
    ref = mine_reference(a, b, c, pre)
    t = ref.transcripts[2, 1]
    msg = struct.pack("<II", 2, 1) + struct.pack("<16I", *t.tolist())
    assert len(msg) == 72
    assert ref.tickets[2, 1].tobytes() == blake3(msg, key=seeds.pow_key).digest()
    assert t.tolist() == VECTORS["transcript_2_1"]


def test_s6_tile_words_equal_whole_matrix_words():
    a, b, pre = fixed_inputs()
    c = commit_pair(a, b)
    ref = mine_reference(a, b, c, pre)
    seeds = compute_seeds(pre.encode(), c.root_a, c.root_b, 48, 32, 384)
    from pouw.noise import MiningNoise
    nz = MiningNoise(seeds, 48, 32, 384)
    ap = noised_a(a, nz.eal, nz.fa, nz.sa)
    bp = noised_b(b, nz.ebr, nz.fb, nz.sb)
    words = tile_words(ap[32:48], np.ascontiguousarray(bp[:, 16:32].T))
    assert fold_words(words).tolist() == ref.transcripts[2, 1].tolist()


def test_s6_win_threshold_is_exact_then_capped():
    assert win_threshold(5, 256) == 5 * 256 * 256
    big = MAX_U256 // (256 * 256)
    assert win_threshold(big, 256) == big * 65536  # fits: no cap
    assert win_threshold(big + 1, 256) == MAX_U256  # would overflow 256 bits: saturates
    assert win_threshold(MAX_U256, 65536) == MAX_U256


# -- section 7: product recovery ---------------------------------------------------------

def test_s7_peeling_recovers_exact_product():
    a, b, pre = fixed_inputs()
    ref = mine_reference(a, b, commit_pair(a, b), pre)
    assert np.array_equal(ref.product, a.astype(np.int64) @ b.astype(np.int64))
    assert product_hash(ref.product).hex() == VECTORS["product_blake3"]


# -- section 8: certificate --------------------------------------------------------------

def test_s8_certificate_length_is_fixed_by_header():
    a, b, _ = fixed_inputs()
    c = commit_pair(a, b)
    # m/16 = 3 leaves: depth 2 for index 0 and 1, depth 1 for index 2.
    for i, depth in ((0, 2), (1, 2), (2, 1)):
        cert = make_certificate(a, b, c, i, 0).encode()
        assert len(cert) == 32 * 384 + 2 + 32 * (depth + 1) == certificate_length(384, 48, 32, i, 0)
        back = decode_certificate(cert, 384)
        assert back.encode() == cert and len(back.path_a) == depth


def test_s8_certificate_size_bound():
    # certificate <= 32*k + 2 KiB for the largest trees (2^16 leaves per side).
    assert certificate_length(65536, 1 << 20, 1 << 20, 0, 0) <= 32 * 65536 + 2048


# -- section 9: jobs ---------------------------------------------------------------------

def test_s9_job_id_is_content_addressed():
    jid = compute_job_id(48, 384, 32, b"a" * 32, b"b" * 32)
    assert jid == blake3(struct.pack("<III", 48, 384, 32) + b"a" * 32 + b"b" * 32, key=K("job-id")).digest()
    assert VECTORS["job_id"] == compute_job_id(48, 384, 32, bytes.fromhex(VECTORS["root_a"]),
                                               bytes.fromhex(VECTORS["root_b"])).hex()


def test_s9_freivalds_vector_is_xof_mod_p():
    jid, hc = b"j" * 32, b"c" * 32
    raw = XOF(K("freivalds"), jid + hc, 8 * 5)
    assert freivalds_vector(jid, hc, 5) == [int.from_bytes(raw[8 * i: 8 * i + 8], "little") % FREIVALDS_MODULUS
                                             for i in range(5)]


def test_s9_freivalds_accepts_true_and_rejects_false_product():
    rng = np.random.default_rng(9)
    a = rng.integers(-64, 64, (37, 300), dtype=np.int8)
    b = rng.integers(-64, 64, (300, 23), dtype=np.int8)
    c = (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)
    jid = b"\x07" * 32
    assert freivalds_check(a, b, c, jid)
    for (i, j) in ((0, 0), (36, 22), (5, 17)):
        bad = c.copy()
        bad[i, j] += 1
        assert not freivalds_check(a, b, bad, jid)


def test_s9_freivalds_is_exact_beyond_int64():
    # Large entries: a wrapping int64 implementation would disagree with Python integers.
    rng = np.random.default_rng(3)
    c = rng.integers(-(2**31), 2**31 - 1, (4, 64), dtype=np.int64).astype(np.int32)
    from pouw.jobs import matvec_mod_p
    x = [FREIVALDS_MODULUS - 1 - i for i in range(64)]
    want = [sum(int(c[r, j]) * x[j] for j in range(64)) % FREIVALDS_MODULUS for r in range(4)]
    assert matvec_mod_p(c, x) == want


def test_s9_matvec_mod_p_agrees_with_python_integers_on_every_limb_path():
    """Float64 limbs of every width the bound allows, the int64 fallback, signs and the top of the range."""
    from pouw.jobs import matvec_mod_p

    rng = np.random.default_rng(11)
    p = FREIVALDS_MODULUS
    cases = [
        rng.integers(-64, 64, (5, 300), dtype=np.int8),  # wide limbs (int8 inputs)
        rng.integers(-(2**20), 2**20, (3, 1024), dtype=np.int32),  # mid-width limbs
        rng.integers(-(2**31), 2**31 - 1, (3, 4096), dtype=np.int64).astype(np.int32),  # int64 8-bit limbs
        np.full((2, 7), -(2**31), np.int32),
        np.zeros((2, 3), np.int8),
    ]
    for mat in cases:
        cols = mat.shape[1]
        for x in ([p - 1] * cols, [int(v) % p for v in rng.integers(0, 2**63, cols, dtype=np.uint64)],
                  [1 << (60 - (j % 61)) for j in range(cols)]):
            want = [sum(int(mat[r, j]) * x[j] for j in range(cols)) % p for r in range(mat.shape[0])]
            assert matvec_mod_p(mat, x, block_rows=2) == want
