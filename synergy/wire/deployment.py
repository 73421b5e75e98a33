"""Deployment records <-> protobuf: segment assignments and what agents report they hold.

The ``*_from_proto`` converters validate first (:mod:`synergy.wire.validate`).
"""

from __future__ import annotations

from synergy.deployment import AgentState, HeldSegment, PartitionPayload, PeerRef, SegmentAssignment
from synergy.types import LinkProfile
from synergy.v1 import agent_pb2, common_pb2
from synergy.wire import validate
from synergy.wire.tensors import spec_from_meta, spec_to_meta

__all__ = [
    "agent_state_from_proto",
    "agent_state_to_proto",
    "assignment_from_proto",
    "assignment_to_proto",
    "link_from_proto",
    "link_to_proto",
]


def link_to_proto(link: LinkProfile) -> common_pb2.Link:
    return common_pb2.Link(
        name=link.name,
        bandwidth_bytes_per_s=link.bandwidth_bytes_per_s,
        latency_s=link.latency_s,
        per_message_overhead_bytes=link.per_message_overhead_bytes,
    )


def link_from_proto(msg: common_pb2.Link, *, path: str = "link") -> LinkProfile:
    validate.link(msg, path)
    return _link(msg)


def _link(msg: common_pb2.Link) -> LinkProfile:
    return LinkProfile(msg.name, msg.bandwidth_bytes_per_s, msg.latency_s, msg.per_message_overhead_bytes)


def assignment_to_proto(a: SegmentAssignment) -> agent_pb2.Assignment:
    msg = agent_pb2.Assignment(
        app_id=a.app_id,
        segment=a.segment,
        sensor_type=a.sensor_type,
        rate_hz=a.rate_hz,
        inputs=[spec_to_meta(t) for t in a.inputs],
        output_type=a.output_type,
        model=a.model,
        upstream_device_id=a.upstream,
        every_frame=a.every_frame,
    )
    if a.partition is not None:
        p = a.partition
        msg.partition.CopyFrom(
            agent_pb2.Partition(
                first_layer=p.first_layer,
                last_layer=p.last_layer,
                onnx=p.onnx,
                inputs=[spec_to_meta(t) for t in p.inputs],
                outputs=[spec_to_meta(t) for t in p.outputs],
                digest=p.digest,
            )
        )
    if a.next is not None:
        peer = agent_pb2.Peer(device_id=a.next.device_id, address=a.next.address)
        if a.next.link is not None:
            peer.link.CopyFrom(link_to_proto(a.next.link))
        msg.next.CopyFrom(peer)
    return msg


def assignment_from_proto(msg: agent_pb2.Assignment, *, path: str = "assignment") -> SegmentAssignment:
    """One segment assignment, validated (:func:`synergy.wire.validate.assignment`)."""
    validate.assignment(msg, path)
    partition = None
    if msg.HasField("partition"):
        p = msg.partition
        partition = PartitionPayload(
            first_layer=p.first_layer,
            last_layer=p.last_layer,
            onnx=p.onnx,
            inputs=tuple(spec_from_meta(m) for m in p.inputs),
            outputs=tuple(spec_from_meta(m) for m in p.outputs),
            digest=p.digest,
        )
    peer = None
    if msg.HasField("next") and msg.next.address:
        link = _link(msg.next.link) if msg.next.HasField("link") else None
        peer = PeerRef(msg.next.device_id, msg.next.address, link)
    return SegmentAssignment(
        app_id=msg.app_id,
        segment=msg.segment,
        inputs=tuple(spec_from_meta(m) for m in msg.inputs),
        model=msg.model,
        sensor_type=msg.sensor_type,
        rate_hz=msg.rate_hz,
        partition=partition,
        output_type=msg.output_type,
        next=peer,
        upstream=msg.upstream_device_id,
        every_frame=msg.every_frame,
    )


def agent_state_to_proto(state: AgentState) -> common_pb2.AgentState:
    return common_pb2.AgentState(
        active_epoch=state.active_epoch,
        loaded_epochs=list(state.loaded_epochs),
        segments=[
            common_pb2.HeldSegment(app_id=s.app_id, epoch=s.epoch, segment=s.segment, digest=s.digest)
            for s in state.segments
        ],
    )


def agent_state_from_proto(msg: common_pb2.AgentState, *, path: str = "state") -> AgentState:
    """What an agent reports it holds, validated (:func:`synergy.wire.validate.agent_state`)."""
    validate.agent_state(msg, path)
    return AgentState(
        active_epoch=msg.active_epoch,
        loaded_epochs=tuple(msg.loaded_epochs),
        segments=tuple(HeldSegment(s.app_id, s.epoch, s.segment, s.digest) for s in msg.segments),
    )
