"""Errors of the node layer (consensus errors stay in ``consensus.errors``).

``NodeError`` is the root. ``StorageError`` wraps a failure of the key-value
store (translated from ``plyvel`` with ``from``) or a record that does not
decode; ``WrongDatabaseError`` is a data directory that belongs to another
network or schema.
"""

from __future__ import annotations


class NodeError(Exception):
    """Root of every error raised by ``node``."""


class StorageError(NodeError):
    """The key-value store failed, or holds a record that does not decode (corruption)."""


class WrongDatabaseError(StorageError):
    """The database was created for another network, genesis block or schema version."""


class StartupError(NodeError):
    """The node could not start (a port in use, a data directory another node holds); nothing is left open."""


class BlockStateInvalid(NodeError):
    """A block whose fault depends on account state (a nonce, a balance): rejected here, its sender not punished.

    A peer cannot be expected to know the state of a branch that was not its
    best chain, so only context-free faults (``consensus.errors.PeerFault``)
    cost points. ``rule`` names the failed rule, as ``InvalidBlock.rule`` does.
    """

    def __init__(self, message: str, rule: str) -> None:
        super().__init__(message)
        self.rule = rule
