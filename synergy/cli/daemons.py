"""``synergy coordinator`` and ``synergy agent``: the two daemons.

Both take ``--tls-dir DIR`` (env ``SYNERGY_TLS_DIR``) for mutual TLS on every link they serve
or open, or ``--insecure`` for plain text; the directory's certificate must name the daemon:
``coordinator:NAME`` for the coordinator, ``agent:DEVICE_ID`` for an agent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from dataclasses import replace
from pathlib import Path

from synergy.addresses import coordinator_target
from synergy.defaults import DEFAULT_COORDINATOR, DEFAULT_MQTT_PREFIX, DEFAULT_PLANNER
from synergy.devices import DEVICE_PRESETS, load_device_file, parse_link, parse_sensor, preset_device
from synergy.errors import FailedPrecondition, InvalidArgument
from synergy.hardware.boards import load_board
from synergy.planning.objectives import DEFAULT_OBJECTIVE, OBJECTIVES
from synergy.security.tls import TlsConfig, add_tls_arguments, tls_from_args
from synergy.types import DeviceSpec, OutputSpec

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    env = os.environ.get
    c = sub.add_parser(
        "coordinator",
        help="run the coordinator (virtual computing space + orchestrator)",
        description="Hold the virtual computing space, plan apps across devices and deploy them to agents.",
    )
    c.add_argument("--bind", default=env("SYNERGY_BIND", DEFAULT_COORDINATOR), help="host:port to serve gRPC on")
    c.add_argument("--lease-ttl", type=float, default=5.0, help="seconds without heartbeat before a device is gone")
    c.add_argument("--heartbeat", type=float, default=1.0, help="heartbeat period agents are told to use (s)")
    c.add_argument(
        "--planner",
        default=env("SYNERGY_PLANNER", DEFAULT_PLANNER),
        help="planning method (see `synergy plan --list-methods`)",
    )
    c.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default=env("SYNERGY_OBJECTIVE", DEFAULT_OBJECTIVE),
        help="what the planner maximises: throughput (default; no app below half its fair rate), fair "
        "(max-min), latency (worst app latency) or energy (power at the required rates)",
    )
    c.add_argument("--mqtt", default=env("SYNERGY_MQTT", ""), help="MQTT broker URL, e.g. mqtt://127.0.0.1:1883")
    c.add_argument("--mqtt-prefix", default=DEFAULT_MQTT_PREFIX, help="MQTT topic prefix")
    state = c.add_mutually_exclusive_group()
    state.add_argument(
        "--state-dir",
        type=Path,
        default=Path(env("SYNERGY_STATE_DIR") or default_state_dir()),
        help="directory where apps, devices and the plan survive restarts; one coordinator at a time "
        "(env SYNERGY_STATE_DIR; default: %(default)s)",
    )
    state.add_argument(
        "--ephemeral",
        action="store_true",
        help="keep no state: a restart forgets every app (for throwaway clusters)",
    )
    c.add_argument(
        "--no-calibration",
        action="store_true",
        help="do not re-plan when measured stage times drift from the cost model",
    )
    c.add_argument(
        "--http-bind",
        default=env("SYNERGY_HTTP_BIND", ""),
        metavar="HOST:PORT",
        help="serve the read-only web dashboard on HOST:PORT (plain HTTP; ':PORT' is 127.0.0.1, port 0 any "
        "free one, logged as dashboard_listening); keep it on localhost or behind a proxy "
        "(env SYNERGY_HTTP_BIND; default: no dashboard; docs/dashboard.md)",
    )
    _add_metrics_argument(c)
    add_tls_arguments(c)
    c.set_defaults(func=_run_coordinator)

    a = sub.add_parser(
        "agent",
        help="run an agent for one (emulated) device",
        description="Represent one device: register it, run the partitions it is given, stream frames to peers.",
    )
    a.add_argument(
        "--coordinator", default=env("SYNERGY_COORDINATOR", DEFAULT_COORDINATOR), help="coordinator host:port"
    )
    a.add_argument("--preset", choices=sorted(DEVICE_PRESETS), help="start from a typical wearable")
    a.add_argument("--device-file", type=Path, help="YAML file describing the device (space-file device format)")
    a.add_argument("--device-id", default=env("SYNERGY_DEVICE_ID", ""), help="stable id of this device")
    a.add_argument(
        "--board",
        help="board preset (max78000, max78002) or board file; or serial:PATH[@BAUD] for a real board "
        "(or `synergy board-sim`) on a serial port, whose profile is then the device's (--preset, "
        "--device-file; default max78000)",
    )
    a.add_argument("--sensor", action="append", default=[], help="TYPE:RATE_HZ[:RECORDING.npy]; repeatable")
    a.add_argument("--output", action="append", default=[], help="output type, e.g. display; repeatable")
    a.add_argument(
        "--link", help="link preset (ble_10k ble_24k ble_48k ble5_2m uart_115200 uart_921600 usb_hs loopback)"
    )
    a.add_argument("--bind", default=env("SYNERGY_AGENT_BIND", "127.0.0.1:0"), help="host:port for this agent's server")
    a.add_argument("--advertise", default=env("SYNERGY_ADVERTISE", ""), help="address peers use to reach this agent")
    a.add_argument("--no-chip-timing", action="store_true", help="do not wait the modelled chip time per partition")
    a.add_argument("--no-link-shaping", action="store_true", help="do not shape transfers to the link's bandwidth")
    a.add_argument(
        "--slowdown",
        type=float,
        default=1.0,
        help="emulate a board this many times slower than its profile (tests online calibration)",
    )
    a.add_argument("--mqtt", default=env("SYNERGY_MQTT", ""), help="MQTT broker URL, e.g. mqtt://127.0.0.1:1883")
    a.add_argument("--mqtt-prefix", default=DEFAULT_MQTT_PREFIX, help="MQTT topic prefix")
    _add_metrics_argument(a)
    add_tls_arguments(a)
    a.set_defaults(func=_run_agent)


def _run_coordinator(args: argparse.Namespace) -> int:
    from coordinator.daemon import serve_coordinator
    from coordinator.service import CoordinatorConfig

    tls = tls_from_args(args)
    if tls is not None:
        _check_identity(tls, "coordinator", None)
    config = CoordinatorConfig(
        bind=args.bind,
        lease_ttl_s=args.lease_ttl,
        heartbeat_s=args.heartbeat,
        planner=args.planner,
        objective=args.objective,
        mqtt_url=args.mqtt,
        mqtt_prefix=args.mqtt_prefix,
        calibrate=not args.no_calibration,
        state_dir=None if args.ephemeral else args.state_dir,
        tls=tls,
        http_bind=args.http_bind,
        metrics_bind=args.metrics_bind,
    )
    return asyncio.run(serve_coordinator(config))


def _add_metrics_argument(parser: argparse.ArgumentParser) -> None:
    """``--metrics-bind``, the same for both daemons (docs/metrics.md)."""
    parser.add_argument(
        "--metrics-bind",
        default=os.environ.get("SYNERGY_METRICS_BIND", ""),
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (plain HTTP, no authentication: bind it to "
        "127.0.0.1 or a private network; ':PORT' is 127.0.0.1, port 0 any free one, logged as "
        "metrics_listening; env SYNERGY_METRICS_BIND; default: none; docs/metrics.md)",
    )


def _check_identity(tls: TlsConfig, role: str, name: str | None) -> None:
    """A daemon must run under a certificate of its own role (and, for an agent, its device id)."""
    identity = tls.identity
    if identity.role != role or (name is not None and identity.name != name):
        wanted = f"{role}:{name}" if name is not None else f"{role}:NAME"
        flag = f"--role {role} --name {name if name is not None else 'NAME'}"
        raise FailedPrecondition(
            f"the TLS certificate names {identity}, but this daemon is {wanted}: "
            f"issue one with `synergy ca issue --dir CA_DIR {flag} --out DIR` and pass --tls-dir DIR"
        )


def default_state_dir() -> Path:
    """Where a coordinator keeps its state by default ($XDG_STATE_HOME/synergy/coordinator)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "synergy" / "coordinator"


def device_from_args(args: argparse.Namespace) -> DeviceSpec:
    """Preset or device file first, then each flag overrides its part."""
    if args.device_file:
        device = load_device_file(args.device_file)
    elif args.preset:
        device = preset_device(args.preset, args.device_id)
    else:
        if not args.device_id:
            raise InvalidArgument("name the device: --device-id ID (or use --preset / --device-file)")
        profile = "max78000" if not args.board or args.board.startswith("serial:") else args.board
        device = DeviceSpec(device_id=args.device_id, board=load_board(profile))
    if args.device_id:
        device = replace(device, device_id=args.device_id)
    if args.board and not args.board.startswith("serial:"):
        device = replace(device, board=load_board(args.board))
    if args.sensor:
        device = replace(device, sensors=tuple(parse_sensor(s) for s in args.sensor))
    if args.output:
        device = replace(device, outputs=tuple(OutputSpec(o) for o in args.output))
    if args.link:
        device = replace(device, link=parse_link(args.link))
    return device


def _run_agent(args: argparse.Namespace) -> int:
    from agent.serial_board import parse_serial_board
    from agent.service import AgentConfig, serve_agent

    device = device_from_args(args)
    serial = parse_serial_board(args.board or "")
    tls = tls_from_args(args)
    if tls is not None:
        _check_identity(tls, "agent", device.device_id)
    config = AgentConfig(
        device=device,
        coordinator=coordinator_target(args.coordinator),
        bind=args.bind,
        advertise=args.advertise,
        chip_timing=not args.no_chip_timing,
        link_shaping=not args.no_link_shaping,
        slowdown=args.slowdown,
        mqtt_url=args.mqtt,
        mqtt_prefix=args.mqtt_prefix,
        tls=tls,
        serial=serial,
        metrics_bind=args.metrics_bind,
    )
    asyncio.run(serve_agent(config))
    return 0
