"""Address bans in ``p2p.scoring.ScoreBook``: a ban covers the banned peer's address for its duration."""

from __future__ import annotations

import json

from p2p.scoring import BAN_FILE, Offence, ScoreBook


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_ban_covers_the_address_the_resolver_names(tmp_path):
    clock = Clock()
    book = ScoreBook(tmp_path, clock=clock)
    where = {"attacker": "203.0.113.9"}
    book.set_address_resolver(where.get)
    entry = book.ban("attacker", 60, "test")
    assert entry.address == "203.0.113.9"
    assert book.is_address_banned("203.0.113.9")
    assert not book.is_address_banned("203.0.113.10")
    assert book.list_banned()[0].to_json()["address"] == "203.0.113.9"
    clock.now += 61
    assert not book.is_address_banned("203.0.113.9")  # for the ban's duration only


def test_score_bans_cover_the_address_too(tmp_path):
    book = ScoreBook(tmp_path)
    book.set_address_resolver(lambda peer: "2001:db8:1:2::/64")
    assert book.penalise("forger", Offence.INVALID_BLOCK, "bad certificate")
    assert book.is_address_banned("2001:db8:1:2::/64")


def test_a_peer_the_resolver_does_not_place_is_banned_by_id_only(tmp_path):
    book = ScoreBook(tmp_path)
    book.set_address_resolver(lambda peer: None)  # e.g. loopback, exempt
    entry = book.ban("devnet-peer", 60)
    assert entry.address is None and book.is_banned("devnet-peer")
    assert book.list_banned()[0].to_json()["address"] is None


def test_a_failing_resolver_still_bans_the_id(tmp_path):
    book = ScoreBook(tmp_path)

    def broken(peer: str) -> str | None:
        raise RuntimeError("no")

    book.set_address_resolver(broken)
    assert book.ban("p", 60).address is None and book.is_banned("p")


def test_unban_lifts_the_address_unless_another_ban_holds_it(tmp_path):
    book = ScoreBook(tmp_path)
    book.ban("one", 60, address="198.51.100.1")
    book.ban("two", 600, address="198.51.100.1")
    assert book.unban("two")
    assert book.is_address_banned("198.51.100.1")  # "one" still covers it
    assert book.unban("one")
    assert not book.is_address_banned("198.51.100.1")
    book.ban("three", 60, address="198.51.100.1")
    book.clear_bans()
    assert not book.is_address_banned("198.51.100.1")


def test_an_extended_ban_keeps_its_address_and_a_later_ban_adds_one(tmp_path):
    clock = Clock()
    book = ScoreBook(tmp_path, clock=clock)
    book.ban("p", 60, address="198.51.100.1")
    assert book.ban("p", 600).address == "198.51.100.1"  # longer, no address known now
    book.ban("q", 600)
    entry = book.ban("q", 60, address="198.51.100.2")  # shorter, but now we know where it is
    assert entry.address == "198.51.100.2" and entry.until == clock.now + 600
    assert book.is_address_banned("198.51.100.2")


def test_address_bans_survive_a_restart_and_old_files_still_load(tmp_path):
    book = ScoreBook(tmp_path)
    book.ban("p", 3600, address="198.51.100.1")
    again = ScoreBook(tmp_path)
    assert again.is_address_banned("198.51.100.1") and again.list_banned()[0].address == "198.51.100.1"
    # A ban list written before bans had addresses.
    old = {"version": 1, "bans": [{"peer_id": "old", "until": 4e9, "reason": "r", "created": 1.0}]}
    (tmp_path / BAN_FILE).write_text(json.dumps(old))
    legacy = ScoreBook(tmp_path)
    assert legacy.is_banned("old") and legacy.list_banned()[0].address is None
