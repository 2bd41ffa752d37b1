"""Peer scores and bans.

Every peer starts at score 0. Misbehaviour subtracts points (``Offence``); the
score recovers towards 0 at ``recovery_per_second`` so an honest peer that
times out now and then never drifts into a ban. At ``ban_threshold`` or below
the peer is banned for ``score_ban_seconds``. Some offences ban at once:
an invalid block or certificate, a different chain (``default_ban_seconds``,
24 h unless configured).

Bans are kept in ``<directory>/banlist.json`` (written to a temporary file,
fsynced, then renamed) and survive restarts; scores are in memory only.
Expired bans are dropped when the list is read. The host consults
``is_banned`` as its connection gater from its own thread, so every method
takes a lock.

A ban also covers the peer's address (``BanEntry.address``, an
``p2p.peers.address_key``) when the host told the book where the peer is
(``set_address_resolver``): a new peer id from that address is refused too
(``is_address_banned``); keys are free, addresses are not.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

BAN_FILE = "banlist.json"
DEFAULT_BAN_SECONDS = 24 * 3600
DEFAULT_BAN_THRESHOLD = -100.0


class Offence(enum.Enum):
    """What a peer did wrong; ``points`` is what it costs (``None``: an immediate ban)."""

    INVALID_BLOCK = ("invalid-block", None)
    """A block or certificate that fails validation."""
    WRONG_CHAIN = ("wrong-chain", None)
    """A status naming another chain id or genesis block."""
    MALFORMED = ("malformed", 20.0)
    """Bytes that do not decode (gossip, request or response)."""
    BAD_RESPONSE = ("bad-response", 20.0)
    """A response that decodes but is wrong (a block that is not the one asked for, unlinked headers)."""
    TIMEOUT = ("timeout", 1.0)
    """A request that got no answer in time (cheap: a loaded honest peer is slow, not hostile)."""
    INVALID_TX = ("invalid-tx", 2.0)
    """A gossiped transaction rejected as invalid."""
    USELESS = ("useless", 1.0)
    """A duplicate or otherwise useless message (floods add up)."""

    @property
    def label(self) -> str:
        return self.value[0]

    @property
    def points(self) -> float | None:
        return self.value[1]


@dataclass(frozen=True)
class BanEntry:
    """One banned peer."""

    peer_id: str
    until: float
    """Unix time the ban ends."""
    reason: str
    created: float
    """Unix time the ban was set."""
    address: str | None = None
    """The address banned with the peer (IPv4 address or IPv6 /64); None: the peer id only."""

    def to_json(self) -> dict:
        return {"peer_id": self.peer_id, "until": self.until, "reason": self.reason, "created": self.created,
                "address": self.address}


class ScoreBook:
    """Scores (in memory) and bans (persisted in ``directory``, if given)."""

    def __init__(
        self,
        directory: str | os.PathLike | None = None,
        *,
        clock: Callable[[], float] = time.time,
        ban_threshold: float = DEFAULT_BAN_THRESHOLD,
        default_ban_seconds: float = DEFAULT_BAN_SECONDS,
        score_ban_seconds: float | None = None,
        recovery_per_second: float = 0.1,
    ) -> None:
        self._path = Path(directory) / BAN_FILE if directory is not None else None
        self._clock = clock
        self.ban_threshold = ban_threshold
        self.default_ban_seconds = default_ban_seconds
        self.score_ban_seconds = default_ban_seconds if score_ban_seconds is None else score_ban_seconds
        self.recovery_per_second = recovery_per_second
        self._lock = threading.RLock()
        self._scores: dict[str, tuple[float, float]] = {}  # peer -> (score, as of)
        self._bans: dict[str, BanEntry] = {}
        self._address_bans: dict[str, float] = {}  # address -> the latest end of a ban on it
        self._address_of: Callable[[str], str | None] | None = None
        self._listeners: list[Callable[[BanEntry], None]] = []
        self._penalty_listeners: list[Callable[[str, Offence], None]] = []
        self._load()
        self._index_addresses()

    # --- scores -------------------------------------------------------------------------------

    def score(self, peer_id: str) -> float:
        """Current score (0 for a peer never penalised; negative is worse)."""
        with self._lock:
            return self._current(peer_id)

    def _current(self, peer_id: str) -> float:
        value, since = self._scores.get(peer_id, (0.0, 0.0))
        if value >= 0:
            return value
        return min(0.0, value + (self._clock() - since) * self.recovery_per_second)

    def penalise(self, peer_id: str, offence: Offence, detail: str = "") -> bool:
        """Record ``offence``; ban when it bans outright or the score crosses the threshold. True if banned."""
        reason = offence.label + (f": {detail}" if detail else "")
        self._tell_penalty(peer_id, offence)
        if offence.points is None:
            self.ban(peer_id, self.default_ban_seconds, reason)
            return True
        with self._lock:
            value = self._current(peer_id) - offence.points
            self._scores[peer_id] = (value, self._clock())
            crossed = value <= self.ban_threshold
        if crossed:
            self.ban(peer_id, self.score_ban_seconds, f"score {value:.0f} (last: {reason})")
        return crossed

    def on_penalty(self, fn: Callable[[str, Offence], None]) -> None:
        """Call ``fn(peer_id, offence)`` for every charge ``penalise`` records (from the caller's thread)."""
        self._penalty_listeners.append(fn)

    def _tell_penalty(self, peer_id: str, offence: Offence) -> None:
        for fn in list(self._penalty_listeners):
            try:
                fn(peer_id, offence)
            except Exception:  # metrics must never change what a charge does
                log.exception("penalty listener failed")

    def forget(self, peer_id: str) -> None:
        """Drop a peer's score (bans stay)."""
        with self._lock:
            self._scores.pop(peer_id, None)

    # --- bans ---------------------------------------------------------------------------------

    def on_ban(self, fn: Callable[[BanEntry], None]) -> None:
        """Call ``fn(entry)`` whenever a peer gets banned (from the thread that banned it)."""
        self._listeners.append(fn)

    def set_address_resolver(self, fn: Callable[[str], str | None] | None) -> None:
        """``fn(peer_id) -> address or None``: where a peer being banned is (the host sets it)."""
        self._address_of = fn

    def ban(self, peer_id: str, seconds: float | None = None, reason: str = "manual",
            address: str | None = None) -> BanEntry:
        """Ban ``peer_id`` and its address for ``seconds`` (default ``default_ban_seconds``);
        extends, never shortens, a ban. ``address`` defaults to what the address resolver says."""
        now = self._clock()
        until = now + (self.default_ban_seconds if seconds is None else seconds)
        resolve = self._address_of
        if address is None and resolve is not None:
            try:
                address = resolve(peer_id)
            except Exception:  # no address is a ban by id, not a failed ban
                log.exception("address resolver failed for %s", peer_id)
        created = now
        with self._lock:
            old = self._bans.get(peer_id)
            if address is None and old is not None and old.until > now:
                address = old.address  # an extended ban keeps its address
            if old is not None and old.until >= until and old.until > now:
                if address is None or old.address is not None:
                    return old
                until, reason, created = old.until, old.reason, old.created  # the same ban, now with its address
            entry = BanEntry(peer_id, until, reason, created, address)
            self._bans[peer_id] = entry
            if address is not None:
                self._address_bans[address] = max(until, self._address_bans.get(address, 0.0))
            self._scores.pop(peer_id, None)
            self._save()
        log.warning("banned peer %s%s for %.0f s: %s", peer_id, f" at {address}" if address else "",
                    until - now, reason)
        for fn in list(self._listeners):
            try:
                fn(entry)
            except Exception:  # one bad listener must not stop the others
                log.exception("ban listener failed")
        return entry

    def unban(self, peer_id: str) -> bool:
        """Lift a ban; False if the peer was not banned."""
        with self._lock:
            if self._bans.pop(peer_id, None) is None:
                return False
            self._index_addresses()
            self._save()
            return True

    def is_banned(self, peer_id: str) -> bool:
        with self._lock:
            entry = self._bans.get(peer_id)
            return entry is not None and entry.until > self._clock()

    def is_address_banned(self, address: str) -> bool:
        """Whether a ban in force covers ``address`` (a ``p2p.peers.address_key``)."""
        with self._lock:
            return self._address_bans.get(address, 0.0) > self._clock()

    def _index_addresses(self) -> None:
        self._address_bans = {}
        for e in self._bans.values():
            if e.address is not None:
                self._address_bans[e.address] = max(e.until, self._address_bans.get(e.address, 0.0))

    def list_banned(self) -> list[BanEntry]:
        """Bans in force, soonest to end first."""
        with self._lock:
            now = self._clock()
            expired = [p for p, e in self._bans.items() if e.until <= now]
            for p in expired:
                del self._bans[p]
            if expired:
                self._index_addresses()
                self._save()
            return sorted(self._bans.values(), key=lambda e: (e.until, e.peer_id))

    def clear_bans(self) -> None:
        with self._lock:
            self._bans.clear()
            self._address_bans.clear()
            self._save()

    # --- persistence --------------------------------------------------------------------------

    def _load(self) -> None:
        if self._path is None:
            return
        try:
            raw = json.loads(self._path.read_text())
            entries = raw["bans"]
            now = self._clock()
            for e in entries:
                address = e.get("address")
                entry = BanEntry(str(e["peer_id"]), float(e["until"]), str(e.get("reason", "")),
                                 float(e.get("created", 0.0)), None if address is None else str(address))
                if entry.until > now:
                    self._bans[entry.peer_id] = entry
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.error("ignoring unreadable ban list %s: %s", self._path, e)

    def _save(self) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"version": 1, "bans": [e.to_json() for e in self._bans.values()]}, indent=1)
        fd, tmp = tempfile.mkstemp(prefix=".banlist-", dir=self._path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
