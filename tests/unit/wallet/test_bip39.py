"""BIP-39: the trezor reference vectors (English, passphrase "TREZOR"), the word list, and restore errors."""

from __future__ import annotations

import hashlib
from importlib import resources

import pytest

from consensus.address import encode_address
from consensus.keys import DEVNET_MNEMONIC, devnet_keypairs
from consensus.networks import DEVNET
from wallet.bip39 import (
    MnemonicError,
    entropy_to_mnemonic,
    generate_mnemonic,
    mnemonic_to_entropy,
    mnemonic_to_seed,
    validate_mnemonic,
    wordlist,
)
from wallet.hd import HDWallet

# trezor/python-mnemonic vectors.json, "english" (entropy, mnemonic, seed with passphrase "TREZOR").
VECTORS = [
    ("00000000000000000000000000000000",
     "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
     "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04"),
    ("7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f",
     "legal winner thank year wave sausage worth useful legal winner thank yellow",
     "2e8905819b8723fe2c1d161860e5ee1830318dbf49a83bd451cfb8440c28bd6fa457fe1296106559a3c80937a1c1069be3a3a5bd381ee6260e8d9739fce1f607"),
    ("ffffffffffffffffffffffffffffffff",
     "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo wrong",
     "ac27495480225222079d7be181583751e86f571027b0497b5b5d11218e0a8a13332572917f0f8e5a589620c6f15b11c61dee327651a14c34e18231052e48c069"),
    ("000000000000000000000000000000000000000000000000",
     "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon "
     "abandon abandon abandon agent",
     "035895f2f481b1b0f01fcf8c289c794660b289981a78f8106447707fdd9666ca06da5a9a565181599b79f53b844d8a71dd9f439c52a3d7b3e8a79c906ac845fa"),
    ("808080808080808080808080808080808080808080808080",
     "letter advice cage absurd amount doctor acoustic avoid letter advice cage absurd amount doctor acoustic avoid "
     "letter always",
     "107d7c02a5aa6f38c58083ff74f04c607c2d2c0ecc55501dadd72d025b751bc27fe913ffb796f841c49b1d33b610cf0e91d3aa239027f5e99fe4ce9e5088cd65"),
    ("0000000000000000000000000000000000000000000000000000000000000000",
     "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon "
     "abandon abandon abandon abandon abandon abandon abandon abandon abandon art",
     "bda85446c68413707090a52022edd26a1c9462295029f2e60cd7c4f2bbd3097170af7a4d73245cafa9c3cca8d561a7c3de6f5d4a10be8ed2a5e608d68f92fcc8"),
    ("ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
     "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo vote",
     "dd48c104698c30cfe2b6142103248622fb7bb0ff692eebb00089b32d22484e1613912f0a5b694407be899ffd31ed3992c456cdf60f5d4564b8ba3f05a69890ad"),
    ("9e885d952ad362caeb4efe34a8e91bd2",
     "ozone drill grab fiber curtain grace pudding thank cruise elder eight picnic",
     "274ddc525802f7c828d8ef7ddbcdc5304e87ac3535913611fbbfa986d0c9e5476c91689f9c8a54fd55bd38606aa6a8595ad213d4c9c9f9aca3fb217069a41028"),
    ("6610b25967cdcca9d59875f5cb50b0ea75433311869e930b",
     "gravity machine north sort system female filter attitude volume fold club stay feature office ecology stable "
     "narrow fog",
     "628c3827a8823298ee685db84f55caa34b5cc195a778e52d45f59bcf75aba68e4d7590e101dc414bc1bbd5737666fbbef35d1f1903953b66624f910feef245ac"),
    ("68a79eaca2324873eacc50cb9c6eca8cc68ea5d936f98787c60c7ebc74e6ce7c",
     "hamster diagram private dutch cause delay private meat slide toddler razor book happy fancy gospel tennis maple "
     "dilemma loan word shrug inflict delay length",
     "64c87cde7e12ecf6704ab95bb1408bef047c22db4cc7491c4271d170a1b213d20b385bc1588d9c7b38f1b39d415665b8a9030c9ec653d75e65f847d8fc1fc440"),
    ("f585c11aec520db57dd353c69554b21a89b20fb0650966fa0a9d6f74fd989d8f",
     "void come effort suffer camp survey warrior heavy shoot primary clutch crush open amazing screen patrol group "
     "space point ten exist slush involve unfold",
     "01f5bced59dec48e362f2c45b5de68b9fd6c92c6634f44d6d40aab69056506f0e35524a518034ddc1192e1dacd32c1ed3eaa3c3b131c88ed8e7e54c49a5d0998"),
]


def test_vectors_cover_12_18_and_24_words():
    assert {len(m.split()) for _, m, _ in VECTORS} == {12, 18, 24}


@pytest.mark.parametrize("entropy,mnemonic,seed", VECTORS, ids=[v[0][:8] + f"-{len(v[1].split())}w" for v in VECTORS])
def test_reference_vectors(entropy, mnemonic, seed):
    assert entropy_to_mnemonic(bytes.fromhex(entropy)) == mnemonic
    assert mnemonic_to_entropy(mnemonic).hex() == entropy
    assert mnemonic_to_seed(mnemonic, "TREZOR").hex() == seed


def test_word_list_is_the_official_one():
    raw = resources.files("wallet").joinpath("bip39_english.txt").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == "2f5eed53a4727b4bf8880d8f3f199efc90e58503646d9ff8eff3a2ed3b24dbda"
    words = wordlist()
    assert len(words) == 2048 and words[0] == "abandon" and words[-1] == "zoo"


@pytest.mark.parametrize("count", [12, 24])
def test_generated_mnemonics_validate(count):
    phrases = {generate_mnemonic(count) for _ in range(5)}
    assert len(phrases) == 5
    for p in phrases:
        assert len(p.split()) == count
        assert validate_mnemonic(p) == p


def test_restore_normalises_case_and_spaces():
    assert validate_mnemonic("  ABANDON abandon\tabandon abandon abandon abandon abandon abandon abandon abandon "
                             "abandon   About\n") == DEVNET_MNEMONIC


def test_unknown_word_is_named_with_a_suggestion():
    bad = DEVNET_MNEMONIC.replace("about", "abuot")
    with pytest.raises(MnemonicError, match=r"word 12 'abuot'.*did you mean 'about'"):
        validate_mnemonic(bad)


def test_bad_checksum_is_reported_as_such():
    with pytest.raises(MnemonicError, match="checksum"):
        validate_mnemonic(DEVNET_MNEMONIC.replace("about", "abandon"))


def test_wrong_word_count():
    with pytest.raises(MnemonicError, match="found 11"):
        validate_mnemonic(" ".join(DEVNET_MNEMONIC.split()[:11]))
    with pytest.raises(MnemonicError):
        generate_mnemonic(13)
    with pytest.raises(MnemonicError):
        entropy_to_mnemonic(b"\x00" * 15)


def test_devnet_mnemonic_owns_the_prefunded_accounts():
    hd = HDWallet(DEVNET_MNEMONIC)
    for i, key in enumerate(devnet_keypairs(3)):
        assert hd.address(i, DEVNET) == encode_address(key.address, DEVNET.hrp)
        assert key.address == DEVNET.allocations[i].address


def test_bip39_passphrase_changes_the_keys():
    assert HDWallet(DEVNET_MNEMONIC, "x").address(0, DEVNET) != HDWallet(DEVNET_MNEMONIC).address(0, DEVNET)
