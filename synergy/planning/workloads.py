"""The planner benchmark's workloads: bodies of wearables and the apps running on them.

Deterministic (seeded) so every run of ``synergy bench`` plans the same problems. A
workload is a set of devices (2-8, and one of 32 for scale) with boards, sensors, outputs
and links, and 1-6 apps (16 at scale) drawn from the eight zoo models of HARDWARE.md §5.

Sensor rates are those of the real sensors (camera 30 fps, microphone windows 20 Hz, IMU
windows 100 Hz); "replay" sources stream a stored data set as fast as the plan accepts it
(capped at :data:`REPLAY_RATE_HZ`) and measure raw inference throughput as the paper does.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from synergy.hardware.boards import MAX78000, MAX78002, BoardProfile
from synergy.hardware.model import HardwareModel
from synergy.planning.api import PlanningApp
from synergy.types import LINK_PRESETS, AppSpec, DeviceSpec, OutputSpec, SensorSpec

__all__ = [
    "APP_KINDS",
    "BODY",
    "MODEL_NAMES",
    "REPLAY_RATE_HZ",
    "Workload",
    "make_workloads",
    "size_label",
]

#: The eight models of HARDWARE.md §5 (zoo names).
MODEL_NAMES = (
    "convnet5",
    "kws20_v3",
    "simplenet",
    "ressimplenet",
    "widenet",
    "unet",
    "efficientnetv2",
    "mobilenetv2_075",
)
#: Models with depthwise convolutions: only a MAX78002 runs them.
NEEDS_MAX78002 = frozenset({"efficientnetv2", "mobilenetv2_075"})

CAMERA_RATE_HZ = 30.0
MIC_WINDOW_RATE_HZ = 20.0
IMU_WINDOW_RATE_HZ = 100.0
#: A stored data set replayed as fast as the plan takes it (bounded so rates stay finite).
REPLAY_RATE_HZ = 1000.0

#: Which sensor feeds and which output receives each model's app.
APP_KINDS: Mapping[str, tuple[str, str]] = {
    "convnet5": ("imu", "haptics"),
    "kws20_v3": ("mic", "speaker"),
    "simplenet": ("camera", "display"),
    "ressimplenet": ("camera", "display"),
    "widenet": ("camera", "display"),
    "unet": ("camera", "display"),
    "efficientnetv2": ("camera", "display"),
    "mobilenetv2_075": ("camera", "display"),
}

_SENSOR_RATES = {"camera": CAMERA_RATE_HZ, "mic": MIC_WINDOW_RATE_HZ, "imu": IMU_WINDOW_RATE_HZ}

#: Places on the body in the order a workload of n devices takes them, with what each has.
BODY: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("glasses", ("camera",), ("display",)),
    ("watch", ("imu",), ("display", "haptics")),
    ("earbud", ("mic",), ("speaker",)),
    ("ring", ("imu",), ("haptics",)),
    ("pendant", ("camera", "mic"), ()),
    ("patch", (), ()),
    ("earbud2", ("mic",), ("speaker",)),
    ("shoe", ("imu",), ()),
)


@dataclass(frozen=True)
class Workload:
    name: str
    devices: tuple[DeviceSpec, ...]
    apps: tuple[PlanningApp, ...]
    #: Part of the ``--quick`` subset.
    quick: bool = False

    @property
    def size(self) -> str:
        return size_label(len(self.devices), len(self.apps))


def size_label(devices: int, apps: int) -> str:
    """Size buckets for the planning-time report."""
    if devices <= 4 and apps <= 3:
        return "small (<=4 dev, <=3 apps)"
    if devices <= 8 and apps <= 6:
        return "medium (<=8 dev, <=6 apps)"
    return "large (up to 32 dev, 16 apps)"


def _devices(
    n: int,
    boards: Sequence[BoardProfile],
    links: Sequence[str],
    replay: bool,
    rng: random.Random,
) -> tuple[DeviceSpec, ...]:
    out = []
    for k in range(n):
        place, sensors, outputs = BODY[k % len(BODY)]
        name = place if k < len(BODY) else f"{place}_{k // len(BODY) + 1}"
        rates = {s: (REPLAY_RATE_HZ if replay else _SENSOR_RATES[s]) for s in sensors}
        out.append(
            DeviceSpec(
                device_id=name,
                board=boards[k % len(boards)],
                sensors=tuple(SensorSpec(s, rates[s]) for s in sensors),
                outputs=tuple(OutputSpec(o) for o in outputs),
                link=LINK_PRESETS[links[k % len(links)]],
                kind=place,
            )
        )
    rng.shuffle(out)  # arrival order of devices varies too
    return tuple(out)


def _apps(names: Sequence[str], models: Mapping[str, HardwareModel]) -> tuple[PlanningApp, ...]:
    apps = []
    for k, name in enumerate(names):
        sensor, output = APP_KINDS[name]
        spec = AppSpec(f"{name}-{k}", f"{name}-{k}", name, sensor, output)
        apps.append(PlanningApp(spec, models[name]))
    return tuple(apps)


def make_workloads(models: Mapping[str, HardwareModel], *, seed: int = 7) -> list[Workload]:
    """The benchmark's workloads (see the module docstring); quick ones are flagged."""
    rng = random.Random(seed)
    small_models = [m for m in MODEL_NAMES if m not in NEEDS_MAX78002]
    out: list[Workload] = []

    def add(
        name: str,
        n: int,
        boards: Sequence[BoardProfile],
        links: Sequence[str],
        apps: Sequence[str] | Callable[[], Sequence[str]],
        *,
        replay: bool = False,
        quick: bool = False,
    ) -> None:
        names = apps() if callable(apps) else apps
        devices = _devices(n, boards, links, replay, rng)
        out.append(Workload(name, devices, _apps(names, models), quick))

    def draw(k: int, pool: Sequence[str]) -> Callable[[], Sequence[str]]:
        return lambda: [rng.choice(pool) for _ in range(k)]

    m0, m2 = [MAX78000], [MAX78002, MAX78000]
    # Small spaces (the exact method proves optimality here).
    add("w01-2dev-cam", 2, m0, ["ble5_2m"], ["simplenet"], quick=True)
    add("w02-2dev-replay", 2, m0, ["ble5_2m"], ["widenet", "convnet5"], replay=True, quick=True)
    add("w03-3dev-ble24", 3, m0, ["ble_24k"], ["simplenet", "kws20_v3"], quick=True)
    add("w04-3dev-mixed", 3, m2, ["ble5_2m"], ["efficientnetv2", "ressimplenet"], replay=True, quick=True)
    add("w05-4dev-usb", 4, m0, ["usb_hs"], ["widenet", "ressimplenet", "simplenet"], replay=True, quick=True)
    add("w06-4dev-ble48", 4, m0, ["ble_48k"], ["unet", "kws20_v3", "convnet5"])
    add("w07-4dev-mixed-replay", 4, m2, ["ble5_2m", "usb_hs"], ["mobilenetv2_075", "simplenet", "widenet"],
        replay=True, quick=True)
    add("w08-4dev-uart", 4, m0, ["uart_921600"], ["ressimplenet", "widenet", "kws20_v3"], replay=True)
    # Medium spaces.
    add("w09-5dev-ble5", 5, m0, ["ble5_2m"], draw(4, small_models), replay=True)
    add("w10-5dev-mixed", 5, m2, ["ble5_2m"], ["efficientnetv2", "simplenet", "kws20_v3", "widenet"])
    add("w11-6dev-usb", 6, m0, ["usb_hs"], draw(5, small_models), replay=True, quick=True)
    add("w12-6dev-mixed-links", 6, m0, ["ble_24k", "ble5_2m", "usb_hs"], draw(4, small_models), replay=True)
    add("w13-6dev-mixed", 6, m2, ["ble5_2m"], draw(5, list(MODEL_NAMES)), replay=True)
    add("w14-6dev-cam", 6, m0, ["ble_48k"], ["simplenet", "widenet", "ressimplenet", "unet", "kws20_v3"])
    add("w15-7dev-usb-mixed", 7, m2, ["usb_hs"], draw(6, list(MODEL_NAMES)), replay=True)
    add("w16-7dev-ble24", 7, m0, ["ble_24k"], draw(6, small_models))
    add("w17-8dev-usb", 8, m0, ["usb_hs"], draw(6, small_models), replay=True, quick=True)
    add("w18-8dev-mixed", 8, m2, ["ble5_2m"], draw(6, list(MODEL_NAMES)), replay=True)
    add("w19-8dev-uart", 8, m0, ["uart_921600"], draw(6, small_models), replay=True)
    add("w20-8dev-mixed-links", 8, m2, ["usb_hs", "ble5_2m"], draw(6, list(MODEL_NAMES)), replay=True)
    add("w21-8dev-real-rates", 8, m2, ["ble5_2m"], draw(6, list(MODEL_NAMES)))
    add("w22-8dev-three-002", 8, [MAX78002, MAX78000, MAX78000], ["usb_hs"],
        ["mobilenetv2_075", "efficientnetv2", "widenet", "widenet", "ressimplenet", "unet"], replay=True)
    # Scale.
    add("w23-32dev-16apps", 32, [MAX78002, MAX78000, MAX78000, MAX78000], ["usb_hs", "ble5_2m"],
        draw(16, list(MODEL_NAMES)), replay=True)
    return out
