"""``pouw-wallet`` in-process: exit codes and messages without a real node (a fake one where needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from consensus.codec import decode_tx
from consensus.keys import DEVNET_MNEMONIC
from consensus.networks import DEVNET
from tests.unit.wallet.conftest import FakeError
from wallet.cli import main
from wallet.hd import HDWallet

OTHER = HDWallet(DEVNET_MNEMONIC).address(5, DEVNET)
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def env(tmp_path, monkeypatch, fast_scrypt):
    return _environment(tmp_path, monkeypatch)


def _environment(tmp_path, monkeypatch):
    for var in ("POUW_WALLET_DIR", "POUW_WALLET", "POUW_RPC_URL", "POUW_NETWORK", "POUW_RPC_USER",
                "POUW_RPC_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "pass").write_text("s3cret passphrase\n")
    (tmp_path / "mnemonic").write_text(DEVNET_MNEMONIC + "\n")
    return tmp_path


def run(env, *argv, url=None):
    args = ["--wallet-dir", str(env / "wallets"), "--passphrase-file", str(env / "pass")]
    if url:
        args += ["--rpc-url", url]
    return main([*args, *argv])


def restore(env):
    assert run(env, "restore", "--mnemonic-file", str(env / "mnemonic")) == 0


def test_new_prints_mnemonic_once_and_writes_a_keystore(env, capsys):
    assert run(env, "--json", "new", "--words", "12") == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["mnemonic"].split()) == 12 and "WRITE DOWN" in out["warning"]
    assert out["address"].startswith("pdev1")
    assert out["mnemonic"] not in (env / "wallets" / "default.json").read_text()
    assert run(env, "new") == 1
    assert "exists already" in capsys.readouterr().err


def test_new_wallets_use_the_default_scrypt_cost(tmp_path, monkeypatch, capsys):
    env = _environment(tmp_path, monkeypatch)  # without fast_scrypt: the real default
    restore(env)
    params = json.loads((env / "wallets" / "default.json").read_text())["crypto"]["kdfparams"]
    assert (params["n"], params["r"], params["p"]) == (1 << 17, 8, 1)
    capsys.readouterr()
    assert run(env, "address", "--new") == 0  # unlocks with the parameters read from the file
    assert capsys.readouterr().out.strip().endswith(HDWallet(DEVNET_MNEMONIC).address(1, DEVNET))


def test_restore_devnet_key(env, capsys):
    restore(env)
    capsys.readouterr()
    assert run(env, "address") == 0
    assert capsys.readouterr().out.strip() == HDWallet(DEVNET_MNEMONIC).address(0, DEVNET)


def test_restore_rejects_bad_mnemonic_naming_the_word(env, capsys):
    (env / "mnemonic").write_text(DEVNET_MNEMONIC.replace("about", "abuot"))
    assert run(env, "restore", "--mnemonic-file", str(env / "mnemonic")) == 1
    err = capsys.readouterr().err
    assert "'abuot'" in err and "did you mean 'about'" in err
    assert not (env / "wallets" / "default.json").exists()


def test_address_new_and_wrong_passphrase(env, capsys):
    restore(env)
    assert run(env, "address", "--new", "--label", "second") == 0
    assert capsys.readouterr().out.strip().endswith(HDWallet(DEVNET_MNEMONIC).address(1, DEVNET))
    path = env / "wallets" / "default.json"
    before = path.read_bytes()
    (env / "pass").write_text("wrong\n")
    assert run(env, "address", "--new") == 1
    assert "wrong passphrase" in capsys.readouterr().err
    assert path.read_bytes() == before


def test_corrupted_keystore_exit_1_file_untouched(env, capsys):
    restore(env)
    path = env / "wallets" / "default.json"
    path.write_bytes(path.read_bytes()[:100])
    before = path.read_bytes()
    assert run(env, "balance") == 1
    err = capsys.readouterr().err
    assert str(path) in err and "truncated" in err
    assert path.read_bytes() == before


def test_node_down_exit_2_with_hint(env, capsys, dead_url):
    restore(env)
    assert run(env, "balance", url=dead_url) == 2
    err = capsys.readouterr().err
    assert "is pouwd running? start it with: pouwd --network devnet" in err


@pytest.mark.parametrize("argv,message", [
    (["send", OTHER, "1.000000001"], "more than 8 decimals"),
    (["send", OTHER, "-1"], "plain decimal"),
    (["send", OTHER[:-1] + ("q" if OTHER[-1] != "q" else "p"), "1"], "checksum"),
    (["send", OTHER.replace("pdev", "preg", 1), "1"], "devnet addresses start with 'pdev1'"),
    (["send", OTHER, "1", "--memo", "x" * 257], "memo"),
    (["faucet", "5000"], "at most 1000"),
])
def test_user_errors_exit_1_before_contacting_the_node(env, capsys, dead_url, argv, message):
    restore(env)
    assert run(env, *argv, url=dead_url) == 1
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["send", OTHER, "12345678901234567890123.000000001"],
     "amount '12345678901234567890123.000000001' has more than 8 decimals"),
    (["send", OTHER, "12345678901234567890123"], "is too large"),
    (["send", OTHER, "184467440737.09551616"], "is too large"),
    (["send", OTHER, "NaN"], "NaN and Infinity"),
    (["send", OTHER, "Infinity"], "NaN and Infinity"),
    (["send", OTHER, "1e3"], "exponent notation"),
    (["send", OTHER, "-0.5"], "is negative"),
    (["send", OTHER, ""], "amount is empty"),
    (["send", OTHER, "1", "--fee", "12345678901234567890123.000000001"], "fee '12345678901234567890123.000000001'"),
    (["send", OTHER, "1", "--fee", "-1"], "fee '-1' is negative"),
    (["faucet", "12345678901234567890123.000000001"], "has more than 8 decimals"),
    (["faucet", "inf"], "NaN and Infinity"),
])
def test_bad_amounts_exit_1_without_traceback(env, capsys, dead_url, argv, message):
    restore(env)
    capsys.readouterr()
    assert run(env, *argv, url=dead_url) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert run(env, "--json", *argv, url=dead_url) == 1
    assert message in json.loads(capsys.readouterr().out)["error"]["message"]


def test_bad_amount_from_the_command_line_entry(env):
    """The installed entry point (``python -m wallet``): a clean message and exit 1, no traceback."""
    restore(env)
    r = subprocess.run([sys.executable, "-m", "wallet", "--wallet-dir", str(env / "wallets"), "--rpc-url",
                        "http://127.0.0.1:9/", "send", OTHER, "12345678901234567890123.000000001"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT, env={**os.environ, "HOME": str(env)})
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and "InvalidOperation" not in r.stderr
    assert r.stderr.startswith("error: amount '12345678901234567890123.000000001' has more than 8 decimals")


def test_json_errors(env, capsys, dead_url):
    restore(env)
    capsys.readouterr()
    assert run(env, "--json", "balance", url=dead_url) == 2
    assert json.loads(capsys.readouterr().out)["error"]["exit_code"] == 2


def _chain(fake_node, balance):
    fake_node.handlers["getblockchaininfo"] = lambda p: {"chain": "devnet"}
    fake_node.handlers["getaccount"] = lambda p: {"address": p[0], "balance": balance, "nonce": 3, "next_nonce": 4,
                                                  "height": 9}


def test_send_builds_a_signed_transfer(env, capsys, fake_node):
    restore(env)
    _chain(fake_node, 10**12)
    sent = []

    def accept(p):
        sent.append(decode_tx(bytes.fromhex(p[0])))
        from consensus.tx import compute_tx_id
        return compute_tx_id(sent[-1]).hex()
    fake_node.handlers["sendrawtransaction"] = accept
    capsys.readouterr()
    assert run(env, "--json", "send", OTHER, "1.5", "--fee", "0.0001", "--memo", "hi", url=fake_node.url) == 0
    out = json.loads(capsys.readouterr().out)
    body = sent[0].body
    assert (body.amount, body.fee, body.nonce, body.memo, body.chain_id) == (150_000_000, 10_000, 4, b"hi", 1337)
    assert out["amount"] == 150_000_000 and out["nonce"] == 4


def test_insufficient_funds_checked_before_sending(env, capsys, fake_node):
    restore(env)
    _chain(fake_node, 100)
    assert run(env, "send", OTHER, "1", url=fake_node.url) == 1
    assert "insufficient funds" in capsys.readouterr().err
    assert "sendrawtransaction" not in [m for m, _ in fake_node.calls]


def test_node_insufficient_balance_rejection_maps_to_exit_1(env, capsys, fake_node):
    restore(env)
    _chain(fake_node, 10**12)

    def reject(p):
        raise FakeError(-26, "tx-balance: balance 5 does not cover pending transfers (3) plus amount + fee (9)")
    fake_node.handlers["sendrawtransaction"] = reject
    assert run(env, "send", OTHER, "1", url=fake_node.url) == 1
    assert "insufficient funds" in capsys.readouterr().err


def test_other_rpc_error_exit_2(env, capsys, fake_node):
    restore(env)

    def broken(p):
        raise FakeError(-32603, "internal error")
    fake_node.handlers["getblockchaininfo"] = lambda p: {"chain": "devnet"}
    fake_node.handlers["getaccount"] = broken
    assert run(env, "balance", url=fake_node.url) == 2
    assert "-32603" in capsys.readouterr().err


def test_wrong_network_node_is_refused(env, capsys, fake_node):
    restore(env)
    fake_node.handlers["getblockchaininfo"] = lambda p: {"chain": "regtest"}
    assert run(env, "faucet", url=fake_node.url) == 1
    assert "runs regtest" in capsys.readouterr().err


def test_usage_error_exit_1(env, capsys):
    with pytest.raises(SystemExit) as exc:
        run(env, "send")
    assert exc.value.code == 1
