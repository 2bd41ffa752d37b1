"""Errors of the protocol layer.

``PouwError`` is the root. ``InvalidMatrixError`` is raised for input that a
caller (a miner, a job client) got wrong; ``DecodeError`` for malformed bytes;
``VerificationError`` names the rule of docs/protocol.md section 8 that failed.
"""


class PouwError(Exception):
    """Root of every error raised by ``pouw``."""


class InvalidMatrixError(PouwError, ValueError):
    """A matrix has the wrong dtype, dimensionality, shape or an entry out of range."""


class DecodeError(PouwError, ValueError):
    """Bytes that do not decode to the expected structure (wrong length, bad field)."""


class EncodeError(PouwError, ValueError):
    """A value cannot be encoded: a field out of range for its fixed width, a wrong-length hash."""


class VerificationError(PouwError):
    """A header/certificate pair failed one verification rule.

    ``rule`` is a short stable identifier (``header-size``, ``version``,
    ``shape``, ``tile-index``, ``target``, ``certificate-length``,
    ``entry-range``, ``merkle-a``, ``merkle-b``, ``ticket``) that tests and
    peers can match on; the message says what was expected and what was found.
    """

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"{rule}: {message}")
        self.rule = rule
        self.detail = message
