"""The agent daemon: represent one device, join the coordinator, run partitions, move frames.

Lifecycle: start the gRPC server (deployments and peer frames), then register with the
coordinator and heartbeat. When the coordinator is unreachable or forgets the lease (it
restarted, or the lease expired), the agent registers again with exponential backoff and
drops its deployments: the coordinator redeploys what the new plan needs.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from dataclasses import dataclass, replace
from functools import partial

import grpc
import structlog

from agent.board import EmulatedBoard
from agent.peers import Radio
from agent.reporter import Reporter
from agent.runtime import Runtime
from agent.servicer import AgentServicer
from synergy.events import EventPublisher, MqttConfig
from synergy.tasks import TaskOwner
from synergy.types import DeviceSpec
from synergy.v1 import agent_pb2, agent_pb2_grpc, common_pb2, registry_pb2, registry_pb2_grpc
from synergy.wire.convert import device_to_proto
from synergy.wire.server import ServingServer, announce_listening, channel_options, start_server

__all__ = ["Agent", "AgentConfig"]

log = structlog.get_logger(__name__)

BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 5.0
SHUTDOWN_GRACE_S = 1.0


@dataclass(frozen=True)
class AgentConfig:
    device: DeviceSpec
    coordinator: str = "127.0.0.1:50051"
    bind: str = "127.0.0.1:0"
    #: Address peers and the coordinator use to reach this agent (default: the bound one).
    advertise: str = ""
    chip_timing: bool = True
    link_shaping: bool = True
    slowdown: float = 1.0
    mqtt_url: str = ""
    mqtt_prefix: str = "synergy"


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.device = config.device
        self.board = EmulatedBoard(config.device.board, chip_timing=config.chip_timing, slowdown=config.slowdown)
        self.reporter = Reporter()
        self.radio = Radio(config.device.link, shaped=config.link_shaping)
        self.runtime = Runtime(config.device, self.board, self.reporter, self.radio)
        self.events: EventPublisher | None = None
        self.server: ServingServer | None = None
        self.registered = asyncio.Event()
        self._tasks = TaskOwner(f"agent:{config.device.device_id}")
        self._channel: grpc.aio.Channel | None = None
        self._stopped = False
        self._log = log.bind(device=config.device.device_id)

    @property
    def address(self) -> str:
        return self.device.address

    async def start(self) -> None:
        name = agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name
        servicer = AgentServicer(self.runtime, self.telemetry)
        self.server = await start_server(
            self.config.bind, [(partial(agent_pb2_grpc.add_AgentServiceServicer_to_server, servicer), name)]
        )
        host = self.config.bind.rsplit(":", 1)[0]
        advertised = self.config.advertise or f"{host}:{self.server.port}"
        self.device = replace(self.device, address=advertised)
        self.runtime.device = self.device
        if self.config.mqtt_url:
            mqtt = MqttConfig.from_url(self.config.mqtt_url, self.config.mqtt_prefix)
            will = {
                "device_id": self.device.device_id,
                "state": "offline",
                "reason": "last_will",
                "address": advertised,
            }
            self.events = EventPublisher(
                mqtt,
                client_id=f"synergy-agent-{self.device.device_id}",
                will_topic=f"{mqtt.prefix}/devices/{self.device.device_id}/state",
                will_payload=will,
            )
            self._tasks.spawn(self.events.run(), "mqtt")
            self.events.publish(
                self.events.topics.device_state(self.device.device_id), self._state("online"), retain=True
            )
        self._channel = grpc.aio.insecure_channel(self.config.coordinator, options=channel_options())
        self._tasks.spawn(self.reporter.run(), "reporter")
        self._tasks.spawn(self._membership(), "membership")
        self._log.info("agent_started", address=advertised, board=self.device.board.name)

    def _state(self, state: str) -> dict[str, object]:
        return {
            "device_id": self.device.device_id,
            "state": state,
            "kind": self.device.kind,
            "address": self.device.address,
            "board": self.device.board.name,
            "sensors": [s.type for s in self.device.sensors],
            "outputs": [o.type for o in self.device.outputs],
            "time": time.time(),
        }

    def telemetry(self) -> common_pb2.DeviceTelemetry:
        t = self.runtime.telemetry
        return common_pb2.DeviceTelemetry(
            frames_in=t.frames_in,
            frames_out=t.frames_out,
            bytes_to_peers=t.bytes_to_peers,
            bytes_from_peers=t.bytes_from_peers,
            bytes_to_coordinator=self.reporter.bytes_sent,
            frames_dropped=t.frames_dropped,
            accelerator_busy_s=t.accelerator_busy_s,
            stage_timings=self.runtime.stage_timings(),
        )

    async def _membership(self) -> None:
        """Register, heartbeat, and register again whenever the lease is lost."""
        assert self._channel is not None
        stub = registry_pb2_grpc.RegistryServiceStub(self._channel)
        backoff = BACKOFF_MIN_S
        while True:
            try:
                answer = await stub.Register(
                    registry_pb2.RegisterRequest(device=device_to_proto(self.device)), timeout=5.0
                )
            except grpc.aio.AioRpcError as exc:
                self._log.warning("register_failed", code=exc.code().name, detail=exc.details(), retry_in_s=backoff)
                await asyncio.sleep(backoff * (1 + random.random() / 2))
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            backoff = BACKOFF_MIN_S
            # A fresh lease means the coordinator holds no deployment of ours any more.
            await self.runtime.reset()
            self.reporter.connect(stub, answer.lease_id)
            self.registered.set()
            self._log.info("registered", lease=answer.lease_id, heartbeat_s=answer.heartbeat_period_s)
            await self._heartbeat(stub, answer.lease_id, answer.heartbeat_period_s, answer.lease_ttl_s)
            self.registered.clear()
            self.reporter.disconnect()

    async def _heartbeat(
        self, stub: registry_pb2_grpc.RegistryServiceStub, lease_id: str, period_s: float, ttl_s: float
    ) -> None:
        """Heartbeat until the lease is lost for sure (NOT_FOUND, or silence past the TTL)."""
        last_ok = time.monotonic()
        while True:
            await asyncio.sleep(period_s)
            try:
                await stub.Heartbeat(
                    registry_pb2.HeartbeatRequest(
                        device_id=self.device.device_id, lease_id=lease_id, telemetry=self.telemetry()
                    ),
                    timeout=max(period_s, 1.0),
                )
                last_ok = time.monotonic()
                if self.events is not None:
                    self.events.publish(
                        self.events.topics.device_telemetry(self.device.device_id),
                        {"device_id": self.device.device_id, **_telemetry_dict(self.telemetry())},
                    )
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND or time.monotonic() - last_ok > ttl_s:
                    self._log.warning("lease_lost", code=exc.code().name, detail=exc.details())
                    return
                self._log.info("heartbeat_failed", code=exc.code().name)

    async def shutdown(self) -> None:
        """Stop sources, drain, report, leave. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        await self.runtime.close()
        await self.reporter.drain(2.0)
        if self.events is not None:
            self.events.publish(
                self.events.topics.device_state(self.device.device_id), self._state("offline"), retain=True
            )
            await self.events.flush()
        await self._tasks.close()
        if self.server is not None:
            await self.server.stop(SHUTDOWN_GRACE_S)
        if self._channel is not None:
            await self._channel.close()
        self._log.info("agent_stopped")


def _telemetry_dict(t: common_pb2.DeviceTelemetry) -> dict[str, float]:
    return {
        "frames_in": t.frames_in,
        "frames_out": t.frames_out,
        "bytes_to_peers": t.bytes_to_peers,
        "bytes_from_peers": t.bytes_from_peers,
        "bytes_to_coordinator": t.bytes_to_coordinator,
        "frames_dropped": t.frames_dropped,
        "accelerator_busy_s": t.accelerator_busy_s,
    }


async def serve_agent(config: AgentConfig, stop: asyncio.Event | None = None) -> None:
    """Run an agent until SIGINT/SIGTERM (or ``stop``)."""
    stop = stop or asyncio.Event()
    agent = Agent(config)
    await agent.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    announce_listening("agent", agent.address)
    try:
        await stop.wait()
    finally:
        await agent.shutdown()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
