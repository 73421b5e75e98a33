"""The agent runtime with a fake board and fake peers (no sockets): state reports, deploys, loss accounting."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest
import structlog

from agent.board import EmulatedBoard, LoadedPartition, RunTiming
from agent.dataplane import Radio
from agent.runtime import Runtime
from synergy.deployment import AgentState, HeldSegment, PartitionPayload, PeerRef, SegmentAssignment
from synergy.errors import FailedPrecondition, InvalidArgument, NotFound
from synergy.hardware.analysis import analyze_model
from synergy.hardware.boards import load_board
from synergy.hardware.model import TensorSpec
from synergy.models.zoo import build_model
from synergy.reports import FrameOutcome, Result
from synergy.types import CLIENT_SOURCE, LINK_PRESETS, DeviceSpec, OutputSpec, SensorSpec
from synergy.wire.frames import FrameAck, FrameCall, StreamTarget
from synergy.wire.tensors import Array, Frame

X = TensorSpec("x", (1, 4), "int8")
DEVICE = DeviceSpec(
    device_id="watch",
    board=load_board("max78000"),
    sensors=(SensorSpec("camera", 50.0),),
    outputs=(OutputSpec("display"),),
    link=LINK_PRESETS["loopback"],
)


async def eventually(check: Callable[[], object], timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.002)


class FakeBoard:
    """Holds partitions by digest; a load or a run can be held at a gate."""

    def __init__(self) -> None:
        self.profile = DEVICE.board
        self.refs: dict[str, int] = {}
        self.load_gates: dict[bytes, asyncio.Event] = {}
        self.loads_started: list[bytes] = []
        self.run_gate: asyncio.Event | None = None

    async def load(self, spec: PartitionPayload, label: str) -> LoadedPartition:
        self.loads_started.append(spec.onnx)
        gate = self.load_gates.get(spec.onnx)
        if gate is not None:
            await gate.wait()
        key = hashlib.sha256(spec.onnx).hexdigest() if spec.onnx else spec.digest
        if key not in self.refs and not spec.onnx:
            raise NotFound(f"{label}: partition {key[:12]} is not loaded here")
        self.refs[key] = self.refs.get(key, 0) + 1
        return LoadedPartition(key, spec, 100, 0.0, 0.0, 0.0)

    async def run(self, partition: LoadedPartition, inputs: dict[str, Array]) -> tuple[dict[str, Array], RunTiming]:
        if self.run_gate is not None:
            await self.run_gate.wait()
        return {t.name: inputs[t.name] for t in partition.spec.outputs}, RunTiming(0.001, 0.001, 0.0, 0.001)

    def unload(self, key: str) -> None:
        self.refs[key] -= 1
        if not self.refs[key]:
            del self.refs[key]

    def weight_bytes_loaded(self) -> int:
        return 100 * len(self.refs)


class AckingCall:
    """A peer that acknowledges every frame at once."""

    def __init__(self) -> None:
        self.written: list[int] = []
        self._acks: asyncio.Queue[FrameAck | None] = asyncio.Queue()

    async def write(self, frame: Frame) -> None:
        self.written.append(frame.seq)
        self._acks.put_nowait(FrameAck(frame.seq, FrameOutcome.ACCEPTED))

    async def acks(self) -> AsyncIterator[FrameAck]:
        while (ack := await self._acks.get()) is not None:
            yield ack

    async def done_writing(self) -> None:
        self._acks.put_nowait(None)

    def cancel(self) -> None:
        self._acks.put_nowait(None)


class FakeTransport:
    def __init__(self) -> None:
        self.calls: list[AckingCall] = []
        self.closed = False

    def open(self, target: StreamTarget) -> FrameCall:
        self.calls.append(AckingCall())
        return self.calls[-1]

    async def close(self) -> None:
        self.closed = True


class FakeReporter:
    def __init__(self) -> None:
        self.results: list[Result] = []

    def submit(self, result: Result) -> None:
        self.results.append(result)

    @property
    def dropped(self) -> list[Result]:
        return [r for r in self.results if r.dropped]


def partition(onnx: bytes) -> PartitionPayload:
    return PartitionPayload(0, 1, onnx, (X,), (X,), hashlib.sha256(onnx).hexdigest())


def digest(onnx: bytes) -> str:
    return hashlib.sha256(onnx).hexdigest()


def delivering(app: str, onnx: bytes = b"", segment: int = 1) -> SegmentAssignment:
    return SegmentAssignment(
        app, segment, (X,), model="m", partition=partition(onnx) if onnx else None, output_type="display"
    )


def sensing(app: str, onnx: bytes) -> SegmentAssignment:
    return SegmentAssignment(
        app,
        0,
        (X,),
        model="m",
        sensor_type="camera",
        rate_hz=50.0,
        partition=partition(onnx),
        next=PeerRef("ring", "10.0.0.3:1", LINK_PRESETS["loopback"]),
    )


def client_fed(app: str, onnx: bytes) -> SegmentAssignment:
    return SegmentAssignment(
        app, 0, (X,), model="m", sensor_type=CLIENT_SOURCE, partition=partition(onnx), output_type="display"
    )


def make_runtime() -> tuple[Runtime, FakeBoard, FakeReporter, list[FakeTransport]]:
    board, reporter = FakeBoard(), FakeReporter()
    transports: list[FakeTransport] = []

    def transport(address: str) -> FakeTransport:
        t = FakeTransport()
        transports.append(t)
        return t

    runtime = Runtime(DEVICE, board, reporter, Radio(DEVICE.link, shaped=False), transport=transport)
    return runtime, board, reporter, transports


async def test_the_state_report_is_what_the_runtime_holds() -> None:
    runtime, board, _, _ = make_runtime()
    assert runtime.state() == AgentState()
    await runtime.deploy(3, [delivering("app-1", b"p1"), sensing("app-2", b"p2")])
    assert runtime.state() == AgentState(
        active_epoch=0,
        loaded_epochs=(3,),
        segments=(HeldSegment("app-1", 3, 1, digest(b"p1")), HeldSegment("app-2", 3, 0, digest(b"p2"))),
    )
    runtime.activate(3)
    assert runtime.state().active_epoch == 3
    # The next epoch keeps app-1's partition (no bytes: it is held) and adds a segment without one.
    held = PartitionPayload(0, 1, b"", (X,), (X,), digest(b"p1"))
    await runtime.deploy(4, [SegmentAssignment("app-1", 1, (X,), partition=held, output_type="display")])
    await runtime.deploy(5, [delivering("app-3")])
    runtime.activate(4)
    state = runtime.state()
    assert state.active_epoch == 4 and state.loaded_epochs == (3, 4, 5)
    assert state.holds(4) == {("app-1", 1, digest(b"p1"))}
    assert state.holds(5) == {("app-3", 1, "")}
    assert await runtime.undeploy(3, drain_timeout_s=0.1) == 0
    assert runtime.state().loaded_epochs == (4, 5)
    assert board.refs == {digest(b"p1"): 1}, "p2 unloaded, p1 still used by epoch 4"
    # Undeploying an epoch this agent does not hold is a cheap no-op.
    assert await runtime.undeploy(99) == 0
    await runtime.undeploy(4, drain_timeout_s=0.1)
    assert runtime.state() == AgentState(active_epoch=0, loaded_epochs=(5,), segments=(HeldSegment("app-3", 5, 1),))
    await runtime.close()
    assert runtime.state() == AgentState() and board.refs == {}


async def test_a_deploy_cancelled_half_way_unloads_what_it_loaded() -> None:
    runtime, board, _, _ = make_runtime()
    board.load_gates[b"p2"] = asyncio.Event()
    deploy = asyncio.ensure_future(runtime.deploy(7, [delivering("a", b"p1"), delivering("b", b"p2")]))
    await eventually(lambda: board.loads_started == [b"p1", b"p2"])
    assert board.refs == {digest(b"p1"): 1}
    deploy.cancel()
    with pytest.raises(asyncio.CancelledError):
        await deploy
    assert board.refs == {}, "a cancelled deploy leaks nothing"
    assert runtime.state() == AgentState()
    # The epoch can be deployed again.
    board.load_gates.clear()
    await runtime.deploy(7, [delivering("a", b"p1")])
    assert runtime.state().loaded_epochs == (7,)
    with pytest.raises(FailedPrecondition):
        await runtime.deploy(7, [delivering("a", b"p1")])
    await runtime.close()


async def test_undeploy_of_an_epoch_still_loading_stops_its_deploy() -> None:
    runtime, board, _, _ = make_runtime()
    board.load_gates[b"p2"] = asyncio.Event()
    deploy = asyncio.ensure_future(runtime.deploy(8, [delivering("a", b"p1"), delivering("b", b"p2")]))
    await eventually(lambda: board.loads_started == [b"p1", b"p2"])
    assert await runtime.undeploy(8) == 0
    with pytest.raises(asyncio.CancelledError):
        await deploy
    assert board.refs == {} and runtime.state() == AgentState()


async def test_a_refused_deploy_leaves_nothing_loaded() -> None:
    runtime, board, _, _ = make_runtime()
    bad = SegmentAssignment("b", 1, (X,), partition=partition(b"p2"), output_type="speaker")
    with pytest.raises(InvalidArgument, match="no 'speaker' output"):
        await runtime.deploy(2, [delivering("a", b"p1"), bad])
    assert board.refs == {} and runtime.state() == AgentState()
    with pytest.raises(NotFound):
        runtime.activate(2)


async def test_emulated_board_load_runs_off_the_loop_and_a_cancelled_load_holds_nothing() -> None:
    model = build_model("convnet5")
    hardware = analyze_model(model, "convnet5")
    onnx = model.SerializeToString()
    payload = PartitionPayload(0, len(hardware.layers) - 1, onnx, hardware.inputs, hardware.outputs, digest(onnx))
    board = EmulatedBoard(DEVICE.board, chip_timing=False)
    # The loop keeps running while the model is parsed and analysed.
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.ensure_future(tick())
    loaded = await board.load(payload, "convnet5")
    ticker.cancel()
    assert ticks > 1 and board.weight_bytes_loaded() == loaded.weight_bytes > 0
    board.unload(loaded.key)
    assert board.weight_bytes_loaded() == 0
    # Cancelled while its thread works: nothing is recorded, even after the thread finishes.
    in_thread, release, finished = threading.Event(), threading.Event(), threading.Event()
    prepare = board._prepare

    def slow_prepare(*args: Any) -> Any:
        in_thread.set()
        release.wait(5)
        try:
            return prepare(*args)
        finally:
            finished.set()

    board._prepare = slow_prepare  # type: ignore[method-assign]
    task = asyncio.ensure_future(board.load(payload, "convnet5"))
    await asyncio.to_thread(in_thread.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    await asyncio.to_thread(finished.wait, 5)
    await asyncio.sleep(0.05)
    assert board.weight_bytes_loaded() == 0
    board._prepare = prepare  # type: ignore[method-assign]
    again = await board.load(payload, "convnet5")
    board.unload(again.key)
    assert board.weight_bytes_loaded() == 0


async def test_results_are_our_types_and_per_frame_logs_are_debug() -> None:
    runtime, _, reporter, _ = make_runtime()
    await runtime.deploy(1, [client_fed("app-1", b"p1")])
    runtime.activate(1)
    with structlog.testing.capture_logs() as logs:
        await runtime.inject("app-1", 42, {"x": np.arange(4, dtype=np.int8).reshape(1, 4)})
        await eventually(lambda: reporter.results)
    (result,) = reporter.results
    assert isinstance(result, Result) and not result.dropped
    assert (result.app_id, result.epoch, result.seq, result.device_id) == ("app-1", 1, 42, "watch")
    assert result.tensors[0].spec == X and result.tensors[0].array().tolist() == [[0, 1, 2, 3]]
    assert result.summary == "class 3 (score 3)"
    assert [entry["log_level"] for entry in logs if entry["event"] == "output"] == ["debug"]
    await runtime.close()


async def test_a_frame_in_process_when_its_epoch_retires_is_reported_dropped() -> None:
    runtime, board, reporter, _ = make_runtime()
    await runtime.deploy(1, [client_fed("app-1", b"p1")])
    runtime.activate(1)
    board.run_gate = asyncio.Event()
    await runtime.inject("app-1", 1, {"x": np.zeros((1, 4), np.int8)})
    await runtime.inject("app-1", 2, {"x": np.zeros((1, 4), np.int8)})
    await asyncio.sleep(0.01)
    await runtime.undeploy(1, drain_timeout_s=0.05)
    assert sorted(r.seq for r in reporter.dropped) == [1, 2]
    assert all("retired" in r.drop_reason for r in reporter.dropped)
    assert runtime.telemetry.frames_dropped == 2 and board.refs == {}


async def test_a_source_streams_to_the_next_hop_and_counts_what_it_sent() -> None:
    runtime, _, reporter, transports = make_runtime()
    await runtime.deploy(1, [sensing("app-1", b"p1")])
    runtime.activate(1)
    await eventually(lambda: runtime.telemetry.frames_out >= 3)
    (transport,) = transports
    assert transport.calls[0].written[:3] == [(1 << 32) | 0, (1 << 32) | 1, (1 << 32) | 2]
    assert runtime.telemetry.bytes_to_peers == 4 * runtime.telemetry.frames_out
    await runtime.undeploy(1, drain_timeout_s=0.5)
    assert transport.closed and reporter.dropped == []
    assert runtime.stream_counts() == (0, 0)


async def test_inbound_frames_for_unknown_segments_are_rejected_with_the_reason() -> None:
    runtime, _, reporter, _ = make_runtime()
    acks: list[tuple[object, str]] = []
    await runtime.accept(
        Frame("ghost", 9, 1, 5, 0.0, {"x": np.zeros((1, 4), np.int8)}), lambda o, r: acks.append((o, r))
    )
    assert len(acks) == 1 and "no segment 1 of app ghost in epoch 9" in acks[0][1]
    assert reporter.dropped[0].seq == 5


class SilentCall(AckingCall):
    """A next hop that takes frames and acknowledges none (a bottleneck, or stalled)."""

    async def write(self, frame: Frame) -> None:
        self.written.append(frame.seq)


class SilentTransport(FakeTransport):
    def open(self, target: StreamTarget) -> FrameCall:
        self.calls.append(SilentCall())
        return self.calls[-1]


def runtime_with(transport_type: type[FakeTransport]) -> tuple[Runtime, FakeReporter, list[FakeTransport]]:
    reporter = FakeReporter()
    transports: list[FakeTransport] = []

    def transport(address: str) -> FakeTransport:
        transports.append(transport_type())
        return transports[-1]

    runtime = Runtime(DEVICE, FakeBoard(), reporter, Radio(DEVICE.link, shaped=False), transport=transport)
    return runtime, reporter, transports


@pytest.mark.parametrize("every_frame", [False, True])
async def test_a_source_skips_at_the_sensor_rather_than_queue_behind_a_bottleneck(every_frame: bool) -> None:
    runtime, reporter, transports = runtime_with(SilentTransport)
    source = dataclasses.replace(sensing("app-1", b"p1"), rate_hz=200.0, every_frame=every_frame)
    await runtime.deploy(1, [source])
    runtime.activate(1)
    await asyncio.sleep(0.3)  # 60 captures at 200 Hz
    admitted, skipped = runtime.telemetry.sources[("app-1", 1)]
    written = len(transports[0].calls[0].written)
    if every_frame:
        # Queued: the window (4), the worker's frame, the inbox (4) and the sensor's blocked put.
        assert skipped == 0 and admitted <= 4 + 1 + 4 + 1
    else:
        # Admitted only with room: the 4 frames of the window, then every capture is skipped.
        assert admitted == written == 4
        assert skipped >= 40
    await runtime.undeploy(1, drain_timeout_s=0.05)
    # Every admitted frame is accounted for: the next hop never acknowledged, so each is
    # reported dropped with the reason (there is no new epoch to replay it on).
    assert sorted(r.seq for r in reporter.dropped) == [(1 << 32) | i for i in range(admitted)]
    assert all("not replayed" in r.drop_reason for r in reporter.dropped)


async def test_frames_of_a_retiring_epoch_are_replayed_on_the_new_one() -> None:
    runtime, board, reporter, _ = make_runtime()
    await runtime.deploy(1, [client_fed("app-1", b"p1")])
    runtime.activate(1)
    board.run_gate = asyncio.Event()
    for seq in (1, 2, 3):
        await runtime.inject("app-1", seq, {"x": np.full((1, 4), seq, np.int8)})
    await asyncio.sleep(0.01)
    # A re-plan: epoch 2 runs the same segment here (the same input tensors).
    await runtime.deploy(2, [client_fed("app-1", b"p1")])
    runtime.activate(2)
    retiring = asyncio.ensure_future(runtime.undeploy(1, drain_timeout_s=0.05))
    await asyncio.sleep(0.1)
    board.run_gate.set()
    await retiring
    await eventually(lambda: len(reporter.results) == 3)
    assert reporter.dropped == []
    assert sorted((r.seq, r.epoch) for r in reporter.results) == [(1, 2), (2, 2), (3, 2)]
    assert runtime.telemetry.frames_replayed == 3
    await runtime.close()


class ShapingBoard(FakeBoard):
    """Runs a partition by making zeros of its output specs (the outputs differ from the inputs)."""

    async def run(self, partition: LoadedPartition, inputs: dict[str, Array]) -> tuple[dict[str, Array], RunTiming]:
        outputs: dict[str, Array] = {t.name: np.zeros(t.shape, np.int8) for t in partition.spec.outputs}
        return outputs, RunTiming(0.001, 0.001, 0.0, 0.001)


async def test_a_source_replays_from_the_captured_input_when_the_new_path_cuts_elsewhere() -> None:
    y, z = TensorSpec("y", (1, 2), "int8"), TensorSpec("z", (1, 3), "int8")
    reporter, transports = FakeReporter(), list[FakeTransport]()

    def transport(address: str) -> FakeTransport:
        transports.append(SilentTransport() if not transports else FakeTransport())
        return transports[-1]

    runtime = Runtime(DEVICE, ShapingBoard(), reporter, Radio(DEVICE.link, shaped=False), transport=transport)
    old = dataclasses.replace(
        sensing("app-1", b"p1"), rate_hz=100.0, partition=PartitionPayload(0, 1, b"p1", (X,), (y,), digest(b"p1"))
    )
    await runtime.deploy(1, [old])
    runtime.activate(1)
    # The window: 4 frames written, never acknowledged.
    await eventually(lambda: transports and transports[0].calls and len(transports[0].calls[0].written) == 4)
    # The re-plan cuts the model elsewhere: epoch 2's source segment outputs z, not y.
    new = dataclasses.replace(old, partition=PartitionPayload(0, 2, b"p2", (X,), (z,), digest(b"p2")))
    await runtime.deploy(2, [new])
    runtime.activate(2)
    lost = list(transports[0].calls[0].written)
    await runtime.undeploy(1, drain_timeout_s=0.05)
    # The 4 frames epoch 1's next hop never acknowledged start again from their captured
    # input on epoch 2's path (same seqs), and nothing is reported dropped.
    await eventually(
        lambda: len(transports) > 1 and transports[1].calls and set(lost) <= set(transports[1].calls[0].written)
    )
    assert reporter.dropped == [] and runtime.telemetry.frames_replayed >= 4
    await runtime.close()


async def test_a_middle_hop_with_no_path_returns_frames_instead_of_dropping_them() -> None:
    runtime, board, reporter, _ = make_runtime()
    await runtime.deploy(1, [delivering("app-1", b"p1")])
    runtime.activate(1)
    board.run_gate = asyncio.Event()  # the worker holds the frame, mid-run, when the epoch retires
    outcomes: list[tuple[object, str]] = []
    runtime._epochs[1][("app-1", 1, 1)].inbox.put_nowait(  # a frame from upstream, not yet run
        (Frame("app-1", 1, 1, 7, time.time(), {"x": np.zeros((1, 4), np.int8)}), lambda o, r: outcomes.append((o, r)))
    )
    await runtime.undeploy(1, drain_timeout_s=0.0)
    assert outcomes and outcomes[0][0] is FrameOutcome.RETURNED and "returned" in outcomes[0][1]
    assert reporter.dropped == []  # the sender replays it, or reports it
