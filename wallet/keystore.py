"""The keystore: one JSON file per wallet, the mnemonic encrypted under a passphrase.

File ``<wallet dir>/<name>.json`` (mode 0600)::

    {
      "format": "pouw-wallet", "version": 1,
      "network": "devnet", "account": 0,
      "address_count": 2,                    # addresses handed out: indices 0 .. count-1
      "addresses": ["pdev1...", "pdev1..."],  # their text, so balances need no passphrase
      "labels": {"1": "savings"},
      "crypto": {
        "kdf": "scrypt", "kdfparams": {"n": 131072, "r": 8, "p": 1, "dklen": 64, "salt": "<hex 32 bytes>"},
        "cipher": "aes-256-gcm", "nonce": "<hex 12 bytes>",
        "check": "<hex>",                    # SHA-256 of the second half of the scrypt output
        "ciphertext": "<hex>"                # AES-GCM(JSON {"mnemonic", "bip39_passphrase"}) with its tag
      }
    }

The scrypt output (64 bytes) splits in two: the first 32 bytes are the
AES-256-GCM key, the second half hashes to ``check``, which tells a wrong
passphrase (``check`` differs) from a damaged file (``check`` matches but the
GCM tag does not). New files use scrypt N = 2^17, r = 8, p = 1: 128 MiB of
memory (128 * r * N bytes) and about 0.4 s per unlock on one core of a
current CPU. The parameters are read back from each file, so files written
with other parameters (N = 2^15 before this default was raised) still open;
``load`` accepts N up to 2^20 with r = 8 (at most 1 GiB, ``SCRYPT_MAX_MEMORY``)
and p up to ``SCRYPT_MAX_P`` so that a damaged file cannot ask for unbounded
memory or time. Every field except ``ciphertext`` is authenticated as GCM
associated data, so a changed network, account, address list or label is
caught on the next unlock. A fresh nonce is drawn on every write.

Files are written to a temporary file in the same directory, flushed and
fsynced, then renamed over the old one (and the directory fsynced): a crash
leaves either the old file or the new one. A keystore that fails to load is
never written to.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from consensus.networks import NETWORKS

FORMAT = "pouw-wallet"
VERSION = 1
SCRYPT_N = 1 << 17  # 128 MiB with r = 8; older files used 1 << 15 and still open (parameters are per file)
SCRYPT_R = 8
SCRYPT_P = 1
DKLEN = 64
SCRYPT_MAX_MEMORY = 1 << 30  # load(): 128 * r * N at most 1 GiB (N = 2^20 with r = 8)
SCRYPT_MAX_P = 16
SALT_BYTES = 32
NONCE_BYTES = 12
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CHECK_DOMAIN = b"pouw-wallet passphrase check"


class KeystoreError(Exception):
    """A keystore cannot be used; the message names the file and says what to do."""


class WrongPassphrase(KeystoreError):
    """The passphrase does not open this keystore."""


class KeystoreCorrupt(KeystoreError):
    """The file is not a readable keystore (truncated, edited, not JSON, a field missing)."""


class WalletExists(KeystoreError):
    """A wallet of that name exists already."""


class WalletNotFound(KeystoreError):
    """No wallet of that name."""


@dataclass
class Secret:
    """What the keystore encrypts."""

    mnemonic: str
    bip39_passphrase: str = ""


@dataclass
class Keystore:
    """A wallet file's content (``crypto`` kept as loaded, for authenticated decryption)."""

    path: Path
    network: str
    account: int = 0
    addresses: list[str] = field(default_factory=list)
    labels: dict[int, str] = field(default_factory=dict)
    crypto: dict = field(default_factory=dict, repr=False)
    _key: bytes | None = field(default=None, repr=False)
    """The AES key once unlocked (kept to re-encrypt without running scrypt again)."""

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def address_count(self) -> int:
        return len(self.addresses)

    # --- encoding ----------------------------------------------------------------------------

    def header(self) -> dict:
        """Every field of the file except the ciphertext (the associated data of the GCM seal)."""
        crypto = {k: v for k, v in self.crypto.items() if k != "ciphertext"}
        return {"format": FORMAT, "version": VERSION, "network": self.network, "account": self.account,
                "address_count": len(self.addresses), "addresses": list(self.addresses),
                "labels": {str(k): v for k, v in sorted(self.labels.items())}, "crypto": crypto}

    def to_json(self) -> dict:
        doc = self.header()
        doc["crypto"] = dict(self.crypto)
        return doc

    # --- crypto ------------------------------------------------------------------------------

    def seal(self, secret: Secret, key: bytes) -> None:
        """Encrypt ``secret`` under ``key`` with a fresh nonce, binding the current header."""
        self.crypto["nonce"] = secrets.token_hex(NONCE_BYTES)
        self.crypto.pop("ciphertext", None)
        plaintext = json.dumps({"mnemonic": secret.mnemonic, "bip39_passphrase": secret.bip39_passphrase}).encode()
        ct = AESGCM(key).encrypt(bytes.fromhex(self.crypto["nonce"]), plaintext, _aad(self.header()))
        self.crypto["ciphertext"] = ct.hex()
        self._key = key

    def unlock(self, passphrase: str) -> Secret:
        """Decrypt the secret; ``WrongPassphrase`` or ``KeystoreCorrupt`` otherwise."""
        c = self.crypto
        p = c["kdfparams"]
        dk = _scrypt(passphrase, bytes.fromhex(p["salt"]), p["n"], p["r"], p["p"], p["dklen"])
        if not hmac.compare_digest(_check(dk), c["check"]):
            raise WrongPassphrase(f"wrong passphrase for wallet {self.name!r} ({self.path}); nothing was changed. "
                                  "Try again (check the keyboard layout), or restore the wallet from its mnemonic")
        key = dk[:32]
        try:
            plaintext = AESGCM(key).decrypt(bytes.fromhex(c["nonce"]), bytes.fromhex(c["ciphertext"]),
                                            _aad(self.header()))
        except InvalidTag:
            raise KeystoreCorrupt(f"{self.path}: the passphrase is right but the encrypted data or a header field "
                                  "(network, account, addresses, labels) was modified; the file is left as it is. "
                                  "Restore the wallet from its mnemonic under another name") from None
        try:
            d = json.loads(plaintext)
            secret = Secret(d["mnemonic"], d.get("bip39_passphrase", ""))
        except (ValueError, KeyError, TypeError):
            raise KeystoreCorrupt(f"{self.path}: the decrypted data is not a wallet secret") from None
        self._key = key
        return secret

    @property
    def unlocked_key(self) -> bytes:
        if self._key is None:
            raise KeystoreError("the keystore is locked")
        return self._key


def _aad(header: dict) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def _scrypt(passphrase: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    try:
        return Scrypt(salt=salt, length=dklen, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))
    except MemoryError:
        raise KeystoreError(f"not enough memory for scrypt with N={n}, r={r} ({_scrypt_memory(n, r) >> 20} MiB); "
                            "close other programs and try again") from None


def _scrypt_memory(n: int, r: int) -> int:
    """Bytes scrypt's large vector takes: 128 * r * N."""
    return 128 * r * n


def _check(dk: bytes) -> str:
    return hashlib.sha256(_CHECK_DOMAIN + dk[32:]).hexdigest()


# --- creating, loading and saving ------------------------------------------------------------


def wallet_path(directory: Path, name: str) -> Path:
    if not NAME_RE.match(name or ""):
        raise KeystoreError(f"wallet name {name!r} must be 1-64 letters, digits, '.', '_' or '-', "
                            "starting with a letter or digit")
    return Path(directory) / f"{name}.json"


def create(directory: Path, name: str, network: str, secret: Secret, passphrase: str, *, account: int = 0,
           addresses: list[str] | None = None, scrypt_n: int | None = None) -> Keystore:
    """Encrypt ``secret`` into a new wallet file; ``WalletExists`` if the name is taken.

    ``scrypt_n`` defaults to ``SCRYPT_N`` (read at call time); tests pass a
    lower power of two to run fast.
    """
    if scrypt_n is None:
        scrypt_n = SCRYPT_N
    if scrypt_n < 2 or scrypt_n & (scrypt_n - 1) or _scrypt_memory(scrypt_n, SCRYPT_R) > SCRYPT_MAX_MEMORY:
        raise ValueError(f"scrypt N must be a power of two with 128 * r * N <= {SCRYPT_MAX_MEMORY}, not {scrypt_n}")
    path = wallet_path(directory, name)
    if path.exists():
        raise WalletExists(f"a wallet named {name!r} exists already ({path}); pick another name with --wallet NAME")
    salt = secrets.token_bytes(SALT_BYTES)
    dk = _scrypt(passphrase, salt, scrypt_n, SCRYPT_R, SCRYPT_P, DKLEN)
    ks = Keystore(path, network, account, list(addresses or []), {},
                  {"kdf": "scrypt", "kdfparams": {"n": scrypt_n, "r": SCRYPT_R, "p": SCRYPT_P, "dklen": DKLEN,
                                                  "salt": salt.hex()},
                   "cipher": "aes-256-gcm", "check": _check(dk)})
    ks.seal(secret, dk[:32])
    save(ks, exclusive=True)
    return ks


def save(ks: Keystore, *, exclusive: bool = False) -> None:
    """Write ``ks`` atomically (temp file, fsync, rename) with mode 0600."""
    directory = ks.path.parent
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = (json.dumps(ks.to_json(), indent=2) + "\n").encode()
    fd, tmp = tempfile.mkstemp(prefix=f".{ks.path.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if exclusive:
            os.link(tmp, ks.path)  # fails if the name appeared meanwhile: never overwrite a wallet
            os.unlink(tmp)
        else:
            os.replace(tmp, ks.path)
    except FileExistsError:
        Path(tmp).unlink(missing_ok=True)
        raise WalletExists(f"a wallet named {ks.name!r} exists already ({ks.path})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _parse_document(raw: bytes, bad: Callable[[str], KeystoreCorrupt]) -> dict:
    """The wallet file's JSON object, of this format and version."""
    if not raw.strip():
        raise bad("it is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad("it is not UTF-8 text") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        body = text.strip()
        truncated = " (the file looks truncated)" if body.startswith("{") and not body.endswith("}") else ""
        raise bad(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}{truncated}") from None
    if not isinstance(doc, dict):
        raise bad("the top level is not a JSON object")
    if doc.get("format") != FORMAT:
        raise bad(f"'format' is {doc.get('format')!r}, expected {FORMAT!r}")
    if doc.get("version") != VERSION:
        raise bad(f"'version' is {doc.get('version')!r}; this pouw-wallet reads version {VERSION}")
    return doc


def _check_crypto(crypto: dict, need: Callable[..., Any], bad: Callable[[str], KeystoreCorrupt]) -> None:
    """The ``crypto`` section: scrypt with AES-256-GCM, parameters in range, hex fields of the right size."""
    params = need(crypto, "kdfparams", dict, "crypto.")
    for k in ("n", "r", "p", "dklen"):
        if need(params, k, int, "crypto.kdfparams.") < 1:
            raise bad(f"'crypto.kdfparams.{k}' must be positive")
    n, r, p = params["n"], params["r"], params["p"]
    if (n & (n - 1) or n < 2 or params["dklen"] != DKLEN or r * p >= 1 << 30 or p > SCRYPT_MAX_P
            or _scrypt_memory(n, r) > SCRYPT_MAX_MEMORY):
        raise bad(f"scrypt parameters out of range (N={n}, r={r}, p={p}; N must be a power of two, "
                  f"128 * r * N at most {SCRYPT_MAX_MEMORY >> 20} MiB, p at most {SCRYPT_MAX_P})")
    for k, size in (("salt", None), ("nonce", NONCE_BYTES), ("check", 32), ("ciphertext", None)):
        src = params if k == "salt" else crypto
        text = need(src, k, str, "crypto.kdfparams." if k == "salt" else "crypto.")
        try:
            blob = bytes.fromhex(text)
        except ValueError:
            raise bad(f"'{k}' is not hex") from None
        if size is not None and len(blob) != size:
            raise bad(f"'{k}' is {len(blob)} bytes, expected {size}")
    if len(crypto["ciphertext"]) < 2 * 17:
        raise bad("the ciphertext is too short (truncated?)")


def load(path: Path) -> Keystore:
    """Read and check a wallet file; ``KeystoreCorrupt`` says which part is wrong (the file is not touched)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise WalletNotFound(f"no wallet at {path}; create one with: pouw-wallet new "
                             "(or restore one with: pouw-wallet restore)") from None
    except OSError as e:
        raise KeystoreError(f"cannot read {path}: {e.strerror}") from None

    def bad(what: str) -> KeystoreCorrupt:
        return KeystoreCorrupt(f"{path} is not a usable wallet file: {what}. The file was left untouched; "
                               "restore from a backup, or from the mnemonic with: pouw-wallet restore --wallet NEWNAME")

    doc = _parse_document(raw, bad)

    def need(obj: dict, key: str, kind, where: str = ""):
        if key not in obj:
            raise bad(f"field '{where}{key}' is missing")
        value = obj[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise bad(f"field '{where}{key}' has the wrong type ({type(value).__name__})")
        return value

    network = need(doc, "network", str)
    if network not in NETWORKS:
        raise bad(f"unknown network {network!r}")
    account = need(doc, "account", int)
    count = need(doc, "address_count", int)
    addresses = need(doc, "addresses", list)
    if count != len(addresses) or not all(isinstance(a, str) for a in addresses):
        raise bad(f"'address_count' is {count} but 'addresses' holds {len(addresses)} entries")
    labels_raw = need(doc, "labels", dict)
    try:
        labels = {int(k): str(v) for k, v in labels_raw.items()}
    except ValueError:
        raise bad("'labels' keys must be address indices") from None
    crypto = need(doc, "crypto", dict)
    if need(crypto, "kdf", str, "crypto.") != "scrypt" or need(crypto, "cipher", str, "crypto.") != "aes-256-gcm":
        raise bad("only scrypt with aes-256-gcm is supported")
    _check_crypto(crypto, need, bad)
    return Keystore(path, network, account, list(addresses), labels, dict(crypto))


def list_wallets(directory: Path) -> list[Path]:
    """Wallet files in ``directory``, sorted by name (temporary files excluded)."""
    d = Path(directory)
    if not d.is_dir():
        return []
    return sorted(p for p in d.glob("*.json") if not p.name.startswith("."))
