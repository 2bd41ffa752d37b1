"""The node's libp2p identity on disk: a 32-byte Ed25519 seed in ``<key_dir>/node_key``."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from .errors import KeyFileError

KEY_FILE = "node_key"


def load_or_create_node_key(directory: str | os.PathLike) -> bytes:
    """The 32-byte Ed25519 seed in ``directory/node_key``, created (mode 0600) if missing."""
    path = Path(directory) / KEY_FILE
    try:
        seed = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        seed = secrets.token_bytes(32)
        tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, seed)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process created it meanwhile: keep theirs
        except FileExistsError:
            seed = path.read_bytes()
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as e:
        raise KeyFileError(f"cannot read node key {path}: {e}") from e
    if len(seed) != 32:
        raise KeyFileError(f"node key {path} must hold a 32-byte Ed25519 seed, found {len(seed)} bytes")
    return seed
