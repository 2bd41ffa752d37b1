"""Seeds of one mining attempt (docs/protocol.md section 5).

The noise depends on the commitments (Fiat-Shamir): a miner cannot choose ``A``
to cancel noise it does not know before committing. Shapes are bound into the
seeds so one byte string cannot be read as two shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

from .hashing import HK, K, u32


@dataclass(frozen=True)
class Seeds:
    job_key: bytes
    """``HK(K("job"), HeaderPre)``."""
    seed_b: bytes
    """Seeds the noise of ``B`` (``E_BR`` and the ``EBL`` index pairs)."""
    seed_a: bytes
    """Seeds the noise of ``A``; also the ticket key ``pow_key``."""

    @property
    def pow_key(self) -> bytes:
        return self.seed_a


def compute_seeds(header_pre: bytes, root_a: bytes, root_b: bytes, m: int, n: int, k: int) -> Seeds:
    """Derive ``job_key``, ``seed_B`` and ``seed_A`` from the encoded HeaderPre and the roots."""
    job_key = HK(K("job"), header_pre)
    seed_b = HK(K("seed-B"), job_key + root_b + u32(n) + u32(k))
    seed_a = HK(K("seed-A"), seed_b + root_a + u32(m))
    return Seeds(job_key, seed_b, seed_a)
