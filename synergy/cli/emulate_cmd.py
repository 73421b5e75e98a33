"""``synergy emulate``: the devices of a space file, each in a network namespace of its own."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from synergy.defaults import DEFAULT_PLANNER

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "emulate",
        help="run every device of a space file in its own network namespace, links shaped by the kernel (root)",
        description=(
            "Multi-host emulation without Docker: a bridge, the coordinator in one network namespace and each "
            "device of SPACE in another, each device's link bandwidth applied to its interface with a token "
            "bucket (tc tbf; link latency is not emulated). Mutual TLS with a throwaway CA. Submits the apps "
            "of --apps, prints the apps table, then removes everything it made. Needs root and iproute2."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--space", type=Path, required=True, help="space file (docs/space-files.md)")
    p.add_argument("--apps", type=Path, help="apps file to submit (default: none)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds to run")
    p.add_argument("--refresh", type=float, default=2.0, help="seconds between tables")
    p.add_argument("--planner", default=DEFAULT_PLANNER, help="planning method")
    p.add_argument("--log-dir", type=Path, default=Path("emulate-logs"), help="where the daemons' logs go")
    p.add_argument("--subnet", default="10.213.0.0/24", help="private /24 for the emulated hosts")
    p.add_argument("--no-chip-timing", action="store_true", help="run partitions as fast as the host can")
    p.add_argument(
        "--client-tls-dir",
        type=Path,
        metavar="DIR",
        help="a new or empty directory for the run's client identity, the --tls-dir of `synergy` client "
        "commands while it runs (removed at the end; default: inside the throwaway CA's directory)",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from synergy.emulate import EmulateOptions, run_emulation

    options = EmulateOptions(
        space=args.space,
        apps=args.apps,
        duration_s=args.duration,
        refresh_s=args.refresh,
        planner=args.planner,
        log_dir=args.log_dir,
        subnet=args.subnet,
        chip_timing=not args.no_chip_timing,
        client_tls_dir=args.client_tls_dir,
    )
    return asyncio.run(run_emulation(options))
