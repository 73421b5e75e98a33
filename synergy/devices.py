"""Device descriptions: presets for typical wearables, and parsing of device flags and files.

A device is described by its board (preset name or board file), sensors with rates, outputs
and its link. ``synergy agent --preset glasses`` takes a preset; flags override its parts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from synergy.errors import InvalidArgument, NotFound
from synergy.hardware.boards import load_board
from synergy.types import LINK_PRESETS, DeviceSpec, LinkProfile, OutputSpec, SensorSpec

__all__ = ["DEVICE_PRESETS", "device_from_mapping", "parse_link", "parse_sensor", "preset_device"]

#: Typical wearables of the demo: (board, sensors "type:rate_hz", outputs, link).
DEVICE_PRESETS: Mapping[str, tuple[str, tuple[str, ...], tuple[str, ...], str]] = {
    "earbud": ("max78000", ("microphone:8",), ("speaker",), "ble5_2m"),
    "glasses": ("max78000", ("camera:15",), ("display",), "ble5_2m"),
    "watch": ("max78002", ("imu:50",), ("display", "haptics"), "ble5_2m"),
    "ring": ("max78000", ("imu:50",), ("haptics",), "ble5_2m"),
    "patch": ("max78000", ("ecg:10",), (), "ble_48k"),
}


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


def parse_link(text: str | Mapping[str, Any]) -> LinkProfile:
    """A link preset name, or a mapping with ``bandwidth_bytes_per_s`` (+ latency, overhead)."""
    if isinstance(text, str):
        if text not in LINK_PRESETS:
            raise NotFound(f"unknown link {text!r}; presets: {', '.join(LINK_PRESETS)}")
        return LINK_PRESETS[text]
    try:
        bandwidth = float(text["bandwidth_bytes_per_s"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidArgument("link: needs a preset name or a positive bandwidth_bytes_per_s") from exc
    if bandwidth <= 0:
        raise InvalidArgument("link: bandwidth_bytes_per_s must be positive")
    return LinkProfile(
        str(text.get("name", "custom")),
        bandwidth,
        float(text.get("latency_s", 0.0)),
        int(text.get("per_message_overhead_bytes", 0)),
    )


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


def device_from_mapping(data: Mapping[str, Any], *, base_dir: Path | None = None) -> DeviceSpec:
    """A device from a space-file style mapping: name, board, sensors, outputs, link."""
    name = data.get("name") or data.get("device_id")
    if not name:
        raise InvalidArgument(f"device entry {dict(data)!r}: needs a name")
    board_ref = str(data.get("board", "max78000"))
    if base_dir is not None and not board_ref.lower().startswith("max") and not Path(board_ref).is_absolute():
        board_ref = str(base_dir / board_ref)
    sensors: list[SensorSpec] = []
    for entry in data.get("sensors", ()) or ():
        if isinstance(entry, str):
            sensors.append(parse_sensor(entry))
        else:
            sensors.append(
                parse_sensor(f"{entry['type']}:{entry.get('rate_hz', 10)}:{entry.get('source', '')}".rstrip(":"))
            )
    outputs: Sequence[Any] = data.get("outputs", ()) or ()
    return DeviceSpec(
        device_id=str(name),
        board=load_board(board_ref),
        sensors=tuple(sensors),
        outputs=tuple(OutputSpec(o if isinstance(o, str) else str(o["type"])) for o in outputs),
        link=parse_link(data.get("link", "ble_24k")),
        kind=str(data.get("kind", "")),
    )
