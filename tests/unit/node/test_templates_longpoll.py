"""The long-poll behind ``getblocktemplate`` (``node.templates.TemplateWatch``): it wakes on a new tip or a job
change, batches mempool changes, answers at its bound with nothing changed, and caps the waiters."""

from __future__ import annotations

import asyncio
import time

import pytest

from node.templates import LongPollBusy, TemplateWatch


class State:
    """Fingerprints the watch reads, changed by the test."""

    def __init__(self) -> None:
        self.tip = bytes(32)
        self.mempool = (0, 0)
        self.jobs = 0
        self.now = 1000.0

    def watch(self, **kw) -> TemplateWatch:
        return TemplateWatch(lambda: self.tip, lambda: self.mempool, lambda: self.jobs,
                             clock=lambda: self.now, **kw)


async def test_a_new_tip_wakes_a_waiter_within_the_poll_interval():
    s = State()
    watch = s.watch(poll_interval=0.01)
    pollid = watch.longpollid
    assert pollid == f"{'00' * 32}-0"
    waiter = asyncio.ensure_future(watch.wait(pollid, 10.0))
    await asyncio.sleep(0.05)
    assert not waiter.done() and watch.waiting == 1
    s.tip = bytes([1]) * 32
    started = time.monotonic()
    assert await asyncio.wait_for(waiter, 2.0) is True
    assert time.monotonic() - started < 1.0
    assert watch.longpollid == f"{'01' * 32}-1" and watch.waiting == 0
    await watch.close()


async def test_notify_wakes_at_once_without_the_poller():
    s = State()
    watch = s.watch(poll_interval=3600.0)  # the poller would never look again in this test
    waiter = asyncio.ensure_future(watch.wait(watch.longpollid, 10.0))
    await asyncio.sleep(0.01)
    s.jobs = 1
    assert watch.notify() is True
    assert await asyncio.wait_for(waiter, 1.0) is True
    await watch.close()


async def test_an_old_id_returns_at_once():
    s = State()
    watch = s.watch()
    old = watch.longpollid
    s.tip = bytes([2]) * 32
    assert await asyncio.wait_for(watch.wait(old, 30.0), 1.0) is True
    assert watch.waiting == 0


async def test_the_wait_ends_at_its_bound_with_nothing_changed():
    s = State()
    watch = s.watch(max_wait=0.2, poll_interval=0.01)
    pollid = watch.longpollid
    started = time.monotonic()
    assert await watch.wait(pollid, 30.0) is False  # capped at max_wait
    assert 0.15 <= time.monotonic() - started < 2.0
    assert await watch.wait(pollid, 0.05) is False  # a shorter bound of the caller's
    assert watch.longpollid == pollid and watch.waiting == 0
    await watch.close()


async def test_mempool_changes_bump_the_revision_at_most_every_interval():
    s = State()
    watch = s.watch(mempool_interval=5.0)
    first = watch.longpollid
    s.mempool = (1, 100)
    s.now += 1.0
    assert watch.longpollid == first  # too soon after the last revision
    s.now += 5.0
    assert watch.longpollid != first
    second = watch.longpollid
    s.mempool = (2, 200)
    assert watch.longpollid == second
    s.tip = bytes([3]) * 32  # a tip change never waits
    assert watch.longpollid.startswith("03" * 32)


async def test_waiters_are_capped_and_the_one_beyond_is_refused():
    s = State()
    watch = s.watch(max_waiters=3, poll_interval=0.01)
    pollid = watch.longpollid
    waiters = [asyncio.ensure_future(watch.wait(pollid, 10.0)) for _ in range(3)]
    await asyncio.sleep(0.02)
    assert watch.waiting == 3
    with pytest.raises(LongPollBusy, match="3 long-polls wait already"):
        await watch.wait(pollid, 10.0)
    s.tip = bytes([4]) * 32
    assert await asyncio.wait_for(asyncio.gather(*waiters), 2.0) == [True, True, True]
    assert watch.waiting == 0
    assert await asyncio.wait_for(watch.wait(pollid, 10.0), 1.0) is True  # room again (and the id is old)
    await watch.close()


async def test_the_poller_runs_only_while_someone_waits():
    s = State()
    watch = s.watch(max_wait=0.05, poll_interval=0.01)
    await watch.wait(watch.longpollid)
    await asyncio.sleep(0.05)
    assert watch._poller is None


def test_bad_limits_are_refused():
    s = State()
    with pytest.raises(ValueError):
        s.watch(max_waiters=0)
    with pytest.raises(ValueError):
        s.watch(max_wait=0)
