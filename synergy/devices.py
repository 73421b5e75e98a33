"""Device descriptions: presets for typical wearables, device flags and device entries.

A device is described by its board (preset name or board file), sensors with rates, outputs
and its link. ``synergy agent --preset glasses`` takes a preset; flags override its parts.
A device entry (a mapping, docs/space-files.md) is parsed here by :func:`device_from_entry`,
the one parser behind both the planner's space files (:mod:`synergy.planning.space_files`)
and ``synergy agent --device-file`` (:func:`load_device_file`). This module must not import
the planner: the agent depends on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from synergy.errors import InvalidArgument, NotFound, SynergyError
from synergy.hardware.boards import BOARD_PRESETS, load_board
from synergy.types import LINK_PRESETS, DeviceSpec, LinkProfile, OutputSpec, PeerLink, SensorSpec

__all__ = [
    "DEVICE_PRESETS",
    "check_fields",
    "device_from_entry",
    "link_from",
    "load_device_file",
    "parse_link",
    "parse_sensor",
    "preset_device",
]

#: Typical wearables of the demo: (board, sensors "type:rate_hz", outputs, link).
DEVICE_PRESETS: Mapping[str, tuple[str, tuple[str, ...], tuple[str, ...], str]] = {
    "earbud": ("max78000", ("microphone:8",), ("speaker",), "ble5_2m"),
    "glasses": ("max78000", ("camera:15",), ("display",), "ble5_2m"),
    "watch": ("max78002", ("imu:50",), ("display", "haptics"), "ble5_2m"),
    "ring": ("max78000", ("imu:50",), ("haptics",), "ble5_2m"),
    "patch": ("max78000", ("ecg:10",), (), "ble_48k"),
}

_DEVICE_FIELDS = {"name", "board", "sensors", "outputs", "link", "kind", "medium", "central", "peer_links"}
_LINK_FIELDS = {"bandwidth_bytes_per_s", "latency_s", "per_message_overhead_bytes", "name"}


def parse_sensor(text: str) -> SensorSpec:
    """``type:rate_hz[:recording.npy]``, e.g. ``camera:15``."""
    parts = text.split(":")
    if len(parts) < 2 or not parts[0]:
        raise InvalidArgument(f"sensor {text!r}: expected TYPE:RATE_HZ[:RECORDING.npy], e.g. camera:15")
    try:
        rate = float(parts[1])
    except ValueError as exc:
        raise InvalidArgument(f"sensor {text!r}: rate {parts[1]!r} is not a number") from exc
    if rate <= 0:
        raise InvalidArgument(f"sensor {text!r}: rate must be positive")
    return SensorSpec(parts[0], rate, ":".join(parts[2:]))


def parse_link(name: str) -> LinkProfile:
    """A link preset name given on the command line."""
    return link_from(name, "--link")


def preset_device(preset: str, device_id: str = "") -> DeviceSpec:
    if preset not in DEVICE_PRESETS:
        raise NotFound(f"unknown device preset {preset!r}; presets: {', '.join(DEVICE_PRESETS)}")
    board, sensors, outputs, link = DEVICE_PRESETS[preset]
    return DeviceSpec(
        device_id=device_id or preset,
        board=load_board(board),
        sensors=tuple(parse_sensor(s) for s in sensors),
        outputs=tuple(OutputSpec(o) for o in outputs),
        link=LINK_PRESETS[link],
        kind=preset,
    )


def check_fields(item: Mapping[str, Any], known: set[str], where: str) -> None:
    """Refuse fields nobody reads (a typo must not pass silently); the message lists the known ones."""
    unknown = sorted(set(item) - known)
    if unknown:
        raise InvalidArgument(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")


def link_from(value: Any, where: str) -> LinkProfile:
    """A link preset name, or a mapping with ``bandwidth_bytes_per_s`` (+ latency, overhead)."""
    if value is None:
        return LINK_PRESETS["ble_24k"]
    if isinstance(value, str):
        if value not in LINK_PRESETS:
            raise NotFound(f"{where}: unknown link preset {value!r}; known: {', '.join(LINK_PRESETS)}")
        return LINK_PRESETS[value]
    if isinstance(value, dict):
        check_fields(value, _LINK_FIELDS, f"{where}.link")
        if "bandwidth_bytes_per_s" not in value:
            raise InvalidArgument(f"{where}.link: needs bandwidth_bytes_per_s")
        bandwidth = float(value["bandwidth_bytes_per_s"])
        if bandwidth <= 0:
            raise InvalidArgument(f"{where}.link: bandwidth_bytes_per_s must be positive")
        return LinkProfile(
            name=str(value.get("name", "custom")),
            bandwidth_bytes_per_s=bandwidth,
            latency_s=float(value.get("latency_s", 0.0)),
            per_message_overhead_bytes=int(value.get("per_message_overhead_bytes", 0)),
        )
    raise InvalidArgument(f"{where}.link: a preset name or a mapping")


def _sensor(value: Any, where: str) -> SensorSpec:
    if not isinstance(value, dict) or "type" not in value or "rate_hz" not in value:
        raise InvalidArgument(f"{where}: a sensor is {{type: <name>, rate_hz: <frames per second>}}")
    rate = float(value["rate_hz"])
    if rate <= 0:
        raise InvalidArgument(f"{where}: rate_hz must be positive")
    return SensorSpec(str(value["type"]), rate, str(value.get("source", "")))


def _output(value: Any, where: str) -> OutputSpec:
    if isinstance(value, str):
        return OutputSpec(value)
    if isinstance(value, dict) and "type" in value:
        return OutputSpec(str(value["type"]))
    raise InvalidArgument(f"{where}: an output is a name or {{type: <name>}}")


def _board_ref(ref: str, base: Path) -> str:
    if ref.strip().lower() in BOARD_PRESETS:
        return ref
    candidate = base / ref
    return str(candidate) if candidate.is_file() else ref


def device_from_entry(item: Mapping[str, Any], base: Path, origin: str, index: int = 0) -> DeviceSpec:
    """One device entry of a space file, or the whole of a ``synergy agent --device-file``.

    ``origin`` names the file in messages; board files are looked up relative to ``base``.
    """
    check_fields(item, _DEVICE_FIELDS, f"{origin}: devices[{index}]")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"{origin}: devices[{index}]: needs a name")
    where = f"{origin}: device {name!r}"
    try:
        board = load_board(_board_ref(str(item.get("board", "")), base))
    except SynergyError as exc:
        raise type(exc)(f"{where}: {exc}") from exc
    return DeviceSpec(
        device_id=name,
        board=board,
        sensors=tuple(_sensor(s, f"{where}.sensors") for s in item.get("sensors") or []),
        outputs=tuple(_output(o, f"{where}.outputs") for o in item.get("outputs") or []),
        link=link_from(item.get("link"), where),
        kind=str(item.get("kind", "")),
        medium=_medium(item.get("medium"), where),
        central=_central(item, where),
        peer_links=_peer_links(item.get("peer_links"), name, where),
    )


def _medium(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(f"{where}.medium: the name of a shared radio medium (e.g. body_ble)")
    return value.strip()


def _central(item: Mapping[str, Any], where: str) -> bool:
    value = item.get("central", False)
    if not isinstance(value, bool):
        raise InvalidArgument(f"{where}.central: true or false")
    if value and not item.get("medium"):
        raise InvalidArgument(f"{where}.central: a central needs a medium (the piconet it is central of)")
    return value


def _peer_links(value: Any, name: str, where: str) -> tuple[PeerLink, ...]:
    """``{peer: link}``: the link to particular peers (preset name or figures), sorted by peer."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise InvalidArgument(f"{where}.peer_links: a mapping of peer device name to link")
    out = []
    for peer, link in sorted(value.items(), key=lambda kv: str(kv[0])):
        if not isinstance(peer, str) or not peer or peer == name:
            raise InvalidArgument(f"{where}.peer_links: {peer!r} is not another device's name")
        out.append(PeerLink(peer, link_from(link, f"{where}.peer_links.{peer}")))
    return tuple(out)


def load_device_file(path: Path) -> DeviceSpec:
    """The device of a YAML file holding one device entry (``synergy agent --device-file``)."""
    if not path.is_file():
        raise NotFound(f"device file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidArgument(f"{path}: expected a mapping describing one device")
    return device_from_entry(data, path.parent, str(path))
