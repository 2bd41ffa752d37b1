"""``JobRelay``: the schedule on which jobs are announced again when gossip or a fetch was lost."""

from __future__ import annotations

import time
from collections.abc import Callable


class JobRelay:
    """Keeps jobs moving when a gossip message or a fetch is lost.

    Gossip is best effort and a blob request can time out under load, so one
    announcement is not enough: a node re-announces each job it holds queued and
    does not mine itself, after 10 s, then with a doubling delay up to a minute,
    until the job is done or cancelled; and a node that holds a job's product
    answers an announcement of that job by announcing the result again (at most
    once per ``result_gap`` seconds per job), which is how a submitter that
    missed the first result announcement, or failed to fetch the product, gets
    it later.
    """

    def __init__(self, first_retry: float = 10.0, max_retry: float = 60.0, result_gap: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.first_retry = first_retry
        self.max_retry = max_retry
        self.result_gap = result_gap
        self.clock = clock
        self._due: dict[str, tuple[float, float, int]] = {}
        self._result_sent: dict[str, tuple[float, int]] = {}

    def due(self, waiting: list[str]) -> list[tuple[str, int]]:
        """Of the jobs ``waiting`` (queued here, not mined here), those to announce again now, with their round."""
        now = self.clock()
        out = []
        for job_id in waiting:
            due, delay, rounds = self._due.get(job_id, (now + self.first_retry, self.first_retry, 0))
            if due <= now:
                rounds += 1
                out.append((job_id, rounds))
                delay = min(2 * delay, self.max_retry)
                due = now + delay
            self._due[job_id] = (due, delay, rounds)
        for job_id in set(self._due) - set(waiting):
            del self._due[job_id]
        return out

    def resend_result(self, job_id: str) -> int | None:
        """The round of a result announcement to send again now, or None if one went out too recently."""
        now = self.clock()
        last, rounds = self._result_sent.get(job_id, (now - self.result_gap, 0))
        if now - last < self.result_gap:
            return None
        self._result_sent[job_id] = (now, rounds + 1)
        if len(self._result_sent) > 4096:  # forget the oldest
            for old in sorted(self._result_sent, key=lambda j: self._result_sent[j][0])[:1024]:
                del self._result_sent[old]
        return rounds + 1
