"""``synergy demo``: coordinator + four emulated wearables + three apps, with a live view."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from synergy.defaults import DEFAULT_PLANNER
from synergy.demo import DemoOptions, run_demo

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="run a coordinator and 4 emulated devices on this machine with 3 apps (no broker, no Docker)",
        description=(
            "Start a coordinator and four emulated wearables (earbud, glasses, watch, ring) as separate "
            "processes on 127.0.0.1, submit three zoo apps and show a live view of the devices, where each app "
            "runs, its frames per second, latency and bottleneck (as `synergy top`: redrawn in place on a "
            "terminal, one snapshot per refresh otherwise). Stops cleanly after --duration seconds or Ctrl-C."
        ),
    )
    p.add_argument("--duration", type=float, default=20.0, help="seconds to run (default 20)")
    p.add_argument("--refresh", type=float, default=2.0, help="seconds between refreshes of the live view (default 2)")
    p.add_argument("--planner", default=DEFAULT_PLANNER, help="planning method (see `synergy plan --list-methods`)")
    p.add_argument("--log-dir", type=Path, default=Path("demo-logs"), help="where the daemons' logs go")
    p.add_argument("--mqtt", default="", help="also publish events to this MQTT broker URL")
    security = p.add_mutually_exclusive_group()
    security.add_argument(
        "--tls",
        dest="tls",
        action="store_true",
        help="mutual TLS on every link, with certificates from a throwaway CA in a temporary directory "
        "(the default)",
    )
    security.add_argument(
        "--insecure", dest="tls", action="store_false", help="plain-text gRPC between the processes"
    )
    p.set_defaults(func=_run, tls=True)


def _run(args: argparse.Namespace) -> int:
    options = DemoOptions(
        duration_s=args.duration,
        refresh_s=args.refresh,
        planner=args.planner,
        log_dir=args.log_dir,
        mqtt_url=args.mqtt,
        tls=args.tls,
    )
    return asyncio.run(run_demo(options))
