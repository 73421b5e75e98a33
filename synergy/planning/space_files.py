"""Read offline planning inputs: a space file (devices) and an apps file (docs/space-files.md).

Space file::

    devices:
      - name: glasses
        board: max78002            # preset name, or the path of a board file (docs/boards.md)
        sensors: [{type: camera, rate_hz: 30}]
        outputs: [display]         # or [{type: display}]
        link: ble5_2m              # preset name, or {bandwidth_bytes_per_s, latency_s,
                                   #                  per_message_overhead_bytes}
        medium: body_ble           # optional: a shared radio medium (its air time is shared)
        central: true              # optional: the medium's central (others relay through it)
        peer_links: {ring: ble_24k}  # optional: the link to particular peers
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
and the field. One device entry is parsed by :func:`synergy.devices.device_from_entry`, the
same parser ``synergy agent --device-file`` uses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from synergy.devices import check_fields, device_from_entry
from synergy.errors import InvalidArgument, NotFound
from synergy.hardware.boards import BOARD_PRESETS
from synergy.types import LINK_PRESETS, AppSpec, DeviceSpec, LinkProfile

__all__ = ["AppEntry", "Space", "apps_document", "load_apps", "load_space", "space_document"]

_APP_FIELDS = {
    "name", "model", "source", "target", "source_device", "target_device", "max_rate_hz", "min_rate_hz", "weight",
}


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


def load_space(path: str | Path) -> Space:
    """Devices (and optional calibration factors) of a space file."""
    origin = str(path)
    data = _read(path, "space")
    check_fields(data, {"devices", "calibration"}, origin)
    base = Path(path).parent
    devices: list[DeviceSpec] = []
    for k, item in enumerate(_entries(data, "devices", origin)):
        devices.append(device_from_entry(item, base, origin, k))
    names = [d.device_id for d in devices]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidArgument(f"{origin}: duplicate device names {dupes}")
    _check_topology(devices, origin)
    calibration = data.get("calibration") or {}
    if not isinstance(calibration, dict):
        raise InvalidArgument(f"{origin}: calibration must map device names to factors")
    for device, factor in calibration.items():
        if device not in names:
            raise NotFound(f"{origin}: calibration names unknown device {device!r}")
        if not isinstance(factor, int | float) or factor <= 0:
            raise InvalidArgument(f"{origin}: calibration factor of {device!r} must be a positive number")
    return Space(tuple(devices), {str(d): float(f) for d, f in calibration.items()})


def _check_topology(devices: Sequence[DeviceSpec], origin: str) -> None:
    """Pair links name devices of the space; a medium has at most one central."""
    names = {d.device_id for d in devices}
    for d in devices:
        for peer in d.peer_links:
            if peer.peer not in names:
                raise NotFound(f"{origin}: device {d.device_id!r}.peer_links names unknown device {peer.peer!r}")
    centrals: dict[str, list[str]] = {}
    for d in devices:
        if d.central:
            centrals.setdefault(d.medium, []).append(d.device_id)
    for medium, members in centrals.items():
        if len(members) > 1:
            raise InvalidArgument(f"{origin}: medium {medium!r} has {len(members)} centrals {members}; at most one")


def load_apps(path: str | Path) -> tuple[AppEntry, ...]:
    """The apps of an apps file; model references are resolved by the caller."""
    origin = str(path)
    data = _read(path, "apps")
    check_fields(data, {"apps"}, origin)
    base = Path(path).parent
    out: list[AppEntry] = []
    for k, item in enumerate(_entries(data, "apps", origin)):
        where = f"{origin}: apps[{k}]"
        check_fields(item, _APP_FIELDS, where)
        for required in ("name", "model", "source", "target"):
            if not isinstance(item.get(required), str) or not item[required]:
                raise InvalidArgument(f"{where}: needs {required!r}")
        model_ref = str(item["model"])
        if model_ref.endswith(".onnx") and not Path(model_ref).is_absolute():
            model_ref = str(base / model_ref)
        max_rate = float(item.get("max_rate_hz", 0.0))
        if max_rate < 0:
            raise InvalidArgument(f"{where}: max_rate_hz must not be negative")
        min_rate = _finite(item.get("min_rate_hz", 0.0), f"{where}: min_rate_hz")
        weight = _finite(item.get("weight", 1.0), f"{where}: weight")
        if min_rate < 0:
            raise InvalidArgument(f"{where}: min_rate_hz must not be negative")
        if weight <= 0:
            raise InvalidArgument(f"{where}: weight must be positive")
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
            min_rate_hz=min_rate,
            weight=weight,
        )
        out.append(AppEntry(spec, model_ref))
    names = [e.spec.app_id for e in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidArgument(f"{origin}: duplicate app names {dupes}")
    return tuple(out)


def _finite(value: object, where: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{where} must be a number, not {value!r}") from exc
    if not math.isfinite(number):
        raise InvalidArgument(f"{where} must be finite")
    return number


def space_document(devices: Sequence[DeviceSpec]) -> dict[str, Any]:
    """The space file (as a mapping to dump as YAML) that :func:`load_space` reads back as ``devices``.

    Boards and links must be presets (named by their preset name); the benchmark writes
    its generated spaces this way to plan them in a fresh ``synergy plan`` process.
    """
    entries = []
    for d in devices:
        if BOARD_PRESETS.get(d.board.name) != d.board:
            raise InvalidArgument(f"device {d.device_id!r}: board {d.board.name!r} is not a preset")
        if LINK_PRESETS.get(d.link.name) != d.link:
            raise InvalidArgument(f"device {d.device_id!r}: link {d.link.name!r} is not a preset")
        entries.append(
            {
                "name": d.device_id,
                "board": d.board.name,
                "sensors": [{"type": s.type, "rate_hz": s.rate_hz} for s in d.sensors],
                "outputs": [o.type for o in d.outputs],
                "link": d.link.name,
                **({"kind": d.kind} if d.kind else {}),
                **({"medium": d.medium} if d.medium else {}),
                **({"central": True} if d.central else {}),
                **(
                    {"peer_links": {p.peer: _preset_name(p.link, d.device_id) for p in d.peer_links}}
                    if d.peer_links
                    else {}
                ),
            }
        )
    return {"devices": entries}


def _preset_name(link: LinkProfile, device_id: str) -> str:
    if LINK_PRESETS.get(link.name) != link:
        raise InvalidArgument(f"device {device_id!r}: link {link.name!r} is not a preset")
    return link.name


def apps_document(specs: Sequence[AppSpec]) -> dict[str, Any]:
    """The apps file (as a mapping) of ``specs``; each model is referenced by its zoo name."""
    entries = []
    for spec in specs:
        entry: dict[str, Any] = {
            "name": spec.app_id,
            "model": spec.model,
            "source": spec.source_type,
            "target": spec.target_type,
        }
        optional = {
            "source_device": spec.source_device,
            "target_device": spec.target_device,
            "max_rate_hz": spec.max_rate_hz,
            "min_rate_hz": spec.min_rate_hz,
        }
        entry.update({k: v for k, v in optional.items() if v})
        if spec.weight != 1.0:
            entry["weight"] = spec.weight
        entries.append(entry)
    return {"apps": entries}
