"""Counting for the metrics (synergy.metrics.counts): drop causes, histograms, outcomes per app."""

from __future__ import annotations

import pytest

from agent.dataplane import REPLAY_MAX_AGE_S
from synergy.metrics.counts import DROP_CAUSES, Histogram, ObservingSink, OutcomeCounts, drop_cause
from synergy.reports import Result


def result(app: str = "app-1", seq: int = 1, *, latency_s: float = 0.02, dropped: str = "") -> Result:
    return Result(app, 1, seq, 100.0, 100.0 + latency_s, device_id="ring", dropped=bool(dropped), drop_reason=dropped)


#: Drop reasons as the agent's runtime and data plane write them (agent/runtime.py,
#: agent/dataplane.py), with the cause each must count under.
REASONS = [
    (f"app-1/e3/s0: epoch retired while the frame was processed; not replayed: past the replay bound "
     f"(6.1 s > {REPLAY_MAX_AGE_S:g} s)", "replay_bound"),
    ("app-1/e3/s1: internal error RuntimeError: boom", "internal"),
    ("epoch 3 retired before the frame was processed; not replayed: no segment of the active epoch here carries it",
     "no_path"),
    ("epoch 3 retired before the frame was processed; epoch 4 retired too before the replay", "epoch_retired"),
    ("app-1/e3/s1: board on /dev/pts/4 is unavailable: EOF", "board"),
    ("app-1/e3/s1: partition 0123456789ab is not loaded on max78000", "board"),
    ("seq 7 is already in flight on this stream", "duplicate"),
    ("stream to the next hop failed: Unavailable: connection refused", "stream"),
    ("stream closed before the next hop acknowledged; stream closing", "stream"),
    ("no segment 2 of app app-1 in epoch 3 on ring; deployed epochs: [4]", "rejected"),
    ("tensor 'x': got int8[1, 3], expected int8[1, 4]", "rejected"),
    ("something nobody wrote yet", "other"),
]  # fmt: skip


@pytest.mark.parametrize(("reason", "cause"), REASONS, ids=[c for _, c in REASONS])
def test_each_drop_reason_maps_to_its_bounded_cause(reason: str, cause: str) -> None:
    assert drop_cause(reason) == cause
    assert cause in DROP_CAUSES


def test_a_histogram_counts_into_inclusive_buckets_and_exposes_them_cumulatively() -> None:
    histogram = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 2.0):
        histogram.observe(value)
    assert histogram.cumulative() == [("0.1", 2.0), ("1.0", 3.0), ("+Inf", 4.0)]
    assert histogram.count == 4
    assert histogram.total == pytest.approx(2.65)


def test_outcomes_count_deliveries_with_latency_and_drops_by_cause_per_app() -> None:
    counts = OutcomeCounts()
    counts.observe(result(latency_s=0.02))
    counts.observe(result(seq=2, latency_s=0.3))
    counts.observe(result(seq=3, dropped="stream to the next hop is closed"))
    counts.observe(result("app-2", dropped="app-2/e1/s0: internal error KeyError: 'x'"))
    (app1, one), (app2, two) = counts.items()
    assert (app1, one.delivered, one.dropped, one.latency.count) == ("app-1", 2, {"stream": 1}, 2)
    assert (app2, two.delivered, two.dropped, two.latency.count) == ("app-2", 0, {"internal": 1}, 0)


def test_outcomes_forget_apps_that_are_gone_and_never_hold_more_than_their_bound() -> None:
    counts = OutcomeCounts(max_apps=2)
    for app in ("app-1", "app-2", "app-3"):
        counts.observe(result(app))
    assert [a for a, _ in counts.items()] == ["app-2", "app-3"]  # the oldest went
    counts.retain(["app-3", "app-9"])
    assert [a for a, _ in counts.items()] == ["app-3"]


def test_the_observing_sink_counts_what_it_hands_on() -> None:
    handed: list[Result] = []

    class Sink:
        def submit(self, r: Result) -> None:
            handed.append(r)

    counts = OutcomeCounts()
    sink = ObservingSink(Sink(), counts)
    sink.submit(result())
    assert len(handed) == 1 and counts.items()[0][1].delivered == 1
