"""The collectors on fake state: the coordinator's (a control core driven by the test harness)
and an agent's (an Agent built on fakes, its counters set by hand), rendered and parsed as
Prometheus reads them. Then the documentation and the Grafana dashboard against what they
expose: docs/metrics.md lists every metric with its type and labels, and the dashboard
queries only metrics that exist."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import yaml
from core_harness import Harness, app_spec, device
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry
from test_agent_membership import FakeRegistry

from agent.metrics import agent_registry
from agent.serial_board import SerialBoard, SerialTarget
from agent.service import Agent, AgentConfig
from coordinator.messages import AppRemoved, DeviceDeregistered, Event, FanOutResult, ResultReported
from coordinator.metrics import CoordinatorCollector
from coordinator.replans import CauseKind, ReplanOutcome
from coordinator.service import Coordinator, CoordinatorConfig
from synergy.devices import preset_device
from synergy.metrics.counts import DROP_CAUSES
from synergy.reports import Result
from synergy.security.audit import AuditLog
from synergy.security.authz import Refusal

ROOT = Path(__file__).resolve().parents[2]

#: (sample name, sorted labels) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
#: exposed family name -> (type, label names)
Shapes = dict[str, tuple[str, frozenset[str]]]


def render(registry: CollectorRegistry) -> tuple[Samples, Shapes]:
    """What a scrape of ``registry`` says, parsed as Prometheus parses it."""
    samples: Samples = {}
    shapes: Shapes = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        name = family.name + "_total" if family.type == "counter" else family.name
        labels = frozenset(k for s in family.samples for k in s.labels if k != "le")
        shapes[name] = (family.type, labels)
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples, shapes


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def refusal(method: str = "Register") -> Refusal:
    return Refusal("PERMISSION_DENIED", "not yours", method, service="synergy.v1.RegistryService", identity=None)


class Driven:
    """A Coordinator whose core the harness drives, fed to its observations as the driver does."""

    def __init__(self) -> None:
        self.harness = Harness()
        self.coordinator = Coordinator(CoordinatorConfig())
        self.coordinator.core = self.harness.core
        self.audit = AuditLog()
        registry = CollectorRegistry()
        now = self.now
        registry.register(CoordinatorCollector(self.coordinator, self.audit, clock=now, wall_clock=now))
        self.registry = registry

    def now(self) -> float:
        return self.harness.now

    def feed(self, event: Event) -> None:
        observations = self.coordinator.observations
        for instruction in self.harness.feed(event):
            if isinstance(instruction, FanOutResult):
                observations.outcomes.observe(instruction.result)
        observations.handled(self.harness.core)

    def report(self, seq: int, *, latency_s: float = 0.05, dropped: str = "") -> None:
        core = self.harness.core
        plan = core.plan.plan_for("app-1")
        assert plan is not None
        target = plan.target_device
        captured = self.harness.now - latency_s
        result = Result("app-1", core.epoch, (core.epoch << 32) | seq, captured, self.harness.now,
                        device_id=target, dropped=bool(dropped), drop_reason=dropped)  # fmt: skip
        self.feed(ResultReported(self.harness.leases[target], result, self.harness.now))


@pytest.fixture
async def driven() -> AsyncIterator[Driven]:
    made = Driven()
    h = made.harness
    for preset in ("glasses", "watch", "ring"):
        h.register(device(preset))
    h.submit(app_spec("app-1"))
    h.finish_deploy()
    h.agents_report_truth()
    made.coordinator.observations.handled(h.core)
    yield made
    await made.coordinator.shutdown()


async def test_the_coordinators_metrics_are_its_state(driven: Driven) -> None:
    h, core = driven.harness, driven.harness.core
    for seq in (1, 2, 3):
        driven.report(seq)
    driven.report(4, dropped="stream to the next hop is closed")
    driven.report(2)  # a replayed copy of a frame already counted: counted nowhere
    driven.audit.record(refusal(), now=0.0)
    plan = core.plan.plan_for("app-1")
    assert plan is not None
    driven.coordinator.observations.planned(0.02, core.plan.plans, {"glasses.accelerator": 0.25, "body.air": 0.5})
    samples, _ = render(driven.registry)

    [info] = core.list_apps(h.now)
    assert value(samples, "synergy_app_frames_delivered_total", app="app-1") == info.stats.frames_delivered == 3
    assert value(samples, "synergy_app_frames_dropped_total", app="app-1") == info.stats.frames_dropped == 1
    assert value(samples, "synergy_app_latency_seconds_count", app="app-1") == 3
    assert value(samples, "synergy_app_latency_seconds_bucket", app="app-1", le="0.05") == 3
    assert value(samples, "synergy_app_drop_reports_total", app="app-1", reason="stream") == 1
    assert value(samples, "synergy_app_state", app="app-1", state="running") == 1
    assert value(samples, "synergy_app_state", app="app-1", state="waiting") == 0
    assert value(samples, "synergy_app_placed", app="app-1") == 1
    assert value(samples, "synergy_app_planned_rate_frames_per_second", app="app-1") == plan.predicted_rate_hz
    assert value(samples, "synergy_epoch") == core.epoch == 1
    for device_id, record in core.devices.items():
        assert value(samples, "synergy_device_online", device=device_id) == 1
        lease_left = value(samples, "synergy_device_lease_remaining_seconds", device=device_id)
        assert lease_left == pytest.approx(record.expires_at - h.now)
        assert value(samples, "synergy_device_calibration_factor", device=device_id) == 1.0
    assert value(samples, "synergy_device_planned_utilisation_ratio", device="glasses", resource="accelerator") == 0.25
    assert value(samples, "synergy_device_planned_utilisation_ratio", device="body", resource="air") == 0.5
    assert value(samples, "synergy_planning_duration_seconds_count") == 1
    assert value(samples, "synergy_replan_rounds_total", outcome="deployed") == 1
    assert value(samples, "synergy_replan_causes_total", cause="app_submitted") == 1
    assert value(samples, "synergy_replan_causes_total", cause="device_joined") == 3
    assert value(samples, "synergy_results_received_total") == core.stats.results_received == 5
    assert value(samples, "synergy_security_refusals_total", rpc="RegistryService/Register",
                 code="PERMISSION_DENIED") == 1  # fmt: skip


async def test_a_device_that_left_and_an_app_removed_show_as_such(driven: Driven) -> None:
    h, core = driven.harness, driven.harness.core
    driven.report(1)
    driven.coordinator.observations.planned(0.02, core.plan.plans, {"glasses.accelerator": 0.25})
    driven.feed(DeviceDeregistered("ring", h.leases["ring"], h.now))
    driven.feed(AppRemoved("app-1", h.now))
    if h.pending_deploy is not None:
        h.finish_deploy()
    driven.coordinator.observations.handled(core)
    samples, _ = render(driven.registry)
    assert value(samples, "synergy_device_online", device="ring") == 0
    assert value(samples, "synergy_device_lease_remaining_seconds", device="ring") == 0
    assert not [k for k in samples if ("app", "app-1") in k[1]], "a removed app leaves the metrics"
    # The utilisation was that of a plan no longer deployed.
    assert not [k for k in samples if k[0] == "synergy_device_planned_utilisation_ratio"]
    assert value(samples, "synergy_replan_causes_total", cause="device_left") == 1
    assert value(samples, "synergy_replan_causes_total", cause="app_removed") == 1


def fake_agent(*, serial: bool = False) -> Agent:
    ring = preset_device("ring", "ring")
    board = SerialBoard(ring.board, SerialTarget("/dev/nonexistent-synergy-test")) if serial else None
    agent = Agent(AgentConfig(device=ring), registry=FakeRegistry(), board=board)
    t = agent.runtime.telemetry
    t.partition_runs, t.frames_in, t.frames_out, t.bytes_to_peers, t.accelerator_busy_s = 5, 4, 3, 1000, 0.5
    t.stage_times[("app-1", 2)] = [0.002, 0.009, 3]
    t.stage_times[("app-1", 1)] = [0.002, 0.1, 1]  # a retiring epoch: not the active one's figures
    t.sources[("app-1", 2)] = [3, 1]
    agent.runtime.active_epoch = 2
    agent.restarts["membership"] = 1
    agent.guard.audit.record(refusal("Deploy"), now=0.0)
    # Through the runtime's sink: counted, and queued for the coordinator.
    agent.runtime.reporter.submit(Result("app-1", 2, 1, 100.0, 100.03, device_id="ring"))
    agent.runtime.reporter.submit(
        Result("app-1", 2, 2, 100.0, 100.0, device_id="ring", dropped=True, drop_reason="app-1/e2/s1: internal error")
    )
    return agent


async def test_an_agents_metrics_are_its_own_counters_each_labelled_with_its_device() -> None:
    agent = fake_agent()
    samples, shapes = render(agent_registry(agent))
    assert all(("device", "ring") in labels for _, labels in samples), "every sample names the device"
    assert value(samples, "synergy_agent_partition_runs_total", device="ring") == 5
    assert value(samples, "synergy_agent_peer_bytes_sent_total", device="ring") == 1000
    assert value(samples, "synergy_agent_accelerator_busy_seconds_total", device="ring") == 0.5
    assert value(samples, "synergy_agent_active_epoch", device="ring") == 2
    assert value(samples, "synergy_agent_registered", device="ring") == 0
    assert value(samples, "synergy_agent_stage_measured_seconds", device="ring", app="app-1") == pytest.approx(0.003)
    assert value(samples, "synergy_agent_frames_delivered_total", device="ring", app="app-1") == 1
    assert value(samples, "synergy_agent_drop_reports_total", device="ring", app="app-1", reason="internal") == 1
    assert value(samples, "synergy_agent_reports_pending", device="ring") == agent.reporter.pending == 2
    assert value(samples, "synergy_agent_vital_loop_restarts_total", device="ring", loop="membership") == 1
    capacity = agent.board.profile.weight_bytes
    assert value(samples, "synergy_agent_board_weight_bytes_capacity", device="ring") == capacity
    assert value(samples, "synergy_security_refusals_total", device="ring", rpc="RegistryService/Deploy",
                 code="PERMISSION_DENIED") == 1  # fmt: skip
    assert "synergy_agent_serial_connected" not in shapes  # an emulated board has no serial link
    serial, _ = render(agent_registry(fake_agent(serial=True)))
    assert value(serial, "synergy_agent_serial_connected", device="ring") == 0
    assert value(serial, "synergy_agent_serial_link_bytes_per_second", device="ring", kind="wire") == 0


def documented() -> Iterator[tuple[str, str, frozenset[str]]]:
    """(name, type, labels) of every row of docs/metrics.md's tables."""
    for line in (ROOT / "docs" / "metrics.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`synergy_"):
            yield cells[0].strip("`"), cells[1], frozenset(x.strip() for x in cells[2].split(",") if x.strip())


async def test_docs_list_every_metric_with_its_type_and_labels(driven: Driven) -> None:
    driven.report(1)
    driven.report(2, dropped="stream to the next hop is closed")
    driven.audit.record(refusal(), now=0.0)
    driven.coordinator.observations.planned(0.02, driven.harness.core.plan.plans, {"glasses.accelerator": 0.25})
    _, exposed = render(driven.registry)
    for agent in (fake_agent(), fake_agent(serial=True)):
        _, shapes = render(agent_registry(agent))
        for name, (kind, labels) in shapes.items():
            if name in exposed:  # the refusals: the agent's carry its device as well
                labels = exposed[name][1] | labels
            exposed[name] = (kind, labels)
    docs: Shapes = {}
    for name, kind, labels in documented():
        docs[name] = (kind, docs[name][1] | labels if name in docs else labels)
    assert docs == exposed


def test_docs_name_every_value_of_the_bounded_labels() -> None:
    text = (ROOT / "docs" / "metrics.md").read_text()
    for values in (DROP_CAUSES, [c.value for c in CauseKind], [o.value for o in ReplanOutcome]):
        missing = [v for v in values if f"`{v}`" not in text]
        assert not missing, missing


def dashboard_queries() -> Iterator[str]:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "synergy-dashboard.json").read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels), "panel ids must be unique"
    for panel in panels:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"
            yield target["expr"]


def test_the_dashboard_queries_only_documented_metrics() -> None:
    names = {name for name, _, _ in documented()}
    histograms = {name for name, kind, _ in documented() if kind == "histogram"}
    used = set()
    for expr in dashboard_queries():
        for found in re.findall(r"synergy_[a-z0-9_]+", expr):
            base = re.sub(r"_(bucket|sum|count)$", "", found)
            used.add(found if found in names else base)
            assert found in names or base in histograms, (found, expr)
    # The panels the dashboard must have: app rates, latency, drops, utilisation, planning time, epochs.
    for topic in (
        "synergy_app_frames_delivered_total",
        "synergy_app_latency_seconds",
        "synergy_app_drop_reports_total",
        "synergy_device_accelerator_busy_seconds_total",
        "synergy_planning_duration_seconds",
        "synergy_epoch",
    ):
        assert topic in used, topic


def test_the_sample_scrape_config_names_both_jobs_on_the_compose_ports() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["synergy-coordinator"]["static_configs"][0]["targets"] == ["coordinator:9464"]
    assert jobs["synergy-agents"]["dns_sd_configs"][0]["port"] == 9464
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert "--metrics-bind=0.0.0.0:9464" in compose["services"]["coordinator"]["command"]
    assert compose["x-agent"]["environment"]["SYNERGY_METRICS_BIND"] == "0.0.0.0:9464"
