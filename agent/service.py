"""The agent daemon: represent one device, join the coordinator, run partitions, move frames.

Lifecycle (``start`` = ``serve`` + ``join``; ``shutdown``):

- **serve**: the gRPC server (deployments and peer frames) and, when configured, the MQTT
  publisher.
- **join**: the vital loops — *membership* (:mod:`agent.membership`: register with what the
  agent holds, heartbeat, register again when the lease is lost) and the *reporter* (results
  and drops to the coordinator).
- **vital loops are supervised**: a crash of membership, reporter or publisher is logged with
  its traceback and the loop is restarted after a backoff (0.1 s doubling to 5 s, back to
  0.1 s after it ran 30 s). Membership resumes heartbeating the lease it held, the reporter
  resumes with the report it had in hand, so a crash costs neither. (Restarting rather than
  exiting: the agent's pipelines keep running through a glitch of the control path.)
- **a serial board** (``--board serial:``): the device is in the space only while its board
  answers. Membership starts once HELLO succeeds; when the board is lost (EOF, EIO, no
  answer, a reset) the agent stops heartbeating and deregisters at once, so the coordinator
  re-plans around it now rather than at the lease's expiry (frames still arriving fail fast
  on the board and are dropped with the reason), then probes the port with the board's
  back-off (0.1 s doubling to 5 s) and registers again once HELLO succeeds; the coordinator
  then re-plans and redeploys. The emulated board has no such loop.
- **shutdown** (SIGTERM/SIGINT; idempotent, a second call waits for the first): stop the
  membership loop and deregister first, so the coordinator re-plans at once instead of
  waiting for the lease to expire (bounded to about a second: a coordinator that is down or
  does not know Deregister does not hold the agent up), then stop the sources, drain the
  pipelines (bounded), send the last reports (bounded), and stop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import structlog

from agent.board import Board, EmulatedBoard
from agent.dataplane import Radio
from agent.membership import Backoff, Membership
from agent.reporter import Reporter
from agent.runtime import Runtime
from agent.serial_board import SerialBoard, SerialTarget
from agent.servicer import AgentServicer, registration
from synergy.defaults import DEFAULT_COORDINATOR, DEFAULT_MQTT_PREFIX
from synergy.metrics.counts import ObservingSink, OutcomeCounts
from synergy.reports import DeviceTelemetry
from synergy.security.authz import Policy
from synergy.security.guard import Guard
from synergy.security.tls import TlsConfig
from synergy.tasks import TaskOwner
from synergy.types import DeviceSpec
from synergy.wire.frames import GrpcFrameTransport
from synergy.wire.registry_client import Registry, RegistryClient
from synergy.wire.server import ServingServer, announce_listening, start_server

if TYPE_CHECKING:
    from synergy.events import EventPublisher
    from synergy.metrics.endpoint import MetricsEndpoint

__all__ = ["Agent", "AgentConfig", "serve_agent"]

log = structlog.get_logger(__name__)

RESTART_BACKOFF_MIN_S = 0.1
RESTART_BACKOFF_MAX_S = 5.0
#: A vital loop that ran this long before crashing restarts with the shortest backoff again.
RESTART_RESET_AFTER_S = 30.0
#: Bounds at shutdown: stopping the membership loop, draining the pipelines, the last reports.
SHUTDOWN_MEMBERSHIP_S = 0.5
SHUTDOWN_DRAIN_S = 1.0
SHUTDOWN_REPORT_S = 2.0
SHUTDOWN_GRACE_S = 1.0


@dataclass(frozen=True)
class AgentConfig:
    device: DeviceSpec
    coordinator: str = DEFAULT_COORDINATOR
    bind: str = "127.0.0.1:0"
    #: Address peers and the coordinator use to reach this agent (default: the bound one).
    advertise: str = ""
    chip_timing: bool = True
    link_shaping: bool = True
    slowdown: float = 1.0
    mqtt_url: str = ""
    mqtt_prefix: str = DEFAULT_MQTT_PREFIX
    #: The agent's identity for mutual TLS (its server, its channel to the coordinator and
    #: its frame streams to peers); None speaks plain text.
    tls: TlsConfig | None = None
    #: A real board (or ``synergy board-sim``) on a serial port instead of the emulated one
    #: (``--board serial:PATH[@BAUD]``); its profile is the device's board.
    serial: SerialTarget | None = None
    #: host:port of the Prometheus metrics endpoint (docs/metrics.md); "" serves none.
    metrics_bind: str = ""


class Agent:
    """One device's daemon. ``registry`` and ``board`` default to the real ones (tests pass fakes)."""

    def __init__(self, config: AgentConfig, *, registry: Registry | None = None, board: Board | None = None) -> None:
        self.config = config
        self.device = config.device
        self.board = board or _make_board(config)
        self.reporter = Reporter()
        #: Frame outcomes by app and drop cause, for the metrics (counted on the way to the reporter).
        self.outcomes = OutcomeCounts()
        self.radio = Radio(config.device.link, shaped=config.link_shaping)
        self.runtime = Runtime(
            config.device,
            self.board,
            ObservingSink(self.reporter, self.outcomes),
            self.radio,
            transport=functools.partial(GrpcFrameTransport, tls=config.tls),
        )
        self.membership = Membership(
            registry or RegistryClient(config.coordinator, tls=config.tls),
            lambda: self.device,
            self.runtime.state,
            self.telemetry,
            self.reporter,
            on_heartbeat=self._publish_telemetry,
        )
        self.runtime.on_state_change = self.membership.state_changed
        self.events: EventPublisher | None = None
        self.server: ServingServer | None = None
        self.metrics: MetricsEndpoint | None = None
        #: The authorization policy of the agent's server, and its audit log of refusals.
        self.guard = Guard(Policy(insecure=config.tls is None))
        #: Restarts of each vital loop after a crash.
        self.restarts: dict[str, int] = {}
        self._tasks = TaskOwner(f"agent:{config.device.device_id}")
        self._membership_task: asyncio.Task[None] | None = None
        self._board_task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None
        self._log = log.bind(device=config.device.device_id)

    @property
    def address(self) -> str:
        return self.device.address

    @property
    def registered(self) -> asyncio.Event:
        return self.membership.registered

    async def start(self) -> None:
        await self.serve()
        self.join()
        self._log.info(
            "agent_started",
            address=self.address,
            board=self.device.board.name,
            tls=str(self.config.tls.identity) if self.config.tls else None,
        )

    async def serve(self) -> None:
        """Start the metrics endpoint and the MQTT publisher when configured, and the gRPC server."""
        if self.config.metrics_bind:
            # Imported only when asked for: an agent without metrics loads no prometheus_client.
            from agent.metrics import agent_registry
            from synergy.metrics.endpoint import start_endpoint

            self.metrics = await start_endpoint(self.config.metrics_bind, agent_registry(self), "agent")
        servicer = AgentServicer(self.runtime, self.telemetry, self.guard)
        try:
            self.server = await start_server(self.config.bind, [registration(servicer)], tls=self.config.tls)
        except BaseException:
            if self.metrics is not None:
                await self.metrics.close()
            raise
        host = self.config.bind.rsplit(":", 1)[0]
        advertised = self.config.advertise or f"{host}:{self.server.port}"
        self.device = replace(self.device, address=advertised)
        self.runtime.device = self.device
        if self.config.mqtt_url:
            # Imported only with a broker: the MQTT client is ~14 MB of an agent that has none.
            from synergy.events import EventPublisher, MqttConfig, Topics

            # mqtts:// uses the daemon's own TLS directory: its certificate is its MQTT identity.
            tls_dir = self.config.tls.directory if self.config.tls is not None else None
            mqtt = MqttConfig.from_url(self.config.mqtt_url, self.config.mqtt_prefix, tls_dir=tls_dir)
            will = {
                "device_id": self.device.device_id,
                "state": "offline",
                "reason": "last_will",
                "address": advertised,
            }
            self.events = EventPublisher(
                mqtt,
                client_id=f"synergy-agent-{self.device.device_id}",
                will_topic=Topics(mqtt.prefix).device_state(self.device.device_id),
                will_payload=will,
            )
            self._tasks.spawn(self._supervise("mqtt", self.events.run), "mqtt")
            self.events.publish(
                self.events.topics.device_state(self.device.device_id), self._presence("online"), retain=True
            )

    def join(self) -> None:
        """Start the vital loops: the reporter and membership (register, heartbeat)."""
        self._tasks.spawn(self._supervise("reporter", self.reporter.run), "reporter")
        board = self.board
        if isinstance(board, SerialBoard):
            follow = functools.partial(self._follow_board, board)
            self._board_task = self._tasks.spawn(self._supervise("board", follow), "board")
        else:
            self._start_membership()

    def _start_membership(self) -> None:
        if self._membership_task is None or self._membership_task.done():
            self._membership_task = self._tasks.spawn(self._supervise("membership", self.membership.run), "membership")

    async def _stop_membership(self) -> None:
        task, self._membership_task = self._membership_task, None
        if task is not None:
            task.cancel()  # no registering again while leaving
            await asyncio.wait([task], timeout=SHUTDOWN_MEMBERSHIP_S)

    async def _follow_board(self, board: SerialBoard) -> None:
        """In the space while the serial board answers, out of it while it is lost (module doc)."""
        while True:
            await board.reconnect()
            # The record registered carries what this connection measured (a replugged board
            # may sit on another port speed or run other firmware).
            self.device = replace(self.device, board_port=board.port_record())
            self.runtime.device = self.device
            self._start_membership()
            await board.wait_lost()
            await self._stop_membership()
            await self.membership.deregister()
            # Reports (drops included) wait in the queue for the next lease.
            self.reporter.disconnect()

    def _presence(self, state: str) -> dict[str, object]:
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

    def telemetry(self) -> DeviceTelemetry:
        return self.runtime.device_telemetry(bytes_to_coordinator=self.reporter.bytes_sent)

    def _publish_telemetry(self, telemetry: DeviceTelemetry) -> None:
        if self.events is None:
            return
        values: dict[str, object] = {
            f.name: getattr(telemetry, f.name) for f in dataclasses.fields(telemetry) if f.name != "stage_timings"
        }
        values["stream_breaks"], values["stream_reopens"] = self.runtime.stream_counts()
        self.events.publish(
            self.events.topics.device_telemetry(self.device.device_id), {"device_id": self.device.device_id, **values}
        )

    async def _supervise(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run a vital loop for the agent's life: a crash is logged with its traceback and the loop restarted."""
        backoff = Backoff(RESTART_BACKOFF_MIN_S, RESTART_BACKOFF_MAX_S)
        while True:
            started = time.monotonic()
            try:
                await run()
                self._log.error("vital_task_returned", task=name)  # they loop forever
            except Exception:
                self._log.exception("vital_task_crashed", task=name)
            if time.monotonic() - started > RESTART_RESET_AFTER_S:
                backoff.reset()
            self.restarts[name] = self.restarts.get(name, 0) + 1
            delay = backoff.next()
            self._log.warning("vital_task_restarting", task=name, restarts=self.restarts[name], in_s=round(delay, 3))
            await asyncio.sleep(delay)

    async def shutdown(self) -> None:
        """Deregister, stop sources, drain, report, stop. Idempotent; a second call waits for the first."""
        if self._stopping is not None:
            await self._stopping.wait()
            return
        self._stopping = asyncio.Event()
        try:
            await self._shutdown()
        finally:
            self._stopping.set()

    async def _shutdown(self) -> None:
        if self._board_task is not None:
            self._board_task.cancel()  # no joining again while leaving
            await asyncio.wait([self._board_task], timeout=SHUTDOWN_MEMBERSHIP_S)
        await self._stop_membership()
        await self.membership.deregister()
        await self.runtime.close(drain_timeout_s=SHUTDOWN_DRAIN_S)
        await self.reporter.drain(SHUTDOWN_REPORT_S)
        if self.events is not None:
            self.events.publish(
                self.events.topics.device_state(self.device.device_id), self._presence("offline"), retain=True
            )
            await self.events.flush()
        await self._tasks.close()
        if self.server is not None:
            await self.server.stop(SHUTDOWN_GRACE_S)
        if self.metrics is not None:
            await self.metrics.close()
        await self.membership.registry.close()
        if isinstance(self.board, SerialBoard):
            await self.board.close()
        self._log.info("agent_stopped", reports_sent=self.reporter.sent, reports_lost=self.reporter.lost)


def _make_board(config: AgentConfig) -> Board:
    if config.serial is not None:
        return SerialBoard(config.device.board, config.serial)
    return EmulatedBoard(config.device.board, chip_timing=config.chip_timing, slowdown=config.slowdown)


async def serve_agent(config: AgentConfig, stop: asyncio.Event | None = None) -> None:
    """Run an agent until SIGINT/SIGTERM (or ``stop``); raises the coordinator's refusal when it
    kept refusing the device id (:data:`agent.membership.DEVICE_ID_TAKEN_GIVE_UP_S`)."""
    stop = stop or asyncio.Event()
    agent = Agent(config)
    await agent.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    announce_listening("agent", agent.address)
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(agent.membership.refused.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await agent.shutdown()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if agent.membership.refusal is not None and not stop.is_set():
        raise agent.membership.refusal  # the coordinator kept refusing the device id: exit 1
