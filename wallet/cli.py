"""``pouw-wallet``: keys, payments and MatMul jobs from the terminal.

    pouw-wallet new                               # a new wallet; shows its 24 words once
    pouw-wallet restore                           # from a mnemonic (hidden prompt or --mnemonic-file)
    pouw-wallet address [--new] | balance | history [--blocks N]
    pouw-wallet send pdev1... 1.5 [--fee 0.00001] [--memo TEXT] [--wait]
    pouw-wallet faucet [10] [--to ADDRESS | --index I]   # devnet and regtest; default: address 0
    pouw-wallet job submit A.npy B.npy [--wait] [--out C.npy]
    pouw-wallet job status ID | job result ID --out C.npy [--a A.npy --b B.npy] | job list
    pouw-wallet job submit A.npy B.npy --reward COINS [--deposit C] [--bond C] [--deadline BLOCKS]
    pouw-wallet job result OFFER --out C.npy [--auto] [--wait] [--margin BLOCKS]
    pouw-wallet job claim OFFER --product C.npy | job accept|reject|settle|refund OFFER
    pouw-wallet job fraud OFFER --product CLAIMED_C.npy --a A.npy --b B.npy

Options common to every command (before or after it): ``--wallet-dir D``
(env ``POUW_WALLET_DIR``; default ``$XDG_DATA_HOME/pouw/wallets`` or
``~/.local/share/pouw/wallets``), ``--wallet NAME`` (env ``POUW_WALLET``,
default ``default``), ``--network`` (for ``new``/``restore``; other commands
use the wallet's), ``--rpc-url`` (env ``POUW_RPC_URL``; default
``http://127.0.0.1:<network's port>/``), ``--rpc-cookie-file`` or
``--rpc-user``/``--rpc-password`` (default: the cookie of a node in
``~/.pouw/<network>``, when there), ``--passphrase-file FILE`` (scripts;
otherwise a hidden prompt), ``--json``.

Exit status: 0 success; 1 user error (bad address or amount, wrong
passphrase, insufficient funds, a product failing its check); 2 node
unreachable or RPC error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from consensus.errors import AddressError
from consensus.networks import NETWORKS, NetworkParams

from . import keystore as kstore
from .amounts import AmountError
from .bip39 import MnemonicError
from .rpc import NodeUnreachable, RpcAuthError, RpcClient, RpcError, default_url, read_cookie
from .ui import EXIT_NODE, EXIT_OK, EXIT_USER, CliError

DEFAULT_WALLET = "default"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # usage errors exit 1: 2 means "node unreachable"
        self.print_usage(sys.stderr)
        self.exit(EXIT_USER, f"{self.prog}: error: {message}\n")


def _common(p: argparse.ArgumentParser, top: bool) -> None:
    """The options every command takes; on subcommands they default to "not given" (the top level's value)."""
    def d(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    g = p.add_argument_group("common options")
    g.add_argument("--wallet-dir", default=d(None), help="directory of wallet files (env POUW_WALLET_DIR)")
    g.add_argument("--wallet", default=d(None), metavar="NAME", help="wallet name (env POUW_WALLET, default 'default')")
    g.add_argument("--network", choices=list(NETWORKS), default=d(None),
                   help="network of a new wallet (default devnet); others use the wallet's")
    g.add_argument("--rpc-url", default=d(None), help="node JSON-RPC URL (env POUW_RPC_URL)")
    g.add_argument("--rpc-cookie-file", default=d(None), metavar="FILE", help="the node's <datadir>/.cookie")
    g.add_argument("--rpc-user", default=d(None), help="RPC user (env POUW_RPC_USER)")
    g.add_argument("--rpc-password", default=d(None), help="RPC password (env POUW_RPC_PASSWORD)")
    g.add_argument("--rpc-timeout", type=float, default=d(60.0), metavar="S", help="seconds per RPC call")
    g.add_argument("--passphrase-file", default=d(None), metavar="FILE",
                   help="read the wallet passphrase from FILE's first line instead of a prompt")
    g.add_argument("--json", action="store_true", default=d(False), help="machine-readable output on stdout")


def build_parser() -> argparse.ArgumentParser:
    from . import commands as c
    from . import job_commands as j

    parser = _Parser(prog="pouw-wallet", description="Keys, payments and MatMul jobs for a pouw node.",
                     epilog="Exit status: 0 success, 1 user error, 2 node unreachable or RPC error.")
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser, required=True)

    def command(name: str, func, help: str, parent=sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help, description=help)
        _common(p, top=False)
        p.set_defaults(func=func)
        return p

    p = command("new", c.cmd_new, "create a wallet with a new mnemonic (shown once)")
    p.add_argument("--words", type=int, choices=(12, 24), default=24, help="mnemonic length (default 24)")
    _bip39_opts(p)
    p = command("restore", c.cmd_restore, "restore a wallet from its mnemonic")
    p.add_argument("--mnemonic-file", metavar="FILE", help="read the words from FILE instead of a hidden prompt")
    p.add_argument("--addresses", type=int, default=1, metavar="N", help="addresses to hand out at once (default 1)")
    p.add_argument("--account", type=int, default=0, help="BIP-44 account (default 0)")
    _bip39_opts(p)
    command("list", c.cmd_list, "list the wallets in the wallet directory")
    p = command("address", c.cmd_address, "show the receiving address, or hand out a new one")
    p.add_argument("--new", action="store_true", help="derive the next address (asks for the passphrase)")
    p.add_argument("--label", help="label of the new address")
    p.add_argument("--all", action="store_true", help="show every address handed out")
    p = command("balance", c.cmd_balance, "balances of the wallet's addresses")
    p = command("send", c.cmd_send, "send coins")
    p.add_argument("to", help="destination address")
    p.add_argument("amount", help="coins, as a decimal (e.g. 1.5); at most 8 decimals")
    p.add_argument("--fee", default="0.00001", help="fee in coins (default 0.00001)")
    p.add_argument("--memo", default="", help="memo text (UTF-8, at most 256 bytes)")
    p.add_argument("--from-index", type=int, metavar="I", help="pay from address I (default: the first that can)")
    _wait_opts(p, "1 confirmation")
    p = command("history", c.cmd_history, "transfers in and out of the wallet")
    p.add_argument("--blocks", type=int, default=1000, metavar="N", help="scan the last N blocks (default 1000)")
    p = command("faucet", c.cmd_faucet, "get devnet/regtest coins from the node's faucet (it says where and how much)")
    p.add_argument("amount", nargs="?", default="10", help="coins (default 10, at most 1000)")
    to = p.add_mutually_exclusive_group()
    to.add_argument("--to", metavar="ADDRESS", help="pay this address (any address of the wallet's network)")
    to.add_argument("--index", type=int, metavar="I",
                    help="pay address I of this wallet (default 0, the primary address: it does not move when "
                         "address --new hands out another)")
    _wait_opts(p, "1 confirmation")

    job = sub.add_parser("job", help="MatMul jobs: submit, status, result, list",
                         description="MatMul jobs: C = A @ B computed by the miners.")
    _common(job, top=False)
    jsub = job.add_subparsers(dest="job_command", metavar="JOBCOMMAND", parser_class=_Parser, required=True)
    p = command("submit", j.cmd_job_submit, "upload A and B (.npy, int8) and queue C = A @ B; with --reward, pay "
                "for it: an offer escrows reward + deposit on chain", jsub)
    p.add_argument("a", help="A.npy (m x k, int8 in [-64, 63])")
    p.add_argument("b", help="B.npy (k x n)")
    p.add_argument("--out", metavar="C.npy",
                   help="free jobs: wait for the job (implies --wait), check the product locally (Freivalds) and "
                        "save it here")
    p.add_argument("--reward", metavar="COINS", help="pay COINS to the claimant whose product is accepted (a paid job)")
    p.add_argument("--deposit", metavar="COINS",
                   help="paid jobs: the deposit, returned when the job ends well, burned on a reject "
                        "(default: the smallest the rules allow)")
    p.add_argument("--bond", metavar="COINS", help="paid jobs: what a claimant bonds (default: the smallest allowed)")
    p.add_argument("--deadline", type=int, metavar="BLOCKS",
                   help="paid jobs: claims are taken for BLOCKS blocks (default min(100, max_job_lifetime))")
    p.add_argument("--no-queue", action="store_true",
                   help="paid jobs: send the offer (and upload A, B) but do not queue the job for this node's miners: "
                        "for a claimant that computes C elsewhere (job claim --product)")
    p.add_argument("--wait", action="store_true", help="free jobs: wait for the job to finish, with progress on "
                   "stderr (a paid job always waits for its offer to be mined, then queues the job)")
    p.add_argument("--timeout", type=float, default=600.0, metavar="S", help="give up waiting after S seconds")
    p = command("status", j.cmd_job_status, "a job's status", jsub)
    p.add_argument("job_id")
    _wait_opts(p, "the job to finish")
    p = command("result", j.cmd_job_result, "download a product, check it locally (root_C, Freivalds), save it; "
                "for an offer: accept it, prove it wrong, or reject when none arrives", jsub)
    p.add_argument("job_id", metavar="OFFER", help="an offer id, a job id one live offer carries, or a free job's id")
    p.add_argument("--out", required=True, metavar="C.npy", help="where to save the product")
    p.add_argument("--a", metavar="A.npy", help="the A you submitted (default: download it from the node)")
    p.add_argument("--b", metavar="B.npy", help="the B you submitted (default: download it from the node)")
    p.add_argument("--auto", action="store_true",
                   help="offers: accept a right product, send a fraud proof for a wrong one, and (with --wait) "
                        "reject when none arrives; without it: report, and ask on a terminal")
    p.add_argument("--margin", type=int, metavar="BLOCKS",
                   help="offers with --wait: give up on the product at claim height + W - BLOCKS (default "
                        "max(2, W/10))")
    p.add_argument("--wait", action="store_true",
                   help="wait for the claim and the product (offers), or for the job (free), with progress on stderr")
    p.add_argument("--timeout", type=float, default=3600.0, metavar="S", help="give up waiting after S seconds")
    p = command("claim", j.cmd_job_claim, "claim an offer with a product computed elsewhere: upload C to the node "
                "(served once the claim confirms) and bond the claim", jsub)
    p.add_argument("offer", metavar="OFFER", help="an offer id, or a job id one live offer carries")
    p.add_argument("--product", required=True, metavar="C.npy", help="the int32 m x n product")
    _from_index(p)
    for name, what in (("accept", "accept the claimed product (the claimant gets reward + bond, you the deposit)"),
                       ("reject", "reject a claim within the window: reward, deposit and bond burn"),
                       ("settle", "settle a claim after the window (as accept); anyone may send it"),
                       ("refund", "take back reward + deposit of an offer nobody claimed by its deadline")):
        p = command(name, j.cmd_job_step, what, jsub)
        p.add_argument("offer", metavar="OFFER", help="an offer id, or a job id one live offer carries")
        _from_index(p)
    p = command("fraud", j.cmd_job_fraud, "prove one wrong tile of a claimed product (the client gets reward, "
                "deposit and half the bond)", jsub)
    p.add_argument("offer", metavar="OFFER", help="an offer id, or a job id one live offer carries")
    p.add_argument("--product", required=True, metavar="CLAIMED_C.npy", help="the claimed (wrong) product")
    p.add_argument("--a", required=True, metavar="A.npy", help="the job's A")
    p.add_argument("--b", required=True, metavar="B.npy", help="the job's B")
    _from_index(p)
    p = command("list", j.cmd_job_list, "the node's offers (escrow status, reward, claimant, settle height) and "
                "jobs", jsub)
    p.add_argument("--status", choices=(*j.OFFER_STATUSES, *j.JOB_STATUSES))
    from .matmul_command import cmd_matmul
    p = command("matmul", cmd_matmul, "C = A @ B of any size on the network: exact for integer matrices, every "
                "sub-product checked locally; floats with --quantize")
    p.add_argument("a", help="A.npy (m x k): int8, uint8, int16, int32 (exact) or float (with --quantize)")
    p.add_argument("b", help="B.npy (k x n)")
    p.add_argument("--out", required=True, metavar="C.npy", help="where to save C (int64; float64 with --quantize)")
    p.add_argument("--quantize", choices=("int8", "int16"),
                   help="float matrices: quantize symmetrically (per row of A, per column of B), rescale C")
    p.add_argument("--timeout", type=float, default=600.0, metavar="S",
                   help="give up after S seconds (default 600); waiting sub-jobs are cancelled")
    return parser


def _bip39_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bip39-passphrase", action="store_true",
                   help="also ask for an optional BIP-39 passphrase (the '25th word'); forgetting it loses the coins")
    p.add_argument("--bip39-passphrase-file", metavar="FILE", help="read the BIP-39 passphrase from FILE")


def _from_index(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from-index", type=int, metavar="I",
                   help="send from address I (default: the client's address for client steps, else the first "
                        "that can pay)")


def _wait_opts(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--wait", action="store_true", help=f"wait for {what}, with progress on stderr")
    p.add_argument("--timeout", type=float, default=600.0, metavar="S", help="give up waiting after S seconds")


class Context:
    """Resolved options and lazily created collaborators (keystore, RPC client) of one invocation."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        env = os.environ
        self.wallet_name = args.wallet or env.get("POUW_WALLET") or DEFAULT_WALLET
        self.json = bool(args.json)
        self._client: RpcClient | None = None
        self._network_name: str | None = args.network or env.get("POUW_NETWORK") or None
        if self._network_name is not None and self._network_name not in NETWORKS:
            raise CliError(f"unknown network {self._network_name!r} (POUW_NETWORK); choose {', '.join(NETWORKS)}")

    # --- wallet ------------------------------------------------------------------------------

    @property
    def wallet_dir(self) -> Path:
        if self.args.wallet_dir:
            return Path(self.args.wallet_dir).expanduser()
        if os.environ.get("POUW_WALLET_DIR"):
            return Path(os.environ["POUW_WALLET_DIR"]).expanduser()
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return Path(base) / "pouw" / "wallets"

    @property
    def wallet_path(self) -> Path:
        try:
            return kstore.wallet_path(self.wallet_dir, self.wallet_name)
        except kstore.KeystoreError as e:
            raise CliError(str(e)) from None

    def load_wallet(self) -> kstore.Keystore:
        ks = kstore.load(self.wallet_path)
        if self._network_name is not None and self._network_name != ks.network:
            raise CliError(f"wallet {ks.name!r} is a {ks.network} wallet but --network says {self._network_name}; "
                           f"drop --network, or pick another wallet with --wallet NAME")
        self._network_name = ks.network
        return ks

    def default_network(self, name: str) -> None:
        """Use ``name`` unless ``--network`` (or POUW_NETWORK) chose one (``new``, ``restore``)."""
        if self._network_name is None:
            self._network_name = name

    @property
    def network(self) -> NetworkParams:
        if self._network_name is None:  # not fixed yet: the wallet's network if it has a readable one
            try:
                self._network_name = kstore.load(self.wallet_path).network
            except (kstore.KeystoreError, CliError):
                self._network_name = "devnet"
        return NETWORKS[self._network_name]

    def passphrase(self, prompt: str = "Wallet passphrase: ", confirm: bool = False) -> str:
        from .ui import ask_secret, read_secret_file
        if self.args.passphrase_file:
            value = read_secret_file(self.args.passphrase_file, "passphrase")
            if not value:
                raise CliError(f"the passphrase file {self.args.passphrase_file} is empty")
            return value
        return ask_secret(prompt, confirm=confirm)

    # --- node --------------------------------------------------------------------------------

    @property
    def rpc_url(self) -> str:
        return self.args.rpc_url or os.environ.get("POUW_RPC_URL") or default_url(self.network.name)

    def _auth(self) -> tuple[str, str] | None:
        a, env = self.args, os.environ
        user = a.rpc_user or env.get("POUW_RPC_USER")
        password = a.rpc_password or env.get("POUW_RPC_PASSWORD")
        if user is not None or password is not None:
            return user or "", password or ""
        if a.rpc_cookie_file:
            return read_cookie(a.rpc_cookie_file)
        if not (a.rpc_url or env.get("POUW_RPC_URL")):  # the default local node: use its cookie if it has one
            cookie = Path.home() / ".pouw" / self.network.name / ".cookie"
            if cookie.is_file():
                try:
                    return read_cookie(cookie)
                except RpcAuthError:
                    return None
        return None

    @property
    def client(self) -> RpcClient:
        if self._client is None:
            self._client = RpcClient(self.rpc_url, self._auth(), timeout=self.args.rpc_timeout)
        return self._client

    def start_hint(self) -> str:
        net = self.network.name
        return (f"is pouwd running? start it with: pouwd --network {net}"
                + ("" if self.args.rpc_url else " (or point --rpc-url at a running node)"))

    # --- output ------------------------------------------------------------------------------

    def emit(self, data: Any, human: str | None) -> None:
        if self.json:
            print(json.dumps(data, indent=2, ensure_ascii=False))
        elif human is not None:
            print(human)


def _fail(ctx: Context | None, message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    if ctx is not None and ctx.json:
        print(json.dumps({"error": {"message": message, "exit_code": code}}))
    return code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ctx: Context | None = None
    try:
        ctx = Context(args)
        return args.func(ctx) or EXIT_OK
    except CliError as e:
        return _fail(ctx, str(e), e.exit_code)
    except (kstore.KeystoreError, MnemonicError, AmountError) as e:
        return _fail(ctx, str(e), EXIT_USER)
    except AddressError as e:
        return _fail(ctx, f"{e.detail}; check the address and try again", EXIT_USER)
    except NodeUnreachable as e:
        return _fail(ctx, f"{e}; {ctx.start_hint() if ctx else ''}", EXIT_NODE)
    except RpcAuthError as e:
        return _fail(ctx, f"{e}; pass the node's cookie with --rpc-cookie-file <datadir>/.cookie, "
                          "or --rpc-user/--rpc-password", EXIT_NODE)
    except RpcError as e:
        return _fail(ctx, f"the node answered with error {e.code}: {e.message}; check the node's log "
                          f"(pouwd stderr) and try again", EXIT_NODE)
    except BrokenPipeError:  # stdout closed early (e.g. piped into head): not an error worth a traceback
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
