"""Records <-> bytes for the coordinator's state store, in the wire format.

The store keeps devices, app specs and plans as serialized protobuf: one schema for the wire
and the disk, evolving compatibly, and every record read back goes through the same
validating converters as a record from the network (a damaged database is refused, never
trusted).
"""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import DecodeError

from synergy.errors import InvalidArgument
from synergy.types import AppSpec, DeviceSpec, JointPlan
from synergy.v1 import common_pb2
from synergy.wire.convert import (
    app_spec_from_proto,
    app_spec_to_proto,
    device_from_proto,
    device_to_proto,
    joint_plan_from_proto,
    joint_plan_to_proto,
)

__all__ = [
    "app_spec_from_bytes",
    "app_spec_to_bytes",
    "device_from_bytes",
    "device_to_bytes",
    "plan_from_bytes",
    "plan_to_bytes",
]


_M = TypeVar("_M", common_pb2.DeviceCapabilities, common_pb2.AppSpec, common_pb2.JointPlan)


def _parse(message: _M, data: bytes, what: str) -> _M:
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise InvalidArgument(f"stored {what} is damaged: {exc}") from exc
    return message


def device_to_bytes(spec: DeviceSpec) -> bytes:
    return bytes(device_to_proto(spec).SerializeToString())


def device_from_bytes(data: bytes) -> DeviceSpec:
    return device_from_proto(_parse(common_pb2.DeviceCapabilities(), data, "device"))


def app_spec_to_bytes(spec: AppSpec) -> bytes:
    return bytes(app_spec_to_proto(spec).SerializeToString())


def app_spec_from_bytes(data: bytes, app_id: str) -> AppSpec:
    return app_spec_from_proto(_parse(common_pb2.AppSpec(), data, "app spec"), app_id)


def plan_to_bytes(plan: JointPlan) -> bytes:
    return bytes(joint_plan_to_proto(plan).SerializeToString())


def plan_from_bytes(data: bytes) -> JointPlan:
    return joint_plan_from_proto(_parse(common_pb2.JointPlan(), data, "plan"))
