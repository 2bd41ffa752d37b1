"""BIP-39 seeds, SLIP-0010 Ed25519 derivation (published vectors) and the devnet keys."""

from __future__ import annotations

import pytest

from consensus.errors import KeyDerivationError
from consensus.keys import (
    COIN_TYPE,
    DEVNET_MNEMONIC,
    account_path,
    derive_key,
    devnet_keypairs,
    keypair_from_mnemonic,
    keypair_from_private,
    master_key,
    mnemonic_to_seed,
)
from consensus.networks import DEVNET

SLIP10_SEED_1 = bytes.fromhex("000102030405060708090a0b0c0d0e0f")


def test_bip39_seed_vector():
    # BIP-39 test vector 0 (trezor/python-mnemonic vectors.json), passphrase "TREZOR".
    assert mnemonic_to_seed(DEVNET_MNEMONIC, "TREZOR").hex() == (
        "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04"
    )


def test_bip39_normalises_whitespace():
    assert mnemonic_to_seed("  " + DEVNET_MNEMONIC.replace(" ", "   ")) == mnemonic_to_seed(DEVNET_MNEMONIC)
    with pytest.raises(KeyDerivationError):
        mnemonic_to_seed("   ")


@pytest.mark.parametrize("path,chain_code,private", [
    ((), "90046a93de5380a72b5e45010748567d5ea02bbf6522f979e05c0d8d8ca9fffb",
     "2b4be7f19ee27bbf30c667b642d5f4aa69fd169872f8fc3059c08ebae2eb19e7"),
    ((0,), "8b59aa11380b624e81507a27fedda59fea6d0b779a778918a2fd3590e16e9c69",
     "68e0fe46dfb67e368c75379acec591dad19df3cde26e63b93a8e704f1dade7a3"),
    ((0, 1), "a320425f77d1b5c2505a6b1b27382b37368ee640e3557c315416801243552f14",
     "b1d0bad404bf35da785a64ca1ac54b2617211d2777696fbffaf208f746ae84f2"),
    ((0, 1, 2), "2e69929e00b5ab250f49c3fb1c12f252de4fed2c1db88387094a0f8c4c9ccd6c",
     "92a5b23c0b8a99e37d07df3fb9966917f5d06e02ddbd909c7e184371463e9fc9"),
])
def test_slip10_ed25519_vector_1(path, chain_code, private):
    from consensus.keys import child_key

    key, chain = master_key(SLIP10_SEED_1)
    for index in path:
        key, chain = child_key(key, chain, index)
    assert (chain.hex(), key.hex()) == (chain_code, private)
    assert derive_key(SLIP10_SEED_1, path).hex() == private


def test_slip10_master_public_key():
    # SLIP-0010 vector 1, m: public key 00a4b2856bfec510abab89753fac1ac0e1112364e7d250545963f135f2a33188ed
    key = keypair_from_private(derive_key(SLIP10_SEED_1, ()))
    assert key.public_key.hex() == "a4b2856bfec510abab89753fac1ac0e1112364e7d250545963f135f2a33188ed"


def test_account_path_layout():
    assert account_path(3, 7) == (44, COIN_TYPE, 3, 0, 7)
    with pytest.raises(KeyDerivationError):
        account_path(1 << 31, 0)


def test_devnet_allocations_are_the_mnemonic_accounts():
    keys = devnet_keypairs(len(DEVNET.allocations))
    assert [k.address for k in keys] == [a.address for a in DEVNET.allocations]
    assert keys[4] == keypair_from_mnemonic(DEVNET_MNEMONIC, 0, 4)


def test_signatures_verify():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = devnet_keypairs(1)[0]
    Ed25519PublicKey.from_public_bytes(key.public_key).verify(key.sign(b"msg"), b"msg")
