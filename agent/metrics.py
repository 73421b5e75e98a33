"""An agent's Prometheus metrics: its own device's figures, read at scrape time.

The counters are the agent's own (the runtime's telemetry, the reporter's, the radio's, the
board's), the ones its heartbeats carry to the coordinator and more, read at the moment of the
scrape; frame outcomes by app and drop cause come from the :class:`~synergy.metrics.counts.
OutcomeCounts` the agent's result sink feeds. Every sample carries ``device``, so dashboards
group by device whatever the scrape target is called. Every metric: docs/metrics.md.

Imported only when ``--metrics-bind`` is given (with prometheus_client): an agent without
it loads neither.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import Metric
from prometheus_client.registry import CollectorRegistry

from agent.serial_board import SerialBoard
from synergy.metrics.families import Families, add_outcomes, add_refusals

if TYPE_CHECKING:
    from agent.service import Agent

__all__ = ["AgentCollector", "agent_registry"]


class AgentCollector:
    """``collect()`` builds every agent metric from the agent's state at this moment."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    def collect(self) -> Iterable[Metric]:
        agent = self._agent
        runtime = agent.runtime
        t = runtime.telemetry
        f = Families({"device": agent.device.device_id})
        state = runtime.state()
        f.gauge(
            "synergy_agent_info",
            "Always 1: this agent, with its board and link.",
            labels=("board", "link", "address"),
            rows=[((agent.device.board.name, agent.device.link.name, agent.address), 1)],
        )
        f.gauge("synergy_agent_registered", "1 while the agent holds a lease at the coordinator.",
                float(agent.registered.is_set()))  # fmt: skip
        f.gauge("synergy_agent_active_epoch", "The epoch whose sources run here (0: none).", runtime.active_epoch)
        f.gauge("synergy_agent_loaded_epochs", "Epochs deployed here (the active one and any retiring).",
                len(state.loaded_epochs))  # fmt: skip
        f.gauge("synergy_agent_segments", "Pipeline segments held here, every epoch.", len(state.segments))
        breaks, reopens = runtime.stream_counts()
        for name, doc, value in (
            ("synergy_agent_partition_runs_total", "Partitions run on the board (frames run), every app.",
             t.partition_runs),
            ("synergy_agent_frames_in_total", "Frames received from peers.", t.frames_in),
            ("synergy_agent_frames_out_total", "Frames sent to peers.", t.frames_out),
            ("synergy_agent_frames_dropped_total", "Frames this device dropped (by cause: "
             "synergy_agent_drop_reports_total).", t.frames_dropped),
            ("synergy_agent_frames_replayed_total", "Frames a retiring epoch replayed on the new path here.",
             t.frames_replayed),
            ("synergy_agent_peer_bytes_sent_total", "Activation bytes sent to peers.", t.bytes_to_peers),
            ("synergy_agent_peer_bytes_received_total", "Activation bytes received from peers.", t.bytes_from_peers),
            ("synergy_agent_coordinator_bytes_sent_total", "Result bytes the coordinator accepted.",
             agent.reporter.bytes_sent),
            ("synergy_agent_accelerator_busy_seconds_total", "Seconds the board ran partitions (rate(): its "
             "utilisation).", t.accelerator_busy_s),
            ("synergy_agent_radio_busy_seconds_total", "Seconds the emulated radio was transmitting (rate(): its "
             "utilisation; 0 without link shaping).", agent.radio.busy_s),
            ("synergy_agent_stream_breaks_total", "Peer streams that broke.", breaks),
            ("synergy_agent_stream_reopens_total", "Peer streams re-opened after a break.", reopens),
            ("synergy_agent_reports_sent_total", "Frame outcomes the coordinator accepted.", agent.reporter.sent),
            ("synergy_agent_reports_lost_total", "Frame outcomes given up (refused, or the coordinator "
             "unreachable for long).", agent.reporter.lost),
            ("synergy_agent_report_calls_total", "ReportResults calls made (batches, retries included).",
             agent.reporter.calls),
        ):  # fmt: skip
            f.counter(name, doc, value)
        f.gauge("synergy_agent_reports_pending", "Frame outcomes queued for the coordinator.", agent.reporter.pending)
        f.counter(
            "synergy_agent_vital_loop_restarts_total",
            "Restarts of a vital loop (membership, reporter, board, mqtt) after it crashed.",
            labels=("loop",),
            rows=[((loop,), n) for loop, n in sorted(agent.restarts.items())],
        )
        board = agent.board
        f.gauge("synergy_agent_board_weight_bytes_loaded", "Weight bytes of the partitions loaded on the board.",
                board.weight_bytes_loaded())  # fmt: skip
        f.gauge("synergy_agent_board_weight_bytes_capacity", "Weight memory of the board.", board.profile.weight_bytes)
        if isinstance(board, SerialBoard):
            self._serial(f, board)
        timings = [s for s in runtime.stage_timings() if s.epoch == runtime.active_epoch]
        f.gauge(
            "synergy_agent_stage_measured_seconds",
            "Mean measured time of the app's partition here in the active epoch (what calibration compares).",
            labels=("app",),
            rows=[((s.app_id,), s.measured_s) for s in timings],
        )
        f.gauge(
            "synergy_agent_stage_predicted_seconds",
            "The cost model's time of the app's partition here in the active epoch.",
            labels=("app",),
            rows=[((s.app_id,), s.predicted_s) for s in timings],
        )
        # Apps this agent holds, or whose source it ran lately: the others leave the metrics.
        agent.outcomes.retain({s.app_id for s in state.segments} | {app for app, _ in t.sources})
        f.counter(
            "synergy_agent_frames_delivered_total",
            "Frames delivered at this device's outputs (it is the app's target), by app.",
            labels=("app",),
            rows=[((app,), outcomes.delivered) for app, outcomes in agent.outcomes.items()],
        )
        add_outcomes(f, "synergy_agent", agent.outcomes)
        add_refusals(f, agent.guard.audit)
        return f.metrics

    def _serial(self, f: Families, board: SerialBoard) -> None:
        """The real board's link (``--board serial:``), as measured at its last connection."""
        f.gauge("synergy_agent_serial_connected", "1 while the board answers on its serial port.",
                float(board.connected))  # fmt: skip
        f.counter("synergy_agent_serial_connects_total", "Connections to the board (HELLO answered).",
                  board.connects)  # fmt: skip
        f.gauge(
            "synergy_agent_serial_link_bytes_per_second",
            "Bytes per second host -> board measured at the last connection: wire (framing included) and payload.",
            labels=("kind",),
            rows=[(("wire",), board.link_bytes_per_s), (("payload",), board.payload_bytes_per_s)],
        )


def agent_registry(agent: Agent) -> CollectorRegistry:
    """A registry of the agent's own (not the process-wide default: tests run several)."""
    registry = CollectorRegistry()
    registry.register(AgentCollector(agent))
    return registry
