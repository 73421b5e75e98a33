"""Read offline planning inputs: a space file (devices) and an apps file (docs/space-files.md).

Space file::

    devices:
      - name: glasses
        board: max78002            # preset name, or the path of a board file (docs/boards.md)
        sensors: [{type: camera, rate_hz: 30}]
        outputs: [display]         # or [{type: display}]
        link: ble5_2m              # preset name, or {bandwidth_bytes_per_s, latency_s,
                                   #                  per_message_overhead_bytes}
    calibration: {glasses: 1.1}    # optional: device -> factor on accelerator / CPU time

Apps file::

    apps:
      - name: face
        model: simplenet           # zoo name, or the path of an ONNX file
        source: camera
        target: display
        source_device: glasses     # optional pins
        target_device: watch
        max_rate_hz: 10            # optional

Relative paths are resolved against the file's directory. Errors name the file, the entry
and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from synergy.errors import InvalidArgument, NotFound, SynergyError
from synergy.hardware.boards import BOARD_PRESETS, load_board
from synergy.types import LINK_PRESETS, AppSpec, DeviceSpec, LinkProfile, OutputSpec, SensorSpec

__all__ = ["AppEntry", "Space", "device_from_entry", "link_from", "load_apps", "load_space"]

_DEVICE_FIELDS = {"name", "board", "sensors", "outputs", "link", "kind"}
_APP_FIELDS = {"name", "model", "source", "target", "source_device", "target_device", "max_rate_hz"}
_LINK_FIELDS = {"bandwidth_bytes_per_s", "latency_s", "per_message_overhead_bytes", "name"}


@dataclass(frozen=True)
class Space:
    devices: tuple[DeviceSpec, ...]
    calibration: Mapping[str, float]


@dataclass(frozen=True)
class AppEntry:
    """An app of the apps file: its spec and the model reference (zoo name or file path)."""

    spec: AppSpec
    model_ref: str


def _read(path: str | Path, what: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"{what} file {str(p)!r} does not exist")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"{p}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidArgument(f"{p}: a {what} file must be a mapping (see docs/space-files.md)")
    return data


def _entries(data: Mapping[str, Any], key: str, origin: str) -> list[dict[str, Any]]:
    items = data.get(key)
    if not isinstance(items, list) or not items:
        raise InvalidArgument(f"{origin}: needs a non-empty list {key!r}")
    for k, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidArgument(f"{origin}: {key}[{k}] must be a mapping")
    return items


def _check_fields(item: Mapping[str, Any], known: set[str], where: str) -> None:
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
        _check_fields(value, _LINK_FIELDS, f"{where}.link")
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
    """One device of a space file (also what ``synergy agent --device-file`` reads).

    ``origin`` names the file in messages; board files are looked up relative to ``base``.
    """
    _check_fields(item, _DEVICE_FIELDS, f"{origin}: devices[{index}]")
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
    )


def load_space(path: str | Path) -> Space:
    """Devices (and optional calibration factors) of a space file."""
    origin = str(path)
    data = _read(path, "space")
    _check_fields(data, {"devices", "calibration"}, origin)
    base = Path(path).parent
    devices: list[DeviceSpec] = []
    for k, item in enumerate(_entries(data, "devices", origin)):
        devices.append(device_from_entry(item, base, origin, k))
    names = [d.device_id for d in devices]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidArgument(f"{origin}: duplicate device names {dupes}")
    calibration = data.get("calibration") or {}
    if not isinstance(calibration, dict):
        raise InvalidArgument(f"{origin}: calibration must map device names to factors")
    for device, factor in calibration.items():
        if device not in names:
            raise NotFound(f"{origin}: calibration names unknown device {device!r}")
        if not isinstance(factor, int | float) or factor <= 0:
            raise InvalidArgument(f"{origin}: calibration factor of {device!r} must be a positive number")
    return Space(tuple(devices), {str(d): float(f) for d, f in calibration.items()})


def load_apps(path: str | Path) -> tuple[AppEntry, ...]:
    """The apps of an apps file; model references are resolved by the caller."""
    origin = str(path)
    data = _read(path, "apps")
    _check_fields(data, {"apps"}, origin)
    base = Path(path).parent
    out: list[AppEntry] = []
    for k, item in enumerate(_entries(data, "apps", origin)):
        where = f"{origin}: apps[{k}]"
        _check_fields(item, _APP_FIELDS, where)
        for required in ("name", "model", "source", "target"):
            if not isinstance(item.get(required), str) or not item[required]:
                raise InvalidArgument(f"{where}: needs {required!r}")
        model_ref = str(item["model"])
        if model_ref.endswith(".onnx") and not Path(model_ref).is_absolute():
            model_ref = str(base / model_ref)
        max_rate = float(item.get("max_rate_hz", 0.0))
        if max_rate < 0:
            raise InvalidArgument(f"{where}: max_rate_hz must not be negative")
        name = str(item["name"])
        spec = AppSpec(
            app_id=name,
            name=name,
            model=str(item["model"]),
            source_type=str(item["source"]),
            target_type=str(item["target"]),
            source_device=str(item.get("source_device", "")),
            target_device=str(item.get("target_device", "")),
            max_rate_hz=max_rate,
        )
        out.append(AppEntry(spec, model_ref))
    names = [e.spec.app_id for e in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidArgument(f"{origin}: duplicate app names {dupes}")
    return tuple(out)
