"""p2p.scoring: penalties, thresholds, recovery, bans and their persistence."""

from __future__ import annotations

import json
import os
import stat

from p2p.scoring import BAN_FILE, DEFAULT_BAN_SECONDS, Offence, ScoreBook


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_invalid_block_bans_for_a_day_by_default():
    clock = Clock()
    book = ScoreBook(clock=clock)
    assert book.penalise("peerA", Offence.INVALID_BLOCK, "bad certificate") is True
    assert book.is_banned("peerA")
    (entry,) = book.list_banned()
    assert entry.until == clock.now + DEFAULT_BAN_SECONDS == clock.now + 24 * 3600
    assert entry.reason == "invalid-block: bad certificate"
    clock.now += DEFAULT_BAN_SECONDS + 1
    assert not book.is_banned("peerA") and book.list_banned() == []


def test_small_offences_add_up_to_a_ban_at_the_threshold():
    clock = Clock()
    book = ScoreBook(clock=clock, ban_threshold=-100)
    for _ in range(4):
        assert not book.penalise("p", Offence.MALFORMED)
    assert book.score("p") == -80
    assert book.penalise("p", Offence.MALFORMED)
    assert book.is_banned("p")
    assert "score" in book.list_banned()[0].reason


def test_scores_recover_so_rare_timeouts_never_ban():
    clock = Clock()
    book = ScoreBook(clock=clock, recovery_per_second=0.1)
    for _ in range(200):
        book.penalise("p", Offence.TIMEOUT)
        clock.now += 60
    assert not book.is_banned("p")
    assert book.score("p") == 0
    assert book.score("stranger") == 0


def test_duplicate_floods_ban():
    book = ScoreBook(clock=Clock())
    banned = [book.penalise("flooder", Offence.USELESS) for _ in range(100)]
    assert banned[-1] and not any(banned[:-1])


def test_manual_ban_unban_and_listing_order():
    clock = Clock()
    book = ScoreBook(clock=clock)
    book.ban("b", 100, "manual")
    book.ban("a", 50)
    assert [e.peer_id for e in book.list_banned()] == ["a", "b"]
    assert book.unban("a") and not book.unban("a")
    assert not book.is_banned("a") and book.is_banned("b")
    book.ban("b", 10)  # a shorter ban never shortens a longer one
    assert book.list_banned()[0].until == clock.now + 100


def test_ban_listeners_are_told():
    book = ScoreBook(clock=Clock())
    seen = []
    book.on_ban(lambda e: seen.append(e.peer_id))
    book.penalise("x", Offence.WRONG_CHAIN)
    assert seen == ["x"]


def test_bans_survive_a_restart(tmp_path):
    clock = Clock()
    book = ScoreBook(tmp_path, clock=clock)
    book.ban("12D3KooWbanned", 3600, "invalid-block")
    book.ban("12D3KooWshort", 10)
    path = tmp_path / BAN_FILE
    assert json.loads(path.read_text())["version"] == 1
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".banlist-")]  # temp file renamed away

    clock.now += 20
    again = ScoreBook(tmp_path, clock=clock)
    assert again.is_banned("12D3KooWbanned")
    assert not again.is_banned("12D3KooWshort")  # expired while we were down
    assert [e.peer_id for e in again.list_banned()] == ["12D3KooWbanned"]
    assert again.list_banned()[0].reason == "invalid-block"
    again.unban("12D3KooWbanned")
    assert ScoreBook(tmp_path, clock=clock).list_banned() == []


def test_an_unreadable_ban_file_is_ignored(tmp_path):
    (tmp_path / BAN_FILE).write_text("{not json")
    book = ScoreBook(tmp_path)
    assert book.list_banned() == []
    book.ban("p", 5)
    assert stat.S_ISREG(os.stat(tmp_path / BAN_FILE).st_mode)
    assert ScoreBook(tmp_path).is_banned("p")
