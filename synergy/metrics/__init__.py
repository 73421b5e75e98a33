"""Prometheus metrics of the daemons (docs/metrics.md).

Split so that a daemon without ``--metrics-bind`` never imports ``prometheus_client``
(an agent stays lean, see docs/architecture.md "Host scale"):

- :mod:`synergy.metrics.counts`: plain counting of what a daemon's state does not keep —
  frame outcomes by app and drop reason, latency and planning-time histograms. No
  dependency; always on (a dictionary update per frame outcome);
- :mod:`synergy.metrics.families`: building metric families from those counts and from
  state shared by both daemons (security refusals), for the collectors;
- :mod:`synergy.metrics.endpoint`: ``--metrics-bind``: parsing it and serving a registry over
  HTTP on the daemon's event loop.

The collectors themselves read each daemon's state at scrape time: ``coordinator.metrics``
and ``agent.metrics``.
"""
