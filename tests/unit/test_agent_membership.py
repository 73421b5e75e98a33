"""Membership, reporting and the agent's lifecycle against a fake registry (no sockets)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import structlog

from agent.board import LoadedPartition, RunTiming
from agent.membership import Backoff, Membership
from agent.reporter import Reporter
from agent.service import Agent, AgentConfig
from synergy.deployment import AgentState, HeldSegment, PartitionPayload, SegmentAssignment
from synergy.errors import InvalidArgument, NotFound, PermissionDenied, SynergyError, Unauthenticated, Unavailable
from synergy.hardware.boards import load_board
from synergy.hardware.model import TensorSpec
from synergy.reports import DeviceTelemetry, Result, WireTensor
from synergy.types import CLIENT_SOURCE, LINK_PRESETS, DeviceSpec, OutputSpec
from synergy.wire.registry_client import Lease
from synergy.wire.tensors import Array

X = TensorSpec("x", (1, 4), "int8")
DEVICE = DeviceSpec(
    device_id="ring", board=load_board("max78000"), outputs=(OutputSpec("display"),), link=LINK_PRESETS["loopback"]
)
FAST = Lease("lease-1", heartbeat_period_s=0.02, lease_ttl_s=0.15)
#: Refusals that concern one result: its outcome in a batch, not a failure of the call.
PER_RESULT = (PermissionDenied, Unauthenticated, InvalidArgument)


async def eventually(check: Callable[[], object], timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.002)


class FakeRegistry:
    """Scripted answers; records every call with the state it carried."""

    def __init__(self, lease: Lease = FAST) -> None:
        self.lease = lease
        self.calls: list[tuple[str, Any]] = []
        self.register_errors: list[SynergyError] = []
        #: Heartbeat outcomes, in order (None = OK); when empty, heartbeats succeed.
        self.heartbeat_script: list[BaseException | None] = []
        self.heartbeat_error: SynergyError | None = None
        #: Per result, in order (None: taken); see report_results.
        self.report_errors: list[SynergyError | None] = []
        #: The seqs of each ReportResults call.
        self.batches: list[list[int]] = []
        #: Set: ReportResults answers this (e.g. UNIMPLEMENTED) and unary ReportResult is allowed.
        self.batches_unimplemented: SynergyError | None = None
        self.deregister_error: SynergyError | None = None
        self.deregister_hangs = False
        self.on_deregister: Callable[[], None] = lambda: None
        self.registrations = 0
        self.closed = False
        self.heartbeat_timeouts: list[float] = []

    def named(self, name: str) -> list[Any]:
        return [arg for call, arg in self.calls if call == name]

    async def register(self, spec: DeviceSpec, state: AgentState) -> Lease:
        self.calls.append(("register", state))
        if self.register_errors:
            raise self.register_errors.pop(0)
        self.registrations += 1
        return Lease(f"lease-{self.registrations}", self.lease.heartbeat_period_s, self.lease.lease_ttl_s)

    async def heartbeat(
        self, device_id: str, lease_id: str, telemetry: DeviceTelemetry, state: AgentState, timeout_s: float
    ) -> None:
        self.calls.append(("heartbeat", (lease_id, state)))
        self.heartbeat_timeouts.append(timeout_s)
        outcome = self.heartbeat_script.pop(0) if self.heartbeat_script else self.heartbeat_error
        if outcome is not None:
            raise outcome

    async def report_result(self, lease_id: str, result: Result) -> None:
        if self.batches_unimplemented is None:
            raise AssertionError("the reporter sent a unary ReportResult to a coordinator that has ReportResults")
        self.calls.append(("report", (lease_id, result.seq)))
        error = self.report_errors.pop(0) if self.report_errors else None
        if error is not None:
            raise error

    async def report_results(self, lease_id: str, results: Sequence[Result]) -> list[SynergyError | None]:
        """``report_errors`` are consumed per result: a refusal of the result itself is its
        outcome; any other error (NotFound, Unavailable) fails the whole call."""
        if self.batches_unimplemented is not None:
            raise self.batches_unimplemented
        self.batches.append([r.seq for r in results])
        outcomes: list[SynergyError | None] = []
        for result in results:
            self.calls.append(("report", (lease_id, result.seq)))
            error = self.report_errors.pop(0) if self.report_errors else None
            if error is not None and not isinstance(error, PER_RESULT):
                raise error
            outcomes.append(error)
        return outcomes

    async def deregister(self, device_id: str, lease_id: str) -> None:
        self.calls.append(("deregister", lease_id))
        self.on_deregister()
        if self.deregister_hangs:
            await asyncio.sleep(30)
        if self.deregister_error is not None:
            raise self.deregister_error

    async def close(self) -> None:
        self.closed = True


def membership(registry: FakeRegistry, state: Callable[[], AgentState], reporter: Reporter | None = None) -> Membership:
    return Membership(
        registry,
        lambda: DEVICE,
        state,
        DeviceTelemetry,
        reporter or Reporter(),
        backoff=Backoff(0.001, 0.004),
    )


def test_registration_backoff_is_capped_and_jittered() -> None:
    backoff = Backoff(0.1, 1.0)
    delays = [backoff.next() for _ in range(12)]
    assert 0.075 <= delays[0] <= 0.125
    assert all(0.075 <= d <= 1.25 for d in delays)
    assert all(0.75 <= d <= 1.25 for d in delays[5:]), "capped at 1 s (±25 %)"
    assert len({round(d, 6) for d in delays[5:]}) > 1, "jittered"
    backoff.reset()
    assert backoff.next() <= 0.125
    fixed = Backoff(0.1, 1.0, rng=lambda: 0.5)
    assert [round(fixed.next(), 3) for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


async def test_register_and_heartbeats_carry_the_state_and_re_registering_keeps_it() -> None:
    registry = FakeRegistry()
    held = AgentState(2, (2,), (HeldSegment("app-1", 2, 1, "d" * 64),))
    registry.heartbeat_script = [None, None, NotFound("unknown lease lease-1")]
    m = membership(registry, lambda: held)
    task = asyncio.ensure_future(m.run())
    await eventually(lambda: m.registrations == 2 and m.registered.is_set())
    task.cancel()
    assert registry.named("register") == [held, held], "Register reports what the agent holds, both times"
    assert all(state == held for _, state in registry.named("heartbeat"))
    assert [lease for lease, _ in registry.named("heartbeat")][:3] == ["lease-1"] * 3
    assert m.lease is not None and m.lease.lease_id == "lease-2"


async def test_unreachable_coordinator_keeps_heartbeating_and_re_registers_only_after_the_ttl() -> None:
    registry = FakeRegistry()
    m = membership(registry, AgentState)
    task = asyncio.ensure_future(m.run())
    await eventually(lambda: m.heartbeats >= 2)
    with structlog.testing.capture_logs() as logs:
        registry.heartbeat_error = Unavailable("connection refused")
        registry.register_errors = [Unavailable("connection refused")] * 5
        await eventually(lambda: m.registrations == 1 and len(registry.named("register")) >= 2)
        registry.heartbeat_error = None
        await eventually(lambda: m.registrations == 2 and m.heartbeats >= 4)
    task.cancel()
    calls = [name for name, _ in registry.calls]
    first_failure = 3  # register, heartbeat, heartbeat
    outage = calls[first_failure : calls.index("register", 1)]
    # The lease TTL is 7.5 periods: heartbeats went on through the outage before registering again.
    assert outage.count("heartbeat") >= 4, calls
    events = [entry["event"] for entry in logs]
    assert events.count("coordinator_unreachable") == 1, "one warning per outage, not per attempt"
    assert events.count("coordinator_reachable_again") == 1
    assert "lease_lost" in events


async def test_a_heartbeat_waits_a_third_of_the_ttl_for_a_late_answer() -> None:
    registry = FakeRegistry(Lease("lease-1", heartbeat_period_s=0.02, lease_ttl_s=3.0))
    m = membership(registry, AgentState)
    task = asyncio.ensure_future(m.run())
    await eventually(lambda: m.heartbeats >= 2)
    task.cancel()
    assert set(registry.heartbeat_timeouts) == {1.0}, "max(period, 0.5 s, TTL / 3)"


async def test_a_change_of_what_the_agent_holds_is_reported_at_once() -> None:
    registry = FakeRegistry(Lease("slow", heartbeat_period_s=30.0, lease_ttl_s=90.0))
    a = agent(registry)
    a.join()
    await eventually(lambda: a.registered.is_set())
    await deploy_client_fed(a, 6)  # deploy + activate: each nudges a heartbeat
    await eventually(lambda: registry.named("heartbeat") and registry.named("heartbeat")[-1][1].active_epoch == 6)
    assert registry.named("heartbeat")[-1][1].holds(6) == {("app-1", 0, "d" * 64)}
    await a.runtime.undeploy(6)
    await eventually(lambda: registry.named("heartbeat")[-1][1] == AgentState())
    assert len(registry.named("heartbeat")) <= 4, "no periodic beats within the 30 s period, only the changes"
    await a.shutdown()


async def test_a_refusal_other_than_not_found_does_not_re_register_before_the_ttl() -> None:
    registry = FakeRegistry(Lease("x", 0.01, 10.0))
    registry.heartbeat_script = [Unavailable("deadline exceeded")] * 5
    m = membership(registry, AgentState)
    task = asyncio.ensure_future(m.run())
    await eventually(lambda: m.heartbeats >= 3)
    task.cancel()
    assert m.registrations == 1


async def test_reports_pause_while_the_lease_is_unknown_and_resume_after_a_heartbeat() -> None:
    registry = FakeRegistry()
    reporter = Reporter(retry_s=0.001)
    runner = asyncio.ensure_future(reporter.run())
    reporter.connect(registry, "lease-1")
    registry.report_errors = [NotFound("unknown lease")]
    reporter.submit(Result("app-1", 1, 7, 0.0, 0.0))
    await eventually(lambda: not reporter.connected)
    await asyncio.sleep(0.01)
    assert registry.named("report") == [("lease-1", 7)], "no retry without a lease"
    # Drain does not wait for what cannot be sent.
    started = time.monotonic()
    await reporter.drain(5.0)
    assert time.monotonic() - started < 0.5
    reporter.connect(registry, "lease-2")
    await eventually(lambda: reporter.sent == 1)
    runner.cancel()
    assert registry.named("report")[-1] == ("lease-2", 7) and reporter.lost == 0


async def test_a_refused_report_is_lost_at_once_and_does_not_hold_up_the_next() -> None:
    registry = FakeRegistry()
    reporter = Reporter(retry_s=10.0)  # a retry would stall the test: none may happen
    runner = asyncio.ensure_future(reporter.run())
    reporter.connect(registry, "lease-1")
    registry.report_errors = [PermissionDenied("app app-9 has no plan in epoch 1")]
    reporter.submit(Result("app-9", 1, 7, 0.0, 0.0))
    reporter.submit(Result("app-1", 2, 8, 0.0, 0.0))
    await eventually(lambda: reporter.sent == 1)
    runner.cancel()
    assert registry.named("report") == [("lease-1", 7), ("lease-1", 8)]
    assert reporter.lost == 1


def result(seq: int, app_id: str = "app-1", nbytes: int = 0) -> Result:
    tensors = (WireTensor(TensorSpec("y", (1, nbytes), "int8"), bytes(nbytes)),) if nbytes else ()
    return Result(app_id, 1, seq, 0.0, 0.0, tensors=tensors)


async def test_what_queues_goes_in_one_call_and_calls_are_spaced_by_the_linger() -> None:
    registry = FakeRegistry()
    reporter = Reporter(retry_s=10.0, linger_s=30.0)
    runner = asyncio.ensure_future(reporter.run())
    reporter.connect(registry, "lease-1")
    for seq in range(1, 11):
        reporter.submit(result(seq))
    # The first call after a quiet spell does not wait for the linger (30 s here).
    await eventually(lambda: reporter.sent == 10)
    reporter._linger_s = 0.5
    reporter.submit(result(11))
    await asyncio.sleep(0.05)  # 11 is taken and waits for the linger since the last call
    reporter.submit(result(12))
    await eventually(lambda: reporter.sent == 12)
    runner.cancel()
    assert registry.batches == [list(range(1, 11)), [11, 12]], "one call for what queued, then one for the next"
    assert reporter.calls == 2 and reporter.lost == 0 and reporter.pending == 0


async def test_a_batch_is_bounded_in_count_and_bytes() -> None:
    registry = FakeRegistry()
    reporter = Reporter(retry_s=10.0, linger_s=0.0, max_batch=3, max_batch_bytes=3000)
    for seq in range(1, 8):
        reporter.submit(result(seq))
    reporter.submit(result(8, nbytes=2000))
    reporter.submit(result(9, nbytes=2000))  # with 8 over the byte bound: opens the next batch
    reporter.submit(result(10, nbytes=5000))  # bigger than the bound on its own: goes alone
    reporter.submit(result(11))
    runner = asyncio.ensure_future(reporter.run())
    reporter.connect(registry, "lease-1")
    await eventually(lambda: reporter.sent == 11)
    runner.cancel()
    assert registry.batches == [[1, 2, 3], [4, 5, 6], [7, 8], [9], [10], [11]]
    assert reporter.bytes_sent == 9000


async def test_a_refused_result_in_a_batch_is_lost_alone_with_its_reason() -> None:
    registry = FakeRegistry()
    reporter = Reporter(retry_s=10.0, linger_s=0.0)
    registry.report_errors = [None, PermissionDenied("app app-9 has no plan in epoch 1"), None]
    for seq, app in ((1, "app-1"), (2, "app-9"), (3, "app-1")):
        reporter.submit(result(seq, app))
    with structlog.testing.capture_logs() as logs:
        runner = asyncio.ensure_future(reporter.run())
        reporter.connect(registry, "lease-1")
        await eventually(lambda: reporter.sent + reporter.lost == 3)
        runner.cancel()
    assert registry.batches == [[1, 2, 3]]
    assert (reporter.sent, reporter.lost) == (2, 1)
    lost = [e for e in logs if e["event"] == "result_report_lost"]
    assert [(e["app"], e["seq"]) for e in lost] == [("app-9", 2)]
    assert "has no plan in epoch 1" in lost[0]["reason"]


async def test_a_batch_refused_as_a_whole_is_lost_at_once() -> None:
    registry = FakeRegistry()
    reporter = Reporter(retry_s=10.0, linger_s=0.0)

    async def refuse_caller(lease_id: str, results: Sequence[Result]) -> list[SynergyError | None]:
        raise PermissionDenied("agent:ring may not report results under device watch's lease")

    registry.report_results = refuse_caller  # type: ignore[method-assign]
    reporter.submit(result(1))
    reporter.submit(result(2))
    runner = asyncio.ensure_future(reporter.run())
    reporter.connect(registry, "lease-1")
    await eventually(lambda: reporter.lost == 2)
    reporter.submit(result(3))
    await eventually(lambda: reporter.lost == 3)
    runner.cancel()
    assert reporter.sent == 0


async def test_a_coordinator_without_report_results_gets_one_call_per_result() -> None:
    registry = FakeRegistry()
    unimplemented = SynergyError("Method not found!")
    unimplemented.grpc_code = "UNIMPLEMENTED"
    registry.batches_unimplemented = unimplemented
    registry.report_errors = [None, PermissionDenied("not the target"), None]
    reporter = Reporter(retry_s=10.0, linger_s=0.0)
    for seq in (1, 2, 3):
        reporter.submit(result(seq))
    runner = asyncio.ensure_future(reporter.run())
    reporter.connect(registry, "lease-1")
    await eventually(lambda: reporter.sent + reporter.lost == 3)
    runner.cancel()
    assert reporter.unary and registry.named("report") == [("lease-1", 1), ("lease-1", 2), ("lease-1", 3)]
    assert (reporter.sent, reporter.lost) == (2, 1)


async def test_a_restarted_reporter_loses_nothing_it_had_taken() -> None:
    registry = FakeRegistry()
    reporter = Reporter(retry_s=10.0, linger_s=5.0)
    reporter._last_call = time.monotonic()  # a call just went: the next batch lingers
    reporter.submit(result(1))
    reporter.submit(result(2))
    runner = asyncio.ensure_future(reporter.run())
    await asyncio.sleep(0.02)  # lingering with result 1 in hand
    runner.cancel()
    reporter._linger_s = 0.0
    runner = asyncio.ensure_future(reporter.run())
    reporter.connect(registry, "lease-1")
    await eventually(lambda: reporter.sent == 2)
    runner.cancel()
    assert registry.named("report") == [("lease-1", 1), ("lease-1", 2)]


# -- the agent's lifecycle -------------------------------------------------------------------


class FakeBoard:
    profile = DEVICE.board

    def __init__(self) -> None:
        self.loaded: set[str] = set()

    async def load(self, spec: PartitionPayload, label: str) -> LoadedPartition:
        self.loaded.add(spec.digest)
        return LoadedPartition(spec.digest, spec, 10, 0.0, 0.0, 0.0)

    async def run(self, partition: LoadedPartition, inputs: dict[str, Array]) -> tuple[dict[str, Array], RunTiming]:
        return inputs, RunTiming(0.0, 0.0, 0.0, 0.0)

    def unload(self, key: str) -> None:
        self.loaded.discard(key)

    def weight_bytes_loaded(self) -> int:
        return 10 * len(self.loaded)


def agent(registry: FakeRegistry) -> Agent:
    return Agent(AgentConfig(DEVICE), registry=registry, board=FakeBoard())


async def deploy_client_fed(a: Agent, epoch: int) -> None:
    payload = PartitionPayload(0, 1, b"onnx", (X,), (X,), "d" * 64)
    assignment = SegmentAssignment(
        "app-1", 0, (X,), sensor_type=CLIENT_SOURCE, partition=payload, output_type="display"
    )
    await a.runtime.deploy(epoch, [assignment])
    a.runtime.activate(epoch)


async def test_the_agent_keeps_its_deployments_when_it_registers_again() -> None:
    registry = FakeRegistry()
    a = agent(registry)
    a.join()
    await eventually(lambda: a.registered.is_set())
    await deploy_client_fed(a, 4)
    registry.heartbeat_script = [NotFound("the coordinator restarted")]
    await eventually(lambda: registry.registrations == 2)
    assert a.runtime.state().loaded_epochs == (4,) and a.runtime.state().active_epoch == 4
    assert registry.named("register")[-1] == a.runtime.state()
    assert registry.named("register")[-1].holds(4) == {("app-1", 0, "d" * 64)}
    await a.shutdown()


async def test_shutdown_deregisters_first_then_drains_reports_and_stops() -> None:
    registry = FakeRegistry()
    a = agent(registry)
    at_deregister: list[AgentState] = []
    registry.on_deregister = lambda: at_deregister.append(a.runtime.state())
    a.join()
    await eventually(lambda: a.registered.is_set())
    await deploy_client_fed(a, 3)
    await a.runtime.inject("app-1", 1, {"x": np.zeros((1, 4), np.int8)})
    await a.shutdown()
    assert registry.named("deregister") == ["lease-1"]
    assert at_deregister[0].active_epoch == 3, "deregistered before the pipelines were stopped"
    assert a.runtime.state() == AgentState() and registry.closed
    assert ("report", ("lease-1", 1)) in registry.calls, "the last results were reported"
    calls = [name for name, _ in registry.calls]
    assert calls.count("register") == 1 and "register" not in calls[calls.index("deregister") :]
    await a.shutdown()  # idempotent
    assert registry.named("deregister") == ["lease-1"]


async def test_a_coordinator_that_cannot_deregister_does_not_hold_shutdown_up() -> None:
    for error, hangs in ((SynergyError("Method not found!"), False), (None, True)):
        registry = FakeRegistry()
        registry.deregister_error, registry.deregister_hangs = error, hangs
        a = agent(registry)
        a.join()
        await eventually(lambda: a.registered.is_set())  # noqa: B023 - awaited within the iteration
        started = time.monotonic()
        with structlog.testing.capture_logs() as logs:
            await asyncio.gather(a.shutdown(), a.shutdown())
        assert time.monotonic() - started < 2.0
        assert [e["event"] for e in logs].count("deregister_failed") == 1
        assert registry.closed


async def test_a_crashed_membership_loop_is_logged_and_restarted_on_the_same_lease() -> None:
    registry = FakeRegistry()
    a = agent(registry)
    with structlog.testing.capture_logs() as logs:
        a.join()
        await eventually(lambda: a.membership.heartbeats >= 1)
        registry.heartbeat_script = [RuntimeError("bug in the heartbeat path")]
        await eventually(lambda: a.restarts.get("membership") == 1)
        beats = a.membership.heartbeats
        await eventually(lambda: a.membership.heartbeats > beats)
    crash = next(e for e in logs if e["event"] == "vital_task_crashed")
    assert crash["task"] == "membership" and crash["log_level"] == "error" and crash.get("exc_info")
    assert registry.registrations == 1, "the lease held survives a restart of the loop"
    await a.shutdown()
