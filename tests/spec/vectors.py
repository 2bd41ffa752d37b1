"""Fixed protocol vectors: computed here, committed in ``vectors.json``, compared on every run.

Regenerate (only when the protocol version changes) with
``.venv/bin/python -m tests.spec.vectors > tests/spec/vectors.json``.
Inputs come from a fixed integer recurrence, never from a random generator,
so the vectors mean the same thing on every platform and NumPy version.
"""

from __future__ import annotations

import json

import numpy as np

from pouw.certificate import make_certificate
from pouw.commit import commit_pair
from pouw.hashing import XOF, H, K
from pouw.header import Header, HeaderPre
from pouw.jobs import compute_job_id, freivalds_vector, product_hash
from pouw.noise import a_indices, b_indices, eal_block, ebr_block_t
from pouw.reference import mine_reference
from pouw.seeds import compute_seeds

M, K_DIM, N = 48, 384, 32


def fixed_matrix(rows: int, cols: int, salt: int) -> np.ndarray:
    idx = np.arange(rows * cols, dtype=np.int64) + salt * 1_000_003
    return (((idx * 2654435761 + 12345) >> 9) % 128 - 64).astype(np.int8).reshape(rows, cols)


def fixed_inputs():
    a = fixed_matrix(M, K_DIM, 1)
    b = fixed_matrix(K_DIM, N, 2)
    pre = HeaderPre(1, 42, bytes(range(32)), bytes(range(32, 64)), 1_750_000_000, (1 << 244) + 12345, 7, M, N, K_DIM)
    return a, b, pre


def compute_vectors() -> dict:
    a, b, pre = fixed_inputs()
    c = commit_pair(a, b)
    seeds = compute_seeds(pre.encode(), c.root_a, c.root_b, M, N, K_DIM)
    fa, sa = a_indices(seeds.seed_a, K_DIM)
    fb, sb = b_indices(seeds.seed_b, K_DIM)
    ref = mine_reference(a, b, c, pre)
    header = Header(pre, c.root_a, c.root_b, 2, 1)
    cert = make_certificate(a, b, c, 2, 1)
    job_id = compute_job_id(M, K_DIM, N, c.root_a, c.root_b)
    return {
        "K_leaf_A": K("leaf-A").hex(),
        "K_block": K("block").hex(),
        "H_empty": H(b"").hex(),
        "XOF_64": XOF(K("freivalds"), b"abc", 64).hex(),
        "A_blake3": H(a.tobytes()).hex(),
        "B_blake3": H(b.tobytes()).hex(),
        "root_a": c.root_a.hex(),
        "root_b": c.root_b.hex(),
        "header_pre": pre.encode().hex(),
        "job_key": seeds.job_key.hex(),
        "seed_b": seeds.seed_b.hex(),
        "seed_a": seeds.seed_a.hex(),
        "eal_block_1": H(eal_block(seeds.seed_a, 1).tobytes()).hex(),
        "ebr_block_t_1": H(ebr_block_t(seeds.seed_b, 1).tobytes()).hex(),
        "fa_sa_first8": [fa[:8].tolist(), sa[:8].tolist()],
        "fb_sb_first8": [fb[:8].tolist(), sb[:8].tolist()],
        "transcript_2_1": ref.transcripts[2, 1].tolist(),
        "tickets_blake3": H(ref.tickets.tobytes()).hex(),
        "ticket_2_1": ref.tickets[2, 1].tobytes().hex(),
        "product_blake3": product_hash(ref.product).hex(),
        "header": header.encode().hex(),
        "block_id": header.block_id.hex(),
        "certificate_blake3": H(cert.encode()).hex(),
        "certificate_len": len(cert.encode()),
        "job_id": job_id.hex(),
        "freivalds_first4": [str(v) for v in freivalds_vector(job_id, product_hash(ref.product), N)[:4]],
    }


if __name__ == "__main__":
    print(json.dumps(compute_vectors(), indent=2))
