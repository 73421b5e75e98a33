"""Validation at the edge: valid records pass, every bound is refused naming the field, NaN and
inf never pass, unknown enum values are refused, and no refusal echoes a long input."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf.message import Message

from synergy import limits
from synergy.deployment import AgentState, HeldSegment, PartitionPayload, PeerRef, SegmentAssignment
from synergy.devices import preset_device
from synergy.errors import InvalidArgument
from synergy.hardware.model import TensorSpec
from synergy.reports import DeviceTelemetry, Result, StageTiming, WireTensor
from synergy.types import LINK_PRESETS, AppInfo, AppSpec, AppState, AppStats
from synergy.v1 import agent_pb2, apps_pb2, common_pb2, registry_pb2
from synergy.wire import validate
from synergy.wire.convert import app_spec_from_proto, app_spec_to_proto, device_from_proto, device_to_proto
from synergy.wire.deployment import (
    agent_state_from_proto,
    agent_state_to_proto,
    assignment_from_proto,
    assignment_to_proto,
    link_from_proto,
)
from synergy.wire.reports import (
    app_info_from_proto,
    app_info_to_proto,
    result_from_proto,
    result_to_proto,
    telemetry_from_proto,
    telemetry_to_proto,
)
from synergy.wire.tensors import FrameAssembler, spec_from_meta, spec_to_meta

SPEC = TensorSpec("input", (1, 1, 28, 28), "int8")
LONG = "x" * 1_000_000
BAD_NUMBERS = [math.nan, math.inf, -math.inf]


def refused(call: Callable[[], object], *needles: str) -> str:
    """The refusal's message; it names every needle and never repeats a long input."""
    with pytest.raises(InvalidArgument) as info:
        call()
    message = str(info.value)
    for needle in needles:
        assert needle in message, message
    assert len(message) < 400, message
    assert "x" * (limits.MAX_ECHO_CHARS + 1) not in message, message
    return message


# --- records -------------------------------------------------------------------------------


def device_msg(preset: str = "glasses") -> common_pb2.DeviceCapabilities:
    return device_to_proto(dataclasses.replace(preset_device(preset), address="127.0.0.1:5000"))


def app_msg() -> common_pb2.AppSpec:
    return app_spec_to_proto(AppSpec("a1", "kws", "kws20_v3", "microphone", "haptics", "earbud", "ring", 5.0))


def assignment_msg() -> agent_pb2.Assignment:
    partition = PartitionPayload(0, 4, b"onnx", (SPEC,), (TensorSpec("out", (1, 10), "int8"),), "ab" * 32)
    peer = PeerRef("watch", "127.0.0.1:6000", LINK_PRESETS["ble_24k"])
    return assignment_to_proto(
        SegmentAssignment("app-1", 1, (SPEC,), "convnet5", "camera", 10.0, partition, "display", peer, "glasses")
    )


def state_msg() -> common_pb2.AgentState:
    return agent_state_to_proto(AgentState(3, (2, 3), (HeldSegment("app-1", 3, 0, "ab" * 32),)))


def telemetry_msg() -> common_pb2.DeviceTelemetry:
    return telemetry_to_proto(DeviceTelemetry(1, 2, 3, 4, 5, 6, 0.5, (StageTiming("app-1", 3, 0.01, 0.012, 40),)))


def result_msg() -> common_pb2.Result:
    out = TensorSpec("out", (1, 10), "int8")
    return result_to_proto(
        Result("app-1", 3, 17, 1.7e9, 1.7e9 + 0.1, (WireTensor(out, bytes(10)),), "watch", "display", summary="class 7")
    )


def header_msg() -> agent_pb2.FrameHeader:
    return agent_pb2.FrameHeader(
        app_id="app-1",
        epoch=3,
        segment=1,
        seq=5,
        capture_time_unix=1.7e9,
        tensors=[spec_to_meta(SPEC)],
        total_bytes=SPEC.nbytes,
        sender="glasses",
    )


def test_valid_records_convert_unchanged() -> None:
    for preset in ("earbud", "glasses", "watch", "ring"):
        msg = device_msg(preset)
        assert device_to_proto(device_from_proto(msg)) == msg
    assert app_spec_to_proto(app_spec_from_proto(app_msg(), "a1")) == app_msg()
    assert assignment_to_proto(assignment_from_proto(assignment_msg())) == assignment_msg()
    assert agent_state_to_proto(agent_state_from_proto(state_msg())) == state_msg()
    assert telemetry_to_proto(telemetry_from_proto(telemetry_msg())) == telemetry_msg()
    assert result_to_proto(result_from_proto(result_msg())) == result_msg()
    assert spec_from_meta(spec_to_meta(SPEC)) == SPEC
    validate.frame_header(header_msg())
    info = AppInfo("app-1", app_spec_from_proto(app_msg(), "app-1"), AppState.RUNNING, stats=AppStats(3, 1, 2.0, 5.0))
    assert app_info_from_proto(app_info_to_proto(info)) == info


Mutation = Callable[[Any], None]


def setter(path: str, value: object) -> Mutation:
    """Set a field given as a dotted path with list indexes, e.g. "board.weight_words_per_processor[3]"."""

    def mutate(msg: Any) -> None:
        *parents, last = path.split(".")
        target = msg
        for part in parents:
            target = _step(target, part)
        if last.endswith("]"):
            field, index = last[:-1].split("[")
            getattr(target, field)[int(index)] = value
        else:
            setattr(target, last, value)

    return mutate


def _step(target: Any, part: str) -> Any:
    if part.endswith("]"):
        field, index = part[:-1].split("[")
        return getattr(target, field)[int(index)]
    return getattr(target, part)


def extend(path: str, items: list[Any]) -> Mutation:
    def mutate(msg: Any) -> None:
        target = msg
        for part in path.split("."):
            target = _step(target, part)
        target.extend(items)

    return mutate


DEVICE_CASES: list[tuple[str, Mutation, str]] = [
    ("empty id", setter("device_id", ""), "device.device_id is empty"),
    ("long id", setter("device_id", LONG), "device.device_id must be at most 128"),
    ("id with control char", setter("device_id", "ring\x00"), "device.device_id must be printable"),
    ("id with a topic separator", setter("device_id", "a/b"), "device.device_id"),
    ("zero clock", setter("board.cnn_clock_hz", 0.0), "device.board.cnn_clock_hz must be a finite number in (0"),
    ("nan clock", setter("board.cpu_clock_hz", math.nan), "device.board.cpu_clock_hz"),
    ("huge clock", setter("board.cnn_clock_hz", 1e300), "device.board.cnn_clock_hz"),
    ("inf copy rate", setter("board.cpu_copy_bytes_per_s", math.inf), "device.board.cpu_copy_bytes_per_s"),
    ("negative load rate", setter("board.weight_load_bytes_per_s", -1.0), "device.board.weight_load_bytes_per_s"),
    ("nan power", setter("board.idle_power_w", math.nan), "device.board.idle_power_w"),
    ("negative power", setter("board.cnn_active_power_w", -0.1), "device.board.cnn_active_power_w"),
    (
        "a million processors",
        extend("board.weight_words_per_processor", [1] * 1_000_000),
        "device.board.weight_words_per_processor has 1000064 entries",
    ),
    (
        "no processors",
        lambda m: m.board.ClearField("weight_words_per_processor"),
        "device.board.weight_words_per_processor is empty",
    ),
    (
        "huge weight memory",
        setter("board.weight_words_per_processor[5]", 2**32 - 1),
        "device.board.weight_words_per_processor[5] must be an integer in [0, 1048576]",
    ),
    (
        "no weight memory",
        lambda m: m.board.weight_words_per_processor.__setitem__(slice(None), [0] * 64),
        "no weight memory",
    ),
    ("zero layers", setter("board.max_layers", 0), "device.board.max_layers must be an integer in [1,"),
    ("huge channels", setter("board.max_channels", 2**32 - 1), "device.board.max_channels"),
    ("long board name", setter("board.name", LONG), "device.board.name must be at most 256"),
    ("no board name", setter("board.name", ""), "device.board.name is empty"),
    ("missing board", lambda m: m.ClearField("board"), "device.board is missing"),
    ("long notes", setter("board.notes", LONG), "device.board.notes"),
    ("zero sensor rate", setter("sensors[0].rate_hz", 0.0), "device.sensors[0].rate_hz"),
    ("nan sensor rate", setter("sensors[0].rate_hz", math.nan), "device.sensors[0].rate_hz"),
    ("no sensor type", setter("sensors[0].type", ""), "device.sensors[0].type is empty"),
    (
        "many sensors",
        extend("sensors", [common_pb2.Sensor(type="camera", rate_hz=1)] * 100_000),
        "device.sensors has 100001 entries, at most 32",
    ),
    ("many outputs", extend("outputs", [common_pb2.Output(type="x")] * 40), "device.outputs has"),
    ("no output type", extend("outputs", [common_pb2.Output()]), "device.outputs[1].type is empty"),
    ("zero bandwidth", setter("link.bandwidth_bytes_per_s", 0.0), "device.link.bandwidth_bytes_per_s"),
    ("inf bandwidth", setter("link.bandwidth_bytes_per_s", math.inf), "device.link.bandwidth_bytes_per_s"),
    ("nan latency", setter("link.latency_s", math.nan), "device.link.latency_s"),
    ("long address", setter("address", LONG), "device.address"),
    ("address with space", setter("address", "a b:1"), "device.address must be host:port in printable ASCII"),
    ("address without port", setter("address", "glasses"), "device.address must be host:port"),
    ("non-ASCII address", setter("address", "é:1"), "device.address must be host:port"),
    ("kind with newline", setter("kind", "ring\n"), "device.kind must be printable"),
]


@pytest.mark.parametrize(("case", "mutate", "needle"), DEVICE_CASES, ids=[c[0] for c in DEVICE_CASES])
def test_device_record_bounds(case: str, mutate: Mutation, needle: str) -> None:
    msg = device_msg()
    mutate(msg)
    refused(lambda: device_from_proto(msg), needle)


def test_register_requires_an_address_and_checks_the_state() -> None:
    request = registry_pb2.RegisterRequest(device=device_msg(), state=state_msg())
    validate.check_request("/synergy.v1.RegistryService/Register", request)
    request.device.address = ""
    refused(lambda: validate.check_request("/synergy.v1.RegistryService/Register", request), "device.address is empty")
    refused(
        lambda: validate.check_request("/synergy.v1.RegistryService/Register", registry_pb2.RegisterRequest()),
        "device is missing",
    )


APP_CASES: list[tuple[str, Mutation, str]] = [
    ("no source", setter("source_type", ""), "spec.source_type is empty"),
    ("no target", setter("target_type", ""), "spec.target_type is empty"),
    ("negative rate", setter("max_rate_hz", -1.0), "spec.max_rate_hz"),
    ("nan rate", setter("max_rate_hz", math.nan), "spec.max_rate_hz"),
    ("inf rate", setter("max_rate_hz", math.inf), "spec.max_rate_hz"),
    ("long name", setter("name", LONG), "spec.name must be at most 256"),
    ("long model", setter("model", LONG), "spec.model"),
    ("long source type", setter("source_type", LONG), "spec.source_type"),
    ("bad pinned device", setter("source_device", "a b"), "spec.source_device"),
    ("long pinned device", setter("target_device", LONG), "spec.target_device must be at most 128"),
]


@pytest.mark.parametrize(("case", "mutate", "needle"), APP_CASES, ids=[c[0] for c in APP_CASES])
def test_app_spec_bounds(case: str, mutate: Mutation, needle: str) -> None:
    msg = app_msg()
    mutate(msg)
    refused(lambda: app_spec_from_proto(msg, "a1"), needle)


def test_submit_app_bounds() -> None:
    method = "/synergy.v1.AppsService/SubmitApp"
    validate.check_request(method, apps_pb2.SubmitAppRequest(spec=app_msg(), zoo_name="convnet5"))
    refused(
        lambda: validate.check_request(method, apps_pb2.SubmitAppRequest(spec=app_msg(), zoo_name=LONG)), "zoo_name"
    )
    refused(lambda: validate.check_request(method, apps_pb2.SubmitAppRequest(zoo_name="x")), "spec.source_type")


ASSIGNMENT_CASES: list[tuple[str, Mutation, str]] = [
    ("no app id", setter("app_id", ""), "assignment.app_id is empty"),
    ("huge segment", setter("segment", 2**32 - 1), "assignment.segment must be an integer in [0, 1023]"),
    ("nan rate", setter("rate_hz", math.nan), "assignment.rate_hz"),
    ("negative rate", setter("rate_hz", -5.0), "assignment.rate_hz"),
    ("huge shape", lambda m: m.inputs[0].shape.extend([2**31, 2**31]), "assignment.inputs[0].shape"),
    ("huge dim", setter("inputs[0].shape[0]", 2**31), "assignment.inputs[0].shape[0] must be a dimension in [1,"),
    ("zero dim", setter("inputs[0].shape[1]", 0), "assignment.inputs[0].shape[1]"),
    ("negative dim", setter("inputs[0].shape[1]", -3), "assignment.inputs[0].shape[1]"),
    ("high rank", lambda m: m.inputs[0].shape.extend([1] * 10), "assignment.inputs[0].shape has rank 14, at most 8"),
    (
        "too many bytes",
        lambda m: m.inputs[0].shape.__setitem__(slice(None), [4096, 4096, 2]),
        "assignment.inputs[0].shape makes a tensor of 33554432 bytes",
    ),
    ("unknown dtype", setter("inputs[0].dtype", "bfloat16"), "assignment.inputs[0].dtype must be one of"),
    ("many inputs", extend("inputs", [spec_to_meta(SPEC)] * 100_000), "assignment.inputs has 100001 entries"),
    ("layers reversed", setter("partition.first_layer", 9), "assignment.partition.last_layer"),
    ("huge layer", setter("partition.last_layer", 2**32 - 1), "assignment.partition.last_layer"),
    ("long digest", setter("partition.digest", LONG), "assignment.partition.digest"),
    ("bad output", setter("partition.outputs[0].dtype", ""), "assignment.partition.outputs[0].dtype"),
    ("long peer address", setter("next.address", LONG), "assignment.next.address"),
    ("nan peer bandwidth", setter("next.link.bandwidth_bytes_per_s", math.nan), "assignment.next.link"),
    ("long output type", setter("output_type", LONG), "assignment.output_type"),
    ("no upstream after segment 0", setter("upstream_device_id", ""), "assignment.upstream_device_id is empty"),
    ("bad upstream", setter("upstream_device_id", "a/b"), "assignment.upstream_device_id"),
]


@pytest.mark.parametrize(("case", "mutate", "needle"), ASSIGNMENT_CASES, ids=[c[0] for c in ASSIGNMENT_CASES])
def test_assignment_bounds(case: str, mutate: Mutation, needle: str) -> None:
    msg = assignment_msg()
    mutate(msg)
    refused(lambda: assignment_from_proto(msg), needle)


def test_deploy_request_bounds() -> None:
    method = "/synergy.v1.AgentService/Deploy"
    validate.check_request(method, agent_pb2.DeployRequest(epoch=5, assignments=[assignment_msg()]))
    refused(
        lambda: validate.check_request(method, agent_pb2.DeployRequest(epoch=2**64 - 1)),
        "epoch must be an integer in [0, 9007199254740991]",
    )
    many = agent_pb2.DeployRequest(epoch=1, assignments=[agent_pb2.Assignment(app_id="a")] * 300)
    refused(lambda: validate.check_request(method, many), "assignments has 300 entries, at most 256")
    bad = agent_pb2.DeployRequest(epoch=1, assignments=[assignment_msg(), agent_pb2.Assignment()])
    refused(lambda: validate.check_request(method, bad), "assignments[1].app_id is empty")
    for method in ("/synergy.v1.AgentService/Activate", "/synergy.v1.AgentService/Undeploy"):
        refused(lambda: validate.check_request(method, agent_pb2.ActivateRequest(epoch=2**53)), "epoch")  # noqa: B023


STATE_CASES: list[tuple[str, Mutation, str]] = [
    ("huge epoch", setter("active_epoch", 2**64 - 1), "state.active_epoch"),
    ("huge loaded epoch", setter("loaded_epochs[1]", 2**63), "state.loaded_epochs[1]"),
    ("many epochs", extend("loaded_epochs", list(range(100_000))), "state.loaded_epochs has 100002 entries"),
    ("bad app id", setter("segments[0].app_id", LONG), "state.segments[0].app_id"),
    ("huge held epoch", setter("segments[0].epoch", 2**60), "state.segments[0].epoch"),
    ("huge segment", setter("segments[0].segment", 5000), "state.segments[0].segment"),
    ("bad digest", setter("segments[0].digest", "a b"), "state.segments[0].digest"),
    (
        "many segments",
        extend("segments", [common_pb2.HeldSegment(app_id="a")] * 2000),
        "state.segments has 2001 entries, at most 1024",
    ),
]


@pytest.mark.parametrize(("case", "mutate", "needle"), STATE_CASES, ids=[c[0] for c in STATE_CASES])
def test_agent_state_bounds(case: str, mutate: Mutation, needle: str) -> None:
    msg = state_msg()
    mutate(msg)
    refused(lambda: agent_state_from_proto(msg), needle)


TELEMETRY_CASES: list[tuple[str, Mutation, str]] = [
    *[
        (f"{v} busy", setter("accelerator_busy_s", v), "telemetry.accelerator_busy_s must be a finite number")
        for v in [*BAD_NUMBERS, -1.0]
    ],
    (
        "counter over int64",
        setter("frames_in", 2**64 - 1),
        "telemetry.frames_in must be an integer in [0, 9223372036854775807]",
    ),
    ("nan measured", setter("stage_timings[0].measured_s", math.nan), "telemetry.stage_timings[0].measured_s"),
    ("negative predicted", setter("stage_timings[0].predicted_s", -1.0), "telemetry.stage_timings[0].predicted_s"),
    ("huge samples", setter("stage_timings[0].samples", 2**64 - 1), "telemetry.stage_timings[0].samples"),
    ("bad app", setter("stage_timings[0].app_id", ""), "telemetry.stage_timings[0].app_id is empty"),
    (
        "many timings",
        extend("stage_timings", [common_pb2.StageTiming(app_id="a")] * 100_000),
        "telemetry.stage_timings has 100001 entries",
    ),
]


@pytest.mark.parametrize(("case", "mutate", "needle"), TELEMETRY_CASES, ids=[c[0] for c in TELEMETRY_CASES])
def test_telemetry_bounds(case: str, mutate: Mutation, needle: str) -> None:
    msg = telemetry_msg()
    mutate(msg)
    refused(lambda: telemetry_from_proto(msg), needle)


def test_heartbeat_request_checks_ids_telemetry_and_state() -> None:
    method = "/synergy.v1.RegistryService/Heartbeat"
    good = registry_pb2.HeartbeatRequest(device_id="ring", lease_id="l1", telemetry=telemetry_msg(), state=state_msg())
    validate.check_request(method, good)
    for mutate, needle in [
        (setter("device_id", ""), "device_id is empty"),
        (setter("lease_id", LONG), "lease_id must be at most 128"),
        (setter("telemetry.accelerator_busy_s", math.inf), "telemetry.accelerator_busy_s"),
        (setter("state.active_epoch", 2**64 - 1), "state.active_epoch"),
    ]:
        bad = registry_pb2.HeartbeatRequest()
        bad.CopyFrom(good)
        mutate(bad)
        refused(lambda: validate.check_request(method, bad), needle)  # noqa: B023
    refused(
        lambda: validate.check_request(
            "/synergy.v1.RegistryService/Deregister", registry_pb2.DeregisterRequest(device_id="x\ty")
        ),
        "device_id must be printable",
    )


RESULT_CASES: list[tuple[str, Mutation, str]] = [
    ("no app", setter("app_id", ""), "result.app_id is empty"),
    ("huge epoch", setter("epoch", 2**64 - 1), "result.epoch"),
    ("huge seq", setter("seq", 2**63), "result.seq"),
    *[(f"{v} capture", setter("capture_time_unix", v), "result.capture_time_unix") for v in [*BAD_NUMBERS, -1.0]],
    ("nan done", setter("done_time_unix", math.nan), "result.done_time_unix"),
    ("short data", setter("tensors[0].data", b"123"), "result.tensors[0].data has 3 bytes, its meta needs 10"),
    ("huge shape", lambda m: m.tensors[0].meta.shape.extend([2**31, 2**31]), "result.tensors[0].meta.shape"),
    ("unknown dtype", setter("tensors[0].meta.dtype", "int4"), "result.tensors[0].meta.dtype"),
    ("long summary", setter("summary", LONG), "result.summary must be at most 4096"),
    ("long reason", setter("drop_reason", LONG), "result.drop_reason"),
    ("bad device", setter("device_id", "a#b"), "result.device_id"),
    (
        "many tensors",
        extend("tensors", [common_pb2.Tensor(meta=common_pb2.TensorMeta(dtype="int8"), data=b"x")] * 100),
        "result.tensors has 101 entries, at most 64",
    ),
]


@pytest.mark.parametrize(("case", "mutate", "needle"), RESULT_CASES, ids=[c[0] for c in RESULT_CASES])
def test_result_bounds(case: str, mutate: Mutation, needle: str) -> None:
    msg = result_msg()
    mutate(msg)
    refused(lambda: result_from_proto(msg), needle)


def test_result_bytes_are_bounded_in_total() -> None:
    meta = common_pb2.TensorMeta(name="t", dtype="int8", shape=[1, 3 * 1024 * 1024])
    tensor = common_pb2.Tensor(meta=meta, data=bytes(3 * 1024 * 1024))
    msg = common_pb2.Result(app_id="a", tensors=[tensor, tensor])
    refused(lambda: result_from_proto(msg), "result.tensors carry more than 4194304 bytes")


def infer(**fields: Any) -> apps_pb2.InferRequest:
    request = apps_pb2.InferRequest(
        app_id="app-1", inputs=[common_pb2.Tensor(meta=spec_to_meta(SPEC), data=bytes(SPEC.nbytes))], timeout_s=5
    )
    for key, value in fields.items():
        setattr(request, key, value)
    return request


def test_infer_and_inject_arguments() -> None:
    method = "/synergy.v1.AppsService/Infer"
    validate.check_request(method, infer())
    for bad, needle in [
        (infer(app_id=""), "app_id is empty"),
        (infer(app_id=LONG), "app_id must be at most 128"),
        (infer(timeout_s=math.nan), "timeout_s"),
        (infer(timeout_s=-1), "timeout_s"),
        (infer(timeout_s=1e9), "timeout_s must be a finite number in [0, 3600]"),
    ]:
        refused(lambda: validate.check_request(method, bad), needle)  # noqa: B023
    many = infer()
    many.inputs.extend([many.inputs[0]] * 100)
    refused(lambda: validate.check_request(method, many), "inputs has 101 entries")
    big = infer()
    big.inputs[0].meta.shape[:] = [5 * 1024 * 1024]
    refused(lambda: validate.check_request(method, big), "inputs[0].meta.shape makes a tensor of 5242880 bytes")
    short = infer()
    short.inputs[0].data = b"abc"
    refused(lambda: validate.check_request(method, short), "inputs[0].data has 3 bytes")
    inject = agent_pb2.InjectRequest(app_id="app-1", seq=2**64 - 1, inputs=infer().inputs)
    refused(lambda: validate.check_request("/synergy.v1.AgentService/Inject", inject), "seq must be an integer")


def test_watch_and_remove_ids() -> None:
    validate.check_request("/synergy.v1.AppsService/WatchResults", apps_pb2.WatchResultsRequest(app_ids=["a", "b"]))
    refused(
        lambda: validate.check_request(
            "/synergy.v1.AppsService/WatchResults", apps_pb2.WatchResultsRequest(app_ids=["a"] * 100_000)
        ),
        "app_ids has 100000 entries",
    )
    refused(
        lambda: validate.check_request(
            "/synergy.v1.AppsService/WatchResults", apps_pb2.WatchResultsRequest(app_ids=["ok", LONG])
        ),
        "app_ids[1] must be at most 128",
    )
    refused(
        lambda: validate.check_request("/synergy.v1.AppsService/RemoveApp", apps_pb2.RemoveAppRequest(app_id="")),
        "app_id is empty",
    )


# --- frames --------------------------------------------------------------------------------


HEADER_CASES: list[tuple[str, Mutation, str]] = [
    ("huge epoch", setter("epoch", 2**64 - 1), "header.epoch"),
    ("huge seq", setter("seq", 2**64 - 1), "header.seq"),
    ("huge segment", setter("segment", 2**32 - 1), "header.segment"),
    ("nan capture", setter("capture_time_unix", math.nan), "header.capture_time_unix"),
    ("huge shape", lambda m: m.tensors[0].shape.__setitem__(slice(None), [2**31, 2**31]), "header.tensors[0].shape[0]"),
    ("long sender", setter("sender", LONG), "header.sender"),
    ("no app", setter("app_id", ""), "header.app_id is empty"),
    ("many tensors", extend("tensors", [spec_to_meta(SPEC)] * 1000), "header.tensors has 1001 entries"),
]


@pytest.mark.parametrize(("case", "mutate", "needle"), HEADER_CASES, ids=[c[0] for c in HEADER_CASES])
def test_frame_header_bounds_in_the_assembler(case: str, mutate: Mutation, needle: str) -> None:
    header = header_msg()
    mutate(header)
    refused(lambda: FrameAssembler().feed(agent_pb2.FrameChunk(header=header)), needle)


def test_frame_chunks_on_the_wire() -> None:
    method = "/synergy.v1.AgentService/Frames"
    validate.check_request(method, agent_pb2.FrameChunk(header=header_msg()))
    validate.check_request(method, agent_pb2.FrameChunk(data=b"1234"))
    refused(lambda: validate.check_request(method, agent_pb2.FrameChunk()), "chunk has neither a header nor data")
    bad = agent_pb2.FrameChunk(header=header_msg())
    bad.header.tensors[0].dtype = "complex128"
    refused(lambda: validate.check_request(method, bad), "chunk.header.tensors[0].dtype")


def test_tensor_specs() -> None:
    assert spec_from_meta(common_pb2.TensorMeta(name="s", dtype="float32")) == TensorSpec("s", (), "float32")
    refused(
        lambda: spec_from_meta(common_pb2.TensorMeta(name="x", dtype="int8", shape=[2**31, 2**31])), "tensor.shape[0]"
    )
    refused(lambda: spec_from_meta(common_pb2.TensorMeta(name=LONG, dtype="int8", shape=[1])), "tensor.name")
    refused(lambda: spec_from_meta(common_pb2.TensorMeta(name="x", dtype=LONG, shape=[1])), "tensor.dtype")


# --- views the SDK reads ---------------------------------------------------------------------


def test_unknown_enum_values_are_refused() -> None:
    info = AppInfo("app-1", app_spec_from_proto(app_msg(), "app-1"), AppState.RUNNING)
    msg = app_info_to_proto(info)
    msg.state = 99  # type: ignore[assignment]
    refused(lambda: app_info_from_proto(msg), "app.state must be one of [0, 1, 2, 3], got 99")
    msg.state = common_pb2.APP_STATE_UNSPECIFIED
    assert app_info_from_proto(msg).state is AppState.WAITING
    msg.state = common_pb2.APP_STATE_RUNNING
    msg.stats.rate_hz = math.nan
    refused(lambda: app_info_from_proto(msg), "app.stats.rate_hz")
    refused(lambda: validate.enum_value(7, "ack.outcome", {0, 1, 2}), "ack.outcome must be one of [0, 1, 2], got 7")


def test_link_converter() -> None:
    assert link_from_proto(common_pb2.Link(name="l", bandwidth_bytes_per_s=10.0)).bandwidth_bytes_per_s == 10.0
    refused(lambda: link_from_proto(common_pb2.Link(name="l", bandwidth_bytes_per_s=math.nan)), "link.bandwidth")


# --- messages ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [LONG, LONG.encode(), list(range(100_000)), "é" * 10_000])
def test_show_never_repeats_more_than_a_few_dozen_characters(value: object) -> None:
    shown = validate.show(value)
    assert len(shown) < limits.MAX_ECHO_CHARS + 40
    assert "…" in shown


def test_every_request_validator_names_a_real_method() -> None:
    from synergy.v1 import agent_pb2 as a
    from synergy.v1 import apps_pb2 as p
    from synergy.v1 import registry_pb2 as r

    methods = {
        f"/{service.full_name}/{method.name}"
        for module in (a, p, r)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert set(validate.REQUEST_VALIDATORS) <= methods
    assert set(limits.METHOD_MESSAGE_BYTES) <= methods
    # Every method that takes arguments worth checking has a validator.
    no_arguments = {m for m in methods if m.rsplit("/", 1)[1].startswith(("List", "Get")) or m.endswith("/Status")}
    assert methods - no_arguments == set(validate.REQUEST_VALIDATORS)


def test_validators_accept_what_the_converters_produce() -> None:
    """Every request built from valid domain records passes its validator."""
    requests: dict[str, Message] = {
        "/synergy.v1.RegistryService/Register": registry_pb2.RegisterRequest(device=device_msg(), state=state_msg()),
        "/synergy.v1.RegistryService/ReportResult": registry_pb2.ReportResultRequest(lease_id="l", result=result_msg()),
        "/synergy.v1.RegistryService/ReportResults": registry_pb2.ReportResultsRequest(
            lease_id="l", results=[result_msg(), result_msg()]
        ),
        "/synergy.v1.AgentService/Inject": agent_pb2.InjectRequest(app_id="a", seq=1, inputs=infer().inputs),
    }
    for method, request in requests.items():
        validate.check_request(method, request)
