"""Random spaces and app sets for the benchmark: ``synergy bench --random N --seed S``.

The fixed workloads of :mod:`.workloads` are what the planner was tuned on; a sceptical
reader wants fresh problems too. :func:`random_workloads` draws them from one seeded
generator (the same seed, the same spaces, on any machine):

* 2-10 devices at places on the body (glasses, watch, earbuds, ring...), each a MAX78000 or
  a MAX78002 (about one in three), all on one kind of link or each on its own (BLE at
  several connection intervals, BLE 5 2M, UART, USB);
* sensors at their real rates, or "replay" sources (a stored data set pushed as fast as
  the plan takes it), per space;
* 1-8 apps, each on any of the ten zoo models, including the depthwise-free variants;
* in about one space in four, the BLE devices share one piconet's air time, half of those
  through a central device (:mod:`.links`).

Every app can be placed somewhere: a sensor or an output an app needs and no device has is
given to a random device, and a model with depthwise convolutions gets a MAX78002 in the
space (otherwise the only "plan" would be to leave it out, which tells nothing about the
search). :func:`sized_workload` draws a space of a given size for the planning-time
benchmark.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping

from synergy.hardware.boards import MAX78000, MAX78002, BoardProfile
from synergy.hardware.model import HardwareModel
from synergy.models.zoo import ZOO_NAMES
from synergy.planning.api import PlanningApp
from synergy.planning.workloads import (
    APP_KINDS,
    BODY,
    CAMERA_RATE_HZ,
    IMU_WINDOW_RATE_HZ,
    MIC_WINDOW_RATE_HZ,
    NEEDS_MAX78002,
    REPLAY_RATE_HZ,
    Workload,
)
from synergy.types import LINK_PRESETS, AppSpec, DeviceSpec, OutputSpec, SensorSpec

__all__ = [
    "MAX_APPS",
    "MAX_DEVICES",
    "MIN_DEVICES",
    "RANDOM_LINKS",
    "RANDOM_MODELS",
    "random_workloads",
    "sized_workload",
]

MIN_DEVICES = 2
MAX_DEVICES = 10
MAX_APPS = 8
#: Every zoo model (the depthwise-free variants split over MAX78000s like the paper's).
RANDOM_MODELS: tuple[str, ...] = tuple(ZOO_NAMES)
#: Links a random device may have (BLE at several connection intervals, UART, USB).
RANDOM_LINKS = ("ble_24k", "ble_48k", "ble5_2m", "uart_921600", "usb_hs")
#: Share of MAX78002 boards (the larger, rarer chip).
MAX78002_SHARE = 1 / 3
#: Share of spaces whose devices all have the same link (a body on one kind of radio).
UNIFORM_LINK_SHARE = 0.5
#: Share of spaces whose BLE devices share one medium's air time (one piconet).
SHARED_MEDIUM_SHARE = 0.25
#: The name of that medium.
BODY_MEDIUM = "body_ble"

_APP_KINDS: Mapping[str, tuple[str, str]] = {
    **APP_KINDS,
    "efficientnetv2_nodw": ("camera", "display"),
    "mobilenetv2_075_nodw": ("camera", "display"),
}
_SENSOR_RATES = {"camera": CAMERA_RATE_HZ, "mic": MIC_WINDOW_RATE_HZ, "imu": IMU_WINDOW_RATE_HZ}


def _space(n: int, n_apps: int, models: Mapping[str, HardwareModel], rng: random.Random, name: str) -> Workload:
    replay = rng.random() < 0.5
    uniform = rng.random() < UNIFORM_LINK_SHARE
    link = rng.choice(RANDOM_LINKS)
    places = list(BODY)
    rng.shuffle(places)
    boards: list[BoardProfile] = [MAX78002 if rng.random() < MAX78002_SHARE else MAX78000 for _ in range(n)]
    sensors: list[set[str]] = []
    outputs: list[set[str]] = []
    for k in range(n):
        _, s, o = places[k % len(places)]
        sensors.append(set(s))
        outputs.append(set(o))
    names = [rng.choice(RANDOM_MODELS) for _ in range(n_apps)]
    for model in names:
        sensor, output = _APP_KINDS[model]
        if not any(sensor in s for s in sensors):
            sensors[rng.randrange(n)].add(sensor)
        if not any(output in o for o in outputs):
            outputs[rng.randrange(n)].add(output)
        if model in NEEDS_MAX78002 and MAX78002 not in boards:
            boards[rng.randrange(n)] = MAX78002
    devices = []
    for k in range(n):
        place = places[k % len(places)][0]
        device_id = place if k < len(places) else f"{place}_{k // len(places) + 1}"
        devices.append(
            DeviceSpec(
                device_id=device_id,
                board=boards[k],
                sensors=tuple(
                    SensorSpec(s, REPLAY_RATE_HZ if replay else _SENSOR_RATES[s]) for s in sorted(sensors[k])
                ),
                outputs=tuple(OutputSpec(o) for o in sorted(outputs[k])),
                link=LINK_PRESETS[link if uniform else rng.choice(RANDOM_LINKS)],
                kind=place,
            )
        )
    apps = []
    for k, model in enumerate(names):
        sensor, output = _APP_KINDS[model]
        spec = AppSpec(f"{model}-{k}", f"{model}-{k}", model, sensor, output)
        apps.append(PlanningApp(spec, models[model]))
    return Workload(name, tuple(devices), tuple(apps))


def random_workloads(
    count: int, seed: int, models: Mapping[str, HardwareModel], *, shared_media: bool = True
) -> list[Workload]:
    """``count`` random spaces with their apps (see the module docstring), named r<seed>-<k>.

    With ``shared_media`` about one space in four puts its BLE devices on one shared medium
    (:func:`_share_medium`), drawn from a generator of its own so that the spaces are
    otherwise the same with or without it.
    """
    rng = random.Random(seed)
    out = []
    for k in range(count):
        n = rng.randint(MIN_DEVICES, MAX_DEVICES)
        n_apps = rng.randint(1, MAX_APPS)
        workload = _space(n, n_apps, models, rng, f"r{seed}-{k:02d}-{n}dev-{n_apps}apps")
        if shared_media:
            workload = _share_medium(workload, random.Random(f"{seed}:{k}:medium"))
        out.append(workload)
    return out


def _share_medium(workload: Workload, rng: random.Random) -> Workload:
    """Sometimes: the space's BLE devices on one piconet, half the time with a central."""
    ble = [d for d in workload.devices if d.link.name.startswith("ble")]
    if rng.random() >= SHARED_MEDIUM_SHARE or len(ble) < 2:
        return workload
    central = rng.choice(ble).device_id if rng.random() < 0.5 else ""
    devices = tuple(
        dataclasses.replace(d, medium=BODY_MEDIUM, central=d.device_id == central) if d in ble else d
        for d in workload.devices
    )
    suffix = "-piconet" + ("-central" if central else "")
    return dataclasses.replace(workload, name=workload.name + suffix, devices=devices)


def sized_workload(devices: int, apps: int, seed: int, models: Mapping[str, HardwareModel]) -> Workload:
    """One random space of exactly ``devices`` devices and ``apps`` apps."""
    rng = random.Random(f"{seed}:{devices}x{apps}")
    return _space(devices, apps, models, rng, f"s{seed}-{devices}dev-{apps}apps")

