"""What a miner did: counters per device, the event log (JSON lines) and optional Prometheus metrics.

``Stats`` is thread-safe (the workers, the long-poll thread and the reporter
share it). The stderr report is a line every few seconds (multiply-adds per
second per device, blocks, jobs); ``--events FILE`` writes one JSON object per
event (``template``, ``switch``, ``block``, ``job``, ``error``) with its unix
time ``t``, for tests and benchmarks; ``--metrics-port`` serves the counters
as Prometheus metrics.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class EventLog:
    """One JSON line per event to ``out`` (None: nothing)."""

    def __init__(self, out: IO[str] | None, clock: Callable[[], float] = time.time) -> None:
        self._out = out
        self._clock = clock
        self._lock = threading.Lock()

    def emit(self, event: str, **fields: Any) -> None:
        if self._out is None:
            return
        line = json.dumps({"event": event, "t": self._clock(), **fields}, sort_keys=True)
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()


class Stats:
    """Counters of one miner process, and their Prometheus view when a registry is given."""

    def __init__(self, devices: list[str], registry: CollectorRegistry | None = None) -> None:
        self._lock = threading.Lock()
        self.devices = list(devices)
        self.macs = dict.fromkeys(devices, 0)
        self.matmuls = dict.fromkeys(devices, 0)
        self.blocks_found = 0
        self.blocks_rejected = 0
        self.jobs_done = 0
        self.templates = 0
        self.stale_matmuls = 0
        """Matmuls that finished on a template after a newer one had arrived (at most one per switch and worker)."""
        self.errors = 0
        self._prom = registry is not None
        if registry is not None:
            self.p_macs = Counter("pouw_miner_macs", "Multiply-adds done", ["device"], registry=registry)
            self.p_matmuls = Counter("pouw_miner_matmuls", "Matmuls (nonces) done", ["device"], registry=registry)
            self.p_rate = Gauge("pouw_miner_macs_per_second", "Multiply-adds per second over the last report",
                                ["device"], registry=registry)
            self.p_blocks = Counter("pouw_miner_blocks_found", "Blocks the node accepted", registry=registry)
            self.p_rejected = Counter("pouw_miner_blocks_rejected", "Blocks the node refused", registry=registry)
            self.p_jobs = Counter("pouw_miner_jobs_done", "Job products the node accepted", registry=registry)
            self.p_templates = Counter("pouw_miner_templates", "Templates received", registry=registry)
            self.p_stale = Counter("pouw_miner_stale_matmuls", "Matmuls finished after a newer template arrived",
                                   registry=registry)
            self.p_errors = Counter("pouw_miner_errors", "Failed calls to the node", registry=registry)
            self.p_switch = Histogram("pouw_miner_switch_seconds", "From a template's arrival to a worker on it",
                                      ["device"], registry=registry,
                                      buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

    def matmul(self, device: str, macs: int, *, stale: bool) -> None:
        with self._lock:
            self.macs[device] += macs
            self.matmuls[device] += 1
            self.stale_matmuls += stale
        if self._prom:
            self.p_macs.labels(device).inc(macs)
            self.p_matmuls.labels(device).inc()
            if stale:
                self.p_stale.inc()

    def count(self, what: str) -> None:
        """``blocks_found``, ``blocks_rejected``, ``jobs_done``, ``templates`` or ``errors``."""
        with self._lock:
            setattr(self, what, getattr(self, what) + 1)
        if self._prom:
            {"blocks_found": self.p_blocks, "blocks_rejected": self.p_rejected, "jobs_done": self.p_jobs,
             "templates": self.p_templates, "errors": self.p_errors}[what].inc()

    def switched(self, device: str, seconds: float) -> None:
        if self._prom:
            self.p_switch.labels(device).observe(seconds)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"macs": dict(self.macs), "matmuls": dict(self.matmuls), "blocks_found": self.blocks_found,
                    "blocks_rejected": self.blocks_rejected, "jobs_done": self.jobs_done,
                    "templates": self.templates, "stale_matmuls": self.stale_matmuls, "errors": self.errors}

    def set_rates(self, rates: dict[str, float]) -> None:
        if self._prom:
            for device, rate in rates.items():
                self.p_rate.labels(device).set(rate)


def serve_metrics(port: int, bind: str = "127.0.0.1") -> tuple[CollectorRegistry, int]:
    """Start the Prometheus endpoint (``/metrics``) on ``bind:port`` (0: any free port); the registry and port."""
    registry = CollectorRegistry()
    server, _ = start_http_server(port, addr=bind, registry=registry)
    return registry, int(server.server_port)


def rate_line(previous: dict[str, Any], now: dict[str, Any], seconds: float) -> tuple[str, dict[str, float]]:
    """The stderr report line between two ``Stats.snapshot`` values ``seconds`` apart, and the rates."""
    rates = {d: (now["macs"][d] - previous["macs"].get(d, 0)) / max(seconds, 1e-9) for d in now["macs"]}
    parts = [f"{d} {rate / 1e9:.3f} GMAC/s" for d, rate in rates.items()]
    line = (f"pouw-miner: {' | '.join(parts)} | blocks {now['blocks_found']} (refused {now['blocks_rejected']}) "
            f"| jobs {now['jobs_done']} | templates {now['templates']} | errors {now['errors']}")
    return line, rates
