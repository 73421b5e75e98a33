"""How many emulated agents this host carries: a bounded probe that prints figures, no verdict.

    python -m synergy.scale_probe --agents 8,16,24,32 --seconds 20 [--json]

For each agent count N it starts a :class:`~synergy.cluster.LocalCluster` (real processes,
mutual TLS, chip timing and link shaping on) with N agents cycling through the glasses,
watch, ring and earbud presets, submits one app per device (sourced on that device, the
target left to the planner), lets it run, and prints:

- devices registered (online at the coordinator) out of N, and apps running / submit errors;
- planned rate (the plan's predicted rates, summed) and measured rate (frames delivered in the
  measuring window, summed), and their ratio; the lowest per-app ratio;
- CPU per delivered frame, for the coordinator alone and for the whole cluster (coordinator +
  every agent), from ``/proc/<pid>/stat`` over the window;
- agent RSS (``VmRSS`` from ``/proc/<pid>/status``) idle (registered, nothing deployed) and
  loaded (at the end of the window), mean and max; the coordinator's RSS; an idle agent's CPU
  (share of one core, mean over agents, measured over 3 s before any app is submitted);
- lease expiries (``device_lease_expired`` events in the coordinator's log).

Linux only (it reads ``/proc``). It is a measuring tool, not a test: the slow test
``tests/slow/test_host_scale.py`` runs it at 32 agents and checks only that every agent
registered and that the workload delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from synergy.cluster import AgentProcessSpec, LocalCluster
from synergy.errors import SynergyError
from synergy.sdk import AppRequest, SynergyClient
from synergy.types import AppState, DeviceState

__all__ = ["ScaleFigures", "main", "probe", "table_header", "table_row", "workload"]

#: (preset, sensor type, zoo model, output type) of the devices, cycled over the agents.
_DEVICES: tuple[tuple[str, str, str, str], ...] = (
    ("glasses", "camera", "convnet5", "display"),
    ("watch", "imu", "convnet5", "display"),
    ("ring", "imu", "convnet5", "haptics"),
    ("earbud", "microphone", "kws20_v3", "speaker"),
)
#: Bounds of each phase (seconds): every wait of the probe ends.
REGISTER_BOUND_S = 180.0
RUNNING_BOUND_S = 120.0
SUBMIT_CONCURRENCY = 4
#: Seconds over which registered agents with nothing deployed are measured (CPU, RSS).
IDLE_WINDOW_S = 3.0


@dataclass
class ScaleFigures:
    """What one agent count measured (rates in frames/s, CPU in ms, memory in MB)."""

    agents: int
    registered: int = 0
    apps_submitted: int = 0
    apps_running: int = 0
    submit_errors: int = 0
    planned_rate_hz: float = 0.0
    measured_rate_hz: float = 0.0
    rate_ratio: float = 0.0
    min_app_ratio: float = 0.0
    delivered: int = 0
    window_s: float = 0.0
    coordinator_cpu_ms_per_frame: float = 0.0
    cluster_cpu_ms_per_frame: float = 0.0
    cluster_cpu_share: float = 0.0
    agent_idle_cpu_share: float = 0.0
    agent_rss_idle_mb: float = 0.0
    agent_rss_idle_max_mb: float = 0.0
    agent_rss_loaded_mb: float = 0.0
    agent_rss_loaded_max_mb: float = 0.0
    coordinator_rss_mb: float = 0.0
    lease_expiries: int = 0
    errors: list[str] = field(default_factory=list)


def workload(count: int) -> list[tuple[AgentProcessSpec, AppRequest]]:
    """``count`` agents and the app each one sources (device ids ``<preset>-<k>``)."""
    out = []
    for k in range(count):
        preset, sensor, model, output = _DEVICES[k % len(_DEVICES)]
        device_id = f"{preset}-{k:02d}"
        spec = AgentProcessSpec(device_id, ("--preset", preset, "--device-id", device_id))
        out.append((spec, AppRequest(sensor, model, output, name=f"app-{device_id}", source_device=device_id)))
    return out


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _agent_pids(cluster: LocalCluster) -> list[int]:
    return [p.process.pid for p in cluster.agents.values() if p.running]


async def _delivered(client: SynergyClient) -> dict[str, int]:
    return {a.app_id: a.stats.frames_delivered for a in await client.list_apps()}


async def _submit_all(client: SynergyClient, requests: Sequence[AppRequest], figures: ScaleFigures) -> list[str]:
    gate = asyncio.Semaphore(SUBMIT_CONCURRENCY)

    async def one(request: AppRequest) -> str | None:
        async with gate:
            try:
                return (await client.submit_app(request)).app_id
            except SynergyError as exc:
                figures.submit_errors += 1
                if len(figures.errors) < 5:
                    figures.errors.append(f"submit {request.name}: {exc}")
                return None

    ids = await asyncio.gather(*(one(r) for r in requests))
    return [i for i in ids if i is not None]


async def _until_running(client: SynergyClient, ids: Sequence[str], bound_s: float) -> int:
    """Wait (bounded) until every app runs and delivered at least once; the number running."""
    deadline = time.monotonic() + bound_s
    running = 0
    while True:
        apps = {a.app_id: a for a in await client.list_apps()}
        ready = [i for i in ids if i in apps and apps[i].state is AppState.RUNNING]
        running = len(ready)
        delivered = all(apps[i].stats.frames_delivered > 0 for i in ready)
        if (running == len(ids) and delivered) or time.monotonic() > deadline:
            return running
        await asyncio.sleep(0.5)


async def probe(
    count: int,
    *,
    seconds: float,
    warmup_s: float,
    log_dir: Path,
    agent_args: Sequence[str] = (),
    coordinator_args: Sequence[str] = (),
) -> ScaleFigures:
    """Bring up ``count`` agents with one app each and measure (see the module doc)."""
    figures = ScaleFigures(agents=count)
    pairs = workload(count)
    async with LocalCluster(
        [spec for spec, _ in pairs],
        log_dir=log_dir,
        agent_args=agent_args,
        coordinator_args=coordinator_args,
        log_level="info",
    ) as cluster:
        assert cluster.coordinator is not None
        coordinator_pid = cluster.coordinator.process.pid
        try:
            await cluster.wait_for_devices(count, timeout_s=REGISTER_BOUND_S)
        except SynergyError as exc:
            figures.errors.append(str(exc))
        await asyncio.sleep(1.0)  # let start-up settle before the idle reading
        idle_pids = _agent_pids(cluster)
        idle_cpu = sum(_cpu_s(pid) for pid in idle_pids)
        await asyncio.sleep(IDLE_WINDOW_S)
        idle_cpu = sum(_cpu_s(pid) for pid in idle_pids) - idle_cpu
        figures.agent_idle_cpu_share = idle_cpu / IDLE_WINDOW_S / max(1, len(idle_pids))
        idle = [_rss_mb(pid) for pid in idle_pids]
        figures.agent_rss_idle_mb = sum(idle) / max(1, len(idle))
        figures.agent_rss_idle_max_mb = max(idle, default=0.0)
        async with cluster.client() as client:
            devices = await client.list_devices()
            figures.registered = sum(d.state is DeviceState.ONLINE for d in devices)
            ids = await _submit_all(client, [request for _, request in pairs], figures)
            figures.apps_submitted = len(ids)
            figures.apps_running = await _until_running(client, ids, RUNNING_BOUND_S)
            await asyncio.sleep(warmup_s)
            pids = [coordinator_pid, *_agent_pids(cluster)]
            cpu_before = {pid: _cpu_s(pid) for pid in pids}
            before, started = await _delivered(client), time.monotonic()
            await asyncio.sleep(seconds)
            after, window = await _delivered(client), time.monotonic() - started
            cpu_after = {pid: _cpu_s(pid) for pid in pids}
            plan = await client.get_plan()
            devices = await client.list_devices()
        figures.registered = min(figures.registered, sum(d.state is DeviceState.ONLINE for d in devices))
        loaded = [_rss_mb(pid) for pid in _agent_pids(cluster)]
        figures.agent_rss_loaded_mb = sum(loaded) / max(1, len(loaded))
        figures.agent_rss_loaded_max_mb = max(loaded, default=0.0)
        figures.coordinator_rss_mb = _rss_mb(coordinator_pid)
        figures.window_s = window
        ratios = []
        for app_id in ids:
            app_plan = plan.plan_for(app_id)
            delivered = after.get(app_id, 0) - before.get(app_id, 0)
            figures.delivered += delivered
            measured = delivered / window
            figures.measured_rate_hz += measured
            if app_plan is not None and app_plan.predicted_rate_hz > 0:
                figures.planned_rate_hz += app_plan.predicted_rate_hz
                ratios.append(measured / app_plan.predicted_rate_hz)
        figures.rate_ratio = figures.measured_rate_hz / figures.planned_rate_hz if figures.planned_rate_hz else 0.0
        figures.min_app_ratio = min(ratios, default=0.0)
        coordinator_cpu = cpu_after[coordinator_pid] - cpu_before[coordinator_pid]
        cluster_cpu = sum(cpu_after[pid] - cpu_before[pid] for pid in pids)
        frames = max(1, figures.delivered)
        figures.coordinator_cpu_ms_per_frame = 1000.0 * coordinator_cpu / frames
        figures.cluster_cpu_ms_per_frame = 1000.0 * cluster_cpu / frames
        figures.cluster_cpu_share = cluster_cpu / window / (os.cpu_count() or 1)
        coordinator_log = cluster.coordinator.log_path
    figures.lease_expiries = coordinator_log.read_text(errors="replace").count("device_lease_expired")
    return figures


_COLUMNS = (
    ("agents", "agents", "{:>6}"),
    ("registered", "reg", "{:>4}"),
    ("apps_running", "run", "{:>4}"),
    ("submit_errors", "err", "{:>4}"),
    ("planned_rate_hz", "plan/s", "{:>8.1f}"),
    ("measured_rate_hz", "meas/s", "{:>8.1f}"),
    ("rate_ratio", "ratio", "{:>6.2f}"),
    ("min_app_ratio", "min", "{:>5.2f}"),
    ("coordinator_cpu_ms_per_frame", "coordCPU", "{:>8.2f}"),
    ("cluster_cpu_ms_per_frame", "allCPU", "{:>7.2f}"),
    ("cluster_cpu_share", "busy", "{:>5.2f}"),
    ("agent_idle_cpu_share", "idleCPU", "{:>7.3f}"),
    ("agent_rss_idle_mb", "RSSidle", "{:>7.1f}"),
    ("agent_rss_loaded_mb", "RSSload", "{:>7.1f}"),
    ("coordinator_rss_mb", "coordRSS", "{:>8.1f}"),
    ("lease_expiries", "expired", "{:>7}"),
)


def _widths() -> list[int]:
    return [max(len(title), len(fmt.format(0))) for _, title, fmt in _COLUMNS]


def table_header() -> str:
    return " ".join(title.rjust(w) for (_, title, _), w in zip(_COLUMNS, _widths(), strict=True))


def table_row(row: ScaleFigures) -> str:
    """One count's figures under :func:`table_header` (CPU in ms per delivered frame, RSS in MB)."""
    values = asdict(row)
    cells = [fmt.format(values[key]).rjust(w) for (key, _, fmt), w in zip(_COLUMNS, _widths(), strict=True)]
    return "\n".join([" ".join(cells), *(f"  ! {error}" for error in row.errors)])


def _parse_counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or any(c < 1 or c > 64 for c in counts):
        raise argparse.ArgumentTypeError("agent counts: comma-separated numbers from 1 to 64")
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synergy.scale_probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=_parse_counts, default=[8, 16, 24, 32], help="comma-separated counts")
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring window per count")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds between running and measuring")
    parser.add_argument("--json", action="store_true", help="one JSON object per count instead of the table")
    parser.add_argument("--log-dir", type=Path, help="keep the daemons' logs here (default: a temporary directory)")
    parser.add_argument("--planner", help="the coordinator's planning method (default: its default)")
    parser.add_argument(
        "--no-calibration",
        action="store_true",
        help="the coordinator does not re-plan on measured drift (on an overloaded host it re-plans again and again)",
    )
    args = parser.parse_args(argv)
    coordinator_args = [
        *(["--planner", args.planner] if args.planner else []),
        *(["--no-calibration"] if args.no_calibration else []),
    ]
    if not args.json:
        print(table_header(), flush=True)
    with tempfile.TemporaryDirectory(prefix="synergy-scale-") as scratch:
        for count in args.agents:
            log_dir = (args.log_dir or Path(scratch)) / f"agents-{count}"
            row = asyncio.run(
                probe(
                    count,
                    seconds=args.seconds,
                    warmup_s=args.warmup,
                    log_dir=log_dir,
                    coordinator_args=coordinator_args,
                )
            )
            print(json.dumps(asdict(row)) if args.json else table_row(row), flush=True)
    if not args.json:
        print(
            f"cores: {os.cpu_count()}; coordCPU/allCPU: ms per delivered frame; RSS: MB (VmRSS); "
            "busy: share of all cores; idleCPU: share of a core per idle agent"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
