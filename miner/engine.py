"""The mining engine: one long-poll thread, one worker thread per device, a report every few seconds.

The long-poll thread keeps ``WorkBox`` holding the newest template: it calls
``getblocktemplate`` with the last ``longpollid``, so the call returns as soon
as the node's tip (or its jobs, or its mempool) changed. Every worker reads the
box before each matmul, so after the tip moves a worker finishes at most the
matmul in flight on the old template (counted in ``stale_matmuls``: matmuls
that ended after a template on another parent had arrived) and the
next one is on the new template: a stale template is mined for at most one
long-poll round. A worker that finds a block marks its template spent; the
workers then wait for the next template instead of mining one known stale
(the node wakes long-polls on every ``submitblock``).

Job work: when the template carries a job leased to this miner (its
``--worker`` name), the first worker to see it claims it, fetches A and B
from ``/blobs``, multiplies the padded pair for one nonce (the exact product
falls out, as in ``pouwd --mine``), submits any winning block and hands in
the product (``submitmatmulresult``). The lease (node/jobs.py) keeps other
miners off the job; a failed attempt is retried after ``JOB_RETRY`` seconds
while the lease holds. Claiming paid jobs with the miner's key waits for the
job market: the seam is ``JobPolicy`` (which leased job to take), today
"take the one the node leases".
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from consensus.types import Block
from kernels.base import Backend, Prepared, prepare
from pouw.matrix import pad_pair
from wallet.rpc import NodeError, RpcError

from .devices import Device
from .report import EventLog, Stats
from .work import JobWork, TemplateError, Work, at_shape, winning_block

log = logging.getLogger("pouw-miner")

JOB_RETRY = 5.0
"""Seconds before a job whose attempt failed here is tried again (while its lease holds)."""
BACKOFF_MAX = 10.0
"""Longest wait between retries of a failed template request."""
SPENT_WAIT = 0.25
"""How long a worker waits for a new template at a time, when it has none to mine."""


class BlockSink(Protocol):
    """Where found blocks and products go (``miner.client.MinerClient``)."""

    def submit_block(self, block: Block) -> str | None: ...

    def fetch_matrix(self, digest: str, shape: tuple[int, int], name: str) -> np.ndarray: ...

    def submit_product(self, job_id: str, c: np.ndarray) -> dict: ...


class TemplateSource(Protocol):
    def template(self, longpollid: str | None = None, timeout: float = 60.0) -> Work: ...


class JobPolicy(Protocol):
    """Which job work to take (the seam for the job market: paid jobs first, claimed with the miner's key)."""

    def take(self, job: JobWork) -> bool: ...


class TakeLeased:
    """Today's policy: do the job the node leased to this miner."""

    def take(self, job: JobWork) -> bool:
        return True


class WorkBox:
    """The newest template, shared by the long-poll thread and the workers (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._cond = threading.Condition()
        self._work: Work | None = None
        self._spent = -1
        self._jobs: dict[str, tuple[str, float]] = {}
        self._clock = clock
        self.closed = False

    def put(self, work: Work) -> Work:
        with self._cond:
            generation = 1 if self._work is None else self._work.generation + 1
            work = replace(work, generation=generation, received=self._clock())
            self._work = work
            self._cond.notify_all()
            return work

    @property
    def generation(self) -> int:
        with self._cond:
            return 0 if self._work is None else self._work.generation

    @property
    def prev_id(self) -> bytes | None:
        """The parent the newest template builds on."""
        with self._cond:
            return None if self._work is None else self._work.prev_id

    def current(self, timeout: float = SPENT_WAIT) -> Work | None:
        """The newest template not spent, waiting up to ``timeout`` for one."""
        deadline = self._clock() + timeout
        with self._cond:
            while not self.closed and (self._work is None or self._work.generation <= self._spent):
                left = deadline - self._clock()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return None if self.closed else self._work

    def spend(self, generation: int) -> None:
        """A block was found on this template: nobody mines it again."""
        with self._cond:
            self._spent = max(self._spent, generation)

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def claim_job(self, job_id: str) -> bool:
        """True for the first worker to ask (and again once a failed attempt is ``JOB_RETRY`` old)."""
        now = self._clock()
        with self._cond:
            state = self._jobs.get(job_id)
            if state is not None and (state[0] != "failed" or now - state[1] < JOB_RETRY):
                return False
            self._jobs[job_id] = ("running", now)
            if len(self._jobs) > 1024:  # forget the oldest: a job id comes back only while leased
                self._jobs.pop(next(iter(self._jobs)))
            return True

    def job_ended(self, job_id: str, ok: bool) -> None:
        with self._cond:
            self._jobs[job_id] = ("done" if ok else "failed", self._clock())


@dataclass
class Engine:
    """Runs the long-poll thread and the workers until ``stop`` is set."""

    templates: TemplateSource
    sink: BlockSink
    devices: list[Device]
    shape: tuple[int, int, int]
    """``(m, k, n)`` of each worker's own random matrices."""
    stats: Stats
    events: EventLog
    longpoll_timeout: float = 60.0
    policy: JobPolicy = TakeLeased()

    def __post_init__(self) -> None:
        self.box = WorkBox()
        self.stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        poller = threading.Thread(target=self._poll, name="pouw-miner-longpoll", daemon=True)
        poller.start()  # daemon: it may sit in a long-poll when the miner stops; it holds nothing
        self._threads.append(poller)
        for i, device in enumerate(self.devices):
            t = threading.Thread(target=self._work, args=(device, i), name=f"pouw-miner-{device.name}", daemon=True)
            t.start()
            self._threads.append(t)

    def close(self, timeout: float = 30.0) -> None:
        """Stop: workers finish the matmul in flight and end."""
        self.stop.set()
        self.box.close()
        for t in self._threads[1:]:
            t.join(timeout)

    # --- the long-poll thread ----------------------------------------------------------------

    def _poll(self) -> None:
        pollid: str | None = None
        backoff = 0.5
        while not self.stop.is_set():
            try:
                work = self.templates.template(pollid, self.longpoll_timeout)
            except (NodeError, TemplateError, OSError) as e:
                self.stats.count("errors")
                self.events.emit("error", where="getblocktemplate", message=str(e))
                log.warning("getblocktemplate failed (%s); retrying in %.1f s", e, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                pollid = None
                continue
            backoff = 0.5
            pollid = work.longpollid
            work = self.box.put(work)
            self.stats.count("templates")
            self.events.emit("template", generation=work.generation, prev=work.prev_id.hex(), height=work.height,
                             longpollid=pollid, job=work.job.job_id if work.job else None)

    # --- workers -----------------------------------------------------------------------------

    def _work(self, device: Device, index: int) -> None:
        rng = np.random.default_rng()  # work matrices and nonces: the miner's own choice, not consensus values
        nonce = int.from_bytes(rng.bytes(8), "little")
        pair: Prepared | None = None
        seen = 0
        while not self.stop.is_set():
            work = self.box.current()
            if work is None:
                continue
            if work.generation != seen:
                seen = work.generation
                delay = time.monotonic() - work.received
                self.stats.switched(device.name, delay)
                self.events.emit("switch", device=device.name, generation=seen, prev=work.prev_id.hex(),
                                 height=work.height, delay=delay)
            try:
                if work.job is not None and self.policy.take(work.job) and self.box.claim_job(work.job.job_id):
                    nonce = self._do_job(device, work, work.job, nonce)
                    continue
                if pair is None:
                    m, k, n = self.shape
                    pair = prepare(rng.integers(-64, 64, (m, k), dtype=np.int8),
                                   rng.integers(-64, 64, (k, n), dtype=np.int8))
                self._mine(device, work, pair, nonce)
                nonce = (nonce + 1) % (1 << 64)
            except Exception as e:  # a worker keeps mining, but says why it missed a beat
                self.stats.count("errors")
                self.events.emit("error", where=device.name, message=f"{type(e).__name__}: {e}")
                log.exception("worker %s failed; going on", device.name)
                self.stop.wait(1.0)

    def _mine(self, device: Device, work: Work, prepared: Prepared, nonce: int, *,
              want_product: bool = False) -> np.ndarray | None:
        backend: Backend = device.backend
        m, k, n = prepared.shape
        result = backend.mine(prepared, at_shape(work.template.pre, prepared), nonce, want_product=want_product)
        self.stats.matmul(device.name, m * k * n, stale=self.box.prev_id != work.prev_id)
        block = winning_block(work.template, prepared, result)
        if block is not None:
            self._submit(device, work, block)
        return result.product

    def _submit(self, device: Device, work: Work, block: Block) -> None:
        block_id = block.header.block_id.hex()
        try:
            note = self.sink.submit_block(block)
        except RpcError as e:
            self.stats.count("blocks_rejected")
            self.events.emit("block", id=block_id, height=work.height, device=device.name, accepted=False,
                             reason=e.message)
            log.warning("block %s refused: %s", block_id[:16], e.message)
            return
        self.box.spend(work.generation)
        self.stats.count("blocks_found")
        self.events.emit("block", id=block_id, height=work.height, device=device.name, accepted=True, note=note)
        log.info("block %s at height %d (%s)", block_id[:16], work.height, device.name)

    def _do_job(self, device: Device, work: Work, job: JobWork, nonce: int) -> int:
        m, k, n = job.shape
        ok = False
        try:
            a = self.sink.fetch_matrix(job.a, (m, k), "A")
            b = self.sink.fetch_matrix(job.b, (k, n), "B")
            prepared = prepare(*pad_pair(a, b))
            if prepared.shape != job.padded:
                raise ValueError(f"job {job.job_id}: padded {prepared.shape}, the node says {job.padded}")
            latest = self.box.current(0.0)
            if latest is not None and latest.job is not None and latest.job.job_id == job.job_id:
                work = latest  # the newest template that still carries the job
            product = self._mine(device, work, prepared, nonce, want_product=True)
            nonce = (nonce + 1) % (1 << 64)
            if product is None:
                raise RuntimeError("the backend returned no product")
            answer = self.sink.submit_product(job.job_id, product[:m, :n])
            ok = True
            self.stats.count("jobs_done")
            self.events.emit("job", id=job.job_id, device=device.name, accepted=True,
                             computed_by=answer.get("computed_by"))
            log.info("job %s done (%s)", job.job_id[:16], device.name)
        except (NodeError, ValueError, RuntimeError) as e:
            self.stats.count("errors")
            self.events.emit("job", id=job.job_id, device=device.name, accepted=False, reason=str(e))
            log.warning("job %s failed here: %s", job.job_id[:16], e)
        finally:
            self.box.job_ended(job.job_id, ok)
        return nonce
