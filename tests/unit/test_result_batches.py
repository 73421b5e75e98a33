"""ReportResults: a batch authorized result by result, per-result outcomes, the envelope's bounds.

The servicer runs in-process against a fake coordinator (its lease table and plans) and a
guard that takes the caller's identity as given (no certificate), so every rule is a unit test.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from coordinator.servicers import RegistryServicer
from synergy import limits
from synergy.errors import InvalidArgument, NotFound, PermissionDenied, SynergyError
from synergy.reports import Result
from synergy.security.authz import Policy
from synergy.security.guard import Guard
from synergy.security.identity import Identity
from synergy.types import ExecutionPlan, Stage
from synergy.v1 import common_pb2, registry_pb2
from synergy.wire import validate
from synergy.wire.reports import result_to_proto
from synergy.wire.result_batches import outcome_to_proto, outcomes_from_proto, results_request

#: app-1 in epoch 3: sensed on glasses, run on watch, delivered on ring.
PLAN = ExecutionPlan("app-1", "glasses", (Stage("watch", 0, 4),), "ring")
LEASES = {"lease-ring": "ring", "lease-watch": "watch"}


class FakeCore:
    def lease_device(self, lease_id: str) -> str | None:
        return LEASES.get(lease_id)

    def pipeline_of(self, app_id: str, epoch: int) -> ExecutionPlan | None:
        return PLAN if (app_id, epoch) == ("app-1", 3) else None


class FakeCoordinator:
    def __init__(self) -> None:
        self.core = FakeCore()
        self.reported: list[tuple[str, Result]] = []

    def require_ready(self) -> None:
        pass

    def report_results(self, lease_id: str, results: list[Result]) -> None:
        self.reported += [(lease_id, r) for r in results]


class CallerGuard(Guard):
    """The policy enforced, the caller's identity given instead of read from a certificate."""

    def __init__(self, who: Identity | None) -> None:
        super().__init__(Policy())
        self.who = who

    def identity(self, context: Any) -> Identity | None:
        return self.who


class FakeContext:
    def peer(self) -> str:
        return "ipv4:127.0.0.1:5555"


def servicer(who: Identity | None) -> tuple[RegistryServicer, FakeCoordinator]:
    coordinator = FakeCoordinator()
    return RegistryServicer(coordinator, CallerGuard(who)), coordinator  # type: ignore[arg-type]


def result(device: str, *, app_id: str = "app-1", epoch: int = 3, seq: int = 1, dropped: bool = False) -> Result:
    now = time.time()
    return Result(app_id, epoch, seq, now, now, device_id=device, dropped=dropped, drop_reason="x" if dropped else "")


async def report(
    service: RegistryServicer, lease_id: str, messages: list[common_pb2.Result]
) -> list[SynergyError | None]:
    request = registry_pb2.ReportResultsRequest(lease_id=lease_id, results=messages)
    answer = await service.ReportResults(request, FakeContext())
    return outcomes_from_proto(answer, len(messages))


async def test_each_result_of_a_batch_is_authorized_on_its_own() -> None:
    service, coordinator = servicer(Identity("agent", "ring"))
    invalid = result_to_proto(result("ring", seq=5))
    invalid.app_id = ""
    outcomes = await report(
        service,
        "lease-ring",
        [
            result_to_proto(result("ring", seq=1)),  # the target's result: taken
            result_to_proto(result("watch", seq=2)),  # names another device
            result_to_proto(result("ring", app_id="app-2", seq=3)),  # no plan for that app
            result_to_proto(result("ring", epoch=9, seq=4)),  # an epoch the coordinator does not know
            invalid,  # fails validation
            result_to_proto(result("ring", seq=6, dropped=True)),  # a drop in the pipeline: taken
        ],
    )
    assert [type(o).__name__ if o else None for o in outcomes] == [
        None,
        "PermissionDenied",
        "PermissionDenied",
        "PermissionDenied",
        "InvalidArgument",
        None,
    ]
    assert "the result names device watch" in str(outcomes[1])
    assert "app app-2 has no plan in epoch 3" in str(outcomes[2])
    assert "results[4].app_id" in str(outcomes[4])
    assert [(lease, r.seq) for lease, r in coordinator.reported] == [("lease-ring", 1), ("lease-ring", 6)]
    assert service.audit.counts() == {("RegistryService/ReportResults", "PERMISSION_DENIED"): 3}


async def test_a_drop_is_taken_from_any_device_of_the_pipeline_a_result_only_from_the_target() -> None:
    service, coordinator = servicer(Identity("agent", "watch"))
    outcomes = await report(
        service,
        "lease-watch",
        [result_to_proto(result("watch", seq=1, dropped=True)), result_to_proto(result("watch", seq=2))],
    )
    assert outcomes[0] is None and isinstance(outcomes[1], PermissionDenied)
    assert [r.seq for _, r in coordinator.reported] == [1]


async def test_what_concerns_every_result_refuses_the_whole_call() -> None:
    batch = [result_to_proto(result("ring"))]
    # Another device's lease: refused before any result is looked at.
    service, coordinator = servicer(Identity("agent", "watch"))
    with pytest.raises(PermissionDenied, match="may not report results under device ring's lease"):
        await report(service, "lease-ring", batch)
    # Not an agent.
    service, coordinator = servicer(Identity("client", "alice"))
    with pytest.raises(PermissionDenied, match="only an agent certificate may report results"):
        await report(service, "lease-ring", batch)
    # A lease never given: register again.
    service, coordinator = servicer(Identity("agent", "ring"))
    with pytest.raises(NotFound, match="unknown lease"):
        await report(service, "lease-nobody", batch)
    assert coordinator.reported == []


def test_outcomes_round_trip_and_a_wrong_count_is_refused() -> None:
    refusal = PermissionDenied("not the target")
    answer = registry_pb2.ReportResultsResponse(outcomes=[outcome_to_proto(None), outcome_to_proto(refusal)])
    first, second = outcomes_from_proto(answer, 2)
    assert first is None
    assert isinstance(second, PermissionDenied) and str(second) == "not the target"
    with pytest.raises(InvalidArgument, match="answered 2 outcomes for 3 results"):
        outcomes_from_proto(answer, 3)


def test_the_envelope_is_bounded_and_results_are_left_to_the_servicer() -> None:
    check = validate.REQUEST_VALIDATORS["/synergy.v1.RegistryService/ReportResults"]
    bad = result_to_proto(result("ring"))
    bad.app_id = ""
    check(registry_pb2.ReportResultsRequest(lease_id="l", results=[bad]))  # judged per result, later
    too_many = results_request("l", [result("ring", seq=i) for i in range(limits.MAX_RESULTS_PER_REPORT + 1)])
    with pytest.raises(InvalidArgument, match="results has 257 entries"):
        check(too_many)
    big = result_to_proto(result("ring"))
    big.tensors.add(meta=common_pb2.TensorMeta(name="y", shape=[limits.MAX_RESULT_BYTES], dtype="int8"))
    big.tensors[0].data = bytes(limits.MAX_RESULT_BYTES)
    with pytest.raises(InvalidArgument, match="tensor bytes"):
        check(registry_pb2.ReportResultsRequest(lease_id="l", results=[big, big]))
    assert limits.message_limit("/synergy.v1.RegistryService/ReportResults") > limits.MAX_REPORT_BATCH_BYTES
