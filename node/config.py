"""Runtime configuration of ``pouwd``.

Precedence: command-line flags > ``POUW_*`` environment variables >
``pouw.toml`` in the data directory > the network preset's defaults. Every
setting has one name, spelled ``--miner-shape`` on the command line,
``POUW_MINER_SHAPE`` in the environment and ``miner_shape`` in ``pouw.toml``.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from consensus.networks import NETWORKS

DEFAULT_PORTS = {  # (rpc, p2p)
    "devnet": (18445, 18444),
    "regtest": (19445, 19444),
    "testnet": (28445, 28444),
    "mainnet": (8445, 8444),
}
LOG_LEVELS = ("debug", "info", "warning", "error")
BACKENDS = ("auto", "numpy", "cupy")


class ConfigError(ValueError):
    """A setting has a value the node cannot use; the message names the setting and its source."""


def p2p_seed_from_text(text: str) -> bytes:
    """The 32-byte libp2p key seed that ``--p2p-key-seed TEXT`` stands for (devnet and regtest)."""
    from pouw.hashing import H

    return H(b"pouw/v1/devnet-node-key/" + text.encode())


def default_datadir(network: str) -> Path:
    return Path(os.environ.get("HOME", ".")) / ".pouw" / network


def parse_shape(text: str) -> tuple[int, int, int]:
    """``"M,K,N"`` -> ``(m, k, n)``."""
    try:
        m, k, n = (int(x) for x in str(text).split(","))
    except ValueError:
        raise ConfigError(f"a shape is M,K,N (three integers), found {text!r}") from None
    return m, k, n


def parse_bool(text) -> bool:
    if isinstance(text, bool):
        return text
    v = str(text).strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"expected a boolean (true/false), found {text!r}")


def parse_list(text) -> list[str]:
    if isinstance(text, list):
        return [str(x) for x in text]
    return [x.strip() for x in str(text).split(",") if x.strip()]


@dataclass
class NodeConfig:
    network: str = "devnet"
    datadir: Path | None = None
    rpc_bind: str = "127.0.0.1"
    rpc_port: int | None = None
    rpc_user: str | None = None
    rpc_password: str | None = None
    p2p_port: int | None = None
    p2p_bind: str = "127.0.0.1"
    p2p_key_seed: str | None = None
    """devnet/regtest only: derive the libp2p key from this text (stable peer ids for launchers)."""
    connect: list[str] = field(default_factory=list)
    bootstrap: list[str] = field(default_factory=list)
    max_connections: int = 64
    """libp2p connections, inbound and outbound together."""
    outbound_slots: int = 8
    """Of ``max_connections``, the ones inbound peers never take: our own dials always find room."""
    max_inbound_per_ip: int = 4
    """Inbound connections from one IPv4 address or IPv6 /64 (loopback exempt unless ``limit_loopback``)."""
    limit_loopback: bool = False
    """Apply ``max_inbound_per_ip`` and address bans to 127.0.0.0/8 and ::1 too (off: loopback devnets)."""
    mine: bool = False
    miner_address: str | None = None
    miner_backend: str = "auto"
    miner_shape: tuple[int, int, int] | None = None
    """``(m, k, n)``; default: the network's mining shape."""
    metrics: bool = True
    log_level: str = "info"
    max_jobs: int = 64
    max_blob_bytes: int = 64 * 1024 * 1024
    blob_quota_bytes: int = 4 * 1024 * 1024 * 1024
    """Disk for blobs; beyond it, blobs no live job references are evicted (oldest first)."""
    rpc_allow_host: list[str] = field(default_factory=list)
    """Host header values accepted besides localhost, 127.0.0.1 and [::1] (DNS rebinding)."""
    rpc_cors: list[str] = field(default_factory=list)
    """Origins whose pages may call the RPC (browsers); empty: only the node's own pages."""
    no_p2p: bool = False
    claim_key: Path | None = None
    """A wallet keystore (wallet/keystore.py): its key claims the paid jobs this node computes (section 11)."""
    claim_passphrase_file: Path | None = None
    """The file holding the claim keystore's passphrase (one line)."""
    claim_index: int = 0
    """The address index of the claim key within the keystore's account."""
    claim_confirmations: int = 2
    """Confirmations a claim needs before its product is served (announced, blob handed out)."""

    def finish(self) -> NodeConfig:
        """Fill network-dependent defaults and check every value."""
        if self.network not in NETWORKS:
            raise ConfigError(f"network must be one of {', '.join(NETWORKS)}, found {self.network!r}")
        rpc, p2p = DEFAULT_PORTS[self.network]
        self.rpc_port = rpc if self.rpc_port is None else self.rpc_port
        self.p2p_port = p2p if self.p2p_port is None else self.p2p_port
        self.datadir = Path(self.datadir) if self.datadir else default_datadir(self.network)
        for name in ("rpc_port", "p2p_port"):
            v = getattr(self, name)
            if not 0 <= v <= 65535:
                raise ConfigError(f"{name} must be a TCP port (0-65535), found {v}")
        if self.miner_backend not in BACKENDS:
            raise ConfigError(f"miner_backend must be one of {', '.join(BACKENDS)}, found {self.miner_backend!r}")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}, found {self.log_level!r}")
        if self.blob_quota_bytes < self.max_blob_bytes:
            raise ConfigError(f"blob_quota_bytes ({self.blob_quota_bytes}) must be at least max_blob_bytes "
                              f"({self.max_blob_bytes})")
        for origin in self.rpc_cors:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ConfigError(f"rpc_cors entries are origins like https://app.example (or *), found {origin!r}")
        from p2p.peers import ConnectionLimits  # the bounds live with the rules

        try:
            ConnectionLimits(self.max_connections, self.outbound_slots, self.max_inbound_per_ip, self.limit_loopback)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if self.claim_key is not None and self.claim_passphrase_file is None:
            raise ConfigError("claim_key needs claim_passphrase_file (the file holding the keystore's passphrase)")
        if not 0 <= self.claim_index < 1 << 31:
            raise ConfigError(f"claim_index must be in [0, 2^31), found {self.claim_index}")
        if not 1 <= self.claim_confirmations <= 100:
            raise ConfigError(f"claim_confirmations must be in [1, 100], found {self.claim_confirmations}")
        if self.p2p_key_seed is not None and self.network not in ("devnet", "regtest"):
            raise ConfigError("p2p_key_seed is for devnet and regtest; other networks keep <datadir>/node_key")
        if self.miner_shape is not None:
            from pouw.matrix import validate_shape

            try:
                validate_shape(*self.miner_shape)
            except ValueError as e:
                raise ConfigError(f"miner_shape {self.miner_shape}: {e}") from None
        return self


_CONVERT: dict[str, Callable[[Any], Any]] = {
    "rpc_port": int, "p2p_port": int, "max_jobs": int, "max_blob_bytes": int, "blob_quota_bytes": int,
    "max_connections": int, "outbound_slots": int, "max_inbound_per_ip": int, "limit_loopback": parse_bool,
    "rpc_allow_host": parse_list, "rpc_cors": parse_list,
    "mine": parse_bool, "metrics": parse_bool, "no_p2p": parse_bool,
    "connect": parse_list, "bootstrap": parse_list, "miner_shape": parse_shape,
    "datadir": Path, "claim_key": Path, "claim_passphrase_file": Path, "claim_index": int,
    "claim_confirmations": int,
}


def _convert(name: str, value, source: str):
    try:
        return _CONVERT.get(name, str)(value)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{name} from {source}: {e}") from None


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="pouwd", description="pouw-node daemon: a proof-of-useful-work blockchain node.",
        epilog="Every flag can also be set as POUW_<NAME> in the environment or <name> in <datadir>/pouw.toml "
               "(flags win, then the environment, then the file).")
    ap.add_argument("--network", choices=sorted(NETWORKS), help="network preset (default devnet)")
    ap.add_argument("--datadir", help="data directory (default ~/.pouw/<network>)")
    ap.add_argument("--rpc-bind", help="JSON-RPC listen address (default 127.0.0.1; others require auth)")
    ap.add_argument("--rpc-port", type=int, help="JSON-RPC port (default 18445 on devnet)")
    ap.add_argument("--rpc-user", help="RPC user (default: cookie file in the data directory)")
    ap.add_argument("--rpc-password", help="RPC password (prefer POUW_RPC_PASSWORD or pouw.toml)")
    ap.add_argument("--p2p-port", type=int, help="libp2p TCP port (default 18444 on devnet)")
    ap.add_argument("--p2p-bind", help="libp2p listen address (default 127.0.0.1)")
    ap.add_argument("--p2p-key-seed", help="devnet/regtest: derive the node key from this text (stable peer id)")
    ap.add_argument("--connect", action="append", help="peer multiaddr to connect to (repeatable)")
    ap.add_argument("--bootstrap", action="append", help="bootstrap peer multiaddr (repeatable)")
    ap.add_argument("--max-connections", type=int,
                    help="libp2p connections, inbound and outbound together (default 64)")
    ap.add_argument("--outbound-slots", type=int,
                    help="of --max-connections, the ones inbound peers never take, kept for the node's own "
                         "dials (--connect, --bootstrap, addnode) (default 8)")
    ap.add_argument("--max-inbound-per-ip", type=int,
                    help="inbound connections from one IPv4 address or IPv6 /64 (default 4; loopback is exempt "
                         "unless --limit-loopback)")
    ap.add_argument("--limit-loopback", action="store_const", const=True,
                    help="apply --max-inbound-per-ip and address bans to 127.0.0.0/8 and ::1 too (off by default: "
                         "on a loopback devnet every node is 127.0.0.1, and bans stay per peer id)")
    ap.add_argument("--no-p2p", action="store_const", const=True, help="run without networking")
    ap.add_argument("--mine", action="store_const", const=True, help="mine blocks")
    ap.add_argument("--miner-address", help="bech32m address paid by mined blocks "
                    "(devnet default: the first prefunded devnet account)")
    ap.add_argument("--miner-backend", choices=BACKENDS, help="compute backend (default auto: CuPy if a GPU works)")
    ap.add_argument("--miner-shape", help="M,K,N of the random matrices mined when no job waits")
    ap.add_argument("--metrics", choices=("true", "false"), help="serve Prometheus metrics at /metrics (default true)")
    ap.add_argument("--log-level", choices=LOG_LEVELS)
    ap.add_argument("--max-jobs", type=int, help="queued jobs the node accepts (default 64)")
    ap.add_argument("--max-blob-bytes", type=int,
                    help="largest matrix or product blob (default 64 MiB); bounds the largest job")
    ap.add_argument("--blob-quota-bytes", type=int,
                    help="disk for job matrices and products (default 4 GiB); unreferenced blobs are evicted beyond it")
    ap.add_argument("--rpc-allow-host", action="append",
                    help="Host header value accepted besides localhost, 127.0.0.1, [::1] (repeatable)")
    ap.add_argument("--rpc-cors", action="append",
                    help="origin (scheme://host[:port]) whose web pages may call the RPC (repeatable; default none)")
    ap.add_argument("--claim-key", metavar="KEYSTORE",
                    help="wallet keystore file whose key claims the paid jobs this node mines (bonds them, serves "
                         "the product once the claim confirms, settles after the window); needs "
                         "--claim-passphrase-file")
    ap.add_argument("--claim-passphrase-file", metavar="FILE", help="file holding the --claim-key passphrase")
    ap.add_argument("--claim-index", type=int, metavar="N",
                    help="address index of the claim key in the keystore's account (default 0)")
    ap.add_argument("--claim-confirmations", type=int, metavar="N",
                    help="confirmations a claim needs before its product is served (default 2)")
    return ap


def load_config(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> NodeConfig:
    """Merge flags, environment and ``pouw.toml`` into a checked ``NodeConfig``."""
    environ = dict(os.environ if environ is None else environ)
    args = vars(build_parser().parse_args(argv))
    names = [f.name for f in fields(NodeConfig)]
    values: dict = {}
    env = {n: environ[f"POUW_{n.upper()}"] for n in names if f"POUW_{n.upper()}" in environ}
    flags = {n: v for n, v in args.items() if v is not None}
    network = flags.get("network") or env.get("network") or "devnet"
    datadir = flags.get("datadir") or env.get("datadir") or default_datadir(network)
    toml_path = Path(datadir) / "pouw.toml"
    file_values: dict = {}
    if toml_path.exists():
        try:
            file_values = tomllib.loads(toml_path.read_text())
        except (tomllib.TOMLDecodeError, OSError) as e:
            raise ConfigError(f"{toml_path}: {e}") from None
        unknown = set(file_values) - set(names)
        if unknown:
            raise ConfigError(f"{toml_path}: unknown settings {', '.join(sorted(unknown))}")
    for source, layer in ((str(toml_path), file_values), ("the environment", env), ("the command line", flags)):
        for name, value in layer.items():
            values[name] = _convert(name, value, source)
    values.setdefault("network", network)
    values["datadir"] = Path(datadir)
    return NodeConfig(**values).finish()
