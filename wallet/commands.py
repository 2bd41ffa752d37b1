"""The wallet commands of ``pouw-wallet`` (keys, balances, payments, history, faucet).

Each ``cmd_*`` takes the CLI ``Context``, prints its answer (human text, or
JSON with ``--json``) and returns an exit code or raises ``CliError`` (or one
of the typed errors ``wallet.cli.main`` maps to exit codes). Job commands are
in ``wallet.job_commands``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from consensus.codec import encode_tx
from consensus.tx import compute_tx_id, make_transfer

from . import keystore as kstore
from .amounts import format_amount, parse_amount
from .bip39 import generate_mnemonic, validate_mnemonic
from .hd import HDWallet, parse_address
from .history import scan_history
from .rpc import RpcError
from .ui import EXIT_NODE, CliError, InsufficientFunds, Progress, ask_secret, read_secret_file, read_text_file

if TYPE_CHECKING:
    from .cli import Context

VERIFY_REJECTED = -26
INVALID_ADDRESS = -5
FAUCET_MAX_COINS = 1000
MAX_LABEL = 64


# --- creating wallets ------------------------------------------------------------------------


def _bip39_passphrase(ctx: Context) -> str:
    a = ctx.args
    if a.bip39_passphrase_file:
        return read_secret_file(a.bip39_passphrase_file, "BIP-39 passphrase")
    if a.bip39_passphrase:
        return ask_secret("BIP-39 passphrase (the '25th word'): ", confirm=True, what="BIP-39 passphrase",
                          flag="--bip39-passphrase-file")
    return ""


def _create(ctx: Context, mnemonic: str, bip39_pass: str, account: int, count: int) -> tuple[kstore.Keystore, HDWallet]:
    net = ctx.network
    hd = HDWallet(mnemonic, bip39_pass, account)
    addresses = [hd.address(i, net) for i in range(count)]
    passphrase = ctx.passphrase("New wallet passphrase: ", confirm=True)
    ks = kstore.create(ctx.wallet_dir, ctx.wallet_name, net.name, kstore.Secret(hd.mnemonic, bip39_pass), passphrase,
                       account=account, addresses=addresses)
    return ks, hd


def _refuse_existing(ctx: Context) -> None:
    if ctx.wallet_path.exists():
        raise CliError(f"a wallet named {ctx.wallet_name!r} exists already ({ctx.wallet_path}); "
                       "pick another name with --wallet NAME")


def cmd_new(ctx: Context) -> int:
    ctx.default_network("devnet")
    _refuse_existing(ctx)
    bip39_pass = _bip39_passphrase(ctx)
    mnemonic = generate_mnemonic(ctx.args.words)
    ks, _ = _create(ctx, mnemonic, bip39_pass, 0, 1)
    warning = (f"WRITE DOWN THESE {ctx.args.words} WORDS, in order, and keep them offline. They are the only way "
               "to restore this wallet, and anyone who sees them can spend its coins. They are not shown again"
               + (" (and you also need the BIP-39 passphrase)." if bip39_pass else "."))
    words = mnemonic.split()
    grid = "\n".join("  ".join(f"{i + j + 1:>2}. {words[i + j]:<9}" for j in range(4) if i + j < len(words))
                     for i in range(0, len(words), 4))
    ctx.emit({"wallet": ks.name, "file": str(ks.path), "network": ks.network, "address": ks.addresses[0],
              "mnemonic": mnemonic, "warning": warning},
             f"Created wallet {ks.name!r} ({ks.network}): {ks.path}\n"
             f"First address: {ks.addresses[0]}\n\n{warning}\n\n{grid}\n\n    {mnemonic}\n")
    return 0


def cmd_restore(ctx: Context) -> int:
    a = ctx.args
    ctx.default_network("devnet")
    _refuse_existing(ctx)
    if not 1 <= a.addresses <= 10_000:
        raise CliError(f"--addresses must be between 1 and 10000, found {a.addresses}")
    if not 0 <= a.account < 1 << 31:
        raise CliError(f"--account must be in [0, 2^31), found {a.account}")
    if a.mnemonic_file:
        phrase = read_text_file(a.mnemonic_file, "mnemonic")
    else:
        phrase = ask_secret("Mnemonic (the words separated by spaces): ", what="mnemonic", flag="--mnemonic-file")
    try:
        mnemonic = validate_mnemonic(phrase)
    except ValueError as e:
        raise CliError(f"invalid mnemonic: {e}. Check the words against your backup and run restore again") from None
    bip39_pass = _bip39_passphrase(ctx)
    ks, _ = _create(ctx, mnemonic, bip39_pass, a.account, a.addresses)
    ctx.emit({"wallet": ks.name, "file": str(ks.path), "network": ks.network, "account": ks.account,
              "addresses": ks.addresses},
             f"Restored wallet {ks.name!r} ({ks.network}): {ks.path}\n" + "\n".join(
                 f"  {i}: {addr}" for i, addr in enumerate(ks.addresses)))
    return 0


# --- looking at wallets ----------------------------------------------------------------------


def cmd_list(ctx: Context) -> int:
    rows = []
    for path in kstore.list_wallets(ctx.wallet_dir):
        try:
            ks = kstore.load(path)
            rows.append({"name": ks.name, "network": ks.network, "account": ks.account,
                         "addresses": ks.address_count, "first_address": ks.addresses[0] if ks.addresses else None,
                         "file": str(path), "error": None})
        except kstore.KeystoreError as e:
            rows.append({"name": path.stem, "network": None, "account": None, "addresses": None,
                         "first_address": None, "file": str(path), "error": str(e)})
    if not rows:
        human = f"no wallets in {ctx.wallet_dir}; create one with: pouw-wallet new"
    else:
        human = "\n".join(
            f"{'*' if r['name'] == ctx.wallet_name else ' '} {r['name']:<16} "
            + (f"{r['network']:<8} {r['addresses']} address(es)  {r['first_address']}" if r["error"] is None
               else f"UNREADABLE: {r['error']}") for r in rows)
    ctx.emit({"wallet_dir": str(ctx.wallet_dir), "wallets": rows}, human)
    return 0


def _unlock(ctx: Context, ks: kstore.Keystore) -> HDWallet:
    secret = ks.unlock(ctx.passphrase())
    hd = HDWallet(secret.mnemonic, secret.bip39_passphrase, ks.account)
    net = ctx.network
    if ks.addresses and hd.address(0, net) != ks.addresses[0]:
        raise CliError(f"{ks.path}: address 0 does not match the wallet's keys; the file was left untouched. "
                       "Restore the wallet from its mnemonic under another name")
    return hd


def cmd_address(ctx: Context) -> int:
    a = ctx.args
    ks = ctx.load_wallet()
    if a.label is not None and not a.new:
        raise CliError("--label goes with --new (it names the new address)")
    if a.label is not None and (len(a.label) > MAX_LABEL or not a.label.isprintable()):
        raise CliError(f"a label is at most {MAX_LABEL} printable characters (no tabs or line breaks), "
                       f"found {len(a.label)} characters")
    if a.new:
        hd = _unlock(ctx, ks)
        index = ks.address_count
        address = hd.address(index, ctx.network)
        ks.addresses.append(address)
        if a.label:
            ks.labels[index] = a.label
        ks.seal(kstore.Secret(hd.mnemonic, hd.passphrase), ks.unlocked_key)
        kstore.save(ks)
        ctx.emit({"index": index, "address": address, "label": ks.labels.get(index)}, address)
        return 0
    if not ks.addresses:
        raise CliError(f"wallet {ks.name!r} has no address yet; hand one out with: pouw-wallet address --new")
    rows = [{"index": i, "address": addr, "label": ks.labels.get(i)} for i, addr in enumerate(ks.addresses)]
    if a.all:
        ctx.emit(rows, "\n".join(f"{r['index']:>4}  {r['address']}  {printable(str(r['label'] or ''))}".rstrip()
                                  for r in rows))
    else:
        ctx.emit(rows[-1], rows[-1]["address"])
    return 0


def _accounts(ctx: Context, addresses: list[str]) -> list[dict]:
    return ctx.client.batch([("getaccount", [addr]) for addr in addresses])


def cmd_balance(ctx: Context) -> int:
    ks = ctx.load_wallet()
    _check_node_network(ctx)
    accounts = _accounts(ctx, ks.addresses)
    rows = [{"index": i, "address": addr, "label": ks.labels.get(i), "balance": acct["balance"],
             "balance_coins": format_amount(acct["balance"]), "nonce": acct["nonce"]}
            for i, (addr, acct) in enumerate(zip(ks.addresses, accounts, strict=True))]
    total = sum(r["balance"] for r in rows)
    height = accounts[0].get("height") if accounts else None
    ctx.emit({"wallet": ks.name, "network": ks.network, "height": height, "total": total,
              "total_coins": format_amount(total), "addresses": rows},
             "\n".join(balance_table(rows, total, height, ks.network)))
    return 0


LABEL_WIDTH = 24
"""Labels longer than this are cut (with an ellipsis) in text tables; ``--json`` has them whole."""


def printable(text: str, limit: int | None = None) -> str:
    """``text`` safe for a terminal: control characters escaped, cut to ``limit`` characters with an ellipsis.

    Memos come from whoever sent the transfer and labels from the wallet file: neither may move the
    cursor, clear the screen or break the table's lines.
    """
    safe = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    if limit is not None and len(safe) > limit:
        safe = safe[: limit - 1] + "\u2026"
    return safe


def balance_table(rows: list[dict], total: int, height: int | None, network: str) -> list[str]:
    """The text of ``balance``: a header line, one line per address (index, address, label, coins, base units)."""
    addr_w = max([len("address"), *(len(r["address"]) for r in rows)])
    labels = [printable(r["label"], LABEL_WIDTH) if r["label"] else "-" for r in rows]
    label_w = max([len("label"), *(len(label) for label in labels)])
    coins_w = max([len("coins"), *(len(r["balance_coins"]) for r in rows)])
    lines = [f"{'index':>5}  {'address':<{addr_w}}  {'label':<{label_w}}  {'coins':>{coins_w}}  base units"]
    lines += [f"{r['index']:>5}  {r['address']:<{addr_w}}  {label:<{label_w}}  {r['balance_coins']:>{coins_w}}  "
              f"{r['balance']}" for r, label in zip(rows, labels, strict=True)]
    lines.append(f"total {format_amount(total)} coins ({total} base units) at height {height}, {network}")
    return lines


# --- payments --------------------------------------------------------------------------------


def _check_node_network(ctx: Context) -> None:
    info = ctx.client.call("getblockchaininfo")
    if info.get("chain") != ctx.network.name:
        raise CliError(f"the node at {ctx.rpc_url} runs {info.get('chain')}, but wallet {ctx.wallet_name!r} is a "
                       f"{ctx.network.name} wallet; point --rpc-url at a {ctx.network.name} node")


def _rejected(e: RpcError) -> CliError:
    if e.code == VERIFY_REJECTED and ("balance" in e.message or "does not cover" in e.message):
        return InsufficientFunds(f"insufficient funds: the node rejected the transfer ({e.message}); nothing was "
                                 "sent. Check with: pouw-wallet balance (pending transfers count too)")
    if e.code in (VERIFY_REJECTED, INVALID_ADDRESS):
        return CliError(f"the node rejected the transfer: {e.message} (code {e.code}); nothing was sent")
    return CliError(f"the node answered with error {e.code}: {e.message}", EXIT_NODE)


def cmd_send(ctx: Context) -> int:
    a = ctx.args
    ks = ctx.load_wallet()
    net = ctx.network
    to = parse_address(a.to, net)
    amount = parse_amount(a.amount)
    fee = parse_amount(a.fee, allow_zero=True, what="fee")
    memo = a.memo.encode("utf-8")
    if len(memo) > net.max_memo:
        raise CliError(f"the memo is {len(memo)} bytes; at most {net.max_memo} are allowed")
    need = amount + fee
    if need > (1 << 64) - 1:
        raise CliError("amount + fee exceed the largest possible amount")
    if a.from_index is not None and not 0 <= a.from_index < ks.address_count:
        raise CliError(f"--from-index {a.from_index} is not handed out yet (indices 0..{ks.address_count - 1}); "
                       "see: pouw-wallet address --all")
    _check_node_network(ctx)
    indices = [a.from_index] if a.from_index is not None else list(range(ks.address_count))
    accounts = _accounts(ctx, [ks.addresses[i] for i in indices])
    index = next((i for i, acct in zip(indices, accounts, strict=True) if acct["balance"] >= need), None)
    if index is None:
        best_i, best = max(zip(indices, accounts, strict=True), key=lambda t: t[1]["balance"],
                           default=(0, {"balance": 0}))
        where = (f"address {best_i} holds {format_amount(best['balance'])}" if a.from_index is not None
                 else f"the largest balance of one address is {format_amount(best['balance'])} (index {best_i})")
        hint = " Get test coins with: pouw-wallet faucet" if net.name in ("devnet", "regtest") else ""
        raise InsufficientFunds(f"insufficient funds: sending {format_amount(amount)} + fee {format_amount(fee)} "
                                f"needs {format_amount(need)} coins on one address, but {where}; nothing was sent."
                                + hint)
    hd = _unlock(ctx, ks)
    key = hd.keypair(index)
    sender = ks.addresses[index]
    if hd.address(index, net) != sender:
        raise CliError(f"{ks.path}: address {index} does not match the wallet's keys; nothing was sent")
    nonce = int(ctx.client.call("getaccount", sender)["next_nonce"])
    tx = make_transfer(key, net.chain_id, nonce, to, amount, fee, memo)
    try:
        txid = ctx.client.call("sendrawtransaction", encode_tx(tx).hex())
    except RpcError as e:
        raise _rejected(e) from None
    if txid != compute_tx_id(tx).hex():
        raise CliError(f"the node answered txid {txid}, expected {compute_tx_id(tx).hex()}", EXIT_NODE)
    out = {"txid": txid, "from": sender, "from_index": index, "to": a.to.strip(), "amount": amount,
           "amount_coins": format_amount(amount), "fee": fee, "nonce": nonce, "confirmations": 0}
    if a.wait:
        out.update(wait_confirmed(ctx, txid, a.timeout))
    human = (f"{txid}" if not a.wait else f"{txid} (confirmed in block {out.get('blockheight')})")
    ctx.emit(out, human)
    return 0


def wait_confirmed(ctx: Context, txid: str, timeout: float) -> dict:
    """Poll ``gettransaction`` until the transfer has 1 confirmation; progress on stderr."""
    progress = Progress()
    deadline = time.monotonic() + timeout
    while True:
        try:
            tx = ctx.client.call("gettransaction", txid)
        except RpcError as e:
            if e.code == INVALID_ADDRESS:
                progress.done()
                raise CliError(f"transaction {txid} is no longer known to the node (dropped from the mempool?); "
                               "check your balance and send again", EXIT_NODE) from None
            raise
        if tx.get("confirmations", 0) >= 1:
            progress.done(f"confirmed in block {tx.get('blockheight')} ({tx.get('blockhash')})")
            return {"confirmations": tx["confirmations"], "blockhash": tx.get("blockhash"),
                    "blockheight": tx.get("blockheight")}
        if time.monotonic() > deadline:
            progress.done()
            raise CliError(f"transaction {txid} was sent but not confirmed within {timeout:g} s; it may still be "
                           "mined: check later with pouw-wallet history", EXIT_NODE)
        progress.update(f"waiting for transaction {txid[:16]}... to be mined (in the mempool)")
        time.sleep(0.5)


def faucet_target(ctx: Context, ks: kstore.Keystore) -> tuple[str, int | None]:
    """The address the faucet pays and its index in the wallet (``None``: not one of the wallet's).

    ``--to ADDRESS`` pays that address (any address of the wallet's network); ``--index I`` pays
    address I of the wallet; by default address 0, the wallet's primary address. Address 0 and not
    the newest one, because it is the one that stays put: ``new`` and ``restore`` print it as the
    first address, ``balance`` lists it first, and handing out a new address (``address --new``)
    does not silently move where the faucet's coins go.
    """
    a = ctx.args
    if a.to is not None:
        to = a.to.strip()
        parse_address(to, ctx.network)  # AddressError (exit 1) before the node is asked
        return to, ks.addresses.index(to) if to in ks.addresses else None
    if not ks.addresses:
        raise CliError("the wallet has no address yet; hand one out with: pouw-wallet address --new")
    index = 0 if a.index is None else a.index
    if not 0 <= index < ks.address_count:
        raise CliError(f"--index {index} is not handed out yet (indices 0..{ks.address_count - 1}); "
                       "see: pouw-wallet address --all")
    return ks.addresses[index], index


def cmd_faucet(ctx: Context) -> int:
    a = ctx.args
    ks = ctx.load_wallet()
    net = ctx.network
    if net.name not in ("devnet", "regtest"):
        raise CliError(f"the faucet exists on devnet and regtest only; wallet {ks.name!r} is a {net.name} wallet")
    amount = parse_amount(a.amount)
    if amount > FAUCET_MAX_COINS * 10**8:
        raise CliError(f"the faucet pays at most {FAUCET_MAX_COINS} coins at a time, asked for {a.amount}")
    to, index = faucet_target(ctx, ks)
    _check_node_network(ctx)
    answer = ctx.client.call("faucet", to, amount)
    out = {"txid": answer["txid"], "to": to, "index": index, "label": ks.labels.get(index) if index is not None
           else None, "amount": amount, "amount_coins": format_amount(amount), "from": answer.get("from"),
           "confirmations": 0}
    if a.wait:
        out.update(wait_confirmed(ctx, answer["txid"], a.timeout))
    if index is None:
        whose = "not an address of this wallet"
    else:
        label = f", label {printable(out['label'], LABEL_WIDTH)}" if out["label"] else ""
        whose = f"address {index} of wallet {ks.name!r}{label}"
    state = (f"confirmed in block {out.get('blockheight')}" if a.wait
             else "in the mempool until a block includes it; add --wait to wait for that")
    ctx.emit(out, f"faucet: {format_amount(amount)} coins to {to} ({whose})\ntxid {answer['txid']} ({state})")
    return 0


def cmd_history(ctx: Context) -> int:
    a = ctx.args
    if a.blocks < 1:
        raise CliError(f"--blocks must be at least 1, found {a.blocks}")
    ks = ctx.load_wallet()
    _check_node_network(ctx)
    progress = Progress()

    def report(done: int, total: int) -> None:
        if total > 200:  # a short scan needs no progress line
            progress.update(f"scanned {done}/{total} blocks")

    entries, tip, low = scan_history(ctx.client, ks.addresses, a.blocks, report)
    if tip - low + 1 > 200:
        progress.done()
    lines = history_table(entries)
    lines.append(f"{len(entries)} transaction(s) in blocks {low}..{tip}"
                 + (f"; older ones: pouw-wallet history --blocks {tip + 1}" if low > 0 else ""))
    ctx.emit({"wallet": ks.name, "tip": tip, "from_height": low, "transactions": entries}, "\n".join(lines))
    return 0


def _memo_cell(entry: dict) -> str:
    """A transfer's memo for the text table: its text (escaped), ``hex:...`` when not UTF-8, ``-`` when none."""
    memo_hex = entry.get("memo") or ""
    if not memo_hex:
        return "-"
    text = entry.get("memo_text")
    return printable(text) if text is not None else f"hex:{memo_hex}"


def history_table(entries: list[dict]) -> list[str]:
    """The text of ``history``: a header line, then one line per transaction, newest first.

    ``amount`` is the change of the wallet's balance (negative for a send: amount plus fee; only the
    fee for a transfer between two of its addresses). The memo comes last: it is the one column of
    free length (at most 256 bytes, as the sender wrote it, control characters escaped).
    """
    if not entries:
        return []
    amounts = [format_amount(e["delta"]) for e in entries]
    amount_w = max([len("amount"), *(len(x) for x in amounts)])
    parties = [e["counterparty"] or "(coinbase)" for e in entries]
    party_w = max([len("counterparty"), *(len(x) for x in parties)])
    lines = [f"{'height':>7}  {'kind':<7}  {'amount':>{amount_w}}  {'counterparty':<{party_w}}  "
             f"{'txid':<64}  memo"]
    lines += [f"{e['height']:>7}  {e['direction']:<7}  {amount:>{amount_w}}  {party:<{party_w}}  {e['txid']:<64}  "
              f"{_memo_cell(e)}" for e, amount, party in zip(entries, amounts, parties, strict=True)]
    return lines
