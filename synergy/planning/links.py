"""How bytes travel between two devices: the link of each hop, and the air time they share.

The default is one independent link per pair of devices, at the slower of the two radios'
figures (:func:`link_between`): every device has a radio of its own and nothing else
competes for it. Two facts of a real body can refine it, both declared per device
(:class:`~synergy.types.DeviceSpec`, from a space file or an agent's device file):

* **Per-pair links** (``peer_links``): the figures of the link between two particular
  devices, where someone measured or knows them (the glasses sit 10 cm from the earbud and
  40 cm from the ring). If both devices declare the pair, the slower figures count.
* **A shared medium** (``medium``): wearables on one BLE piconet share its air time. Every
  transfer between two members of the medium keeps the medium busy for its air time, on a
  resource of its own (``<medium>.air``) that all of them share, beside each radio's own
  busy time. With a **central** (``central: true`` on one member), transfers between two
  other members relay through it (BLE peripherals talk to their central, not to each
  other): two hops, each with its own air time, latency and radio work on the central.

A route is what :meth:`~synergy.planning.cost.CostModel.frame_cost` charges for a transfer.
Assumptions, named: a relay stores and forwards a whole message (its latency is the sum of
both hops); a medium's air time per hop is the hop's transfer time (the hop's link figures
already say how fast the air carries the payload); a medium whose central is absent from
the space falls back to direct transfers between its members.

A device whose agent reaches a **real board over a serial port** (``board_port`` in its
record) moves every byte into or out of the board over that port, so :func:`through_port`
caps its links at the payload rate the agent measured there (rounded down to whole
kB/s, so boards measured alike still share a device class) and charges each transfer at
least :data:`SERIAL_MESSAGE_OVERHEAD_BYTES`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from synergy.types import DeviceSpec, LinkProfile

__all__ = [
    "AIR",
    "SERIAL_MESSAGE_OVERHEAD_BYTES",
    "Hop",
    "Route",
    "air_resource",
    "is_plain",
    "link_between",
    "link_for",
    "route",
    "through_port",
]

#: Resource kind of a shared medium's air time (resource name ``<medium>.air``).
AIR = "air"

_PAIRS: dict[tuple[LinkProfile, LinkProfile], LinkProfile] = {}


def air_resource(medium: str) -> str:
    return f"{medium}.{AIR}"


def link_between(a: LinkProfile, b: LinkProfile) -> LinkProfile:
    """The effective link between two radios: the slower rate, the longer latency."""
    if a is b or a == b:
        return a
    hit = _PAIRS.get((a, b))
    if hit is None:
        if len(_PAIRS) > 1024:
            _PAIRS.clear()
        hit = _PAIRS[(a, b)] = LinkProfile(
            name=f"{a.name}~{b.name}",
            bandwidth_bytes_per_s=min(a.bandwidth_bytes_per_s, b.bandwidth_bytes_per_s),
            latency_s=max(a.latency_s, b.latency_s),
            per_message_overhead_bytes=max(a.per_message_overhead_bytes, b.per_message_overhead_bytes),
        )
    return hit


#: Grid the measured port rate is rounded down to (bytes per second).
PORT_RATE_STEP = 1000.0
#: What one transfer over a serial port costs beyond its data, in bytes at the port's rate:
#: at least a RUN and a RUN_RESULT (headers, CRCs, COBS, delimiters, ~50 bytes on the line)
#: plus host and board turnaround. Measured with `synergy bench --serial-overhead`: a least-
#: squares fit of 167 transfers through the protocol on a pty at 921,600 baud gave
#: 0.88 ms + bytes / 88,867 B/s, i.e. ~79 bytes per transfer (docs/serial-protocol.md §4).
SERIAL_MESSAGE_OVERHEAD_BYTES = 80


def through_port(device: DeviceSpec) -> DeviceSpec:
    """``device`` with every link capped at its board port's measured payload rate (module doc)."""
    if device.board_port is None:
        return device
    peers = tuple(replace(p, link=_capped(p.link, device)) for p in device.peer_links)
    return replace(device, link=_capped(device.link, device), peer_links=peers)


def _capped(link: LinkProfile, device: DeviceSpec) -> LinkProfile:
    port = device.board_port
    if port is None:
        return link
    rate = max(PORT_RATE_STEP, port.measured_payload_bytes_per_s // PORT_RATE_STEP * PORT_RATE_STEP)
    overhead = max(link.per_message_overhead_bytes, SERIAL_MESSAGE_OVERHEAD_BYTES)
    if link.bandwidth_bytes_per_s <= rate and link.per_message_overhead_bytes == overhead:
        return link
    return replace(
        link,
        name=f"{link.name}|serial",
        bandwidth_bytes_per_s=min(rate, link.bandwidth_bytes_per_s),
        per_message_overhead_bytes=overhead,
    )


def _slower(a: LinkProfile, b: LinkProfile) -> LinkProfile:
    return a if (a.bandwidth_bytes_per_s, -a.latency_s) <= (b.bandwidth_bytes_per_s, -b.latency_s) else b


def link_for(a: DeviceSpec, b: DeviceSpec) -> LinkProfile:
    """The link of one hop from ``a`` to ``b``: a declared pair link, else the slower radio."""
    declared = [p.link for p in a.peer_links if p.peer == b.device_id]
    declared += [p.link for p in b.peer_links if p.peer == a.device_id]
    if not declared:
        return link_between(a.link, b.link)
    out = declared[0]
    for other in declared[1:]:
        out = _slower(out, other)
    # A pair link declared by the peer still ends at a board port on this side.
    return _capped(_capped(out, a), b)


@dataclass(frozen=True)
class Hop:
    sender: str
    receiver: str
    link: LinkProfile


@dataclass(frozen=True)
class Route:
    """The hops of one transfer, and the medium whose air time each hop takes ("" = none)."""

    hops: tuple[Hop, ...]
    medium: str = ""


def is_plain(devices: Mapping[str, DeviceSpec]) -> bool:
    """Whether every transfer in the space is one hop on its own link (the default model)."""
    return not any(d.medium or d.peer_links for d in devices.values())


def central_of(medium: str, devices: Mapping[str, DeviceSpec]) -> str:
    """The central of a medium ("" = none); of several, the first by device id (deterministic)."""
    centrals = sorted(d.device_id for d in devices.values() if d.medium == medium and d.central)
    return centrals[0] if centrals else ""


def route(a: DeviceSpec, b: DeviceSpec, devices: Mapping[str, DeviceSpec]) -> Route:
    """How a message from ``a`` reaches ``b`` in a space of ``devices``."""
    medium = a.medium if a.medium and a.medium == b.medium else ""
    if medium:
        hub = central_of(medium, devices)
        if hub and hub not in (a.device_id, b.device_id):
            c = devices[hub]
            return Route((Hop(a.device_id, hub, link_for(a, c)), Hop(hub, b.device_id, link_for(c, b))), medium)
    return Route((Hop(a.device_id, b.device_id, link_for(a, b)),), medium)
