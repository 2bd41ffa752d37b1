"""One trio run in a daemon thread, driven from an asyncio loop (``notes/deps-findings.md`` 1.8-1.9).

py-libp2p is trio-only and the node is asyncio, so each libp2p host lives in
its own ``trio.run`` on a dedicated thread (only one trio run fits in a thread;
one thread per host lets several hosts share a process). Two crossings:

- asyncio -> trio (``call``): ``TrioToken.run_sync_soon`` starts a task in the
  run's nursery; its outcome comes back through ``loop.call_soon_threadsafe``.
  Cancelling the returned asyncio future cancels the trio task.
- trio -> asyncio (``call_asyncio``, from inside trio): the coroutine runs on the
  asyncio loop through ``run_coroutine_threadsafe``; the trio task waits on an
  event the asyncio future's completion sets. Cancelling the trio task cancels
  the asyncio future.

A callback handed to ``run_sync_soon`` must not raise (trio would turn that
into a ``TrioInternalError``), hence the guards below.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import trio

from .errors import HostNotRunning, P2PError

log = logging.getLogger(__name__)


def _set_result(fut: asyncio.Future, value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _set_exception(fut: asyncio.Future, exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


def _cancel(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.cancel()


class TrioThread:
    """A trio run on its own daemon thread, with an asyncio-side handle."""

    def __init__(self, name: str, *, shutdown_timeout: float = 5.0) -> None:
        self.name = name
        self.shutdown_timeout = shutdown_timeout
        self.running = False
        """True between a successful ``start`` and ``stop``."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._token: Any = None
        self._nursery: Any = None
        self._stop: Any = None
        self._thread: threading.Thread | None = None
        self._ready: asyncio.Future | None = None
        self._finished: asyncio.Future | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self, enter: Callable[[], AbstractAsyncContextManager[Any]],
                    setup: Callable[[], Awaitable[None]]) -> None:
        """Start the thread; inside trio: enter ``enter()``, open the task nursery, ``await setup()``.

        Returns once ``setup`` finished; raises ``P2PError`` if anything failed on the way.
        """
        if self._thread is not None:
            raise P2PError(f"{self.name} starts once")
        loop = self._loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        self._finished = loop.create_future()
        self._thread = threading.Thread(target=self._thread_main, args=(enter, setup), name=self.name, daemon=True)
        self._thread.start()
        try:
            await self._ready
        except BaseException:
            await self.stop()
            raise
        self.running = True

    async def stop(self) -> None:
        """Cancel every task, leave ``enter()`` and end the thread (idempotent)."""
        self.running = False
        if self._finished is None:
            return
        token, stop = self._token, self._stop
        if token is not None and stop is not None:
            try:
                token.run_sync_soon(stop.set)
            except trio.RunFinishedError:
                pass
        done, _ = await asyncio.wait({self._finished}, timeout=self.shutdown_timeout + 10.0)
        if not done:
            log.error("%s did not stop; its thread is left behind", self.name)
        elif not self._finished.cancelled():
            self._finished.exception()  # retrieved: it was logged where it happened

    def _thread_main(self, enter, setup) -> None:
        assert self._ready is not None and self._finished is not None
        try:
            trio.run(self._main, enter, setup)
        except BaseException as e:  # reported to the asyncio side
            if self._ready.done():
                log.error("%s stopped with an error: %r", self.name, e)
            self.post(_set_exception, self._ready, P2PError(f"{self.name} failed to start: {e!r}"))
            self.post(_set_exception, self._finished, P2PError(f"{self.name} failed: {e!r}"))
        else:
            self.post(_set_exception, self._ready, HostNotRunning(f"{self.name} stopped while starting"))
            self.post(_set_result, self._finished, None)

    async def _main(self, enter, setup) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        with trio.CancelScope() as bounded:
            async with enter():
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    await setup()
                    assert self._ready is not None
                    self.post(_set_result, self._ready, None)
                    await self._stop.wait()
                    self._nursery = None
                    # Leaving ``enter()`` closes connections and services; bound it so a
                    # stuck teardown inside the library cannot hang the caller.
                    bounded.deadline = trio.current_time() + self.shutdown_timeout
                    nursery.cancel_scope.cancel()
        if bounded.cancelled_caught:
            log.warning("%s: shutdown took over %.0f s and was cut short", self.name, self.shutdown_timeout)

    # --- crossings -----------------------------------------------------------------------------

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """From any thread: call ``fn(*args)`` on the asyncio loop soon (dropped if the loop is closed)."""
        loop = self._loop
        if loop is None:  # never started: nobody to tell
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the asyncio loop is closed: nobody is waiting any more
            pass

    def run_sync_soon(self, fn: Callable[..., None], *args: Any) -> bool:
        """From asyncio: call ``fn(*args)`` in the trio thread soon; False if the run has ended."""
        if self._token is None:
            return False
        try:
            self._token.run_sync_soon(fn, *args)
        except trio.RunFinishedError:
            return False
        return True

    def call(self, afn: Callable[..., Awaitable[Any]], *args: Any) -> asyncio.Future:
        """From asyncio: run ``await afn(*args)`` as a trio task; an asyncio future of its outcome."""
        loop = self._loop
        if loop is None or self._token is None or not self.running:
            raise HostNotRunning(f"{self.name} is not running")
        afut = loop.create_future()
        scope = trio.CancelScope()

        async def runner() -> None:
            with scope:
                try:
                    result = await afn(*args)
                except trio.Cancelled:
                    self.post(_cancel, afut)
                    raise
                except BaseException as e:  # handed to the asyncio side
                    self.post(_set_exception, afut, e)
                    return
                self.post(_set_result, afut, result)
            if scope.cancelled_caught:
                self.post(_cancel, afut)

        def spawn() -> None:
            nursery = self._nursery
            try:
                if nursery is None:
                    raise RuntimeError("closed")
                nursery.start_soon(runner)
            except RuntimeError:
                self.post(_set_exception, afut, HostNotRunning(f"{self.name} is stopping"))

        if not self.run_sync_soon(spawn):
            raise HostNotRunning(f"{self.name} has stopped")
        afut.add_done_callback(lambda f: f.cancelled() and self.run_sync_soon(scope.cancel))
        return afut

    async def run(self, afn: Callable[..., Awaitable[Any]], *args: Any, timeout: float | None = None) -> Any:
        """From asyncio: ``await call(afn, *args)``, cancelling the trio task after ``timeout`` seconds
        (``asyncio.TimeoutError``).

        Uses ``asyncio.wait`` rather than ``asyncio.wait_for``, which on Python 3.11 can
        swallow a cancellation that arrives as the awaited future completes (gh-86296):
        a service's task would then survive its ``stop``.
        """
        fut = self.call(afn, *args)
        try:
            done, _ = await asyncio.wait({fut}, timeout=timeout)
        except asyncio.CancelledError:
            fut.cancel()
            raise
        if not done:
            fut.cancel()
            raise TimeoutError(f"{getattr(afn, '__name__', afn)} took over {timeout} s")
        return fut.result()

    async def call_asyncio(self, cfn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """From trio: run coroutine ``cfn(*args)`` on the asyncio loop and return its result."""
        coro = cfn(*args)
        if not asyncio.iscoroutine(coro) or self._loop is None:
            raise HostNotRunning("no asyncio loop to run the call on")
        try:
            cf = asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError:
            coro.close()
            raise HostNotRunning("the asyncio loop is closed") from None
        done = trio.Event()
        token = self._token

        def on_done(_: Any) -> None:
            try:
                token.run_sync_soon(done.set)
            except trio.RunFinishedError:
                pass

        cf.add_done_callback(on_done)
        try:
            await done.wait()
        except trio.Cancelled:
            cf.cancel()
            raise
        return cf.result()

    def start_soon(self, afn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """From trio: start a background task in the run's nursery (errors are logged)."""
        async def guarded() -> None:
            try:
                await afn(*args)
            except Exception:
                log.exception("%s: background task %s failed", self.name, getattr(afn, "__name__", afn))

        if self._nursery is not None:
            self._nursery.start_soon(guarded)

    def spawn(self, afn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """From asyncio: fire-and-forget ``start_soon``."""
        self.run_sync_soon(self.start_soon, afn, *args)
