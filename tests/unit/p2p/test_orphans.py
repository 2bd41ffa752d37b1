"""``PendingOrphans``: bounded per peer and in total, random eviction, so a flood cannot flush honest orphans."""

from __future__ import annotations

import random

import pytest

from p2p.orphans import MAX_ORPHAN_BYTES_PER_PEER, MAX_ORPHANS_PER_PEER, MAX_PENDING_ORPHANS, PendingOrphans


def bid(i: int) -> bytes:
    return i.to_bytes(32, "big")


def add(pool: PendingOrphans, i: int, peer: str, size: int = 300, parent: bytes = b"\xaa" * 32) -> bool:
    return pool.add(bid(i), parent, bytes(size), peer)


def test_a_peer_over_its_count_share_loses_only_its_own_blocks():
    pool = PendingOrphans(per_peer_count=4, rng=random.Random(1))
    for i in range(3):
        assert add(pool, 1000 + i, "honest")
    for i in range(100):
        assert add(pool, i, "attacker")
    assert pool.held_by("attacker") == (4, 4 * 300)
    assert all(bid(1000 + i) in pool for i in range(3))  # the honest ones are all still there
    assert len(pool) == 7 and pool.total_bytes == 7 * 300 and pool.evicted == 96


def test_a_peer_over_its_byte_share_loses_its_own_blocks():
    pool = PendingOrphans(per_peer_bytes=10_000, rng=random.Random(2))
    add(pool, 1000, "honest", size=9_000)
    for i in range(10):
        add(pool, i, "attacker", size=4_000)
    assert pool.held_by("attacker") == (2, 8_000)
    assert bid(1000) in pool
    assert not add(pool, 2000, "anyone", size=10_001)  # bigger than a whole share: never held
    assert not add(pool, 1000, "attacker")  # already held


def test_a_full_pool_evicts_from_the_largest_holder_so_a_sybil_flood_keeps_honest_orphans():
    pool = PendingOrphans(max_count=64, per_peer_count=16, rng=random.Random(3))
    assert all(add(pool, 10_000 + i, "honest") for i in range(3))
    for attacker in range(10):  # 160 valid-looking orphans from 10 identities, each within its share
        for i in range(16):
            add(pool, attacker * 100 + i, f"sybil-{attacker}")
    assert len(pool) == 64
    assert all(bid(10_000 + i) in pool for i in range(3))  # under its fair share (64 / 11): untouched
    assert max(pool.held_by(f"sybil-{a}")[0] for a in range(10)) <= 7


def test_even_a_flood_from_more_identities_than_slots_per_peer_leaves_the_honest_peer_its_share():
    pool = PendingOrphans(max_count=64, per_peer_count=16, rng=random.Random(5))
    for i in range(3):
        add(pool, 10_000 + i, "honest")
    for attacker in range(40):  # 40 identities: a fair share is one or two blocks each
        for i in range(16):
            add(pool, attacker * 100 + i, f"sybil-{attacker}")
    assert len(pool) == 64
    assert pool.held_by("honest")[0] >= 1  # FIFO would have flushed all three long ago


def test_a_full_pool_by_bytes_evicts_from_the_peer_holding_the_most_bytes():
    pool = PendingOrphans(max_bytes=20_000, per_peer_bytes=10_000, rng=random.Random(4))
    add(pool, 1, "honest", size=1_000)
    for i, peer in enumerate(("big-1", "big-2")):
        add(pool, 10 + i, peer, size=9_000)
    add(pool, 99, "newcomer", size=5_000)  # over 20,000 in all: a big holder pays, not the small one
    assert bid(1) in pool and bid(99) in pool
    assert pool.total_bytes <= 20_000


def test_eviction_is_random_not_oldest_first():
    kept_first = 0
    for seed in range(20):
        pool = PendingOrphans(per_peer_count=4, rng=random.Random(seed))
        for i in range(12):
            add(pool, i, "peer")
        survivors = {i for i in range(12) if bid(i) in pool}
        assert len(survivors) == 4 and bid(11) in pool  # the newest is always taken in
        kept_first += bid(0) in pool
    # With FIFO the first block would never survive; at random it survives now and then.
    assert 0 < kept_first < 20


def test_children_are_taken_by_parent_and_a_banned_peers_blocks_are_dropped():
    pool = PendingOrphans()
    p1, p2 = b"\x01" * 32, b"\x02" * 32
    add(pool, 1, "a", parent=p1)
    add(pool, 2, "b", parent=p1)
    add(pool, 3, "a", parent=p2)
    add(pool, 4, "a", parent=p2)
    children = pool.take_children(p1)
    assert sorted((o.block_id, o.peer) for o in children) == [(bid(1), "a"), (bid(2), "b")]
    assert children[0].parent_id == p1 and len(children[0].raw) == 300
    assert pool.take_children(p1) == [] and len(pool) == 2
    assert pool.drop_peer("a") == 2
    assert len(pool) == 0 and pool.total_bytes == 0 and pool.held_by("a") == (0, 0)
    assert pool.take_children(p2) == []


def test_the_defaults_and_the_bounds_are_sane():
    pool = PendingOrphans()
    assert (pool.max_count, pool.per_peer_count, pool.per_peer_bytes) == (
        MAX_PENDING_ORPHANS, MAX_ORPHANS_PER_PEER, MAX_ORPHAN_BYTES_PER_PEER)
    assert MAX_ORPHAN_BYTES_PER_PEER >= 2 * 4_000_000  # two blocks of the largest size fit one peer's share
    with pytest.raises(ValueError):
        PendingOrphans(per_peer_count=0)
