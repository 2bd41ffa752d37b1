"""Certificate verification (docs/protocol.md section 8).

``verify`` checks, in order, and stops at the first failure with a
``VerificationError`` naming the rule:

1. header: size and version (``header-size``, ``version``), shape rules
   (``shape``), tile indices (``tile-index``), expected target (``target``);
2. certificate: exact length (``certificate-length``), entries of ``A_blk`` and
   ``Bt_blk`` in ``[-64, 63]`` (``entry-range``);
3. Merkle: the leaves and paths reproduce ``root_A`` and ``root_B``
   (``merkle-a``, ``merkle-b``);
4. ticket: the recomputed ticket satisfies the win condition (``ticket``).

Cost: ``256*k`` multiply-adds and about ``40*k`` bytes hashed, independent of
``m`` and ``n``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .certificate import certificate_length, decode_certificate
from .commit import leaf_a, leaf_b, node_key
from .constants import HEADER_SIZE, K_MAX, K_MIN, MN_MAX, MN_MIN, PROTOCOL_VERSION, TILE, VALUE_MAX, VALUE_MIN, R
from .errors import DecodeError, VerificationError
from .header import Header
from .merkle import root_from_path
from .noise import a_indices, b_indices, eal_block, ebr_block_t, noise_a, noise_b_t
from .seeds import compute_seeds
from .transcript import compute_ticket, fold_words, is_winning, tile_words, win_threshold


@dataclass(frozen=True)
class Verified:
    """What a successful verification established."""

    header: Header
    block_id: bytes
    ticket: bytes
    threshold: int
    target_checked: bool
    """False when no expected target was given: only internal consistency was checked."""


def _check_header(data: bytes, expected_target: int | None) -> Header:
    if len(data) != HEADER_SIZE:
        raise VerificationError("header-size", f"expected {HEADER_SIZE} bytes, found {len(data)}")
    h = Header.decode(data)
    p = h.pre
    if p.version != PROTOCOL_VERSION:
        raise VerificationError("version", f"expected {PROTOCOL_VERSION}, found {p.version}")
    if p.r != R or p.b != TILE:
        raise VerificationError("shape", f"expected r={R}, b={TILE}, found r={p.r}, b={p.b}")
    if p.k % R or not K_MIN <= p.k <= K_MAX:
        raise VerificationError("shape", f"k must be a multiple of {R} in [{K_MIN}, {K_MAX}], found {p.k}")
    for name, v in (("m", p.m), ("n", p.n)):
        if v % TILE or not MN_MIN <= v <= MN_MAX:
            raise VerificationError(
                "shape", f"{name} must be a multiple of {TILE} in [{MN_MIN}, {MN_MAX}], found {v}"
            )
    if h.tile_i >= p.m // TILE:
        raise VerificationError("tile-index", f"tile_i must be < {p.m // TILE}, found {h.tile_i}")
    if h.tile_j >= p.n // TILE:
        raise VerificationError("tile-index", f"tile_j must be < {p.n // TILE}, found {h.tile_j}")
    if expected_target is not None and p.target != expected_target:
        raise VerificationError("target", f"expected {expected_target:#x}, found {p.target:#x}")
    return h


def _in_range(x: np.ndarray) -> bool:
    return bool(x.min() >= VALUE_MIN and x.max() <= VALUE_MAX)


def verify(header: bytes, certificate: bytes, expected_target: int | None = None) -> Verified:
    """Verify a 212-byte header and its certificate; raise ``VerificationError`` on failure."""
    h = _check_header(bytes(header), expected_target)
    p = h.pre
    want = certificate_length(p.k, p.m, p.n, h.tile_i, h.tile_j)
    if len(certificate) != want:
        raise VerificationError("certificate-length", f"expected {want} bytes, found {len(certificate)}")
    try:
        cert = decode_certificate(bytes(certificate), p.k)
    except DecodeError as e:  # right length but wrong path counts
        raise VerificationError("certificate-length", str(e)) from e
    a_blk, bt_blk = cert.a_matrix(), cert.bt_matrix()
    if not _in_range(a_blk):
        raise VerificationError("entry-range", f"A_blk entries must lie in [{VALUE_MIN}, {VALUE_MAX}]")
    if not _in_range(bt_blk):
        raise VerificationError("entry-range", f"Bt_blk entries must lie in [{VALUE_MIN}, {VALUE_MAX}]")

    try:
        got_a = root_from_path(h.tile_i, p.m // TILE, leaf_a(h.tile_i, cert.a_blk), cert.path_a, node_key())
    except DecodeError as e:
        raise VerificationError("merkle-a", str(e)) from e
    if got_a != h.root_a:
        raise VerificationError("merkle-a", f"path gives root {got_a.hex()}, header has {h.root_a.hex()}")
    try:
        got_b = root_from_path(h.tile_j, p.n // TILE, leaf_b(h.tile_j, cert.bt_blk), cert.path_b, node_key())
    except DecodeError as e:
        raise VerificationError("merkle-b", str(e)) from e
    if got_b != h.root_b:
        raise VerificationError("merkle-b", f"path gives root {got_b.hex()}, header has {h.root_b.hex()}")

    seeds = compute_seeds(p.encode(), h.root_a, h.root_b, p.m, p.n, p.k)
    fa, sa = a_indices(seeds.seed_a, p.k)
    fb, sb = b_indices(seeds.seed_b, p.k)
    a_noised = a_blk + noise_a(eal_block(seeds.seed_a, h.tile_i), fa, sa)
    bt_noised = bt_blk + noise_b_t(ebr_block_t(seeds.seed_b, h.tile_j), fb, sb)
    transcript = fold_words(tile_words(a_noised, bt_noised))
    ticket = compute_ticket(seeds.pow_key, h.tile_i, h.tile_j, transcript)
    threshold = win_threshold(p.target, p.k)
    if not is_winning(ticket, threshold):
        raise VerificationError(
            "ticket", f"ticket {ticket.hex()} does not satisfy LE(ticket) <= {threshold:#x}"
        )
    return Verified(h, h.block_id, ticket, threshold, expected_target is not None)
