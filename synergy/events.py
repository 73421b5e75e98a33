"""The event plane: device presence, telemetry, plans and results over MQTT (optional).

Topic tree (``PREFIX`` defaults to ``synergy``; payloads are JSON objects):

| topic | retained | who publishes | payload |
|---|---|---|---|
| ``PREFIX/devices/<device>/state`` | yes | agent; its last will | ``device_id``, ``state`` (online/offline), ... |
| ``PREFIX/devices/<device>/telemetry`` | no | agent | counters of the device |
| ``PREFIX/coordinator/state`` | yes | coordinator; its last will | ``{"state": ...}`` |
| ``PREFIX/plan`` | yes | coordinator | the deployed joint plan with its epoch |
| ``PREFIX/apps/<app>/results`` | no | coordinator | one frame's outcome |

The publisher keeps a bounded outbox and reconnects with backoff; with no broker the rest of
the system works unchanged (leases detect failures, results stream over gRPC). Events are
best effort: when the outbox is full the oldest event is discarded and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import aiomqtt
import structlog

from synergy.defaults import DEFAULT_MQTT_PREFIX
from synergy.errors import InvalidArgument

__all__ = ["EventPublisher", "MqttConfig", "Topics"]

log = structlog.get_logger(__name__)

DEFAULT_PORT = 1883
OUTBOX_SIZE = 1000
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 10.0

StateHandler = Callable[[str, dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class MqttConfig:
    host: str
    port: int = DEFAULT_PORT
    prefix: str = DEFAULT_MQTT_PREFIX
    username: str = ""
    password: str = ""

    @classmethod
    def from_url(cls, url: str, prefix: str = DEFAULT_MQTT_PREFIX) -> MqttConfig:
        """Parse ``mqtt://[user:pass@]host[:port]``."""
        parsed = urlparse(url if "://" in url else f"mqtt://{url}")
        if parsed.scheme not in ("mqtt", "tcp") or not parsed.hostname:
            raise InvalidArgument(f"MQTT URL {url!r}: expected mqtt://host[:port]")
        return cls(parsed.hostname, parsed.port or DEFAULT_PORT, prefix, parsed.username or "", parsed.password or "")


class Topics:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.rstrip("/")

    def device_state(self, device_id: str) -> str:
        return f"{self.prefix}/devices/{device_id}/state"

    def device_telemetry(self, device_id: str) -> str:
        return f"{self.prefix}/devices/{device_id}/telemetry"

    def coordinator_state(self) -> str:
        return f"{self.prefix}/coordinator/state"

    def plan(self) -> str:
        return f"{self.prefix}/plan"

    def results(self, app_id: str) -> str:
        return f"{self.prefix}/apps/{app_id}/results"

    def all_device_states(self) -> str:
        return f"{self.prefix}/devices/+/state"


class EventPublisher:
    """Owns one MQTT connection: publishes queued events, optionally watches device states."""

    def __init__(
        self,
        config: MqttConfig,
        client_id: str,
        will_topic: str,
        will_payload: dict[str, Any],
        on_device_state: StateHandler | None = None,
    ) -> None:
        self.config = config
        self.topics = Topics(config.prefix)
        self._client_id = client_id
        self._will = aiomqtt.Will(will_topic, json.dumps(will_payload), qos=1, retain=True)
        self._on_device_state = on_device_state
        self._outbox: asyncio.Queue[tuple[str, str, bool]] = asyncio.Queue(OUTBOX_SIZE)
        self.discarded = 0
        self.connected = asyncio.Event()

    def publish(self, topic: str, payload: dict[str, Any], *, retain: bool = False) -> None:
        """Queue an event; never blocks the caller."""
        item = (topic, json.dumps(payload, default=str), retain)
        if self._outbox.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._outbox.get_nowait()
            self.discarded += 1
        self._outbox.put_nowait(item)

    async def run(self) -> None:
        """Connect, publish and (re)connect until cancelled."""
        delay = RECONNECT_MIN_S
        while True:
            try:
                async with aiomqtt.Client(
                    self.config.host,
                    self.config.port,
                    identifier=self._client_id,
                    username=self.config.username or None,
                    password=self.config.password or None,
                    will=self._will,
                ) as client:
                    delay = RECONNECT_MIN_S
                    self.connected.set()
                    log.info("mqtt_connected", host=self.config.host, port=self.config.port)
                    await self._serve(client)
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                log.warning("mqtt_unavailable", error=str(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)

    async def _serve(self, client: aiomqtt.Client) -> None:
        async with asyncio.TaskGroup() as tasks:
            if self._on_device_state is not None:
                await client.subscribe(self.topics.all_device_states(), qos=1)
                tasks.create_task(self._receive(client))
            while True:
                topic, payload, retain = await self._outbox.get()
                await client.publish(topic, payload, qos=1, retain=retain)

    async def _receive(self, client: aiomqtt.Client) -> None:
        assert self._on_device_state is not None
        async for message in client.messages:
            if message.retain:
                continue  # a stored state from the past, not news of a failure
            parts = str(message.topic).split("/")
            if len(parts) < 2 or not isinstance(message.payload, bytes | bytearray):
                continue
            try:
                payload = json.loads(message.payload)
            except ValueError:
                log.warning("mqtt_bad_payload", topic=str(message.topic))
                continue
            if isinstance(payload, dict):
                await self._on_device_state(parts[-2], payload)

    async def flush(self, timeout_s: float = 2.0) -> None:
        """Wait (bounded) until the outbox is empty, e.g. before a clean disconnect."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not self._outbox.empty() and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110 - a bounded poll at shutdown
            await asyncio.sleep(0.02)
