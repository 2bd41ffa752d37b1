"""The lag watcher sees a blocked event loop and times libp2p round trips, failed ones included."""

from __future__ import annotations

import asyncio
import time

import pytest

from node.lagwatch import watch_lag


@pytest.mark.asyncio
async def test_a_blocked_loop_shows_as_asyncio_lag() -> None:
    samples: list[tuple[str, float]] = []
    got = asyncio.Event()

    def record(loop: str, seconds: float) -> None:
        samples.append((loop, seconds))
        if seconds >= 0.15:
            got.set()

    task = asyncio.create_task(watch_lag(record, interval=0.01))
    await asyncio.sleep(0.03)
    time.sleep(0.2)  # the blocking handler the watcher must notice
    await asyncio.wait_for(got.wait(), 5)
    task.cancel()
    assert all(loop == "asyncio" for loop, _ in samples)
    assert max(s for _, s in samples) >= 0.15
    assert min(s for _, s in samples) < 0.15  # the samples before the block were small


@pytest.mark.asyncio
async def test_round_trips_are_timed_even_when_they_fail() -> None:
    samples: list[tuple[str, float]] = []
    calls = 0

    async def round_trip() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        if calls == 2:
            raise RuntimeError("host stopping")

    task = asyncio.create_task(watch_lag(lambda loop, s: samples.append((loop, s)), round_trip, interval=0.01))
    deadline = time.monotonic() + 5
    while sum(1 for loop, _ in samples if loop == "libp2p") < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    task.cancel()
    trips = [s for loop, s in samples if loop == "libp2p"]
    assert len(trips) >= 3 and all(s >= 0.04 for s in trips)  # the failed second one included
