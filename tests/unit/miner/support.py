"""Fakes for the miner's seams: a node that hands out real templates and checks the blocks it is given."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np

from consensus.assemble import build_template
from consensus.codec import encode_transaction
from consensus.genesis import make_genesis_block
from consensus.validation import make_parent_info, validate_block
from miner.work import Work, parse_template
from tests.support.blockgen import easy_params

P = easy_params()
ADDRESS = bytes([7]) * 20


def answer_of(template, *, longpollid="00" * 32 + "-0", job=None) -> dict:
    """``getblocktemplate``'s answer for a ``BlockTemplate`` (the node's layout)."""
    p = template.pre
    return {"height": p.height, "previousblockhash": p.prev_id.hex(), "time": p.time, "target": f"{p.target:064x}",
            "shape": {"m": p.m, "n": p.n, "k": p.k}, "header_pre": p.encode().hex(), "tx_root": p.tx_root.hex(),
            "transactions": [encode_transaction(t).hex() for t in template.transactions],
            "longpollid": longpollid, "job": job}


class FakeNode:
    """Templates on a chain of real blocks at ``target`` (None: every tile wins); validates what it is given."""

    def __init__(self, target: int | None = None) -> None:
        self.parent = make_parent_info(make_genesis_block(P).header)
        self.target = target
        self.blocks: list = []
        self.refused: list = []
        self.products: dict[str, np.ndarray] = {}
        self.matrices: dict[str, np.ndarray] = {}
        self.job: dict | None = None
        self.revision = 0
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.polls = 0

    def _template(self):
        t = build_template(self.parent, P, self.parent.time + 60, ADDRESS, (), (16, 16, 256))
        return t if self.target is None else replace(t, pre=replace(t.pre, target=self.target))

    def template(self, longpollid=None, timeout=60.0, *, jobs=True) -> Work:
        with self.changed:
            self.polls += 1
            pollid = f"{self.parent.block_id.hex()}-{self.revision}"
            if longpollid == pollid:
                self.changed.wait(min(timeout, 0.2))
            pollid = f"{self.parent.block_id.hex()}-{self.revision}"
            return parse_template(answer_of(self._template(), longpollid=pollid, job=self.job if jobs else None))

    def submit_block(self, block) -> None:
        from wallet.rpc import RpcError

        with self.changed:
            if block.header.pre.prev_id != self.parent.block_id:
                self.refused.append(block)
                raise RpcError(-25, "stale: not on the tip")
            validate_block(block, self.parent, P, block.header.pre.time + 1)
            self.blocks.append(block)
            self.parent = make_parent_info(block.header, self.parent)
            self.revision += 1
            self.changed.notify_all()

    def fetch_matrix(self, digest, shape, name):
        x = self.matrices[digest]
        assert x.shape == shape
        return x

    def submit_product(self, job_id, c):
        self.products[job_id] = np.array(c)
        with self.changed:
            self.job = None
            self.revision += 1
            self.changed.notify_all()
        return {"computed_by": "pouw-miner test"}
