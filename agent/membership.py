"""An agent's membership of the virtual computing space: register, heartbeat, deregister.

Register carries what the agent really holds (``Runtime.state``), and so does every
Heartbeat — one every period, and one at once whenever that changes (deploy, activate,
undeploy), so the coordinator learns without delay which partitions it may reuse. The agent
never drops its deployments because it registers again: the coordinator compares what the
agent holds with what it wants and repairs the difference (Undeploy of epochs it does not
want, Deploy of a new one).

Reconnecting is prompt: registration is retried with a short capped, jittered backoff (0.1 s
doubling to 1 s, ±25 %), so an agent is back within about a second of the coordinator
listening again (gRPC's own reconnect backoff is tuned to match in
``synergy.wire.server.channel_options``). Heartbeats go on every period while the coordinator
is unreachable; the agent registers again only when the coordinator says it does not know the
lease (NotFound) or when no heartbeat succeeded for the lease TTL. A heartbeat waits up to a
third of the TTL (at least one period) for its answer, so a coordinator that is merely slow
(a loaded host carrying many agents) still renews every lease. An outage is logged once
when it starts (and when its cause changes) and once when it ends, never per attempt.

A device id held by another live agent (the coordinator refuses the registration: ALREADY_EXISTS,
or PERMISSION_DENIED with TLS) is retried for :data:`DEVICE_ID_TAKEN_GIVE_UP_S` — long enough for
the lease of this same agent's previous run to expire (an agent restarted on another port; the
default lease TTL is 5 s) — then the agent logs an error suggesting ``--device-id`` and gives up:
:attr:`Membership.refused` is set and the daemon exits with status 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from typing import Any

import structlog

from agent.reporter import Reporter
from synergy.deployment import AgentState
from synergy.errors import AlreadyExists, NotFound, PermissionDenied, SynergyError, Unavailable
from synergy.reports import DeviceTelemetry
from synergy.types import DeviceSpec
from synergy.wire.registry_client import Lease, Registry

__all__ = ["Backoff", "Membership"]

log = structlog.get_logger(__name__)

REGISTER_BACKOFF_MIN_S = 0.1
REGISTER_BACKOFF_MAX_S = 1.0
#: Heartbeat calls never wait less than this for an answer.
MIN_HEARTBEAT_TIMEOUT_S = 0.5
#: ... nor less than this share of the lease TTL: a coordinator that answers late (a loaded
#: host, many agents) still renews the lease, where a deadline of one period would give up on
#: every heartbeat it answers in 1.2 periods and count it as an outage.
HEARTBEAT_TIMEOUT_TTL_SHARE = 1 / 3
#: Bound on Deregister (at shutdown).
DEREGISTER_BOUND_S = 1.0
#: How long a registration refused because another live agent holds the device id is retried
#: before the agent gives up (three default lease TTLs: a previous run's lease runs out first).
DEVICE_ID_TAKEN_GIVE_UP_S = 15.0


class Backoff:
    """Delays that double from ``min_s`` to ``max_s``, each jittered by ±``jitter``."""

    def __init__(
        self, min_s: float, max_s: float, jitter: float = 0.25, rng: Callable[[], float] = random.random
    ) -> None:
        self.min_s, self.max_s, self.jitter = min_s, max_s, jitter
        self._rng = rng
        self._next = min_s

    def next(self) -> float:
        delay = self._next * (1 + self.jitter * (2 * self._rng() - 1))
        self._next = min(self._next * 2, self.max_s)
        return delay

    def reset(self) -> None:
        self._next = self.min_s


class _Outage:
    """Logs a coordinator outage once when it starts (and when its cause changes), once when it ends."""

    def __init__(self, logger: Any) -> None:
        self._log = logger
        self._since: float | None = None
        self._cause = ""
        self.failures = 0

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, call: str, error: SynergyError) -> None:
        self.failures += 1
        cause = type(error).__name__
        if self._since is None or cause != self._cause:
            if self._since is None:
                self._since = time.monotonic()
            self._cause = cause
            event = "coordinator_unreachable" if isinstance(error, Unavailable) else "coordinator_refused"
            self._log.warning(event, call=call, error=str(error), code=error.grpc_code)
        else:
            self._log.debug("coordinator_call_failed", call=call, error=str(error))

    def recovered(self) -> None:
        if self._since is not None:
            self._log.info(
                "coordinator_reachable_again",
                outage_s=round(time.monotonic() - self._since, 3),
                failed_calls=self.failures,
            )
        self._since, self._cause, self.failures = None, "", 0


class Membership:
    """Holds this agent's lease; :meth:`run` is the membership loop (restartable after a crash)."""

    def __init__(
        self,
        registry: Registry,
        device: Callable[[], DeviceSpec],
        state: Callable[[], AgentState],
        telemetry: Callable[[], DeviceTelemetry],
        reporter: Reporter,
        *,
        on_heartbeat: Callable[[DeviceTelemetry], None] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.registry = registry
        self._device = device
        self._state = state
        self._telemetry = telemetry
        self._reporter = reporter
        self._on_heartbeat = on_heartbeat
        self._backoff = backoff or Backoff(REGISTER_BACKOFF_MIN_S, REGISTER_BACKOFF_MAX_S)
        self.registered = asyncio.Event()
        #: Set when the coordinator kept refusing this device id: the agent must exit (:attr:`refusal` says why).
        self.refused = asyncio.Event()
        self.refusal: SynergyError | None = None
        self._nudge = asyncio.Event()
        self.lease: Lease | None = None
        #: Successful registrations and heartbeats (for tests and telemetry).
        self.registrations = 0
        self.heartbeats = 0
        self._log = log.bind(device=device().device_id)
        self._outage = _Outage(self._log)

    async def run(self) -> None:
        """Register (unless a lease is held), heartbeat, register again once the lease is lost.

        Restarted after a crash, it resumes heartbeating the lease it held.
        """
        while True:
            lease = self.lease
            if lease is None:
                lease = await self._register()
                self.lease = lease
            self._reporter.connect(self.registry, lease.lease_id)
            self.registered.set()
            await self._heartbeat(lease)
            # Lost for sure: register again. (Cancelled or crashed instead, the lease is still
            # held: reports keep flowing, a restart resumes it, shutdown deregisters it.)
            self.registered.clear()
            self._reporter.disconnect()
            self.lease = None

    async def _register(self) -> Lease:
        taken_since: float | None = None
        while True:
            state = self._state()
            try:
                lease = await self.registry.register(self._device(), state)
            except (AlreadyExists, PermissionDenied) as exc:
                self._outage.failed("register", exc)
                now = time.monotonic()
                taken_since = now if taken_since is None else taken_since
                if now - taken_since >= DEVICE_ID_TAKEN_GIVE_UP_S:
                    await self._give_up(exc)
                await asyncio.sleep(self._backoff.next())
                continue
            except SynergyError as exc:
                taken_since = None
                self._outage.failed("register", exc)
                await asyncio.sleep(self._backoff.next())
                continue
            self._backoff.reset()
            self._outage.recovered()
            self.registrations += 1
            self._log.info(
                "registered",
                lease=lease.lease_id,
                heartbeat_s=lease.heartbeat_period_s,
                active_epoch=state.active_epoch,
                loaded_epochs=list(state.loaded_epochs),
            )
            return lease

    async def _give_up(self, error: SynergyError) -> None:
        """The coordinator keeps refusing this device id: say what to do, and wait to be stopped."""
        device_id = self._device().device_id
        hint = f"give this agent another --device-id (or stop the agent that holds {device_id!r})"
        self._log.error("device_id_taken", error=str(error), gave_up_after_s=DEVICE_ID_TAKEN_GIVE_UP_S, hint=hint)
        refusal = AlreadyExists(
            f"the coordinator refused device id {device_id!r} for {DEVICE_ID_TAKEN_GIVE_UP_S:g}s: {error}; {hint}"
        )
        refusal.__cause__ = error
        self.refusal = refusal
        self.refused.set()
        await asyncio.Event().wait()  # until the daemon, told by `refused`, cancels this loop

    def state_changed(self) -> None:
        """What the agent holds changed: report it with a heartbeat now, not at the next period.

        The coordinator then knows at once which partitions this agent holds (and reuses them
        in the next epoch), and sees drift without waiting for a period.
        """
        self._nudge.set()

    async def _until(self, deadline: float) -> None:
        """Sleep until ``deadline``, or until the state changed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._nudge.wait(), max(0.0, deadline - time.monotonic()))

    async def _heartbeat(self, lease: Lease) -> None:
        """Heartbeat every period (and when the state changed) until the lease is lost for sure.

        Lost for sure: NotFound, or no heartbeat succeeded for the lease TTL.
        """
        period = lease.heartbeat_period_s
        last_ok = time.monotonic()
        next_at = last_ok + period
        while True:
            await self._until(next_at)
            self._nudge.clear()
            now = time.monotonic()
            if now >= next_at:
                next_at = max(next_at + period, now)  # fell far behind: no burst of catch-ups
            telemetry = self._telemetry()
            try:
                await self.registry.heartbeat(
                    self._device().device_id,
                    lease.lease_id,
                    telemetry,
                    self._state(),
                    timeout_s=max(period, MIN_HEARTBEAT_TIMEOUT_S, lease.lease_ttl_s * HEARTBEAT_TIMEOUT_TTL_SHARE),
                )
            except NotFound as exc:
                self._log.warning("lease_lost", reason="the coordinator does not know the lease", detail=str(exc))
                return
            except SynergyError as exc:
                self._outage.failed("heartbeat", exc)
                if time.monotonic() - last_ok > lease.lease_ttl_s:
                    self._log.warning("lease_lost", reason="no heartbeat succeeded within the lease TTL")
                    return
                continue
            last_ok = time.monotonic()
            self.heartbeats += 1
            self._outage.recovered()
            # Reports paused by a NotFound resume once the lease is known to be good.
            self._reporter.connect(self.registry, lease.lease_id)
            if self._on_heartbeat is not None:
                self._on_heartbeat(telemetry)

    async def deregister(self) -> bool:
        """Leave (shutdown): bounded; any failure is logged and only costs the coordinator the TTL.

        Call after the loop was stopped. Returns whether the coordinator took it.
        """
        lease, self.lease = self.lease, None
        self.registered.clear()
        if lease is None:
            return False
        device_id = self._device().device_id
        try:
            await asyncio.wait_for(self.registry.deregister(device_id, lease.lease_id), DEREGISTER_BOUND_S)
        except (SynergyError, TimeoutError) as exc:
            self._log.warning("deregister_failed", error=str(exc) or type(exc).__name__)
            return False
        self._log.info("deregistered", lease=lease.lease_id)
        return True
