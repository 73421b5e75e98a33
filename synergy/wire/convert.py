"""Domain dataclasses <-> protobuf messages, at the process boundary only.

Protos stop here: servicers convert requests with ``*_from_proto`` and answers with
``*_to_proto``; everything behind them works on :mod:`synergy.types` and
:mod:`synergy.hardware` types. Every ``*_from_proto`` of a record a peer sends first runs its validator
(:mod:`synergy.wire.validate`), so bad input is refused before it reaches any state.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from synergy import limits
from synergy.errors import InvalidArgument
from synergy.hardware.boards import BoardProfile, board_from_dict
from synergy.types import (
    AppSpec,
    BoardPort,
    DeviceSpec,
    ExecutionPlan,
    JointPlan,
    LinkProfile,
    OutputSpec,
    PeerLink,
    SensorSpec,
    Stage,
)
from synergy.v1 import common_pb2
from synergy.wire import validate

#: An app's weight when the client gives none (the wire's 0).
DEFAULT_APP_WEIGHT = 1.0
#: The largest priority weight accepted: enough to rank any app above any other (weights
#: multiply rates of at most limits.MAX_RATE_HZ), small enough to keep the sums finite.
MAX_APP_WEIGHT = 1_000.0

__all__ = [
    "DEFAULT_APP_WEIGHT",
    "MAX_APP_WEIGHT",
    "app_spec_from_proto",
    "app_spec_to_proto",
    "board_from_proto",
    "board_to_proto",
    "device_from_proto",
    "device_to_proto",
    "joint_plan_from_proto",
    "joint_plan_to_proto",
    "plan_from_proto",
    "plan_to_proto",
]


def board_to_proto(board: BoardProfile) -> common_pb2.Board:
    # Field names are shared by construction; a test checks every BoardProfile field has one.
    values: dict[str, Any] = {}
    for f in dataclasses.fields(BoardProfile):
        values[f.name] = getattr(board, f.name)
    values["weight_words_per_processor"] = list(board.weight_words_per_processor)
    return common_pb2.Board(**values)


def board_from_proto(msg: common_pb2.Board, *, path: str = "board") -> BoardProfile:
    validate.board(msg, path)
    return _board(msg)


def _board(msg: common_pb2.Board) -> BoardProfile:
    values = {f.name: getattr(msg, f.name) for f in dataclasses.fields(BoardProfile)}
    return board_from_dict(values, origin=f"board {msg.name!r}")


def device_to_proto(device: DeviceSpec) -> common_pb2.DeviceCapabilities:
    return common_pb2.DeviceCapabilities(
        device_id=device.device_id,
        kind=device.kind,
        address=device.address,
        board=board_to_proto(device.board),
        sensors=[common_pb2.Sensor(type=s.type, rate_hz=s.rate_hz, source=s.source) for s in device.sensors],
        outputs=[common_pb2.Output(type=o.type) for o in device.outputs],
        link=_link_to_proto(device.link),
        medium=device.medium,
        central=device.central,
        peer_links=[common_pb2.PeerLink(peer_device_id=p.peer, link=_link_to_proto(p.link)) for p in device.peer_links],
        board_port=_port_to_proto(device.board_port),
    )


def _port_to_proto(port: BoardPort | None) -> common_pb2.BoardPort | None:
    if port is None:
        return None
    return common_pb2.BoardPort(
        transport=port.transport,
        path=port.path,
        baud=port.baud,
        firmware=port.firmware,
        protocol_version=port.protocol_version,
        measured_wire_bytes_per_s=port.measured_wire_bytes_per_s,
        measured_payload_bytes_per_s=port.measured_payload_bytes_per_s,
    )


def _port(msg: common_pb2.DeviceCapabilities) -> BoardPort | None:
    if not msg.HasField("board_port"):
        return None
    p = msg.board_port
    return BoardPort(
        p.path,
        p.baud,
        p.firmware,
        p.protocol_version,
        p.measured_wire_bytes_per_s,
        p.measured_payload_bytes_per_s,
        p.transport,
    )


def _link_to_proto(link: LinkProfile) -> common_pb2.Link:
    return common_pb2.Link(
        name=link.name,
        bandwidth_bytes_per_s=link.bandwidth_bytes_per_s,
        latency_s=link.latency_s,
        per_message_overhead_bytes=link.per_message_overhead_bytes,
    )


def _link(msg: common_pb2.Link) -> LinkProfile:
    return LinkProfile(msg.name, msg.bandwidth_bytes_per_s, msg.latency_s, msg.per_message_overhead_bytes)


def device_from_proto(msg: common_pb2.DeviceCapabilities, *, path: str = "device") -> DeviceSpec:
    """A device capability record, validated (:func:`synergy.wire.validate.device`)."""
    validate.device(msg, path)
    return DeviceSpec(
        device_id=msg.device_id,
        kind=msg.kind,
        address=msg.address,
        board=_board(msg.board),
        sensors=tuple(SensorSpec(s.type, s.rate_hz, s.source) for s in msg.sensors),
        outputs=tuple(OutputSpec(o.type) for o in msg.outputs),
        link=_link(msg.link),
        medium=msg.medium,
        central=msg.central,
        peer_links=tuple(sorted((PeerLink(p.peer_device_id, _link(p.link)) for p in msg.peer_links), key=_peer)),
        board_port=_port(msg),
    )


def _peer(link: PeerLink) -> str:
    return link.peer


def app_spec_to_proto(spec: AppSpec) -> common_pb2.AppSpec:
    return common_pb2.AppSpec(
        name=spec.name,
        model=spec.model,
        source_type=spec.source_type,
        target_type=spec.target_type,
        source_device=spec.source_device,
        target_device=spec.target_device,
        max_rate_hz=spec.max_rate_hz,
        min_rate_hz=spec.min_rate_hz,
        weight=spec.weight,
        every_frame=spec.every_frame,
    )


def app_spec_from_proto(msg: common_pb2.AppSpec, app_id: str, *, path: str = "spec") -> AppSpec:
    """An app spec, validated (:func:`synergy.wire.validate.app_spec`); ``app_id`` is ours."""
    validate.app_spec(msg, path)
    _check_rate_needs(msg, path)
    return AppSpec(
        app_id=app_id,
        name=msg.name or app_id,
        model=msg.model,
        source_type=msg.source_type,
        target_type=msg.target_type,
        source_device=msg.source_device,
        target_device=msg.target_device,
        max_rate_hz=msg.max_rate_hz,
        min_rate_hz=msg.min_rate_hz,
        # proto3 cannot tell an absent weight from 0, and 0 would make an app worthless to
        # the planner (and undefined to the fair objective, which divides by it): 0 means 1.
        weight=msg.weight or DEFAULT_APP_WEIGHT,
        every_frame=msg.every_frame,
    )


def _check_rate_needs(msg: common_pb2.AppSpec, path: str) -> None:
    """``min_rate_hz`` and ``weight``: finite, bounded, and a minimum not above the cap."""
    validate.real(msg.min_rate_hz, f"{path}.min_rate_hz", high=limits.MAX_RATE_HZ)
    validate.real(msg.weight, f"{path}.weight", high=MAX_APP_WEIGHT)
    if msg.max_rate_hz > 0 and msg.min_rate_hz > msg.max_rate_hz:
        raise InvalidArgument(
            f"{path}.min_rate_hz must be at most {path}.max_rate_hz ({msg.max_rate_hz:g}), got {msg.min_rate_hz:g}"
        )


def plan_to_proto(plan: ExecutionPlan) -> common_pb2.ExecutionPlan:
    return common_pb2.ExecutionPlan(
        app_id=plan.app_id,
        source_device=plan.source_device,
        stages=[
            common_pb2.Stage(device_id=s.device_id, first_layer=s.first_layer, last_layer=s.last_layer)
            for s in plan.stages
        ],
        target_device=plan.target_device,
        predicted_rate_hz=plan.predicted_rate_hz,
        predicted_latency_s=plan.predicted_latency_s,
        parallel_devices=list(plan.parallel_devices),
    )


def plan_from_proto(msg: common_pb2.ExecutionPlan) -> ExecutionPlan:
    return ExecutionPlan(
        app_id=msg.app_id,
        source_device=msg.source_device,
        stages=tuple(Stage(s.device_id, s.first_layer, s.last_layer) for s in msg.stages),
        target_device=msg.target_device,
        predicted_rate_hz=msg.predicted_rate_hz,
        predicted_latency_s=msg.predicted_latency_s,
        parallel_devices=tuple(msg.parallel_devices),
    )


def joint_plan_to_proto(plan: JointPlan) -> common_pb2.JointPlan:
    return common_pb2.JointPlan(
        epoch=plan.epoch,
        plans=[plan_to_proto(p) for p in plan.plans],
        system_throughput=plan.system_throughput,
        bottleneck=plan.bottleneck,
        method=plan.method,
        unplaced=dict(plan.unplaced),
        quarantined=dict(plan.quarantined),
    )


def joint_plan_from_proto(msg: common_pb2.JointPlan) -> JointPlan:
    return JointPlan(
        epoch=msg.epoch,
        plans=tuple(plan_from_proto(p) for p in msg.plans),
        system_throughput=msg.system_throughput,
        bottleneck=msg.bottleneck,
        method=msg.method,
        unplaced=dict(msg.unplaced),
        quarantined=dict(msg.quarantined),
    )
