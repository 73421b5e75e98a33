"""Building Prometheus metric families for the collectors (docs/metrics.md lists them all).

A collector builds a fresh :class:`Families` at every scrape from the daemon's state; every
sample carries the constant labels first (an agent's ``device``), so a dashboard can group
by device whatever Prometheus calls the target.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from synergy.metrics.counts import Histogram, OutcomeCounts
from synergy.security.audit import AuditLog

__all__ = ["Families", "Rows", "add_outcomes", "add_refusals"]

#: Samples of one labelled family: (label values, value).
Rows = Iterable[tuple[Sequence[str], float]]


class Families:
    """Metric families under construction; :attr:`metrics` is what ``collect`` returns."""

    def __init__(self, constant: Mapping[str, str] | None = None) -> None:
        self._names = list(constant or {})
        self._values = list((constant or {}).values())
        self.metrics: list[Metric] = []

    def gauge(
        self, name: str, doc: str, value: float | None = None, *, labels: Sequence[str] = (), rows: Rows = ()
    ) -> None:
        family = GaugeMetricFamily(name, doc, labels=[*self._names, *labels])
        self._fill(family, value, rows)

    def counter(
        self, name: str, doc: str, value: float | None = None, *, labels: Sequence[str] = (), rows: Rows = ()
    ) -> None:
        """A counter; ``name`` ends in ``_total`` (prometheus_client adds it back when exposing)."""
        family = CounterMetricFamily(name, doc, labels=[*self._names, *labels])
        self._fill(family, value, rows)

    def histogram(
        self, name: str, doc: str, *, labels: Sequence[str] = (), rows: Iterable[tuple[Sequence[str], Histogram]] = ()
    ) -> None:
        family = HistogramMetricFamily(name, doc, labels=[*self._names, *labels])
        for values, histogram in rows:
            family.add_metric([*self._values, *values], histogram.cumulative(), histogram.total)
        self.metrics.append(family)

    def _fill(self, family: GaugeMetricFamily | CounterMetricFamily, value: float | None, rows: Rows) -> None:
        if value is not None:
            family.add_metric(self._values, value)
        for values, row_value in rows:
            family.add_metric([*self._values, *values], row_value)
        self.metrics.append(family)


def add_outcomes(families: Families, prefix: str, counts: OutcomeCounts) -> None:
    """``<prefix>_drop_reports_total{app,reason}`` and ``<prefix>_latency_seconds{app}``."""
    items = counts.items()
    families.counter(
        f"{prefix}_drop_reports_total",
        "Frame drop reports by app and bounded cause (reason); a drop superseded by a replayed delivery stays counted.",
        labels=("app", "reason"),
        rows=[((app, cause), n) for app, outcomes in items for cause, n in sorted(outcomes.dropped.items())],
    )
    families.histogram(
        f"{prefix}_latency_seconds",
        "Capture-to-delivery latency of every delivered frame, by app.",
        labels=("app",),
        rows=[((app,), outcomes.latency) for app, outcomes in items],
    )


def add_refusals(families: Families, audit: AuditLog | None) -> None:
    """``synergy_security_refusals_total{rpc,code}``: what the daemon's audit log counted."""
    counts = sorted(audit.counts().items()) if audit is not None else []
    families.counter(
        "synergy_security_refusals_total",
        "Calls the authorization policy refused, by rpc and gRPC status code (the audit log's counts).",
        labels=("rpc", "code"),
        rows=[((rpc, code), n) for (rpc, code), n in counts],
    )
