"""``synergy emulate``: every device of a space file on a host of its own, with shaped links.

Multi-host behaviour on one machine without Docker (root needed): a
:class:`~synergy.netns.NamespaceNetwork` with the coordinator in one namespace and each device
of the space file in another, each device's link bandwidth applied to its interface by the
kernel (the agents' own shaping is off: the bytes really take the time of the link). Mutual
TLS on every link, with a throwaway CA whose certificates carry each host's address. The apps
of an apps file (optional) are submitted from the machine itself, through the bridge, as any
client would; the command prints the apps table until ``--duration`` or Ctrl-C, then stops
every process and removes every namespace and interface it made (also after an error).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from synergy.cluster import ManagedProcess, spawn_daemon, stop_daemon
from synergy.errors import InvalidArgument, Unavailable
from synergy.netns import NamespaceNetwork
from synergy.planning.space_files import load_apps, load_space
from synergy.sdk import AppRequest, SynergyClient
from synergy.security.ca import init_ca, issue
from synergy.security.tls import TlsConfig
from synergy.tables import format_apps, plan_placements
from synergy.types import DeviceState

__all__ = ["EmulateOptions", "Emulation", "run_emulation"]

COORDINATOR_PORT = 50051
AGENT_PORT = 7000
#: How long the devices get to register once started.
REGISTER_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class EmulateOptions:
    space: Path
    apps: Path | None = None
    duration_s: float = 30.0
    refresh_s: float = 2.0
    planner: str = "synergy"
    log_dir: Path = Path("emulate-logs")
    subnet: str = "10.213.0.0/24"
    #: Also emulate chip timing (the default); off: partitions run as fast as the host can.
    chip_timing: bool = True
    #: Where the client identity goes (a new or empty directory); None: inside the throwaway PKI.
    client_tls_dir: Path | None = None


@dataclass
class Emulation:
    """A running emulation: its network, processes and the client's identity."""

    network: NamespaceNetwork
    pki: Path
    #: The ``--tls-dir`` of ``synergy`` client commands during the run (``client:emulate``).
    client_tls_dir: Path
    coordinator: ManagedProcess | None = None
    agents: dict[str, ManagedProcess] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"{self.network.hosts['coordinator'].address}:{COORDINATOR_PORT}"

    def client(self, timeout_s: float = 30.0) -> SynergyClient:
        return SynergyClient(self.address, tls=TlsConfig.load(self.client_tls_dir), timeout_s=timeout_s)


def device_files(space: Path, out_dir: Path) -> dict[str, Path]:
    """One ``--device-file`` per device of ``space`` (board file paths made absolute)."""
    load_space(space)  # every entry checked, with errors naming the file and the field
    data = yaml.safe_load(space.read_text(encoding="utf-8"))
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for entry in data["devices"]:
        item = dict(entry)
        board = item.get("board")
        if isinstance(board, str) and (space.parent / board).is_file():
            item["board"] = str((space.parent / board).resolve())
        path = out_dir / f"{item['name']}.yaml"
        path.write_text(yaml.safe_dump(item), encoding="utf-8")
        files[str(item["name"])] = path
    return files


def _issue(pki: Path, role: str, name: str, address: str | None, out: str | Path) -> Path:
    directory = pki / out  # an absolute ``out`` stays as it is
    issue(pki / "ca", role=role, name=name, sans=[address] if address else [], out_dir=directory)
    return directory


def _check_client_tls_dir(directory: Path | None) -> None:
    # Issuing replaces cert.pem and key.pem, and the end of the run removes them: never do that
    # to a directory that holds someone's identity already.
    if directory is not None and directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise InvalidArgument(f"--client-tls-dir {directory} must be a new or empty directory")


async def start(options: EmulateOptions, say: Callable[[str], None]) -> Emulation:
    """The network, the CA, the coordinator and every device's agent, registered."""
    space = load_space(options.space)
    _check_client_tls_dir(options.client_tls_dir)
    run_id = secrets.token_hex(2)
    network = NamespaceNetwork(run_id, options.subnet)
    pki = Path(tempfile.mkdtemp(prefix="synergy-emulate-pki-"))
    client_dir = options.client_tls_dir.resolve() if options.client_tls_dir is not None else pki / "client"
    emulation = Emulation(network, pki, client_dir)
    try:
        # `ip` and `tc` commands: a second or so, off the event loop.
        await asyncio.to_thread(network.create)
        init_ca(pki / "ca")
        coordinator = await asyncio.to_thread(network.add_host, "coordinator")
        for device in space.devices:
            await asyncio.to_thread(network.add_host, device.device_id, device.link.bandwidth_bytes_per_s)
        say(
            f"network {network.prefix}: {len(network.hosts)} namespaces on bridge {network.bridge} "
            f"({network.gateway}/24), each device's link shaped in both directions"
        )
        _issue(pki, "client", "emulate", None, client_dir)
        files = device_files(options.space, pki / "devices")
        log_dir = options.log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "SYNERGY_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"}
        emulation.coordinator = await spawn_daemon(
            "coordinator",
            [
                "coordinator",
                "--bind",
                f"{coordinator.address}:{COORDINATOR_PORT}",
                "--ephemeral",
                "--planner",
                options.planner,
                "--tls-dir",
                str(_issue(pki, "coordinator", "coordinator", coordinator.address, "coordinator")),
            ],
            log_dir,
            env,
            prefix=network.exec_prefix("coordinator"),
        )
        for device in space.devices:
            host = network.hosts[device.device_id]
            address = f"{host.address}:{AGENT_PORT}"
            args = [
                "agent",
                "--device-file",
                str(files[device.device_id]),
                "--coordinator",
                emulation.address,
                "--bind",
                address,
                "--advertise",
                address,
                "--no-link-shaping",  # the kernel shapes this host's link
                "--tls-dir",
                str(_issue(pki, "agent", device.device_id, host.address, f"agent-{device.device_id}")),
            ]
            if not options.chip_timing:
                args.append("--no-chip-timing")
            emulation.agents[device.device_id] = await spawn_daemon(
                device.device_id, args, log_dir, env, prefix=network.exec_prefix(device.device_id)
            )
        await _wait_for_devices(emulation, len(space.devices))
        say(f"coordinator at {emulation.address}; {len(space.devices)} devices registered (logs in {log_dir}/)")
        say(f"client commands: synergy apps --coordinator {emulation.address} --tls-dir {client_dir}")
        return emulation
    except BaseException:
        await stop(emulation)
        raise


async def _wait_for_devices(emulation: Emulation, count: int) -> None:
    deadline = time.monotonic() + REGISTER_TIMEOUT_S
    async with emulation.client() as client:
        while True:
            with contextlib.suppress(Unavailable):
                devices = await client.list_devices()
                if sum(d.state is DeviceState.ONLINE for d in devices) >= count:
                    return
            if time.monotonic() > deadline:
                raise Unavailable(f"the devices did not all register within {REGISTER_TIMEOUT_S:g}s")
            await asyncio.sleep(0.25)


async def stop(emulation: Emulation) -> list[str]:
    """Stop every process, remove the network and the CA; what could not be removed."""
    processes = [*emulation.agents.values()]
    if emulation.coordinator is not None:
        processes.append(emulation.coordinator)
    await asyncio.gather(*(stop_daemon(p) for p in processes))
    problems = await asyncio.to_thread(emulation.network.teardown)
    for top in (emulation.client_tls_dir, emulation.pki):
        for path in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                path.rmdir() if path.is_dir() else path.unlink()
        with contextlib.suppress(OSError):
            top.rmdir()
    return problems


def app_requests(apps: Path) -> list[AppRequest]:
    return [
        AppRequest(
            e.spec.source_type,
            e.model_ref,
            e.spec.target_type,
            name=e.spec.name,
            source_device=e.spec.source_device,
            target_device=e.spec.target_device,
            max_rate_hz=e.spec.max_rate_hz,
            min_rate_hz=e.spec.min_rate_hz,
            weight=e.spec.weight,
        )
        for e in load_apps(apps)
    ]


async def run_emulation(options: EmulateOptions) -> int:
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_event.set)
    requests = app_requests(options.apps) if options.apps is not None else []
    emulation = await start(options, _say)
    try:
        async with emulation.client() as client:
            for request in requests:
                app = await client.submit_app(request)
                _say(f"submitted {request.name}: {request.source_type} -> {request.model} -> {request.target_type} "
                     f"({app.app_id}, {app.state.value})")  # fmt: skip
            deadline = time.monotonic() + options.duration_s
            while not stop_event.is_set() and time.monotonic() < deadline:
                plan = await client.get_plan()
                print(format_apps(await client.list_apps(), plan_placements(plan)), flush=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop_event.wait(), options.refresh_s)
    finally:
        problems = await stop(emulation)
        if problems:
            _say("could not remove: " + "; ".join(problems))
        else:
            _say(f"stopped every process and removed network {emulation.network.prefix}")
    return 0 if not problems else 1


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
