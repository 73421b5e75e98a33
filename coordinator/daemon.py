"""Run the coordinator as a daemon: serve gRPC until SIGINT/SIGTERM, then drain and stop."""

from __future__ import annotations

import asyncio
import signal
import sys
from functools import partial

import structlog

from coordinator.service import Coordinator, CoordinatorConfig
from coordinator.servicers import AppsServicer, RegistryServicer
from synergy.v1 import apps_pb2, apps_pb2_grpc, registry_pb2, registry_pb2_grpc
from synergy.wire.server import announce_listening, start_server

__all__ = ["serve_coordinator"]

log = structlog.get_logger(__name__)

#: Seconds in-flight RPCs get to finish on shutdown.
SHUTDOWN_GRACE_S = 2.0


async def serve_coordinator(config: CoordinatorConfig, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    coordinator = Coordinator(config)
    await coordinator.start()
    registry_name = registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name
    apps_name = apps_pb2.DESCRIPTOR.services_by_name["AppsService"].full_name
    server = await start_server(
        config.bind,
        [
            (
                partial(registry_pb2_grpc.add_RegistryServiceServicer_to_server, RegistryServicer(coordinator)),
                registry_name,
            ),
            (partial(apps_pb2_grpc.add_AppsServiceServicer_to_server, AppsServicer(coordinator)), apps_name),
        ],
    )
    host = config.bind.rsplit(":", 1)[0]
    address = f"{host}:{server.port}"
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("coordinator_started", address=address, planner=config.planner, mqtt=config.mqtt_url or None)
    announce_listening("coordinator", address)
    try:
        await stop.wait()
    finally:
        log.info("coordinator_stopping")
        coordinator.results.close()
        await server.stop(SHUTDOWN_GRACE_S)
        await coordinator.shutdown()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        log.info("coordinator_stopped")
        sys.stdout.flush()
