"""The encrypted keystore: round trip, wrong passphrase, damaged files left untouched, atomic writes."""

from __future__ import annotations

import json
import os
import stat

import pytest

from consensus.keys import DEVNET_MNEMONIC
from wallet import keystore as ks
from wallet.keystore import KeystoreCorrupt, Secret, WalletExists, WalletNotFound, WrongPassphrase

FAST_N = 1 << 4  # scrypt cost lowered for tests only, passed explicitly (the shipped default is 2^17)
ADDRS = ["pdev1aaa", "pdev1bbb"]


@pytest.fixture
def wallet(tmp_path):
    return ks.create(tmp_path / "wallets", "main", "devnet", Secret(DEVNET_MNEMONIC, "extra"), "correct horse",
                     addresses=list(ADDRS), scrypt_n=FAST_N)


def snapshot(directory):
    return {p.name: (p.read_bytes(), p.stat().st_mode) for p in directory.iterdir()}


def test_round_trip(wallet):
    loaded = ks.load(wallet.path)
    assert (loaded.network, loaded.account, loaded.addresses, loaded.name) == ("devnet", 0, ADDRS, "main")
    secret = loaded.unlock("correct horse")
    assert secret == Secret(DEVNET_MNEMONIC, "extra")
    assert DEVNET_MNEMONIC not in wallet.path.read_text()


def test_file_mode_0600_and_no_temp_files_left(wallet):
    assert stat.S_IMODE(wallet.path.stat().st_mode) == 0o600
    assert [p.name for p in wallet.path.parent.iterdir()] == ["main.json"]
    loaded = ks.load(wallet.path)
    secret = loaded.unlock("correct horse")
    loaded.addresses.append("pdev1ccc")
    loaded.labels[2] = "savings"
    loaded.seal(secret, loaded.unlocked_key)
    ks.save(loaded)
    assert [p.name for p in wallet.path.parent.iterdir()] == ["main.json"]
    again = ks.load(wallet.path)
    assert again.addresses[-1] == "pdev1ccc" and again.labels == {2: "savings"}
    assert again.unlock("correct horse") == secret


def test_failed_write_leaves_old_file_and_no_temp(wallet, monkeypatch):
    before = wallet.path.read_bytes()

    def boom(*a):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", boom)
    wallet.addresses.append("pdev1zzz")
    with pytest.raises(OSError):
        ks.save(wallet)
    assert wallet.path.read_bytes() == before
    assert [p.name for p in wallet.path.parent.iterdir()] == ["main.json"]


def test_wrong_passphrase(wallet):
    before = snapshot(wallet.path.parent)
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        ks.load(wallet.path).unlock("Correct horse")
    assert snapshot(wallet.path.parent) == before


def test_create_refuses_existing(wallet):
    with pytest.raises(WalletExists):
        ks.create(wallet.path.parent, "main", "devnet", Secret(DEVNET_MNEMONIC), "x", scrypt_n=FAST_N)


def test_missing_wallet(tmp_path):
    with pytest.raises(WalletNotFound, match="pouw-wallet new"):
        ks.load(tmp_path / "nope.json")


def _edit(path, fn):
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("damage,message", [
    (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "truncated"),
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_bytes(b"\xff\xfe garbage"), "UTF-8"),
    (lambda p: p.write_text("[1, 2]"), "not a JSON object"),
    (lambda p: _edit(p, lambda d: d.pop("crypto")), "'crypto' is missing"),
    (lambda p: _edit(p, lambda d: d["crypto"].update(nonce="zz")), "'nonce' is not hex"),
    (lambda p: _edit(p, lambda d: d["crypto"]["kdfparams"].update(n=1000)), "scrypt parameters"),
    (lambda p: _edit(p, lambda d: d.update(network="moon")), "unknown network"),
    (lambda p: _edit(p, lambda d: d.update(address_count=5)), "address_count"),
    (lambda p: _edit(p, lambda d: d.update(version=9)), "version"),
])
def test_corrupted_file_is_reported_and_untouched(wallet, damage, message):
    damage(wallet.path)
    before = snapshot(wallet.path.parent)
    with pytest.raises(KeystoreCorrupt, match=message) as exc:
        ks.load(wallet.path)
    assert str(wallet.path) in str(exc.value)
    assert snapshot(wallet.path.parent) == before


@pytest.mark.parametrize("edit", [
    lambda d: d["crypto"].update(ciphertext=("00" if d["crypto"]["ciphertext"][:2] != "00" else "11")
                                 + d["crypto"]["ciphertext"][2:]),
    lambda d: d.update(network="regtest"),
    lambda d: d.update(addresses=["pdev1evil", d["addresses"][1]]),
    lambda d: d.update(labels={"0": "changed"}),
])
def test_tampering_is_caught_on_unlock(wallet, edit):
    _edit(wallet.path, edit)
    before = snapshot(wallet.path.parent)
    loaded = ks.load(wallet.path)
    with pytest.raises(KeystoreCorrupt, match="modified"):
        loaded.unlock("correct horse")
    assert snapshot(wallet.path.parent) == before


def test_fresh_salt_and_nonce(tmp_path):
    a = ks.create(tmp_path, "a", "devnet", Secret(DEVNET_MNEMONIC), "pw", scrypt_n=FAST_N)
    b = ks.create(tmp_path, "b", "devnet", Secret(DEVNET_MNEMONIC), "pw", scrypt_n=FAST_N)
    assert a.crypto["kdfparams"]["salt"] != b.crypto["kdfparams"]["salt"]
    assert a.crypto["nonce"] != b.crypto["nonce"]
    assert a.crypto["ciphertext"] != b.crypto["ciphertext"]


def test_default_scrypt_cost_is_2_17(tmp_path):
    assert ks.SCRYPT_N == 1 << 17 and 128 * ks.SCRYPT_R * ks.SCRYPT_N == 128 << 20  # 128 MiB
    w = ks.create(tmp_path, "w", "devnet", Secret(DEVNET_MNEMONIC), "pw")
    assert w.crypto["kdfparams"] == {**w.crypto["kdfparams"], "n": 1 << 17, "r": 8, "p": 1}
    on_disk = json.loads(w.path.read_text())["crypto"]["kdfparams"]
    assert (on_disk["n"], on_disk["r"], on_disk["p"]) == (1 << 17, 8, 1)
    loaded = ks.load(w.path)  # load()'s bounds accept the new default
    assert loaded.unlock("pw") == Secret(DEVNET_MNEMONIC)


# Written by pouw-wallet with the former default scrypt N = 2^15 (the public devnet mnemonic, passphrase below).
LEGACY_PASSPHRASE = "legacy passphrase"
LEGACY_N2_15 = {
    "format": "pouw-wallet", "version": 1, "network": "devnet", "account": 0, "address_count": 1,
    "addresses": ["pdev1q2j87kdl0l0j2a086yas59cmeu850pf63pnn54"], "labels": {},
    "crypto": {
        "kdf": "scrypt",
        "kdfparams": {"n": 32768, "r": 8, "p": 1, "dklen": 64,
                      "salt": "e2f14aa5c616865c080409e0be8102516da4ef7fc7f15aa209938ffc0efa89bf"},
        "cipher": "aes-256-gcm",
        "check": "92c09eeba07b067596854bd5c72f4770bb14b7b26734cec8571b8bad28dc83ef",
        "nonce": "86e88dd4e55a898f3e93670c",
        "ciphertext": ("6e62c6819a4c563a2f6a1ca1e2af58a116f59bd87c1d224ec39cdced25fdabdddf33fa7ef353c735"
                       "d61b201e66c6a1961355475234567e50b5193e754bc5eb55f29d229e7912c2baff87da3b3ebc12f6"
                       "36ece05d9388affeb5e7041fead5d13d6e4864759f7b84c98724fb2c73f58e812c0cbed9e2b366e5"
                       "fffdd5adc87e87a3c237bee478511b4cfe85c9e09c667b73870fb91104"),
    },
}


def test_keystore_written_with_n_2_15_still_opens_and_keeps_its_parameters(tmp_path):
    path = tmp_path / "legacy.json"
    path.write_text(json.dumps(LEGACY_N2_15, indent=2))
    loaded = ks.load(path)
    assert loaded.crypto["kdfparams"]["n"] == 1 << 15
    assert loaded.addresses == LEGACY_N2_15["addresses"]
    with pytest.raises(WrongPassphrase):
        loaded.unlock("legacy Passphrase")
    secret = loaded.unlock(LEGACY_PASSPHRASE)
    assert secret == Secret(DEVNET_MNEMONIC)
    # A later write (a new address) re-seals under the same key: the file keeps N = 2^15 and still opens.
    loaded.addresses.append("pdev1ccc")
    loaded.seal(secret, loaded.unlocked_key)
    ks.save(loaded)
    again = ks.load(path)
    assert again.crypto["kdfparams"]["n"] == 1 << 15 and again.addresses[-1] == "pdev1ccc"
    assert again.unlock(LEGACY_PASSPHRASE) == secret


@pytest.mark.parametrize("n", [1 << 15, 1 << 17, 1 << 20])
def test_load_accepts_scrypt_n_up_to_2_20(wallet, n):
    _edit(wallet.path, lambda d: d["crypto"]["kdfparams"].update(n=n))
    assert ks.load(wallet.path).crypto["kdfparams"]["n"] == n


@pytest.mark.parametrize("params", [
    {"n": 1 << 21}, {"n": 1 << 24}, {"n": 1 << 17, "r": 1 << 10}, {"n": 1 << 17, "p": 1 << 20}, {"n": 3},
    {"n": 1}, {"dklen": 32},
])
def test_load_refuses_scrypt_parameters_beyond_the_bounds(wallet, params):
    _edit(wallet.path, lambda d: d["crypto"]["kdfparams"].update(params))
    with pytest.raises(KeystoreCorrupt, match="scrypt parameters out of range"):
        ks.load(wallet.path)


def test_create_refuses_bad_scrypt_n(tmp_path):
    for n in (0, 3, 1 << 21):
        with pytest.raises(ValueError, match="scrypt N"):
            ks.create(tmp_path, "w", "devnet", Secret(DEVNET_MNEMONIC), "pw", scrypt_n=n)
    assert not list(tmp_path.iterdir())


def test_out_of_memory_is_a_keystore_error(wallet, monkeypatch):
    class Boom:
        def __init__(self, **kw):
            pass

        def derive(self, data):
            raise MemoryError("Not enough memory to derive key.")
    monkeypatch.setattr(ks, "Scrypt", Boom)
    with pytest.raises(ks.KeystoreError, match="not enough memory for scrypt"):
        ks.load(wallet.path).unlock("correct horse")


@pytest.mark.parametrize("name", ["", "../x", ".hidden", "a/b", "x" * 65])
def test_bad_wallet_names(tmp_path, name):
    with pytest.raises(ks.KeystoreError):
        ks.wallet_path(tmp_path, name)


def test_list_skips_temp_files(wallet):
    (wallet.path.parent / ".main.json.123.tmp").write_text("{}")
    assert ks.list_wallets(wallet.path.parent) == [wallet.path]
