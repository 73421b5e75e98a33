"""What the coordinator's driver observes for its metrics, beyond the state the core keeps.

The metrics endpoint reads the core's state at scrape time (``coordinator.metrics``). A few
things are not in that state as running totals, because the core needs none of them; the
driver feeds them here (plain counting, always on, no dependency):

- **frame outcomes**: each result the core counted, for the latency histogram and the drops by
  cause (:class:`~synergy.metrics.counts.OutcomeCounts`);
- **planning time**: how long each round's planner call took;
- **planning rounds**: the core's :class:`~coordinator.replans.ReplanLog` keeps the recent
  rounds with their causes and outcome; each round is counted here once it has finished, by
  outcome and by each of its causes, so the totals outlive the log's window;
- **the planner's predicted utilisation** of each resource under the latest plan.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from coordinator.core import ControlCore
from synergy.metrics.counts import PLANNING_BUCKETS_S, Histogram, OutcomeCounts
from synergy.types import ExecutionPlan

__all__ = ["CoordinatorObservations"]


class CoordinatorObservations:
    """See the module docstring. The driver calls :meth:`handled` after every event it fed the
    core except results (a round never ends on one), :meth:`planned` for every plan its
    planner computed, and ``outcomes.observe`` for every result the core counted."""

    def __init__(self) -> None:
        self.outcomes = OutcomeCounts()
        self.planning = Histogram(PLANNING_BUCKETS_S)
        #: Finished planning rounds by outcome, and the causes they took up by kind.
        self.round_outcomes: Counter[str] = Counter()
        self.round_causes: Counter[str] = Counter()
        self._last_round = 0
        #: The stages of the latest plan computed, and the predicted busy fraction of every
        #: resource under it ("watch.accelerator", "body.air").
        self._utilisation: tuple[tuple[ExecutionPlan, ...], Mapping[str, float]] = ((), {})

    def handled(self, core: ControlCore) -> None:
        """Count the rounds that finished since the last call (at most a few per event: the
        log's window of recent rounds is never outrun)."""
        for finished in core.replans.rounds:
            if finished.round_id <= self._last_round or finished.outcome is None:
                continue
            self.round_outcomes[finished.outcome.value] += 1
            self.round_causes.update(cause.kind.value for cause in finished.causes)
            self._last_round = finished.round_id

    def planned(self, seconds: float, stages: tuple[ExecutionPlan, ...], utilisation: Mapping[str, float]) -> None:
        self.planning.observe(seconds)
        self._utilisation = (stages, dict(utilisation))

    def utilisation(self, core: ControlCore) -> Mapping[str, float]:
        """Predicted busy fraction per resource of the deployed plan; empty when the latest plan
        computed is not the one deployed (its deployment failed or is still going on)."""
        stages, utilisation = self._utilisation
        return utilisation if stages and stages == core.plan.plans else {}
