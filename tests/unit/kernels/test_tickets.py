"""The vectorised ticket hash equals the ``blake3`` package's, tile by tile."""

from __future__ import annotations

import numpy as np
import pytest
from blake3 import blake3

from kernels.tickets import grid_tickets, ticket_batch
from pouw.transcript import compute_ticket, compute_tickets


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 3), (33, 17)])
def test_grid_tickets_match_reference(shape):
    rng = np.random.default_rng(sum(shape))
    key = rng.integers(0, 256, 32, dtype=np.uint8).tobytes()
    transcripts = rng.integers(0, 2**32, shape + (16,), dtype=np.uint64).astype(np.uint32)
    got = grid_tickets(key, transcripts, row0=11, col0=2**20, min_lanes=0)  # the vectorised path
    assert got.dtype == np.uint8 and got.shape == shape + (32,)
    assert np.array_equal(got, compute_tickets(key, transcripts, row0=11, col0=2**20))


def test_ticket_batch_extreme_words():
    """All-zero and all-ones words, top tile indices: no carries or shifts lost in uint32 lanes."""
    key = bytes(range(32))
    words = np.array([np.zeros(16), np.full(16, 2**32 - 1), np.arange(16) << 28], dtype=np.uint32)
    rows = np.array([0, 2**16 - 1, 2**32 - 1], np.uint32)
    cols = np.array([2**32 - 1, 0, 12345], np.uint32)
    got = ticket_batch(key, rows, cols, words)
    for t in range(3):
        assert got[t].tobytes() == compute_ticket(key, int(rows[t]), int(cols[t]), words[t])
        msg = int(rows[t]).to_bytes(4, "little") + int(cols[t]).to_bytes(4, "little") + words[t].astype("<u4").tobytes()
        assert got[t].tobytes() == blake3(msg, key=key).digest()


def test_a_changed_word_changes_only_its_ticket():
    rng = np.random.default_rng(5)
    key = bytes(32)
    transcripts = rng.integers(0, 2**32, (4, 4, 16), dtype=np.uint64).astype(np.uint32)
    before = grid_tickets(key, transcripts, min_lanes=0)
    transcripts[2, 1, 15] ^= 1
    after = grid_tickets(key, transcripts, min_lanes=0)
    changed = np.argwhere((before != after).any(axis=2))
    assert changed.tolist() == [[2, 1]]


def test_small_grids_use_the_reference_and_agree():
    rng = np.random.default_rng(2)
    key = bytes(range(32))
    transcripts = rng.integers(0, 2**32, (4, 6, 16), dtype=np.uint64).astype(np.uint32)
    assert np.array_equal(grid_tickets(key, transcripts, 3, 5), grid_tickets(key, transcripts, 3, 5, min_lanes=0))
