"""Run the coordinator as a daemon: serve gRPC until SIGINT/SIGTERM, then drain and stop.

The address is bound first (a taken address fails before anything else is touched), then the
dashboard's when ``--http-bind`` asks for one (docs/dashboard.md), then the state is restored,
then the services answer (until then they say UNAVAILABLE: starting). A coordinator whose vital
loop keeps crashing turns NOT_SERVING and exits non-zero. The metrics endpoint (``--metrics-bind``,
docs/metrics.md) listens from before the state is restored until the coordinator stops.
"""

from __future__ import annotations

import asyncio
import functools
import signal
import sys
from typing import TYPE_CHECKING

import structlog

from coordinator.service import Coordinator, CoordinatorConfig
from coordinator.servicers import coordinator_guard, coordinator_services
from synergy.wire.server import announce_listening, start_server

if TYPE_CHECKING:
    from coordinator.dashboard.server import Dashboard
    from synergy.metrics.endpoint import MetricsEndpoint
    from synergy.security.audit import AuditLog

__all__ = ["serve_coordinator"]

log = structlog.get_logger(__name__)

#: Seconds in-flight RPCs get to finish on shutdown.
SHUTDOWN_GRACE_S = 2.0
#: Exit status when the coordinator stopped because it became unhealthy.
EXIT_UNHEALTHY = 1


async def serve_coordinator(config: CoordinatorConfig, stop: asyncio.Event | None = None) -> int:
    """Serve until ``stop`` (or a signal); returns the process exit status."""
    stop = stop or asyncio.Event()
    coordinator = Coordinator(config)
    guard = coordinator_guard(coordinator)  # the metrics count its audit log's refusals
    server = await start_server(config.bind, coordinator_services(coordinator, guard), tls=config.tls)
    host = config.bind.rsplit(":", 1)[0]
    address = f"{host}:{server.port}"
    dashboard: Dashboard | None = None
    metrics: MetricsEndpoint | None = None
    try:
        if config.http_bind:
            dashboard = await _start_dashboard(coordinator, address)
        if config.metrics_bind:
            metrics = await _start_metrics(coordinator, guard.audit)
        await coordinator.start()
    except BaseException:
        if metrics is not None:
            await metrics.close()
        if dashboard is not None:
            await dashboard.close()
        await server.stop(0)
        await coordinator.shutdown()
        raise
    coordinator.ready.set()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "coordinator_started",
        address=address,
        planner=config.planner,
        mqtt=config.mqtt_url or None,
        state_dir=str(config.state_dir) if config.state_dir else None,
        tls=str(config.tls.identity) if config.tls else None,
    )
    announce_listening("coordinator", address)
    status = 0
    try:
        stopping = asyncio.ensure_future(stop.wait())
        unhealthy = asyncio.ensure_future(coordinator.fatal.wait())
        await asyncio.wait({stopping, unhealthy}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        unhealthy.cancel()
        if coordinator.fatal.is_set():
            status = EXIT_UNHEALTHY
            await server.not_serving()
            log.critical("coordinator_exiting_unhealthy", reason=coordinator.fatal_reason)
    finally:
        log.info("coordinator_stopping")
        if dashboard is not None:
            await dashboard.close()
        if metrics is not None:
            await metrics.close()
        coordinator.results.close()
        await server.stop(SHUTDOWN_GRACE_S)
        await coordinator.shutdown()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        log.info("coordinator_stopped")
        sys.stdout.flush()
    return status


async def _start_dashboard(coordinator: Coordinator, address: str) -> Dashboard:
    """The web dashboard on ``--http-bind`` (aiohttp is imported only when one is asked for)."""
    from coordinator.dashboard.server import Dashboard, view_of

    config = coordinator.config
    about: dict[str, str | bool] = {
        "address": address,
        "planner": config.planner,
        "objective": config.objective,
        "tls": config.tls is not None,
        "mqtt": bool(config.mqtt_url),
        "persistent": config.state_dir is not None,
    }
    dashboard = Dashboard(functools.partial(view_of, coordinator, about), config.http_bind)
    await dashboard.start()
    return dashboard


async def _start_metrics(coordinator: Coordinator, audit: AuditLog) -> MetricsEndpoint:
    """The Prometheus endpoint on ``--metrics-bind`` (prometheus_client is imported only then)."""
    from coordinator.metrics import coordinator_registry
    from synergy.metrics.endpoint import start_endpoint

    registry = coordinator_registry(coordinator, audit)
    return await start_endpoint(coordinator.config.metrics_bind, registry, "coordinator")
