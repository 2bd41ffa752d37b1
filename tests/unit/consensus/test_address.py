"""bech32m addresses (BIP-350 vectors) and the address of a public key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consensus.address import bech32m_decode, compute_address, decode_address, encode_address
from consensus.errors import AddressError
from pouw.hashing import HK, K

# Valid bech32m strings from BIP-350.
VALID_BECH32M = [
    "A1LQFN3A",
    "a1lqfn3a",
    "an83characterlonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11sg7hg6",
    "abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx",
    "11llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllludsr8",
    "split1checkupstagehandshakeupstreamerranterredcaperredlc445v",
    "?1v759aa",
]

# Invalid strings from BIP-350 (and a bech32, not bech32m, checksum from BIP-173).
INVALID = [
    "\x201xj0phk",        # HRP character out of range
    "an84characterslonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11429s8t",  # too long
    "qyrz8wqd2c9m",       # no separator
    "1qyrz8wqd2c9m",      # empty HRP
    "y1b0jsk6g",          # invalid data character
    "lt1igcx5c0",         # invalid data character
    "in1muywd",           # checksum too short
    "mm1crxm3i",          # invalid character in checksum
    "au1s5cgom",          # invalid character in checksum
    "M1VUXWEZ",           # checksum calculated with upper-case HRP
    "16plkw9",            # empty HRP
    "1p2gdwpf",           # empty HRP
    "A12UEL5L",           # valid bech32 (BIP-173), not bech32m
    "a1Lqfn3a",           # mixed case
]


@pytest.mark.parametrize("text", VALID_BECH32M)
def test_bip350_valid_strings_decode(text):
    hrp, _ = bech32m_decode(text)
    assert hrp == text.lower()[: text.lower().rfind("1")]


@pytest.mark.parametrize("text", INVALID)
def test_bip350_invalid_strings_raise_address_error(text):
    with pytest.raises(AddressError):
        bech32m_decode(text)


@given(st.binary(min_size=20, max_size=20), st.sampled_from(["pdev", "ptest", "pouw"]))
def test_address_round_trip(address, hrp):
    text = encode_address(address, hrp)
    assert text.startswith(hrp + "1") and len(text) == len(hrp) + 1 + 32 + 6
    assert decode_address(text, hrp) == address
    assert decode_address(text.upper(), hrp) == address


def test_single_character_typo_is_caught():
    text = encode_address(bytes(range(20)), "pdev")
    i = len(text) - 10
    typo = text[:i] + ("q" if text[i] != "q" else "p") + text[i + 1 :]
    with pytest.raises(AddressError, match="checksum"):
        decode_address(typo, "pdev")


def test_wrong_prefix_is_rejected():
    text = encode_address(bytes(20), "ptest")
    with pytest.raises(AddressError, match="prefix"):
        decode_address(text, "pouw")


def test_wrong_length_is_rejected():
    from consensus.address import bech32m_encode, convert_bits

    text = bech32m_encode("pdev", convert_bits(bytes(21), 8, 5, pad=True))
    with pytest.raises(AddressError):
        decode_address(text, "pdev")


@given(st.text(max_size=100))
def test_decoder_raises_only_address_error(text):
    try:
        decode_address(text, "pdev")
    except AddressError:
        pass


def test_address_is_first_20_bytes_of_keyed_hash():
    pubkey = bytes(range(32))
    assert compute_address(pubkey) == HK(K("address"), pubkey)[:20]
    with pytest.raises(ValueError):
        compute_address(bytes(31))
