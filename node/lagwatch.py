"""Loop lag: how late the event loop and the libp2p thread run what they are handed.

A node whose event loop is blocked (a slow synchronous handler) or whose
libp2p thread is starved (the GIL held by a busy thread) answers peers late:
their requests time out, and under load that looks like a network fault. The
watcher makes either visible in ``/metrics`` (``pouw_loop_lag_seconds``, by
``loop``) so a stall can be told apart from a slow peer:

- ``asyncio``: every ``interval`` seconds, how much later than asked a sleep
  of ``interval`` returned;
- ``libp2p``: the round trip of a no-op through the libp2p thread
  (``P2PHost.round_trip``), the asyncio side included.

Samples go to the ``record`` callback; the watcher never raises (a round trip
that fails counts as its time until the failure).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

INTERVAL_SECONDS = 0.5
"""Time between two samples of each loop."""


async def watch_lag(record: Callable[[str, float], None], round_trip: Callable[[], Awaitable[None]] | None = None,
                    interval: float = INTERVAL_SECONDS) -> None:
    """Sample both lags until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time()
        await asyncio.sleep(interval)
        record("asyncio", max(0.0, loop.time() - asked - interval))
        if round_trip is not None:
            start = time.perf_counter()
            try:
                await round_trip()
            except Exception:  # a failed round trip (a stopping host) still says how long it took
                pass
            record("libp2p", time.perf_counter() - start)
