"""``synergy demo``: a whole body of wearables on this machine, three apps, a live view.

Starts a coordinator and four emulated devices as separate processes on 127.0.0.1 (no
broker, no Docker), submits three zoo apps as *sensor type + model + output type*, and shows
the view of ``synergy top`` (:mod:`synergy.status_view`: devices, where each app's partitions
run, measured frames per second and latency, bottlenecks) until ``--duration`` seconds pass or
Ctrl-C: redrawn in place on a terminal, printed as one snapshot per refresh elsewhere (CI logs,
tests). Every process is stopped before it returns.

Every link is mutual TLS, with certificates from a throwaway CA in a temporary directory
(removed at the end); ``--insecure`` runs it in plain text instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from synergy.cluster import AgentProcessSpec, LocalCluster
from synergy.defaults import DEFAULT_PLANNER
from synergy.sdk import AppRequest, SynergyClient
from synergy.status_view import StatusSnapshot, render_status, snapshot
from synergy.terminal import Screen

__all__ = ["DEMO_APPS", "DEMO_DEVICES", "DemoOptions", "run_demo"]

DEMO_DEVICES = (
    AgentProcessSpec("earbud", ("--preset", "earbud")),
    AgentProcessSpec("glasses", ("--preset", "glasses")),
    AgentProcessSpec("watch", ("--preset", "watch")),
    AgentProcessSpec("ring", ("--preset", "ring")),
)

DEMO_APPS = (
    AppRequest("microphone", "kws20_v3", "haptics", name="keyword-spotting"),
    AppRequest("camera", "convnet5", "display", name="digit-reader"),
    AppRequest("camera", "simplenet", "display", name="object-classifier"),
)


@dataclass(frozen=True)
class DemoOptions:
    duration_s: float = 20.0
    refresh_s: float = 2.0
    planner: str = DEFAULT_PLANNER
    log_dir: Path = Path("demo-logs")
    mqtt_url: str = ""
    #: Mutual TLS on every link, with a throwaway CA (False: plain text, --insecure).
    tls: bool = True


async def run_demo(options: DemoOptions) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    coordinator_args = ["--planner", options.planner, "--lease-ttl", "3"]
    agent_args: list[str] = []
    if options.mqtt_url:
        coordinator_args += ["--mqtt", options.mqtt_url]
        agent_args += ["--mqtt", options.mqtt_url]
    security = "mutual TLS, throwaway CA" if options.tls else "plain text (--insecure)"
    say(
        f"starting a coordinator and {len(DEMO_DEVICES)} emulated devices, {security} "
        f"(logs in {options.log_dir}/) ..."
    )
    started = time.monotonic()
    async with LocalCluster(
        DEMO_DEVICES,
        log_dir=options.log_dir,
        coordinator_args=coordinator_args,
        agent_args=agent_args,
        tls=options.tls,
    ) as cluster:
        await cluster.wait_for_devices(len(DEMO_DEVICES))
        say(f"coordinator at {cluster.address}; devices online after {time.monotonic() - started:.1f}s")
        async with cluster.client() as client:
            for request in DEMO_APPS:
                app = await client.submit_app(request)
                flow = f"{request.source_type} -> {request.model} -> {request.target_type}"
                say(f"submitted {request.name}: {flow} ({app.app_id})")
            await _show_live(client, options, stop)
            await _summary(client, cluster)
    say("all processes stopped")
    return 0


async def _show_live(client: SynergyClient, options: DemoOptions, stop: asyncio.Event) -> None:
    """The live view of :mod:`synergy.status_view` every ``refresh_s``: redrawn in place on a
    terminal (the last frame stays above the summary), one snapshot per refresh elsewhere."""
    deadline = time.monotonic() + options.duration_s
    previous: StatusSnapshot | None = None
    with Screen(sys.stdout) as screen:
        while time.monotonic() < deadline and not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(options.refresh_s, max(0.0, deadline - time.monotonic())))
            devices, apps, plan = await asyncio.gather(client.list_devices(), client.list_apps(), client.get_plan())
            previous = snapshot(devices, apps, plan, previous=previous, coordinator=client.address)
            left = max(0.0, deadline - time.monotonic())
            title = f"--- synergy demo, coordinator {client.address}, {left:.0f}s left (Ctrl-C stops) ---"
            width, height = screen.size()
            screen.draw(render_status(previous, width, height, title=title))


async def _summary(client: SynergyClient, cluster: LocalCluster) -> None:
    apps = await client.list_apps()
    stats = await client.stats()
    devices = await client.list_devices()
    total = sum(a.stats.rate_hz for a in apps)
    say("=== summary ===")
    for a in apps:
        say(
            f"{a.spec.name:18s} {a.spec.model:10s} {a.stats.rate_hz:7.2f} frames/s  "
            f"{a.stats.latency_ms:8.1f} ms  delivered {a.stats.frames_delivered}  dropped {a.stats.frames_dropped}"
        )
    peer_bytes = sum(d.telemetry.bytes_to_peers for d in devices)
    say(f"system throughput {total:.2f} frames/s over {len(apps)} apps on {len(devices)} devices")
    say(
        f"activation bytes agent-to-agent {peer_bytes}; through the coordinator {stats.activation_bytes_relayed} "
        f"(it received {stats.result_bytes_received} bytes of final results)"
    )


def say(text: str) -> None:
    print(text, flush=True)
    sys.stdout.flush()
