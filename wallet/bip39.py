"""BIP-39 mnemonics with the official English word list.

A mnemonic encodes ``ENT`` bits of entropy (128, 160, 192, 224 or 256) plus a
checksum of ``ENT / 32`` bits (the first bits of SHA-256 of the entropy) as
11-bit indices into a 2048-word list: 12, 15, 18, 21 or 24 words. The seed is
PBKDF2 of the phrase and an optional passphrase (``consensus.keys.mnemonic_to_seed``);
this module adds what the consensus layer leaves to the wallet: generating
phrases from ``secrets`` and checking words and checksum on restore, with an
error that names the bad word or says the checksum failed.

The word list ships as package data (``bip39_english.txt``) and is checked
against its published SHA-256 when first loaded.
"""

from __future__ import annotations

import difflib
import hashlib
import secrets
import unicodedata
from functools import cache
from importlib import resources

from consensus.keys import mnemonic_to_seed

__all__ = ["MnemonicError", "entropy_to_mnemonic", "generate_mnemonic", "mnemonic_to_entropy",
           "mnemonic_to_seed", "normalize_mnemonic", "validate_mnemonic", "wordlist"]

WORDLIST_SHA256 = "2f5eed53a4727b4bf8880d8f3f199efc90e58503646d9ff8eff3a2ed3b24dbda"
"""SHA-256 of the official English list (bitcoin/bips bip-0039/english.txt)."""
WORD_COUNTS = (12, 15, 18, 21, 24)
ENTROPY_BYTES = {12: 16, 15: 20, 18: 24, 21: 28, 24: 32}


class MnemonicError(ValueError):
    """A phrase that is not a valid BIP-39 English mnemonic; the message says which part is wrong."""


@cache
def wordlist() -> tuple[str, ...]:
    """The 2048 English words, in order."""
    raw = resources.files("wallet").joinpath("bip39_english.txt").read_bytes()
    if hashlib.sha256(raw).hexdigest() != WORDLIST_SHA256:
        raise RuntimeError("wallet/bip39_english.txt is not the official BIP-39 English list "
                           "(SHA-256 mismatch); reinstall pouw-node")
    words = tuple(raw.decode("ascii").split())
    if len(words) != 2048:
        raise RuntimeError(f"the BIP-39 word list has {len(words)} words, expected 2048")
    return words


@cache
def _index() -> dict[str, int]:
    return {w: i for i, w in enumerate(wordlist())}


def entropy_to_mnemonic(entropy: bytes) -> str:
    """The mnemonic of 16, 20, 24, 28 or 32 bytes of entropy."""
    if len(entropy) not in ENTROPY_BYTES.values():
        raise MnemonicError(f"entropy is 16, 20, 24, 28 or 32 bytes, found {len(entropy)}")
    ent_bits = len(entropy) * 8
    cs_bits = ent_bits // 32
    checksum = hashlib.sha256(entropy).digest()[0] >> (8 - cs_bits)
    value = (int.from_bytes(entropy, "big") << cs_bits) | checksum
    count = (ent_bits + cs_bits) // 11
    words = wordlist()
    return " ".join(words[(value >> (11 * (count - 1 - i))) & 0x7FF] for i in range(count))


def generate_mnemonic(words: int = 24) -> str:
    """A new random mnemonic of ``words`` words (entropy from ``secrets``)."""
    if words not in ENTROPY_BYTES:
        raise MnemonicError(f"a mnemonic has 12, 15, 18, 21 or 24 words, not {words}")
    return entropy_to_mnemonic(secrets.token_bytes(ENTROPY_BYTES[words]))


def normalize_mnemonic(text: str) -> str:
    """NFKD, lower case, single spaces: the form the seed is computed from."""
    return " ".join(unicodedata.normalize("NFKD", text).lower().split())


def mnemonic_to_entropy(text: str) -> bytes:
    """The entropy of a mnemonic; raise ``MnemonicError`` naming the bad words or the checksum."""
    words = normalize_mnemonic(text).split()
    if len(words) not in WORD_COUNTS:
        raise MnemonicError(f"a mnemonic has 12, 15, 18, 21 or 24 words, found {len(words)}")
    index = _index()
    unknown = [(i, w) for i, w in enumerate(words, 1) if w not in index]
    if unknown:
        parts = []
        for pos, word in unknown:
            close = difflib.get_close_matches(word, wordlist(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            parts.append(f"word {pos} {word!r}{hint}")
        raise MnemonicError("not in the BIP-39 English word list: " + ", ".join(parts))
    value = 0
    for w in words:
        value = (value << 11) | index[w]
    total_bits = 11 * len(words)
    cs_bits = total_bits // 33
    ent_bits = total_bits - cs_bits
    entropy = (value >> cs_bits).to_bytes(ent_bits // 8, "big")
    if value & ((1 << cs_bits) - 1) != hashlib.sha256(entropy).digest()[0] >> (8 - cs_bits):
        raise MnemonicError("the mnemonic's checksum does not match: every word is in the list, so one "
                            "is probably mistyped as another valid word, or two words are swapped")
    return entropy


def validate_mnemonic(text: str) -> str:
    """The normalized mnemonic, or ``MnemonicError`` when it is not a valid BIP-39 English phrase."""
    mnemonic_to_entropy(text)
    return normalize_mnemonic(text)
