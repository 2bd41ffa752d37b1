"""The encrypted keystore: round trip, wrong passphrase, damaged files left untouched, atomic writes."""

from __future__ import annotations

import json
import os
import stat

import pytest

from consensus.keys import DEVNET_MNEMONIC
from wallet import keystore as ks
from wallet.keystore import KeystoreCorrupt, Secret, WalletExists, WalletNotFound, WrongPassphrase

FAST_N = 1 << 4  # scrypt cost lowered for tests only (the shipped default is 2^15)
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


def test_default_scrypt_cost_is_2_15(tmp_path):
    w = ks.create(tmp_path, "w", "devnet", Secret(DEVNET_MNEMONIC), "pw")
    assert w.crypto["kdfparams"] == {**w.crypto["kdfparams"], "n": 1 << 15, "r": 8, "p": 1}


@pytest.mark.parametrize("name", ["", "../x", ".hidden", "a/b", "x" * 65])
def test_bad_wallet_names(tmp_path, name):
    with pytest.raises(ks.KeystoreError):
        ks.wallet_path(tmp_path, name)


def test_list_skips_temp_files(wallet):
    (wallet.path.parent / ".main.json.123.tmp").write_text("{}")
    assert ks.list_wallets(wallet.path.parent) == [wallet.path]
