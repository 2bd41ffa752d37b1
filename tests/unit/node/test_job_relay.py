"""The schedule on which a node re-announces waiting jobs and answers with results."""

from node.jobrelay import JobRelay


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_waiting_jobs_are_announced_again_with_doubling_delays():
    clock = Clock()
    relay = JobRelay(first_retry=10, max_retry=40, clock=clock)
    assert relay.due(["j"]) == []  # just seen: the first announcement went out moments ago
    times = []
    for _ in range(200):
        clock.now += 1
        for _, round in relay.due(["j"]):
            times.append((clock.now - 1000, round))
    # +10, +20, +40, then capped at +40; each round numbered, so each repeat is a new gossip payload.
    assert times[:5] == [(10, 1), (30, 2), (70, 3), (110, 4), (150, 5)]


def test_a_job_no_longer_waiting_is_forgotten_and_starts_over():
    clock = Clock()
    relay = JobRelay(first_retry=10, clock=clock)
    relay.due(["j", "k"])
    clock.now += 10
    assert sorted(relay.due(["j", "k"])) == [("j", 1), ("k", 1)]
    clock.now += 1
    assert relay.due(["k"]) == []  # j was done or cancelled
    clock.now += 100
    assert relay.due(["j", "k"]) == [("k", 2)]  # j is new again: its first retry is 10 s away
    clock.now += 10
    assert relay.due(["j"]) == [("j", 1)]


def test_results_are_announced_again_at_most_once_per_gap():
    clock = Clock()
    relay = JobRelay(result_gap=10, clock=clock)
    assert relay.resend_result("j") == 1
    assert relay.resend_result("j") is None
    assert relay.resend_result("k") == 1
    clock.now += 9.9
    assert relay.resend_result("j") is None
    clock.now += 0.1
    assert relay.resend_result("j") == 2
