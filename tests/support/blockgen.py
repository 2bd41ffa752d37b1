"""Making blocks without a network: real mined blocks on small shapes, and synthetic ones.

For tests, benchmarks and devnet tooling (``generatetoaddress``-style). Two ways:

- ``BlockMaker.mine``: a real block. Fixed pseudo-random int7 matrices of the
  maker's shape, a template from ``consensus.assemble``, the NumPy backend
  (or any ``kernels`` backend) tries nonces until a tile wins, and the winning
  certificate goes into the block. With ``easy_params`` (``m = n = 16``,
  ``k = 256`` and a target whose win threshold saturates) every nonce wins, so
  a block costs about a millisecond.
- ``BlockMaker.synthetic``: a block that is valid in every respect except its
  certificate, which is well-formed zeros. Only a ``ChainService`` opened with
  ``check_certificates=False`` accepts it; that flag exists for tests and
  benchmarks that need thousands of blocks, and shipped code never sets it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from consensus.assemble import BlockTemplate, assemble_block, build_template
from consensus.networks import DEVNET, NetworkParams
from consensus.types import Block, Certificate, Header, Tx
from consensus.validation import ParentInfo
from pouw.constants import MAX_U256, TILE
from pouw.merkle import path_depth

TEST_SHAPE = (16, 16, 256)
"""Smallest legal shape ``(m, n, k)``: one tile."""

EASY_TARGET = (1 << 256) // (256 * 256)
"""At ``k = 256`` the win threshold ``min(2^256-1, target*256*k)`` saturates: every tile wins."""


def easy_params(base: NetworkParams = DEVNET, *, retarget: bool = False) -> NetworkParams:
    """``base`` with the test shape and ``EASY_TARGET`` (and retargeting on when asked).

    Keeps ``base``'s name, chain id and allocations, so keys and addresses of the
    preset work unchanged; the genesis differs (its target does).
    """
    return replace(base, initial_target=EASY_TARGET, pow_limit=MAX_U256, no_retarget=not retarget,
                   mining_shape=TEST_SHAPE)


class BlockMaker:
    """Builds blocks for ``params`` on top of any ``ParentInfo``."""

    def __init__(self, params: NetworkParams, *, shape: tuple[int, int, int] | None = None,
                 backend: str = "numpy", seed: int = 0) -> None:
        self.params = params
        self.shape = shape or params.mining_shape
        self._backend_name = backend
        self._backend = None
        self._prepared = None
        self._seed = seed

    def template(self, parent: ParentInfo, time: int, coinbase_to: bytes,
                 transfers: Sequence[Tx] = ()) -> BlockTemplate:
        """The template of a child of ``parent`` at the maker's shape."""
        return build_template(parent, self.params, time, coinbase_to, transfers, self.shape)

    def mine(self, parent: ParentInfo, time: int, coinbase_to: bytes, transfers: Sequence[Tx] = (),
             *, max_nonces: int = 1 << 20) -> Block:
        """A real block: mine the template until a tile wins."""
        return self.mine_template(self.template(parent, time, coinbase_to, transfers), max_nonces=max_nonces)

    def mine_template(self, template: BlockTemplate, *, max_nonces: int = 1 << 20) -> Block:
        """Mine any template (tests pass deliberately faulty ones) until a tile wins."""
        import kernels

        if self._backend is None:
            m, n, k = self.shape
            rng = np.random.default_rng(self._seed)
            a = rng.integers(-64, 64, (m, k), dtype=np.int8)
            b = rng.integers(-64, 64, (k, n), dtype=np.int8)
            self._prepared = kernels.prepare(a, b)
            self._backend = kernels.get_backend(self._backend_name)
        for nonce in range(max_nonces):
            result = self._backend.mine(self._prepared, template.pre, nonce)
            if result.winners:
                winner = result.winners[0]
                return assemble_block(template, result.header(self._prepared, winner),
                                      result.certificate(self._prepared, winner))
        raise RuntimeError(f"no winning tile in {max_nonces} nonces")

    def synthetic(self, parent: ParentInfo, time: int, coinbase_to: bytes,
                  transfers: Sequence[Tx] = ()) -> Block:
        """A block with a zero certificate of the right length (needs ``check_certificates=False``)."""
        template = self.template(parent, time, coinbase_to, transfers)
        m, n, k = self.shape
        cert = Certificate(bytes(TILE * k), bytes(TILE * k),
                           tuple(bytes(32) for _ in range(path_depth(0, m // TILE))),
                           tuple(bytes(32) for _ in range(path_depth(0, n // TILE))))
        return assemble_block(template, Header(template.pre, bytes(32), bytes(32), 0, 0), cert)


class ChainBuilder:
    """Grows blocks on any branch without a chain service: remembers a ``ParentInfo`` per block id.

    ``builder.child(parent_id)`` makes a block on top of ``parent_id``
    ``spacing`` seconds after it; ``builder.extend(parent_id, count)`` a run of them.
    """

    def __init__(self, params: NetworkParams, *, synthetic: bool = False, maker: BlockMaker | None = None,
                 coinbase_to: bytes = bytes(20)) -> None:
        from consensus.genesis import make_genesis_block
        from consensus.validation import make_parent_info

        self._make_parent_info = make_parent_info
        self.params = params
        self.maker = maker or BlockMaker(params)
        self.synthetic = synthetic
        self.coinbase_to = coinbase_to
        self.genesis = make_genesis_block(params)
        self.genesis_id = self.genesis.header.block_id
        self.infos: dict[bytes, ParentInfo] = {self.genesis_id: make_parent_info(self.genesis.header)}

    def child(self, parent_id: bytes, transfers: Sequence[Tx] = (), *, spacing: int | None = None,
              coinbase_to: bytes | None = None, time: int | None = None) -> Block:
        """A block on top of ``parent_id`` (``spacing`` seconds later unless ``time`` is given)."""
        parent = self.infos[parent_id]
        step = spacing if spacing is not None else self.params.block_spacing
        when = time if time is not None else parent.time + step
        make = self.maker.synthetic if self.synthetic else self.maker.mine
        block = make(parent, when, coinbase_to if coinbase_to is not None else self.coinbase_to, transfers)
        self.infos[block.header.block_id] = self._make_parent_info(block.header, parent)
        return block

    def extend(self, parent_id: bytes, count: int, **kwargs) -> list[Block]:
        """``count`` blocks in a row on top of ``parent_id``; ``kwargs`` go to ``child``."""
        blocks = []
        for _ in range(count):
            block = self.child(parent_id, **kwargs)
            blocks.append(block)
            parent_id = block.header.block_id
        return blocks
