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

Security: ``mqtts://host[:port]`` (port 8883 by default) connects with TLS and a client
certificate from a TLS directory (``ca.pem``, ``cert.pem``, ``key.pem``, as ``synergy ca
issue`` writes them); a broker configured by ``synergy mqtt-config`` takes the certificate's
CN as the username and its ACL lets each agent publish only under its own
``PREFIX/devices/<device>/``. The coordinator accepts a device-state message only when the
payload's ``device_id`` is the device named by the topic, so a state can only come from the
device's own credentials (see :mod:`synergy.security.mqtt`). Plain ``mqtt://`` is unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiomqtt
import structlog

from synergy.defaults import DEFAULT_MQTT_PREFIX
from synergy.errors import InvalidArgument

__all__ = ["EventPublisher", "MqttConfig", "Topics"]

log = structlog.get_logger(__name__)

DEFAULT_PORT = 1883
#: The IANA port of MQTT over TLS, used when an ``mqtts://`` URL names none.
DEFAULT_TLS_PORT = 8883
#: The files a TLS directory must hold: the CA to trust, our certificate and its key.
TLS_FILES = ("ca.pem", "cert.pem", "key.pem")
#: A device-state payload larger than this is not a state: it is ignored unread.
MAX_STATE_PAYLOAD = 4096
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
    #: TLS with a client certificate: a directory holding ``ca.pem``, ``cert.pem``, ``key.pem``.
    tls_dir: Path | None = None

    @classmethod
    def from_url(cls, url: str, prefix: str = DEFAULT_MQTT_PREFIX, tls_dir: Path | None = None) -> MqttConfig:
        """Parse ``mqtt://[user:pass@]host[:port]`` or ``mqtts://host[:port]`` (TLS, needs ``tls_dir``).

        ``tls_dir`` is used only by ``mqtts://``; with a plain ``mqtt://`` URL it is ignored
        (with a warning), since the URL says the broker speaks plain text.
        """
        parsed = urlparse(url if "://" in url else f"mqtt://{url}")
        if parsed.scheme not in ("mqtt", "tcp", "mqtts", "ssl") or not parsed.hostname:
            raise InvalidArgument(f"MQTT URL {url!r}: expected mqtt://host[:port] or mqtts://host[:port]")
        try:
            port = parsed.port
        except ValueError as exc:
            raise InvalidArgument(f"MQTT URL {url!r}: {exc}") from None
        username, password = parsed.username or "", parsed.password or ""
        if parsed.scheme in ("mqtt", "tcp"):
            if tls_dir is not None:
                log.warning("mqtt_tls_dir_ignored", url=url, tls_dir=str(tls_dir), hint="use mqtts:// for TLS")
            return cls(parsed.hostname, port or DEFAULT_PORT, prefix, username, password)
        if tls_dir is None:
            raise InvalidArgument(
                f"MQTT URL {url!r} asks for TLS but no TLS directory was given "
                f"(the daemon's --tls-dir, holding {', '.join(TLS_FILES)}; not --insecure)"
            )
        missing = [name for name in TLS_FILES if not (tls_dir / name).is_file()]
        if missing:
            raise InvalidArgument(f"MQTT TLS directory {str(tls_dir)!r} lacks {', '.join(missing)}")
        return cls(parsed.hostname, port or DEFAULT_TLS_PORT, prefix, username, password, tls_dir)

    @property
    def url(self) -> str:
        """The broker's address as a URL, without credentials (for logs)."""
        return f"{'mqtts' if self.tls_dir is not None else 'mqtt'}://{self.host}:{self.port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client TLS context (verify the broker against ``ca.pem``, present ``cert.pem``),
        or None for plain text. Built per connection, so a rotated certificate is picked up
        on the next reconnect."""
        if self.tls_dir is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.tls_dir / "ca.pem"))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.tls_dir / "cert.pem"), str(self.tls_dir / "key.pem"))
        return context


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
        if self.config.tls_dir is None:
            log.warning("mqtt_plaintext", url=self.config.url, hint="use mqtts:// and a TLS directory")
        while True:
            try:
                async with aiomqtt.Client(
                    self.config.host,
                    self.config.port,
                    identifier=self._client_id,
                    username=self.config.username or None,
                    password=self.config.password or None,
                    will=self._will,
                    tls_context=self.config.ssl_context(),
                ) as client:
                    delay = RECONNECT_MIN_S
                    self.connected.set()
                    log.info(
                        "mqtt_connected",
                        host=self.config.host,
                        port=self.config.port,
                        tls=self.config.tls_dir is not None,
                    )
                    await self._serve(client)
            except (aiomqtt.MqttError, OSError) as exc:  # OSError: the TLS files became unreadable
                self.connected.clear()
                log.warning("mqtt_unavailable", url=self.config.url, error=str(exc), retry_in_s=delay)
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
            accepted = self.accept_device_state(str(message.topic), message.payload)
            if accepted is not None:
                await self._on_device_state(*accepted)

    def accept_device_state(self, topic: str, raw: object) -> tuple[str, dict[str, Any]] | None:
        """(device id, payload) of a well-formed device-state message, else None (logged).

        Only ``PREFIX/devices/<id>/state`` with a JSON object of at most
        :data:`MAX_STATE_PAYLOAD` bytes whose ``device_id`` is ``<id>``: the broker's ACL lets
        only device ``<id>``'s certificate publish under that topic, so a state naming any
        other device did not come through that path and is ignored.
        """
        head = f"{self.topics.prefix}/devices/"
        device_id, _, leaf = topic.removeprefix(head).partition("/")
        if not topic.startswith(head) or leaf != "state" or not device_id:
            log.debug("mqtt_state_ignored", topic=topic, reason="not a device state topic")
            return None
        if not isinstance(raw, bytes | bytearray):
            log.debug("mqtt_state_ignored", topic=topic, reason="empty or non-binary payload")
            return None
        if len(raw) > MAX_STATE_PAYLOAD:
            log.debug("mqtt_state_ignored", topic=topic, reason="payload too large", size=len(raw))
            return None
        try:
            payload = json.loads(raw)
        except ValueError:
            log.debug("mqtt_state_ignored", topic=topic, reason="payload is not JSON")
            return None
        if not isinstance(payload, dict):
            log.debug("mqtt_state_ignored", topic=topic, reason="payload is not a JSON object")
            return None
        if payload.get("device_id") != device_id:
            log.debug(
                "mqtt_state_ignored",
                topic=topic,
                reason="device_id differs from the topic's device",
                claimed=str(payload.get("device_id"))[:64],
            )
            return None
        return device_id, payload

    async def flush(self, timeout_s: float = 2.0) -> None:
        """Wait (bounded) until the outbox is empty, e.g. before a clean disconnect."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not self._outbox.empty() and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110 - a bounded poll at shutdown
            await asyncio.sleep(0.02)
