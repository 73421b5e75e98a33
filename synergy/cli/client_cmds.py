"""Client commands: ``synergy devices | apps | submit | plan | results | remove``.

Each prints a table for people, or JSON with ``--json`` (protobuf JSON mapping, field names
as in the .proto files: the SDK's dataclasses go through the wire converters for that).
Each takes ``--tls-dir DIR`` (env ``SYNERGY_TLS_DIR``; a client or admin certificate) for
mutual TLS with the coordinator, or ``--insecure`` for plain text.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from synergy.defaults import DEFAULT_COORDINATOR
from synergy.sdk import AppRequest, SynergyClient
from synergy.security.tls import add_tls_arguments, tls_from_args
from synergy.tables import format_apps, plan_placements, render_table
from synergy.types import DeviceSpec, JointPlan
from synergy.wire.convert import joint_plan_to_proto
from synergy.wire.reports import app_info_to_proto, device_info_to_proto, result_to_proto

__all__ = ["format_plan", "register"]


def _client_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str
) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument(
        "--coordinator",
        default=os.environ.get("SYNERGY_COORDINATOR", DEFAULT_COORDINATOR),
        help="coordinator host:port (env SYNERGY_COORDINATOR)",
    )
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    add_tls_arguments(p)
    return p


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _client_parser(sub, "devices", "list the devices of the virtual computing space").set_defaults(func=_devices)
    _client_parser(sub, "apps", "list apps with their state, rate and latency").set_defaults(func=_apps)

    s = _client_parser(sub, "submit", "submit an app: sensor type + model + output type (never a device)")
    s.add_argument("source", help="sensor type, e.g. camera (or 'client' for apps fed through Infer)")
    s.add_argument("model", help="zoo name (see `synergy profile --list`) or path to an .onnx file")
    s.add_argument("target", help="output type, e.g. display")
    s.add_argument("--name", default="", help="a name for people")
    s.add_argument("--source-device", default="", help="pin the source to this device")
    s.add_argument("--target-device", default="", help="pin the target to this device")
    s.add_argument("--max-rate", type=float, default=0.0, help="cap the app's frames per second")
    s.add_argument(
        "--min-rate",
        type=float,
        default=0.0,
        help="frames per second the app needs at least; it waits, with the reason, until a plan gives it that",
    )
    s.add_argument(
        "--weight", type=float, default=1.0, help="priority in the default objective (weighted sum of rates; default 1)"
    )
    s.add_argument(
        "--every-frame",
        action="store_true",
        help="process every captured frame, queueing behind a bottleneck (default: skip frames the pipeline "
        "has no room for, so results stay fresh)",
    )
    s.set_defaults(func=_submit)

    r = _client_parser(sub, "remove", "remove an app")
    r.add_argument("app_id")
    r.set_defaults(func=_remove)

    w = _client_parser(sub, "results", "stream results of apps (all apps when none is named)")
    w.add_argument("app_ids", nargs="*")
    w.add_argument("--count", type=int, default=0, help="stop after this many results (0: until Ctrl-C)")
    w.set_defaults(func=_results)


def add_live_plan_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--coordinator",
        default=os.environ.get("SYNERGY_COORDINATOR", DEFAULT_COORDINATOR),
        help="coordinator host:port (env SYNERGY_COORDINATOR); used without --space",
    )
    add_tls_arguments(p)


def run_live_plan(args: argparse.Namespace) -> int:
    return _run(args, _plan)


def _run(args: argparse.Namespace, body: Callable[[SynergyClient, argparse.Namespace], Awaitable[int]]) -> int:
    tls = tls_from_args(args)  # loaded when the command runs, before any event loop

    async def main() -> int:
        async with SynergyClient(args.coordinator, tls=tls) as client:
            return await body(client, args)

    return asyncio.run(main())


def _dump(messages: list[Message] | Message) -> str:
    if isinstance(messages, list):
        return json.dumps([MessageToDict(m, preserving_proto_field_name=True) for m in messages], indent=2)
    return json.dumps(MessageToDict(messages, preserving_proto_field_name=True), indent=2)


async def _devices_body(client: SynergyClient, args: argparse.Namespace) -> int:
    devices = await client.list_devices()
    if args.json:
        print(_dump([device_info_to_proto(d) for d in devices]))
        return 0
    rows = [
        [
            d.spec.device_id,
            d.spec.kind,
            d.state.value,
            d.spec.board.accelerator,
            ", ".join(f"{s.type}@{s.rate_hz:g}Hz" for s in d.spec.sensors) or "-",
            ", ".join(o.type for o in d.spec.outputs) or "-",
            _link_cell(d.spec),
            d.spec.address,
            f"quarantined: {d.quarantine_reason}" if d.quarantine_reason else "",
        ]
        for d in devices
    ]
    print(render_table(["device", "kind", "state", "board", "sensors", "outputs", "link", "address", "note"], rows))
    return 0


def _link_cell(device: DeviceSpec) -> str:
    port = device.board_port
    if port is None:
        return device.link.name
    # What the agent measured on the serial port: the planner caps the device's link there.
    return f"{device.link.name}; board on {port.path} at {port.measured_payload_bytes_per_s / 1000:.1f} kB/s"


def _devices(args: argparse.Namespace) -> int:
    return _run(args, _devices_body)


async def _apps_body(client: SynergyClient, args: argparse.Namespace) -> int:
    apps = await client.list_apps()
    if args.json:
        print(_dump([app_info_to_proto(a) for a in apps]))
        return 0
    plan = await client.get_plan()
    print(format_apps(apps, plan_placements(plan)))
    return 0


def _apps(args: argparse.Namespace) -> int:
    return _run(args, _apps_body)


async def _submit_body(client: SynergyClient, args: argparse.Namespace) -> int:
    app = await client.submit_app(
        AppRequest(
            source_type=args.source,
            model=args.model,
            target_type=args.target,
            name=args.name,
            source_device=args.source_device,
            target_device=args.target_device,
            max_rate_hz=args.max_rate,
            min_rate_hz=args.min_rate,
            weight=args.weight,
            every_frame=args.every_frame,
        )
    )
    if args.json:
        print(_dump(app_info_to_proto(app)))
    else:
        print(f"{app.app_id}  {app.state.value}" + (f"  ({app.reason})" if app.reason else ""))
    return 0


def _submit(args: argparse.Namespace) -> int:
    return _run(args, _submit_body)


async def _remove_body(client: SynergyClient, args: argparse.Namespace) -> int:
    await client.remove_app(args.app_id)
    if args.json:
        print(json.dumps({"removed": args.app_id}))
    else:
        print(f"removed {args.app_id}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    return _run(args, _remove_body)


def format_plan(plan: JointPlan) -> str:
    lines = [
        f"epoch {plan.epoch}  method {plan.method or '-'}  predicted {plan.system_throughput:.2f} frames/s"
        + (f"  bottleneck {plan.bottleneck}" if plan.bottleneck else "")
    ]
    rows = []
    for p in plan.plans:
        for i, s in enumerate(p.stages):
            rows.append(
                [
                    p.app_id if i == 0 else "",
                    p.source_device if i == 0 else "",
                    s.device_id,
                    f"{s.first_layer}-{s.last_layer}",
                    p.target_device if i == len(p.stages) - 1 else "",
                    round(p.predicted_rate_hz, 2) if i == 0 else "",
                    round(p.predicted_latency_s * 1000, 1) if i == 0 else "",
                ]
            )
    lines.append(render_table(["app", "source", "device", "layers", "target", "pred_fps", "pred_ms"], rows))
    for app_id, reason in plan.unplaced.items():
        lines.append(f"waiting: {app_id}: {reason}")
    for device_id, reason in plan.quarantined.items():
        lines.append(f"quarantined (left out of planning): {device_id}: {reason}")
    return "\n".join(lines)


async def _plan(client: SynergyClient, args: argparse.Namespace) -> int:
    plan = await client.get_plan()
    print(_dump(joint_plan_to_proto(plan)) if args.json else format_plan(plan))
    return 0


async def _results_body(client: SynergyClient, args: argparse.Namespace) -> int:
    seen = 0
    async for result in client.watch_results(args.app_ids):
        if args.json:
            print(json.dumps(MessageToDict(result_to_proto(result), preserving_proto_field_name=True)), flush=True)
        elif result.dropped:
            print(f"{result.app_id} seq {result.seq}: DROPPED at {result.device_id}: {result.drop_reason}", flush=True)
        else:
            latency = 1000 * (result.done_time_unix - result.capture_time_unix)
            print(
                f"{result.app_id} seq {result.seq} epoch {result.epoch} -> {result.output_type}@{result.device_id}: "
                f"{result.summary}  ({latency:.1f} ms)",
                flush=True,
            )
        seen += 1
        if args.count and seen >= args.count:
            break
    return 0


def _results(args: argparse.Namespace) -> int:
    try:
        return _run(args, _results_body)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 0
