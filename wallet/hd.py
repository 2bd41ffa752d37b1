"""Hierarchical keys of a wallet and their addresses.

Keys are SLIP-0010 Ed25519, hardened only, at
``m/44'/COIN_TYPE'/<account>'/0'/<index>'`` below the BIP-39 seed (the
derivation itself is ``consensus.keys``, shared with the devnet genesis, so
a wallet restored from ``DEVNET_MNEMONIC`` owns the prefunded accounts).
Ed25519 has no public derivation: every new address needs the seed, hence the
passphrase. Addresses are bech32m with the network's prefix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consensus.address import decode_address, encode_address
from consensus.errors import AddressError
from consensus.keys import HARDENED, KeyPair, account_path, child_key, derive_key, keypair_from_private, master_key
from consensus.networks import NetworkParams

from .bip39 import mnemonic_to_seed, validate_mnemonic

__all__ = ["AddressError", "HDWallet", "derive_path", "format_path", "parse_address", "parse_path"]


def parse_path(text: str) -> tuple[int, ...]:
    """``m/44'/20559'/0'`` (or ``H`` / ``h`` for hardened) to indices below 2^31; every step must be hardened."""
    parts = text.strip().split("/")
    if not parts or parts[0] != "m":
        raise ValueError(f"a derivation path starts with 'm', found {text!r}")
    out = []
    for step in parts[1:]:
        if not step or step[-1] not in "'hH":
            raise ValueError(f"Ed25519 derivation is hardened only: step {step!r} of {text!r} needs a trailing '")
        try:
            index = int(step[:-1])
        except ValueError:
            raise ValueError(f"step {step!r} of {text!r} is not a number") from None
        if not 0 <= index < HARDENED:
            raise ValueError(f"step {step!r} of {text!r} is outside [0, 2^31)")
        out.append(index)
    return tuple(out)


def format_path(path: tuple[int, ...]) -> str:
    """Indices to ``m/a'/b'/...``."""
    return "/".join(["m", *(f"{i}'" for i in path)])


def derive_path(seed: bytes, path: tuple[int, ...]) -> tuple[bytes, bytes]:
    """SLIP-0010 Ed25519 ``(private key, chain code)`` at ``path`` below ``seed``."""
    key, chain = master_key(seed)
    for index in path:
        key, chain = child_key(key, chain, index)
    return key, chain


def parse_address(text: str, network: NetworkParams) -> bytes:
    """The 20 bytes of a bech32m address of ``network``; ``AddressError`` says what is wrong."""
    text = text.strip()
    try:
        return decode_address(text, network.hrp)
    except AddressError as e:
        raise AddressError(f"{text!r} is not a {network.name} address ({e.detail}); "
                           f"{network.name} addresses start with '{network.hrp}1'") from None


@dataclass
class HDWallet:
    """The keys of one mnemonic (and BIP-39 passphrase) under one account."""

    mnemonic: str
    passphrase: str = ""
    account: int = 0
    _seed: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        self.mnemonic = validate_mnemonic(self.mnemonic)
        self._seed = mnemonic_to_seed(self.mnemonic, self.passphrase)

    def path(self, index: int) -> tuple[int, ...]:
        return account_path(self.account, index)

    def keypair(self, index: int) -> KeyPair:
        """The key pair at ``m/44'/COIN_TYPE'/<account>'/0'/<index>'``."""
        return keypair_from_private(derive_key(self._seed, self.path(index)))

    def address(self, index: int, network: NetworkParams) -> str:
        """The bech32m address at ``index`` on ``network``."""
        return encode_address(self.keypair(index).address, network.hrp)
