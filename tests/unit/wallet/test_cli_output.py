"""What a newcomer reads: faucet says where and how much, balance and history have headers, labels and memos,
progress never freezes without a terminal, and bad ``--out`` / ``--label`` values are refused up front.

Against the fake JSON-RPC node of conftest.py (the real node: tests/functional/test_wallet.py).
"""

from __future__ import annotations

import io
import json

import pytest

from consensus.keys import DEVNET_MNEMONIC
from consensus.networks import DEVNET
from tests.unit.wallet.test_cli import OTHER, _environment, restore, run
from wallet.commands import balance_table, history_table, printable
from wallet.hd import HDWallet
from wallet.ui import Progress

ADDR = [HDWallet(DEVNET_MNEMONIC).address(i, DEVNET) for i in range(3)]
TXID = "ab" * 32


@pytest.fixture
def env(tmp_path, monkeypatch, fast_scrypt):
    return _environment(tmp_path, monkeypatch)


@pytest.fixture
def faucet_node(fake_node):
    paid = []
    fake_node.handlers["getblockchaininfo"] = lambda p: {"chain": "devnet"}

    def faucet(p):
        paid.append((p[0], p[1]))
        return {"txid": TXID, "amount": p[1], "from": ADDR[2]}
    fake_node.handlers["faucet"] = faucet
    fake_node.paid = paid
    return fake_node


def test_faucet_pays_address_0_by_default_even_after_address_new(env, capsys, faucet_node):
    restore(env)
    assert run(env, "address", "--new", "--label", "savings") == 0
    capsys.readouterr()
    assert run(env, "faucet", "25", url=faucet_node.url) == 0
    out = capsys.readouterr().out
    assert faucet_node.paid == [(ADDR[0], 25 * 10**8)]
    assert f"25.00000000 coins to {ADDR[0]} (address 0 of wallet 'default')" in out
    assert f"txid {TXID}" in out and "--wait" in out  # not confirmed yet: says so and how to wait


def test_faucet_index_and_label(env, capsys, faucet_node):
    restore(env)
    assert run(env, "address", "--new", "--label", "savings") == 0
    capsys.readouterr()
    assert run(env, "--json", "faucet", "--index", "1", url=faucet_node.url) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["to"], out["index"], out["label"], out["amount"]) == (ADDR[1], 1, "savings", 10 * 10**8)
    assert run(env, "faucet", "--index", "1", url=faucet_node.url) == 0
    assert "(address 1 of wallet 'default', label savings)" in capsys.readouterr().out
    assert run(env, "faucet", "--index", "2", url=faucet_node.url) == 1
    assert "--index 2 is not handed out yet (indices 0..1)" in capsys.readouterr().err


def test_faucet_to_any_address_of_the_network(env, capsys, faucet_node):
    restore(env)
    capsys.readouterr()
    assert run(env, "faucet", "1.5", "--to", OTHER, url=faucet_node.url) == 0
    assert faucet_node.paid == [(OTHER, 150_000_000)]
    assert f"1.50000000 coins to {OTHER} (not an address of this wallet)" in capsys.readouterr().out
    assert run(env, "--json", "faucet", "--to", ADDR[0], url=faucet_node.url) == 0
    assert json.loads(capsys.readouterr().out)["index"] == 0


def test_faucet_bad_to_exit_1_before_the_node(env, capsys, dead_url):
    restore(env)
    capsys.readouterr()
    assert run(env, "faucet", "--to", OTHER.replace("pdev", "preg", 1), url=dead_url) == 1
    assert "devnet addresses start with 'pdev1'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # one destination only
        run(env, "faucet", "--to", OTHER, "--index", "0", url=dead_url)
    assert exc.value.code == 1 and "not allowed with argument" in capsys.readouterr().err


def test_balance_has_headers_and_labels(env, capsys, fake_node):
    restore(env)
    assert run(env, "address", "--new", "--label", "savings") == 0
    fake_node.handlers["getblockchaininfo"] = lambda p: {"chain": "devnet"}
    fake_node.handlers["getaccount"] = lambda p: {"address": p[0], "balance": 150_000_000 if p[0] == ADDR[1] else 0,
                                                  "nonce": 0, "next_nonce": 0, "height": 7}
    capsys.readouterr()
    assert run(env, "balance", url=fake_node.url) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["index", "address", "label", "coins", "base", "units"]
    assert lines[1].split() == ["0", ADDR[0], "-", "0.00000000", "0"]
    assert lines[2].split() == ["1", ADDR[1], "savings", "1.50000000", "150000000"]
    assert lines[3] == "total 1.50000000 coins (150000000 base units) at height 7, devnet"
    # Columns line up: each value starts where its header does.
    assert lines[2].index("savings") == lines[0].index("label")
    assert lines[2].index(ADDR[1]) == lines[0].index("address")


def test_balance_table_cuts_long_labels_and_escapes_control_characters():
    rows = [{"index": 0, "address": ADDR[0], "label": "x" * 40, "balance": 1, "balance_coins": "0.00000001"},
            {"index": 1, "address": ADDR[1], "label": "bad\x1b[2Jlabel", "balance": 0, "balance_coins": "0.00000000"}]
    lines = balance_table(rows, 1, 3, "devnet")
    assert "x" * 23 + "\u2026" in lines[1] and "x" * 24 not in lines[1]
    assert "\x1b" not in "\n".join(lines) and "bad\\x1b[2Jlabel" in lines[2]
    assert printable("tab\there\nnew") == "tab\\there\\nnew"


def _history_node(fake_node, memo: bytes):
    blocks = {
        2: {"height": 2, "hash": "22" * 32, "time": 1_700_000_200, "tx": [
            {"type": "transfer", "txid": "cd" * 32, "from": OTHER, "to": ADDR[0], "amount": 150_000_000, "fee": 10,
             "memo": memo.hex()}]},
        1: {"height": 1, "hash": "11" * 32, "time": 1_700_000_100, "tx": [
            {"type": "transfer", "txid": "ef" * 32, "from": ADDR[0], "to": OTHER, "amount": 100, "fee": 1000,
             "memo": ""}]},
        0: {"height": 0, "hash": "00" * 32, "time": 1_700_000_000, "tx": []},
    }
    fake_node.handlers["getblockchaininfo"] = lambda p: {"chain": "devnet"}
    fake_node.handlers["getblockcount"] = lambda p: 2
    fake_node.handlers["getblockhash"] = lambda p: blocks[p[0]]["hash"]
    fake_node.handlers["getblock"] = lambda p: next(b for b in blocks.values() if b["hash"] == p[0])


def test_history_shows_headers_and_memos(env, capsys, fake_node):
    restore(env)
    _history_node(fake_node, b"thanks for lunch")
    capsys.readouterr()
    assert run(env, "history", url=fake_node.url) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["height", "kind", "amount", "counterparty", "txid", "memo"]
    assert lines[1].split() == ["2", "receive", "1.50000000", OTHER, "cd" * 32, "thanks", "for", "lunch"]
    assert lines[2].split() == ["1", "send", "-0.00001100", OTHER, "ef" * 32, "-"]
    assert lines[3] == "2 transaction(s) in blocks 0..2"
    assert lines[1].index("thanks") == lines[0].index("memo")


def test_history_memo_from_a_stranger_cannot_drive_the_terminal(env, capsys, fake_node):
    restore(env)
    _history_node(fake_node, b"\x1b[2J\x1b]0;pwned\x07\nfake line")
    capsys.readouterr()
    assert run(env, "history", url=fake_node.url) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b[2J" in out and len(out.splitlines()) == 4  # the memo's line break did not make a line
    lines = history_table([{"height": 5, "direction": "receive", "delta": 1, "counterparty": OTHER, "txid": TXID,
                            "memo": "ff00", "memo_text": None}])
    assert lines[1].endswith("hex:ff00")  # not UTF-8: shown as hex


def test_history_table_of_nothing_is_empty():
    assert history_table([]) == []


def test_address_label_is_bounded(env, capsys):
    restore(env)
    capsys.readouterr()
    assert run(env, "address", "--new", "--label", "x" * 65) == 1
    assert "at most 64 printable characters" in capsys.readouterr().err
    assert run(env, "address", "--new", "--label", "two\nlines") == 1
    assert run(env, "address", "--all") == 0
    assert capsys.readouterr().out.splitlines() == [f"   0  {ADDR[0]}"]  # nothing was added


@pytest.mark.parametrize("out_arg,message", [("{tmp}/missing/C.npy", "does not exist"), ("{tmp}", "it is a folder")])
def test_job_out_in_a_missing_folder_is_refused_before_uploading(env, capsys, dead_url, out_arg, message):
    import numpy as np
    np.save(env / "A.npy", np.ones((4, 8), np.int8))
    np.save(env / "B.npy", np.ones((8, 2), np.int8))
    restore(env)
    capsys.readouterr()
    out = out_arg.format(tmp=env)
    assert run(env, "job", "submit", str(env / "A.npy"), str(env / "B.npy"), "--out", out, url=dead_url) == 1
    assert message in capsys.readouterr().err  # exit 1 (a user error), not 2: the node was not contacted
    assert run(env, "job", "result", "ab" * 32, "--out", out, url=dead_url) == 1
    assert message in capsys.readouterr().err


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_without_a_terminal_prints_a_line_on_change_and_every_interval():
    clock, stream = FakeClock(), io.StringIO()
    p = Progress(stream=stream, interval=10, clock=clock)
    for t in range(0, 26):  # the same status polled every second for 25 s
        clock.now = 100.0 + t
        p.update("job 1234... queued (waiting for a miner)")
    clock.now = 127.0
    p.update("job 1234... mining (being mined)")
    clock.now = 128.0
    p.done("job 1234... done")
    assert stream.getvalue().splitlines() == [
        "job 1234... queued (waiting for a miner) (0 s)",
        "job 1234... queued (waiting for a miner) (still, 10 s)",
        "job 1234... queued (waiting for a miner) (still, 20 s)",
        "job 1234... mining (being mined) (27 s)",
        "job 1234... done (after 28 s)",
    ]


def test_progress_on_a_terminal_rewrites_one_line_with_a_growing_counter():
    clock, stream = FakeClock(), TtyStream()
    p = Progress(stream=stream, clock=clock)
    for t in (0, 1, 2):
        clock.now = 100.0 + t
        p.update("waiting")
    p.done("finished")
    text = stream.getvalue()
    assert "\n" not in text.rsplit("\r", 1)[0]  # no new line until done
    assert [f"waiting ({t} s)" in text for t in (0, 1, 2)] == [True, True, True]
    assert text.endswith("\rfinished (after 2 s)\n")


def test_progress_done_without_updates_prints_just_the_text():
    stream = io.StringIO()
    p = Progress(stream=stream, clock=FakeClock())
    p.done("confirmed")
    assert stream.getvalue() == "confirmed\n"
    quiet = io.StringIO()
    Progress(enabled=False, stream=quiet).update("x")
    assert quiet.getvalue() == ""
