"""How faithful the emulation is: the planner's predictions against what an emulated cluster does.

``synergy fidelity`` runs each workload of :data:`WORKLOADS` on a local cluster of emulated
devices (separate processes on 127.0.0.1, chip timing and link shaping on, TLS on), waits until
the deployed plan has settled, then measures every app over a window: frames per second
delivered and mean capture-to-delivery latency, against the plan's predicted rate and latency.

A ratio is only worth printing if the host kept up: the emulation sleeps for the modelled chip
and radio times, and a host that is short of CPU stretches them. The busy share of the host's
CPUs over the window (from ``/proc/stat``) is measured beside the figures, and a workload
measured on a saturated host (:data:`SATURATED_CPU_SHARE`) is flagged as such instead of being
counted as a miss.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from synergy.cluster import AgentProcessSpec, LocalCluster
from synergy.reports import Result
from synergy.sdk import AppRequest, SynergyClient
from synergy.types import ExecutionPlan, JointPlan

__all__ = [
    "app_fidelity",
    "cpu_times",
    "settled_plan",
    "AppFidelity",
    "FidelityOptions",
    "SATURATED_CPU_SHARE",
    "WORKLOADS",
    "Workload",
    "WorkloadFidelity",
    "format_report",
    "run_fidelity",
]

#: Busy share of all CPUs over the window above which the host counts as saturated.
SATURATED_CPU_SHARE = 0.9
#: Rate and latency bounds the issue sets (measured / predicted).
RATE_TOLERANCE = 0.10
LATENCY_TOLERANCE = 0.25


@dataclass(frozen=True)
class Workload:
    name: str
    devices: tuple[AgentProcessSpec, ...]
    apps: tuple[AppRequest, ...]
    planner: str = "synergy"


_WEARABLES = tuple(AgentProcessSpec(name, ("--preset", name)) for name in ("earbud", "glasses", "watch", "ring"))
_THREE_APPS = (
    AppRequest("microphone", "kws20_v3", "haptics", name="kws"),
    AppRequest("camera", "convnet5", "display", name="digits"),
    AppRequest("camera", "simplenet", "display", name="objects"),
)

WORKLOADS = (
    Workload(
        "kws-split",
        (AgentProcessSpec("earbud", ("--preset", "earbud")), AgentProcessSpec("ring", ("--preset", "ring"))),
        (AppRequest("microphone", "kws20_v3", "haptics", name="kws", target_device="ring"),),
        planner="spread",
    ),
    Workload("three-apps", _WEARABLES, _THREE_APPS),
    Workload("three-apps-spread", _WEARABLES, _THREE_APPS, planner="spread"),
)


@dataclass(frozen=True)
class FidelityOptions:
    #: Only the first workload, shorter windows.
    quick: bool = False
    workloads: tuple[str, ...] = ()
    settle_s: float = 8.0
    window_s: float = 15.0
    log_dir: Path = Path("fidelity-logs")

    def windows(self) -> tuple[float, float]:
        return (4.0, 6.0) if self.quick else (self.settle_s, self.window_s)


@dataclass(frozen=True)
class AppFidelity:
    app: str
    model: str
    where: str
    predicted_rate_hz: float
    measured_rate_hz: float
    predicted_latency_ms: float
    measured_latency_ms: float
    measured_latency_p90_ms: float
    delivered: int
    dropped: int

    @property
    def rate_ratio(self) -> float:
        return self.measured_rate_hz / self.predicted_rate_hz if self.predicted_rate_hz > 0 else 0.0

    @property
    def latency_ratio(self) -> float:
        return self.measured_latency_ms / self.predicted_latency_ms if self.predicted_latency_ms > 0 else 0.0

    @property
    def within(self) -> bool:
        return abs(self.rate_ratio - 1) <= RATE_TOLERANCE and abs(self.latency_ratio - 1) <= LATENCY_TOLERANCE


@dataclass(frozen=True)
class WorkloadFidelity:
    workload: str
    epoch: int
    host_cpu_share: float
    apps: tuple[AppFidelity, ...] = field(default_factory=tuple)
    #: Set when the figures cannot be trusted (e.g. the plan kept changing, or no result).
    problem: str = ""

    @property
    def host_saturated(self) -> bool:
        return self.host_cpu_share >= SATURATED_CPU_SHARE


def app_fidelity(
    app: str,
    model: str,
    plan: ExecutionPlan | None,
    delivered: Sequence[Result],
    dropped: int,
    window_s: float,
) -> AppFidelity:
    """One app's planned against measured figures over a window of ``window_s`` seconds."""
    latencies = sorted(1000 * r.latency_s for r in delivered)
    where = (
        f"{plan.source_device} => "
        f"{' -> '.join(f'{s.device_id}[{s.first_layer}-{s.last_layer}]' for s in plan.stages)} => {plan.target_device}"
        if plan is not None
        else "unplaced"
    )
    return AppFidelity(
        app=app,
        model=model,
        where=where,
        predicted_rate_hz=plan.predicted_rate_hz if plan is not None else 0.0,
        measured_rate_hz=len(delivered) / window_s,
        predicted_latency_ms=1000 * plan.predicted_latency_s if plan is not None else 0.0,
        measured_latency_ms=statistics.fmean(latencies) if latencies else 0.0,
        measured_latency_p90_ms=latencies[int(0.9 * (len(latencies) - 1))] if latencies else 0.0,
        delivered=len(delivered),
        dropped=dropped,
    )


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot."""
    fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


async def settled_plan(client: SynergyClient, apps: int, settle_s: float, timeout_s: float) -> JointPlan:
    """The plan once every app is placed and the epoch stayed the same for ``settle_s``."""
    deadline = time.monotonic() + timeout_s
    plan = await client.get_plan()
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = await client.get_plan()
        if now.epoch != plan.epoch or len(now.plans) != len(plan.plans):
            plan, stable_since = now, time.monotonic()
        elif len(plan.plans) == apps and time.monotonic() - stable_since >= settle_s:
            return now
    return plan


async def measure(workload: Workload, options: FidelityOptions, log: Path) -> WorkloadFidelity:
    settle_s, window_s = options.windows()
    args = ["--planner", workload.planner]
    async with LocalCluster(workload.devices, log_dir=log, coordinator_args=args, log_level="warning") as cluster:
        await cluster.wait_for_devices(len(workload.devices))
        async with cluster.client() as client:
            ids = {}
            for request in workload.apps:
                info = await client.submit_app(request)
                ids[info.app_id] = request
            plan = await settled_plan(client, len(ids), settle_s, timeout_s=settle_s * 6)
            results: list[Result] = []

            async def watch() -> None:
                async for result in client.watch_results(list(ids)):
                    results.append(result)

            watcher = asyncio.create_task(watch())
            busy0, total0 = cpu_times()
            started = time.monotonic()
            await asyncio.sleep(window_s)
            elapsed = time.monotonic() - started
            busy1, total1 = cpu_times()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            after = await client.get_plan()
    share = (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0
    problem = ""
    if after.epoch != plan.epoch:
        problem = f"the plan changed during the window (epoch {plan.epoch} -> {after.epoch})"
    rows = []
    for app_id, request in ids.items():
        mine = [r for r in results if r.app_id == app_id]
        delivered = [r for r in mine if not r.dropped]
        rows.append(
            app_fidelity(
                request.name or app_id, request.model, plan.plan_for(app_id), delivered, len(mine) - len(delivered),
                elapsed,
            )
        )
    return WorkloadFidelity(workload.name, plan.epoch, share, tuple(rows), problem)


def _print_progress(text: str) -> None:
    print(text, file=sys.stderr)


async def run_fidelity(
    options: FidelityOptions, progress: Callable[[str], None] = _print_progress
) -> list[WorkloadFidelity]:
    """Measure each chosen workload; ``progress`` gets one ``[k/N] workload: ...`` line per workload
    (the project's progress convention: :meth:`synergy.progress.Progress.report` reads it)."""
    chosen = [w for w in WORKLOADS if not options.workloads or w.name in options.workloads]
    if options.quick:
        chosen = chosen[:1]
    out = []
    for index, workload in enumerate(chosen, 1):
        progress(f"[{index}/{len(chosen)}] {workload.name}: starting {len(workload.devices)} devices ...")
        out.append(await measure(workload, options, options.log_dir / workload.name))
    return out


def format_report(figures: Sequence[WorkloadFidelity]) -> str:
    lines = []
    for w in figures:
        saturated = " HOST SATURATED: ratios not trustworthy" if w.host_saturated else ""
        lines.append(f"\n{w.workload} (epoch {w.epoch}, host CPU busy {100 * w.host_cpu_share:.0f}%){saturated}")
        if w.problem:
            lines.append(f"  note: {w.problem}")
        lines.append(
            f"  {'app':10s} {'model':10s} {'rate pred':>9s} {'meas':>7s} {'ratio':>6s}  "
            f"{'lat pred':>9s} {'meas':>8s} {'p90':>8s} {'ratio':>6s}  {'ok':3s} where"
        )
        for a in w.apps:
            lines.append(
                f"  {a.app:10s} {a.model:10s} {a.predicted_rate_hz:8.2f}/s {a.measured_rate_hz:6.2f}/s "
                f"{a.rate_ratio:6.2f}  {a.predicted_latency_ms:7.1f}ms {a.measured_latency_ms:6.1f}ms "
                f"{a.measured_latency_p90_ms:6.1f}ms {a.latency_ratio:6.2f}  {'yes' if a.within else 'NO':3s} {a.where}"
            )
    lines.append(
        f"\nok: measured/predicted rate within {RATE_TOLERANCE:.0%} and latency within {LATENCY_TOLERANCE:.0%}"
    )
    return "\n".join(lines)


def report_json(figures: Sequence[WorkloadFidelity]) -> list[dict[str, object]]:
    out = []
    for w in figures:
        entry: dict[str, object] = {
            "workload": w.workload,
            "epoch": w.epoch,
            "host_cpu_share": round(w.host_cpu_share, 3),
            "host_saturated": w.host_saturated,
            "problem": w.problem,
            "apps": [
                {**asdict(a), "rate_ratio": round(a.rate_ratio, 3), "latency_ratio": round(a.latency_ratio, 3),
                 "within": a.within}
                for a in w.apps
            ],
        }  # fmt: skip
        out.append(entry)
    return out
