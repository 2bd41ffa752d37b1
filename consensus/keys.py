"""Deterministic Ed25519 keys: BIP-39 seed, SLIP-0010 derivation, signing.

Only the pure functions that consensus and the devnet genesis need:

- ``mnemonic_to_seed``: BIP-39 seed = PBKDF2-HMAC-SHA512(NFKD(mnemonic),
  salt = "mnemonic" + NFKD(passphrase), 2048 rounds, 64 bytes). The word list
  checksum is not checked here (that is a wallet concern); any phrase gives a seed.
- ``derive_key``: SLIP-0010 for Ed25519, hardened steps only (Ed25519 has no
  public derivation): master ``I = HMAC-SHA512("ed25519 seed", seed)``, child
  ``I = HMAC-SHA512(chain_code, 0x00 || key || u32be(index | 2^31))``; the left
  32 bytes are the key, the right 32 the chain code.
- Account path: ``m/44'/COIN_TYPE'/<account>'/0'/<index>'``.

The devnet genesis funds the accounts of ``DEVNET_MNEMONIC`` (the standard
BIP-39 test phrase, public on purpose: devnet coins are worthless).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import unicodedata
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .address import compute_address
from .errors import KeyDerivationError

COIN_TYPE = 20559
"""BIP-44 coin type of this chain (0x504F, ASCII "PO"); not registered in SLIP-0044."""

HARDENED = 1 << 31

DEVNET_MNEMONIC = (
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
)
"""Public test phrase whose accounts the devnet genesis prefunds. Never hold real value with it."""


@dataclass(frozen=True)
class KeyPair:
    """An Ed25519 key pair and its address."""

    private_key: bytes
    """32-byte Ed25519 seed (RFC 8032 private key)."""
    public_key: bytes
    """32-byte Ed25519 public key."""

    @property
    def address(self) -> bytes:
        """The 20-byte account address of the public key."""
        return compute_address(self.public_key)

    def sign(self, message: bytes) -> bytes:
        """64-byte Ed25519 signature of ``message``."""
        return Ed25519PrivateKey.from_private_bytes(self.private_key).sign(message)


def mnemonic_to_seed(mnemonic: str, passphrase: str = "") -> bytes:
    """BIP-39 seed (64 bytes) of a mnemonic phrase."""
    words = unicodedata.normalize("NFKD", " ".join(mnemonic.split()))
    if not words:
        raise KeyDerivationError("the mnemonic is empty")
    salt = unicodedata.normalize("NFKD", "mnemonic" + passphrase)
    return hashlib.pbkdf2_hmac("sha512", words.encode("utf-8"), salt.encode("utf-8"), 2048, 64)


def master_key(seed: bytes) -> tuple[bytes, bytes]:
    """SLIP-0010 Ed25519 master ``(key, chain_code)`` of a seed."""
    if not 16 <= len(seed) <= 64:
        raise KeyDerivationError(f"a seed is 16 to 64 bytes, found {len(seed)}")
    digest = hmac.new(b"ed25519 seed", seed, hashlib.sha512).digest()
    return digest[:32], digest[32:]


def child_key(key: bytes, chain_code: bytes, index: int) -> tuple[bytes, bytes]:
    """SLIP-0010 hardened child ``(key, chain_code)``; ``index`` below 2^31 is hardened here."""
    if not 0 <= index < (1 << 32):
        raise KeyDerivationError(f"a child index is a u32, found {index}")
    data = b"\x00" + key + struct.pack(">I", index | HARDENED)
    digest = hmac.new(chain_code, data, hashlib.sha512).digest()
    return digest[:32], digest[32:]


def derive_key(seed: bytes, path: tuple[int, ...]) -> bytes:
    """Private key at ``path`` (indices, each hardened) below the master key of ``seed``."""
    key, chain = master_key(seed)
    for index in path:
        key, chain = child_key(key, chain, index)
    return key


def account_path(account: int = 0, index: int = 0) -> tuple[int, ...]:
    """``m/44'/COIN_TYPE'/<account>'/0'/<index>'`` as indices."""
    for name, value in (("account", account), ("index", index)):
        if not 0 <= value < HARDENED:
            raise KeyDerivationError(f"{name} must be in [0, 2^31), found {value}")
    return (44, COIN_TYPE, account, 0, index)


def keypair_from_private(private_key: bytes) -> KeyPair:
    """Key pair of a 32-byte Ed25519 private key."""
    if len(private_key) != 32:
        raise KeyDerivationError(f"an Ed25519 private key is 32 bytes, found {len(private_key)}")
    public = Ed25519PrivateKey.from_private_bytes(private_key).public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw
    )
    return KeyPair(bytes(private_key), public)


def keypair_from_mnemonic(mnemonic: str, account: int = 0, index: int = 0, passphrase: str = "") -> KeyPair:
    """Key pair at ``m/44'/COIN_TYPE'/<account>'/0'/<index>'`` of a mnemonic."""
    seed = mnemonic_to_seed(mnemonic, passphrase)
    return keypair_from_private(derive_key(seed, account_path(account, index)))


def devnet_keypairs(count: int) -> list[KeyPair]:
    """The first ``count`` devnet keys: ``DEVNET_MNEMONIC``, account 0, indices ``0 .. count-1``."""
    seed = mnemonic_to_seed(DEVNET_MNEMONIC)
    return [keypair_from_private(derive_key(seed, account_path(0, i))) for i in range(count)]
