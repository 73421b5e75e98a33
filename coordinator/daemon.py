"""Run the coordinator as a daemon: serve gRPC until SIGINT/SIGTERM, then drain and stop.

The address is bound first (a taken address fails before anything else is touched), then the
state is restored, then the services answer (until then they say UNAVAILABLE: starting). A
coordinator whose vital loop keeps crashing turns NOT_SERVING and exits non-zero.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import structlog

from coordinator.service import Coordinator, CoordinatorConfig
from coordinator.servicers import coordinator_services
from synergy.wire.server import announce_listening, start_server

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
    server = await start_server(config.bind, coordinator_services(coordinator), tls=config.tls)
    try:
        await coordinator.start()
    except BaseException:
        await server.stop(0)
        await coordinator.shutdown()
        raise
    coordinator.ready.set()
    host = config.bind.rsplit(":", 1)[0]
    address = f"{host}:{server.port}"
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
        coordinator.results.close()
        await server.stop(SHUTDOWN_GRACE_S)
        await coordinator.shutdown()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        log.info("coordinator_stopped")
        sys.stdout.flush()
    return status
