"""A whole Synergy cluster on 127.0.0.1 as real processes: one coordinator, many agents.

Used by ``synergy demo`` and by the integration tests (one line to start a cluster). Every
child is started in its own process group, its stdout is read for the "listening" line that
carries its bound address, its logs go to a file, and :meth:`LocalCluster.stop` ends all of
them — SIGTERM first, SIGKILL after a grace period — so nothing is left behind.

By default (``tls=True``) the cluster runs on mutual TLS with a throwaway CA in a temporary directory:
a certificate ``coordinator:coordinator`` for the coordinator, ``agent:DEVICE_ID`` for each
agent, ``client:tests`` for :meth:`LocalCluster.client` and ``admin:admin`` for
:meth:`LocalCluster.channel` (unless given another role and name); :meth:`LocalCluster.tls_dir`
issues more (another client, a stranger's identity) on demand. With ``tls=False`` every daemon
is started with ``--insecure``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc

from synergy.devices import load_device_file
from synergy.errors import FailedPrecondition, SynergyError, Unavailable
from synergy.sdk import SynergyClient
from synergy.security.ca import init_ca, issue
from synergy.security.tls import TlsConfig
from synergy.types import DeviceState
from synergy.wire.channels import open_channel

__all__ = ["AgentProcessSpec", "LocalCluster", "ManagedProcess", "agent_device_id", "spawn_daemon", "stop_daemon"]

#: Seconds a daemon may take to start listening (imports of onnxruntime dominate).
START_TIMEOUT_S = 60.0
#: Seconds between SIGTERM and SIGKILL.
STOP_GRACE_S = 10.0
#: Flags that already choose how a daemon speaks gRPC (the cluster then adds none).
_TLS_FLAGS = ("--tls-dir", "--insecure")
#: Identities of the cluster's own clients.
CLIENT_NAME = "tests"
ADMIN_NAME = "admin"


@dataclass(frozen=True)
class AgentProcessSpec:
    """How to start one agent: ``synergy agent`` flags (e.g. ``["--preset", "glasses"]``)."""

    name: str
    args: tuple[str, ...]


@dataclass
class ManagedProcess:
    name: str
    process: asyncio.subprocess.Process
    address: str
    log_path: Path
    _drain: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.process.returncode is None


def _flag_value(args: Sequence[str], flag: str) -> str | None:
    """The last value given to ``flag`` ("--flag V" or "--flag=V") in ``args``."""
    value = None
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
    return value


def agent_device_id(spec: AgentProcessSpec, extra_args: Sequence[str] = ()) -> str:
    """The device id an agent started with ``extra_args + spec.args`` will have.

    ``--device-id``, else the device file's id, else the preset's name, else the spec's name.
    """
    args = [*extra_args, *spec.args]
    device_id = _flag_value(args, "--device-id")
    if device_id:
        return device_id
    device_file = _flag_value(args, "--device-file")
    if device_file:
        with contextlib.suppress(SynergyError, OSError):
            return load_device_file(Path(device_file)).device_id
    return _flag_value(args, "--preset") or spec.name


def _chooses_tls(args: Sequence[str]) -> bool:
    return any(arg == flag or arg.startswith(flag + "=") for arg in args for flag in _TLS_FLAGS)


async def spawn_daemon(
    name: str, args: Sequence[str], log_dir: Path, env: dict[str, str], prefix: Sequence[str] = ()
) -> ManagedProcess:
    """Start a daemon (``prefix`` runs it through another command, e.g. ``ip netns exec NS``)
    and wait until it says where it listens."""
    log_path = log_dir / f"{name}.log"
    log_file = log_path.open("ab")
    try:
        process = await asyncio.create_subprocess_exec(
            *prefix,
            sys.executable,
            "-m",
            # The daemons alone, not the whole CLI: ~8 MB less per process (many agents per host).
            "synergy.cli.daemon_main",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=log_file,
            env=env,
            start_new_session=True,
        )
    finally:
        log_file.close()
    assert process.stdout is not None
    try:
        address = await asyncio.wait_for(_read_address(process.stdout), START_TIMEOUT_S)
    except (TimeoutError, EOFError) as exc:
        # Through its process group, not process.kill(): Popen.kill() would reap a child that
        # already exited behind asyncio's back, which then reports exit 255, not the real status.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        tail = log_path.read_text(errors="replace")[-2000:]
        raise Unavailable(f"{name} did not start (exit {process.returncode}); log tail:\n{tail}") from exc
    managed = ManagedProcess(name, process, address, log_path)
    managed._drain = asyncio.ensure_future(_discard(process.stdout))
    return managed


async def stop_daemon(managed: ManagedProcess, sig: int = signal.SIGTERM) -> None:
    """``sig`` to the daemon's process group, SIGKILL after the grace; idempotent."""
    if managed.running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(managed.process.pid, sig)
        try:
            await asyncio.wait_for(managed.process.wait(), STOP_GRACE_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(managed.process.pid, signal.SIGKILL)
            await managed.process.wait()
    if managed._drain is not None:
        managed._drain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await managed._drain


async def _read_address(stream: asyncio.StreamReader) -> str:
    while True:
        line = await stream.readline()
        if not line:
            raise EOFError("process exited before listening")
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if isinstance(event, dict) and event.get("event") == "listening":
                return str(event["address"])


async def _discard(stream: asyncio.StreamReader) -> None:
    # Keep reading so a chatty child never blocks on a full pipe.
    while await stream.read(65536):
        pass


class LocalCluster:
    """``async with LocalCluster(agents) as cluster:`` — a coordinator and agents on 127.0.0.1."""

    def __init__(
        self,
        agents: Sequence[AgentProcessSpec],
        *,
        log_dir: Path,
        coordinator_args: Sequence[str] = (),
        agent_args: Sequence[str] = (),
        log_level: str = "info",
        tls: bool = True,
    ) -> None:
        self.agent_specs = list(agents)
        self.log_dir = log_dir
        self.coordinator_args = list(coordinator_args)
        self.agent_args = list(agent_args)
        self.log_level = log_level
        self.tls = tls
        self.coordinator: ManagedProcess | None = None
        self.agents: dict[str, ManagedProcess] = {}
        self._env = {**os.environ, "SYNERGY_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"}
        # The coordinator keeps its state in a directory of this cluster's own unless told
        # where (or told to keep nothing): never in the user's, never shared between clusters.
        self._state: tempfile.TemporaryDirectory[str] | None = None
        if not {"--state-dir", "--ephemeral"} & set(self.coordinator_args):
            self._state = tempfile.TemporaryDirectory(prefix="synergy-state-")
            self.coordinator_args += ["--state-dir", self._state.name]
        #: The throwaway CA and the certificates issued from it (created on first use).
        self._pki: tempfile.TemporaryDirectory[str] | None = None
        self._tls_configs: dict[tuple[str, str], TlsConfig] = {}

    @property
    def address(self) -> str:
        if self.coordinator is None:
            raise Unavailable("the cluster is not started")
        return self.coordinator.address

    def client(self) -> SynergyClient:
        """An SDK client of the coordinator (identity ``client:tests`` with TLS)."""
        return SynergyClient(self.address, tls=self.tls_config("client", CLIENT_NAME) if self.tls else None)

    def channel(
        self,
        address: str,
        *,
        role: str = "admin",
        name: str = ADMIN_NAME,
        options: Sequence[tuple[str, Any]] | None = None,
    ) -> grpc.aio.Channel:
        """A raw gRPC channel to a daemon of this cluster, as ``role:name`` with TLS (``admin:admin``
        unless told; the servers authorize by it: agent control needs ``role="coordinator"``,
        RegistryService an agent named as the device).

        ``options`` replaces the standard channel options, as in :func:`~synergy.wire.channels.open_channel`.
        """
        return open_channel(address, self.tls_config(role, name) if self.tls else None, options=options)

    @property
    def ca_dir(self) -> Path:
        """The throwaway CA's directory (``ca.pem``, ``ca.key``); only with ``tls=True``."""
        if not self.tls:
            raise FailedPrecondition("this cluster runs without TLS: start it with LocalCluster(..., tls=True)")
        if self._pki is None:
            self._pki = tempfile.TemporaryDirectory(prefix="synergy-pki-")
            init_ca(Path(self._pki.name) / "ca")
        return Path(self._pki.name) / "ca"

    def tls_dir(self, role: str, name: str) -> Path:
        """A ``--tls-dir`` for ``role:name`` issued by the cluster's CA (issued on first use)."""
        directory = self.ca_dir.parent / "certs" / f"{role}-{name}"
        if not (directory / "cert.pem").is_file():
            issue(self.ca_dir, role=role, name=name, out_dir=directory)
        return directory

    def tls_config(self, role: str, name: str) -> TlsConfig:
        """The loaded TLS configuration of ``role:name`` (see :meth:`tls_dir`)."""
        key = (role, name)
        if key not in self._tls_configs:
            self._tls_configs[key] = TlsConfig.load(self.tls_dir(role, name))
        return self._tls_configs[key]

    def _tls_args(self, role: str, name: str, given: Sequence[str]) -> list[str]:
        if _chooses_tls(given):
            return []
        return ["--tls-dir", str(self.tls_dir(role, name))] if self.tls else ["--insecure"]

    async def __aenter__(self) -> LocalCluster:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.coordinator = await spawn_daemon(
            "coordinator",
            [
                "--log-level",
                self.log_level,
                "coordinator",
                "--bind",
                "127.0.0.1:0",
                *self.coordinator_args,
                *self._coordinator_tls_args(),
            ],
            self.log_dir,
            self._env,
        )
        await asyncio.gather(*(self.start_agent(spec) for spec in self.agent_specs))

    async def restart_coordinator(self, sig: int = signal.SIGTERM) -> None:
        """Stop the coordinator and start it again on the same address (agents must rejoin).

        ``sig=signal.SIGKILL`` is a crash: no drain, no goodbye, state only as last written.
        """
        if self.coordinator is None:
            raise Unavailable("the cluster is not started")
        address = self.coordinator.address
        await self._stop(self.coordinator, sig)
        self.coordinator = await spawn_daemon(
            "coordinator",
            [
                "--log-level",
                self.log_level,
                "coordinator",
                *self.coordinator_args,
                *self._coordinator_tls_args(),
                "--bind",
                address,
            ],
            self.log_dir,
            self._env,
        )

    def _coordinator_tls_args(self) -> list[str]:
        return self._tls_args("coordinator", "coordinator", self.coordinator_args)

    async def start_agent(self, spec: AgentProcessSpec) -> ManagedProcess:
        given = [*self.agent_args, *spec.args]
        tls_args = self._tls_args("agent", agent_device_id(spec, self.agent_args), given)
        args = ["--log-level", self.log_level, "agent", "--coordinator", self.address, *given, *tls_args]
        managed = await spawn_daemon(spec.name, args, self.log_dir, self._env)
        self.agents[spec.name] = managed
        return managed

    async def wait_for_devices(self, count: int, timeout_s: float = 30.0) -> None:
        """Until ``count`` devices are online at the coordinator."""
        async with self.client() as client:
            deadline = asyncio.get_running_loop().time() + timeout_s
            while True:
                devices = await client.list_devices()
                online = [d for d in devices if d.state is DeviceState.ONLINE]
                if len(online) >= count:
                    return
                if asyncio.get_running_loop().time() > deadline:
                    raise Unavailable(f"only {len(online)} of {count} devices registered within {timeout_s}s")
                await asyncio.sleep(0.1)

    async def kill_agent(self, name: str, sig: int = signal.SIGKILL) -> None:
        managed = self.agents[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(managed.process.pid, sig)
        await managed.process.wait()

    async def stop(self) -> None:
        """Stop agents, then the coordinator: SIGTERM, then SIGKILL after the grace. Idempotent."""
        await asyncio.gather(*(self._stop(p) for p in self.agents.values()))
        if self.coordinator is not None:
            await self._stop(self.coordinator)
        if self._state is not None:
            self._state.cleanup()
        if self._pki is not None:
            self._pki.cleanup()
            self._pki = None
            self._tls_configs.clear()

    async def _stop(self, managed: ManagedProcess, sig: int = signal.SIGTERM) -> None:
        await stop_daemon(managed, sig)
