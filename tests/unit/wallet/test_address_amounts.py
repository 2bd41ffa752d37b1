"""Addresses as users type them (bech32m checksum errors) and amounts as decimal coins."""

from __future__ import annotations

import pytest

from consensus.address import CHARSET
from consensus.errors import AddressError
from consensus.keys import DEVNET_MNEMONIC
from consensus.networks import DEVNET, REGTEST
from wallet.amounts import AmountError, format_amount, parse_amount
from wallet.hd import HDWallet, parse_address

ADDR = HDWallet(DEVNET_MNEMONIC).address(0, DEVNET)


def test_address_round_trip():
    assert parse_address(ADDR, DEVNET) == DEVNET.allocations[0].address
    assert parse_address(ADDR.upper(), DEVNET) == DEVNET.allocations[0].address


def test_one_changed_character_is_a_checksum_error():
    i = len(ADDR) - 10
    swapped = ADDR[:i] + CHARSET[(CHARSET.index(ADDR[i]) + 1) % 32] + ADDR[i + 1:]
    with pytest.raises(AddressError, match="checksum"):
        parse_address(swapped, DEVNET)


def test_other_networks_address_is_refused():
    with pytest.raises(AddressError, match="regtest addresses start with 'preg1'"):
        parse_address(ADDR, REGTEST)


@pytest.mark.parametrize("text", ["", "pdev1", "hello", ADDR[:-1], ADDR + "q", ADDR[:10] + ADDR[10:].upper()])
def test_malformed_addresses(text):
    with pytest.raises(AddressError):
        parse_address(text, DEVNET)


@pytest.mark.parametrize("text,units", [
    ("1", 100_000_000), ("1.5", 150_000_000), ("0.00000001", 1), ("0.1", 10_000_000), ("  2.25 ", 225_000_000),
    ("10.", 1_000_000_000), (".5", 50_000_000), ("1.500000000", 150_000_000), ("0000.1", 10_000_000),
    ("184467440737.09551615", (1 << 64) - 1),
])
def test_parse_amount(text, units):
    assert parse_amount(text) == units


@pytest.mark.parametrize("text,why", [
    ("0.000000001", "more than 8 decimals"), ("1.123456789", "more than 8 decimals"), ("0", "more than zero"),
    ("0.00000000", "more than zero"), ("-1", "is negative"), ("-0.5", "is negative"), ("+1", "has a sign"),
    ("1e3", "exponent notation"), ("1E-8", "exponent notation"), ("2.5e+3", "exponent notation"),
    (".5e1", "exponent notation"), ("nan", "NaN and Infinity"), ("NaN", "NaN and Infinity"),
    ("sNaN", "NaN and Infinity"), ("inf", "NaN and Infinity"), ("-Infinity", "NaN and Infinity"),
    ("1,5", "plain decimal"), ("", "is empty"), ("   ", "is empty"), (".", "plain decimal"),
    ("1.2.3", "plain decimal"), ("1_000", "plain decimal"), ("0x10", "plain decimal"), ("\uff11", "plain decimal"),
    ("1 000", "plain decimal"), ("184467440737.09551616", "too large"), ("184467440738", "too large"),
    ("99999999999999999999999999999999", "too large"), ("1" * 5000, "too large"),
    # Beyond decimal's 28-digit context: used to escape as decimal.InvalidOperation.
    ("12345678901234567890123.000000001", "more than 8 decimals"),
    ("12345678901234567890123.00000001", "too large"),
    ("1234567890123456789012345678901234567890.5", "too large"),
    ("0." + "0" * 5000 + "1", "more than 8 decimals"),
])
def test_bad_amounts(text, why):
    with pytest.raises(AmountError, match=why) as exc:
        parse_amount(text)
    assert "Traceback" not in str(exc.value) and len(str(exc.value)) < 300  # long input is shortened


@pytest.mark.parametrize("text,units", [
    ("184467440737.095516150000", (1 << 64) - 1), ("0." + "0" * 5000, 0), ("0" * 5000 + "1", 100_000_000),
])
def test_exact_edges(text, units):
    assert parse_amount(text, allow_zero=True) == units


def test_what_names_the_field():
    with pytest.raises(AmountError, match="^fee '-1' is negative"):
        parse_amount("-1", allow_zero=True, what="fee")


def test_zero_fee_allowed_when_asked():
    assert parse_amount("0", allow_zero=True) == 0


def test_no_float_rounding():
    # 0.1 + 0.2 in floats is 0.30000000000000004; in base units it is exact.
    assert parse_amount("0.1") + parse_amount("0.2") == parse_amount("0.3")
    assert parse_amount("0.29") == 29_000_000  # int(0.29 * 1e8) would be 28999999


def test_format_amount():
    assert format_amount(150_000_000) == "1.50000000"
    assert format_amount(1) == "0.00000001"
    assert format_amount(0) == "0.00000000"
    assert format_amount(-150_001_000) == "-1.50001000"
    for text in ("1.5", "0.00000001", "123456.789"):
        assert parse_amount(format_amount(parse_amount(text))) == parse_amount(text)
