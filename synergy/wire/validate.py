"""Validation at the edge: every record a daemon receives is checked before anything keeps it.

One validator per record type, shared by both daemons and the SDK: device capability records
(with their board and link), app specs, deployment specs (segment assignments), what an agent
reports it holds, telemetry, results, frame headers and tensor specs, Infer and Inject
arguments. They work on the protobuf messages, before conversion, so that a hostile record is
refused before a single large object is built from it: lengths of repeated fields and strings
are checked before their items.

Rules: numbers are finite and inside the named bounds of :mod:`synergy.limits`; ids are short
printable tokens; names and free text are bounded; enum values are known; tensor shapes have a
bounded rank, bounded dimensions and a bounded byte size. A refusal raises
:class:`~synergy.errors.InvalidArgument` whose message names the field path (e.g.
``device.board.cnn_clock_hz``) and the bound, and repeats at most ``MAX_ECHO_CHARS`` characters
of the offending value.

The ``*_from_proto`` converters call these, and the server's error interceptor calls
:func:`check_request` on every decoded request (:data:`REQUEST_VALIDATORS`), so each RPC's
arguments are checked even where a servicer converts nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence, Sized
from typing import Any, NoReturn

from synergy import limits
from synergy.errors import InvalidArgument
from synergy.hardware.model import DTYPE_BYTES
from synergy.v1 import agent_pb2, apps_pb2, common_pb2, registry_pb2

__all__ = [
    "REQUEST_VALIDATORS",
    "address",
    "agent_state",
    "app_id_list",
    "app_spec",
    "assignment",
    "board",
    "board_port",
    "check_request",
    "count",
    "deploy_request",
    "device",
    "enum_value",
    "epoch",
    "frame_chunk",
    "frame_header",
    "frame_header_fields",
    "identifier",
    "infer_request",
    "inject_request",
    "link",
    "name",
    "real",
    "result",
    "seq",
    "show",
    "telemetry",
    "tensor",
    "tensor_list",
    "tensor_meta",
    "text",
]

#: Characters an id may not contain besides whitespace and control characters: ids become
#: MQTT topic levels, where "/" separates levels and "+" and "#" are wildcards.
_ID_FORBIDDEN = frozenset("/+#")


def show(value: object) -> str:
    """``value`` for an error message: its repr, cut to ``MAX_ECHO_CHARS`` characters with "…"."""
    if isinstance(value, str | bytes) and len(value) > limits.MAX_ECHO_CHARS:
        head = repr(value[: limits.MAX_ECHO_CHARS])
        return f"{head}… ({len(value)} {'chars' if isinstance(value, str) else 'bytes'})"
    shown = repr(value)
    if len(shown) > limits.MAX_ECHO_CHARS:
        shown = shown[: limits.MAX_ECHO_CHARS] + "…"
    return shown


def _refuse(path: str, rule: str, value: object = ...) -> NoReturn:
    got = "" if value is ... else f", got {show(value)}"
    raise InvalidArgument(f"{path} {rule}{got}")


# --- scalars ---------------------------------------------------------------------------------


def _length(value: str, path: str, max_chars: int, required: bool) -> bool:
    """False for an allowed empty value; refuses an empty required one and an over-long one."""
    if not value:
        if required:
            _refuse(path, "is empty")
        return False
    if len(value) > max_chars:
        _refuse(path, f"must be at most {max_chars} characters", value)
    return True


def identifier(value: str, path: str, *, required: bool = True, max_chars: int = limits.MAX_ID_CHARS) -> None:
    """An id (device, app, lease, digest): printable, no whitespace, no "/", "+" or "#"."""
    if not _length(value, path, max_chars, required):
        return
    if not value.isprintable() or any(c.isspace() or c in _ID_FORBIDDEN for c in value):
        _refuse(path, "must be printable without whitespace, '/', '+' or '#'", value)


def name(value: str, path: str, *, required: bool = False, max_chars: int = limits.MAX_NAME_CHARS) -> None:
    """A name or type: printable (no control characters), bounded."""
    if _length(value, path, max_chars, required) and not value.isprintable():
        _refuse(path, "must be printable (no control characters)", value)


def address(value: str, path: str, *, required: bool = False) -> None:
    """A gRPC target a daemon listens on ("host:port", "[::1]:port", "unix:/path"): printable
    ASCII without whitespace, with a ":" (host names are ASCII, internationalised ones in IDNA)."""
    if not _length(value, path, limits.MAX_ADDRESS_CHARS, required):
        return
    if not (value.isascii() and value.isprintable()) or any(c.isspace() for c in value) or ":" not in value:
        _refuse(path, "must be host:port in printable ASCII without whitespace", value)


def text(value: str, path: str, *, max_chars: int = limits.MAX_TEXT_CHARS) -> None:
    """Free text for people (notes, reasons, summaries): only its length is bounded."""
    _length(value, path, max_chars, False)


def count(value: int, path: str, *, high: int, low: int = 0) -> None:
    """An integer in [low, high]."""
    if not low <= value <= high:
        _refuse(path, f"must be an integer in [{low}, {high}]", value)


def epoch(value: int, path: str) -> None:
    count(value, path, high=limits.MAX_EPOCH)


def seq(value: int, path: str) -> None:
    count(value, path, high=limits.MAX_SEQ)


def real(value: float, path: str, *, high: float, low: float = 0.0, low_open: bool = False) -> None:
    """A finite number in [low, high] (or (low, high] with ``low_open``); NaN and inf never pass."""
    if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
        bracket = "(" if low_open else "["
        _refuse(path, f"must be a finite number in {bracket}{low:g}, {high:g}]", value)


def enum_value(value: int, path: str, known: Collection[Any]) -> None:
    """A known enum value (proto3 enums carry unknown numbers through; we do not)."""
    if value not in known:
        _refuse(path, f"must be one of {sorted(known)}", value)


def _items(items: Sized, path: str, maximum: int) -> None:
    if len(items) > maximum:
        _refuse(path, f"has {len(items)} entries, at most {maximum} are allowed")


def app_id_list(values: Sequence[str], path: str) -> None:
    _items(values, path, limits.MAX_WATCHED_APPS)
    for i, value in enumerate(values):
        identifier(value, f"{path}[{i}]")


# --- devices ---------------------------------------------------------------------------------

#: Board capacities that must be at least 1: a board without layers, channels, pixels or data
#: memory cannot run anything, and the planner divides by some of them.
_BOARD_CAPACITIES = (
    "max_layers",
    "max_channels",
    "max_tensor_dim",
    "max_pixels_hwc",
    "max_pixels_chw",
    "data_instances",
)
#: Board counts that may be 0.
_BOARD_COUNTS = ("max_streaming_layers", "max_bias_channels", "out_offset_pingpong")
#: Rates the planner divides by.
_BOARD_RATES = ("cpu_copy_bytes_per_s", "weight_load_bytes_per_s")
#: Power figures only scale energy estimates: 0 ("not modelled") is allowed.
_BOARD_POWERS = ("cnn_active_power_w", "cpu_active_power_w", "idle_power_w")


def board(msg: common_pb2.Board, path: str = "device.board") -> None:
    name(msg.name, f"{path}.name", required=True)
    name(msg.accelerator, f"{path}.accelerator")
    words = msg.weight_words_per_processor
    n = len(words)
    if n == 0:
        _refuse(f"{path}.weight_words_per_processor", "is empty")
    if n > limits.MAX_PROCESSORS or n % limits.PROCESSORS_PER_QUADRANT:
        _refuse(
            f"{path}.weight_words_per_processor",
            f"has {n} entries; a board has whole quadrants of {limits.PROCESSORS_PER_QUADRANT} processors, "
            f"at most {limits.MAX_PROCESSORS}",
        )
    for i, words_i in enumerate(words):
        count(words_i, f"{path}.weight_words_per_processor[{i}]", high=limits.MAX_WEIGHT_WORDS_PER_PROCESSOR)
    if not any(words):
        _refuse(f"{path}.weight_words_per_processor", "has no weight memory at all (every entry is 0)")
    for field in _BOARD_CAPACITIES:
        count(getattr(msg, field), f"{path}.{field}", low=1, high=limits.MAX_BOARD_COUNT)
    for field in _BOARD_COUNTS:
        count(getattr(msg, field), f"{path}.{field}", high=limits.MAX_BOARD_COUNT)
    count(msg.data_instance_bytes, f"{path}.data_instance_bytes", low=1, high=limits.MAX_BOARD_BYTES)
    count(msg.bias_bytes_per_quadrant, f"{path}.bias_bytes_per_quadrant", high=limits.MAX_BOARD_BYTES)
    for field in ("cnn_clock_hz", "cpu_clock_hz"):
        real(getattr(msg, field), f"{path}.{field}", high=limits.MAX_CLOCK_HZ, low_open=True)
    for field in _BOARD_RATES:
        real(getattr(msg, field), f"{path}.{field}", high=limits.MAX_DATA_RATE_BYTES_PER_S, low_open=True)
    for field in _BOARD_POWERS:
        real(getattr(msg, field), f"{path}.{field}", high=limits.MAX_POWER_W)
    text(msg.notes, f"{path}.notes")


def link(msg: common_pb2.Link, path: str = "device.link") -> None:
    name(msg.name, f"{path}.name")
    real(
        msg.bandwidth_bytes_per_s, f"{path}.bandwidth_bytes_per_s", high=limits.MAX_BANDWIDTH_BYTES_PER_S, low_open=True
    )
    real(msg.latency_s, f"{path}.latency_s", high=limits.MAX_LINK_LATENCY_S)
    count(msg.per_message_overhead_bytes, f"{path}.per_message_overhead_bytes", high=limits.MAX_MESSAGE_OVERHEAD_BYTES)


def board_port(msg: common_pb2.BoardPort, path: str = "device.board_port") -> None:
    if msg.transport != "serial":
        _refuse(f"{path}.transport", "must be 'serial' (the only transport there is)", msg.transport)
    name(msg.path, f"{path}.path", required=True, max_chars=limits.MAX_PATH_CHARS)
    count(msg.baud, f"{path}.baud", low=1, high=limits.MAX_BAUD)
    name(msg.firmware, f"{path}.firmware")
    count(msg.protocol_version, f"{path}.protocol_version", low=1, high=255)
    for field in ("measured_wire_bytes_per_s", "measured_payload_bytes_per_s"):
        real(getattr(msg, field), f"{path}.{field}", high=limits.MAX_BANDWIDTH_BYTES_PER_S, low_open=True)
    if msg.measured_payload_bytes_per_s > msg.measured_wire_bytes_per_s:
        _refuse(
            f"{path}.measured_payload_bytes_per_s",
            "exceeds measured_wire_bytes_per_s (the payload is part of the wire bytes)",
            msg.measured_payload_bytes_per_s,
        )


def device(msg: common_pb2.DeviceCapabilities, path: str = "device", *, require_address: bool = False) -> None:
    """A device capability record (what Register carries and ListDevices answers)."""
    identifier(msg.device_id, f"{path}.device_id")
    name(msg.kind, f"{path}.kind")
    address(msg.address, f"{path}.address", required=require_address)
    if not msg.HasField("board"):
        _refuse(f"{path}.board", "is missing")
    board(msg.board, f"{path}.board")
    _items(msg.sensors, f"{path}.sensors", limits.MAX_DEVICE_SENSORS)
    for i, sensor in enumerate(msg.sensors):
        where = f"{path}.sensors[{i}]"
        name(sensor.type, f"{where}.type", required=True)
        real(sensor.rate_hz, f"{where}.rate_hz", high=limits.MAX_RATE_HZ, low_open=True)
        name(sensor.source, f"{where}.source", max_chars=limits.MAX_PATH_CHARS)
    _items(msg.outputs, f"{path}.outputs", limits.MAX_DEVICE_OUTPUTS)
    for i, output in enumerate(msg.outputs):
        name(output.type, f"{path}.outputs[{i}].type", required=True)
    link(msg.link, f"{path}.link")
    name(msg.medium, f"{path}.medium")
    if msg.central and not msg.medium:
        _refuse(f"{path}.central", "is set without a medium (the piconet it is central of)")
    _items(msg.peer_links, f"{path}.peer_links", limits.MAX_PEER_LINKS)
    peers: set[str] = set()
    for i, peer in enumerate(msg.peer_links):
        where = f"{path}.peer_links[{i}]"
        identifier(peer.peer_device_id, f"{where}.peer_device_id")
        if peer.peer_device_id == msg.device_id:
            _refuse(f"{where}.peer_device_id", "names the device itself")
        if peer.peer_device_id in peers:
            _refuse(f"{where}.peer_device_id", f"repeats {peer.peer_device_id!r}")
        peers.add(peer.peer_device_id)
        if not peer.HasField("link"):
            _refuse(f"{where}.link", "is missing")
        link(peer.link, f"{where}.link")
    if msg.HasField("board_port"):
        board_port(msg.board_port, f"{path}.board_port")


# --- apps ------------------------------------------------------------------------------------


def app_spec(msg: common_pb2.AppSpec, path: str = "spec") -> None:
    name(msg.name, f"{path}.name")
    name(msg.model, f"{path}.model")
    if not msg.source_type:
        _refuse(f"{path}.source_type", "is empty (a sensor type such as 'camera', or 'client')")
    name(msg.source_type, f"{path}.source_type", required=True)
    if not msg.target_type:
        _refuse(f"{path}.target_type", "is empty (an output type such as 'display')")
    name(msg.target_type, f"{path}.target_type", required=True)
    identifier(msg.source_device, f"{path}.source_device", required=False)
    identifier(msg.target_device, f"{path}.target_device", required=False)
    real(msg.max_rate_hz, f"{path}.max_rate_hz", high=limits.MAX_RATE_HZ)


# --- tensors ---------------------------------------------------------------------------------


def tensor_meta(meta: common_pb2.TensorMeta, path: str = "tensor", *, max_bytes: int = limits.MAX_TENSOR_BYTES) -> int:
    """A tensor spec: known dtype, bounded rank, dimensions and bytes. Returns its byte size."""
    name(meta.name, f"{path}.name")
    if meta.dtype not in DTYPE_BYTES:
        _refuse(f"{path}.dtype", f"must be one of {sorted(DTYPE_BYTES)}", meta.dtype)
    shape = meta.shape
    if len(shape) > limits.MAX_TENSOR_RANK:
        _refuse(f"{path}.shape", f"has rank {len(shape)}, at most {limits.MAX_TENSOR_RANK} is allowed")
    size = DTYPE_BYTES[meta.dtype]
    for i, dim in enumerate(shape):
        if not 1 <= dim <= limits.MAX_TENSOR_DIM:
            _refuse(f"{path}.shape[{i}]", f"must be a dimension in [1, {limits.MAX_TENSOR_DIM}]", dim)
        size *= dim
    if size > max_bytes:
        _refuse(f"{path}.shape", f"makes a tensor of {size} bytes, more than the limit of {max_bytes}", list(shape))
    return size


def tensor(msg: common_pb2.Tensor, path: str = "tensor", *, max_bytes: int = limits.MAX_TENSOR_BYTES) -> int:
    """A tensor with its bytes: a valid spec and exactly the bytes it needs. Returns the size."""
    size = tensor_meta(msg.meta, f"{path}.meta", max_bytes=max_bytes)
    if len(msg.data) != size:
        _refuse(f"{path}.data", f"has {len(msg.data)} bytes, its meta needs {size}")
    return size


def tensor_list(msgs: Sequence[common_pb2.Tensor], path: str, *, max_total_bytes: int) -> None:
    """Tensors with their bytes: bounded count and total size."""
    _items(msgs, path, limits.MAX_TENSORS)
    total = 0
    for i, msg in enumerate(msgs):
        total += tensor(msg, f"{path}[{i}]", max_bytes=max_total_bytes)
        if total > max_total_bytes:
            _refuse(path, f"carry more than {max_total_bytes} bytes in total")


def _metas(metas: Sequence[common_pb2.TensorMeta], path: str) -> None:
    _items(metas, path, limits.MAX_TENSORS)
    for i, meta in enumerate(metas):
        tensor_meta(meta, f"{path}[{i}]")


# --- deployments -----------------------------------------------------------------------------


def assignment(msg: agent_pb2.Assignment, path: str = "assignment") -> None:
    """One device's segment of one app's pipeline (what Deploy carries)."""
    identifier(msg.app_id, f"{path}.app_id")
    count(msg.segment, f"{path}.segment", high=limits.MAX_SEGMENT_INDEX)
    name(msg.sensor_type, f"{path}.sensor_type")
    real(msg.rate_hz, f"{path}.rate_hz", high=limits.MAX_RATE_HZ)
    _metas(msg.inputs, f"{path}.inputs")
    name(msg.output_type, f"{path}.output_type")
    name(msg.model, f"{path}.model")
    identifier(msg.upstream_device_id, f"{path}.upstream_device_id", required=False)
    if msg.segment > 0 and not msg.upstream_device_id:
        _refuse(
            f"{path}.upstream_device_id",
            f"is empty for segment {msg.segment}: every segment after the first names its upstream device",
        )
    if msg.HasField("partition"):
        p, where = msg.partition, f"{path}.partition"
        count(p.first_layer, f"{where}.first_layer", high=limits.MAX_LAYER_INDEX)
        count(p.last_layer, f"{where}.last_layer", low=p.first_layer, high=limits.MAX_LAYER_INDEX)
        if len(p.onnx) > limits.MAX_MODEL_BYTES:
            _refuse(f"{where}.onnx", f"has {len(p.onnx)} bytes, at most {limits.MAX_MODEL_BYTES} are allowed")
        _metas(p.inputs, f"{where}.inputs")
        _metas(p.outputs, f"{where}.outputs")
        identifier(p.digest, f"{where}.digest", required=False, max_chars=limits.MAX_DIGEST_CHARS)
    if msg.HasField("next"):
        peer, where = msg.next, f"{path}.next"
        identifier(peer.device_id, f"{where}.device_id", required=False)
        address(peer.address, f"{where}.address")
        if peer.HasField("link"):
            link(peer.link, f"{where}.link")


def agent_state(msg: common_pb2.AgentState, path: str = "state") -> None:
    """What an agent reports it holds (Register, Heartbeat)."""
    epoch(msg.active_epoch, f"{path}.active_epoch")
    _items(msg.loaded_epochs, f"{path}.loaded_epochs", limits.MAX_LOADED_EPOCHS)
    for i, loaded in enumerate(msg.loaded_epochs):
        epoch(loaded, f"{path}.loaded_epochs[{i}]")
    _items(msg.segments, f"{path}.segments", limits.MAX_HELD_SEGMENTS)
    for i, held in enumerate(msg.segments):
        where = f"{path}.segments[{i}]"
        identifier(held.app_id, f"{where}.app_id")
        epoch(held.epoch, f"{where}.epoch")
        count(held.segment, f"{where}.segment", high=limits.MAX_SEGMENT_INDEX)
        identifier(held.digest, f"{where}.digest", required=False, max_chars=limits.MAX_DIGEST_CHARS)


# --- reports ---------------------------------------------------------------------------------

_TELEMETRY_COUNTERS = (
    "frames_in",
    "frames_out",
    "bytes_to_peers",
    "bytes_from_peers",
    "bytes_to_coordinator",
    "frames_dropped",
)


def telemetry(msg: common_pb2.DeviceTelemetry, path: str = "telemetry") -> None:
    """Counters an agent reports with its heartbeats: finite, non-negative, bounded."""
    for field in _TELEMETRY_COUNTERS:
        count(getattr(msg, field), f"{path}.{field}", high=limits.MAX_COUNTER)
    real(msg.accelerator_busy_s, f"{path}.accelerator_busy_s", high=limits.MAX_SECONDS)
    _items(msg.stage_timings, f"{path}.stage_timings", limits.MAX_STAGE_TIMINGS)
    for i, timing in enumerate(msg.stage_timings):
        where = f"{path}.stage_timings[{i}]"
        identifier(timing.app_id, f"{where}.app_id")
        epoch(timing.epoch, f"{where}.epoch")
        real(timing.predicted_s, f"{where}.predicted_s", high=limits.MAX_SECONDS)
        real(timing.measured_s, f"{where}.measured_s", high=limits.MAX_SECONDS)
        count(timing.samples, f"{where}.samples", high=limits.MAX_COUNTER)
    count(msg.frames_replayed, f"{path}.frames_replayed", high=limits.MAX_COUNTER)
    _items(msg.sources, f"{path}.sources", limits.MAX_STAGE_TIMINGS)
    for i, source in enumerate(msg.sources):
        where = f"{path}.sources[{i}]"
        identifier(source.app_id, f"{where}.app_id")
        epoch(source.epoch, f"{where}.epoch")
        count(source.admitted, f"{where}.admitted", high=limits.MAX_COUNTER)
        count(source.skipped, f"{where}.skipped", high=limits.MAX_COUNTER)


def result(msg: common_pb2.Result, path: str = "result") -> None:
    """One frame's outcome at its target (ReportResult, and what WatchResults / Infer answer)."""
    identifier(msg.app_id, f"{path}.app_id")
    epoch(msg.epoch, f"{path}.epoch")
    seq(msg.seq, f"{path}.seq")
    real(msg.capture_time_unix, f"{path}.capture_time_unix", high=limits.MAX_UNIX_TIME)
    real(msg.done_time_unix, f"{path}.done_time_unix", high=limits.MAX_UNIX_TIME)
    tensor_list(msg.tensors, f"{path}.tensors", max_total_bytes=limits.MAX_RESULT_BYTES)
    identifier(msg.device_id, f"{path}.device_id", required=False)
    name(msg.output_type, f"{path}.output_type")
    text(msg.drop_reason, f"{path}.drop_reason")
    text(msg.summary, f"{path}.summary")


# --- frames ----------------------------------------------------------------------------------


def frame_header(msg: agent_pb2.FrameHeader, path: str = "header") -> None:
    """The header of one frame. The frame size limit itself is the assembler's."""
    frame_header_fields(msg, path)
    _metas(msg.tensors, f"{path}.tensors")


def frame_header_fields(msg: agent_pb2.FrameHeader, path: str = "header") -> None:
    """Every field of a frame header but its tensors (the assembler checks those once per
    distinct list: they are the same on every frame of a stream)."""
    identifier(msg.app_id, f"{path}.app_id")
    epoch(msg.epoch, f"{path}.epoch")
    count(msg.segment, f"{path}.segment", high=limits.MAX_SEGMENT_INDEX)
    seq(msg.seq, f"{path}.seq")
    real(msg.capture_time_unix, f"{path}.capture_time_unix", high=limits.MAX_UNIX_TIME)
    count(msg.total_bytes, f"{path}.total_bytes", high=limits.MAX_COUNTER)
    identifier(msg.sender, f"{path}.sender", required=False)


def frame_chunk(msg: agent_pb2.FrameChunk, path: str = "chunk") -> None:
    """A FrameChunk proto (the agent's server reads the wire bytes itself, with the same
    checks: synergy.wire.tensors.decode_chunk and FrameAssembler)."""
    if msg.HasField("header"):
        frame_header(msg.header, f"{path}.header")
    elif not msg.data:
        _refuse(path, "has neither a header nor data")


# --- requests ----------------------------------------------------------------------------------


def _register_request(msg: registry_pb2.RegisterRequest) -> None:
    if not msg.HasField("device"):
        _refuse("device", "is missing")
    device(msg.device, "device", require_address=True)
    agent_state(msg.state, "state")


def _heartbeat_request(msg: registry_pb2.HeartbeatRequest) -> None:
    identifier(msg.device_id, "device_id")
    identifier(msg.lease_id, "lease_id", required=False)
    telemetry(msg.telemetry, "telemetry")
    agent_state(msg.state, "state")


def _report_result_request(msg: registry_pb2.ReportResultRequest) -> None:
    identifier(msg.lease_id, "lease_id", required=False)
    if not msg.HasField("result"):
        _refuse("result", "is missing")
    result(msg.result, "result")


def _report_results_request(msg: registry_pb2.ReportResultsRequest) -> None:
    """The envelope only: each result is validated by the servicer on its own, so that one bad
    result is refused in its outcome without refusing the batch."""
    identifier(msg.lease_id, "lease_id", required=False)
    _items(msg.results, "results", limits.MAX_RESULTS_PER_REPORT)
    total = sum(len(t.data) for r in msg.results for t in r.tensors)
    if total > limits.MAX_REPORT_BATCH_BYTES:
        _refuse("results", f"carry {total} tensor bytes, at most {limits.MAX_REPORT_BATCH_BYTES} in one call")


def _deregister_request(msg: registry_pb2.DeregisterRequest) -> None:
    identifier(msg.device_id, "device_id")
    identifier(msg.lease_id, "lease_id", required=False)


def _submit_app_request(msg: apps_pb2.SubmitAppRequest) -> None:
    app_spec(msg.spec, "spec")
    name(msg.zoo_name, "zoo_name")
    if len(msg.onnx) > limits.MAX_MODEL_BYTES:
        _refuse("onnx", f"has {len(msg.onnx)} bytes, at most {limits.MAX_MODEL_BYTES} are allowed")


def _app_id_request(msg: apps_pb2.RemoveAppRequest) -> None:
    identifier(msg.app_id, "app_id")


def _forget_device_request(msg: apps_pb2.ForgetDeviceRequest) -> None:
    identifier(msg.device_id, "device_id")


def _watch_results_request(msg: apps_pb2.WatchResultsRequest) -> None:
    app_id_list(msg.app_ids, "app_ids")


def infer_request(msg: apps_pb2.InferRequest) -> None:
    """Infer's arguments: an app id, bounded input tensors with exactly their bytes, a timeout."""
    identifier(msg.app_id, "app_id")
    tensor_list(msg.inputs, "inputs", max_total_bytes=limits.MAX_INFER_BYTES)
    real(msg.timeout_s, "timeout_s", high=limits.MAX_INFER_TIMEOUT_S)


def deploy_request(msg: agent_pb2.DeployRequest) -> None:
    epoch(msg.epoch, "epoch")
    _items(msg.assignments, "assignments", limits.MAX_ASSIGNMENTS)
    for i, item in enumerate(msg.assignments):
        assignment(item, f"assignments[{i}]")


def _epoch_request(msg: agent_pb2.ActivateRequest | agent_pb2.UndeployRequest) -> None:
    epoch(msg.epoch, "epoch")


def inject_request(msg: agent_pb2.InjectRequest) -> None:
    """Inject's arguments: like Infer's, with the sequence number the coordinator chose."""
    identifier(msg.app_id, "app_id")
    seq(msg.seq, "seq")
    tensor_list(msg.inputs, "inputs", max_total_bytes=limits.MAX_INFER_BYTES)


#: The validator of each request message, by full method name; methods without arguments
#: worth checking (List*, Get*, Status, health, reflection) are absent.
REQUEST_VALIDATORS: Mapping[str, Callable[[Any], None]] = {
    "/synergy.v1.RegistryService/Register": _register_request,
    "/synergy.v1.RegistryService/Heartbeat": _heartbeat_request,
    "/synergy.v1.RegistryService/ReportResult": _report_result_request,
    "/synergy.v1.RegistryService/ReportResults": _report_results_request,
    "/synergy.v1.RegistryService/Deregister": _deregister_request,
    "/synergy.v1.AppsService/SubmitApp": _submit_app_request,
    "/synergy.v1.AppsService/RemoveApp": _app_id_request,
    "/synergy.v1.AppsService/WatchResults": _watch_results_request,
    "/synergy.v1.AppsService/Infer": infer_request,
    "/synergy.v1.AppsService/ForgetDevice": _forget_device_request,
    "/synergy.v1.AgentService/Deploy": deploy_request,
    "/synergy.v1.AgentService/Activate": _epoch_request,
    "/synergy.v1.AgentService/Undeploy": _epoch_request,
    "/synergy.v1.AgentService/Frames": frame_chunk,
    "/synergy.v1.AgentService/Inject": inject_request,
}


def check_request(method: str, message: object) -> None:
    """Validate a decoded request of ``method`` ("/package.Service/Method"), if it has a validator."""
    validator = REQUEST_VALIDATORS.get(method)
    if validator is not None:
        validator(message)
