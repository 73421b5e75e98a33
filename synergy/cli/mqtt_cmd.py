"""``synergy mqtt-config``: a mosquitto configuration for the event plane, TLS only, with an ACL.

    synergy mqtt-config --ca-dir CA --out broker-conf [--port 8883] [--bind 127.0.0.1]
                        [--prefix synergy] [--coordinator-name coordinator ...] [--reader NAME ...]
    mosquitto -c broker-conf/mosquitto.conf

Writes the configuration, the ACL, a revocation list and the broker's certificate (see
:mod:`synergy.security.mqtt`) and prints what it wrote and the command that runs the broker.
"""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from synergy.defaults import DEFAULT_MQTT_PREFIX
from synergy.security.mqtt import BROKER_ROLE, DEFAULT_TLS_PORT, broker_files, write_mosquitto_config

__all__ = ["register", "run"]

DEFAULT_COORDINATOR_NAME = "coordinator"
DEFAULT_SERVER_NAME = "broker"
DEFAULT_BIND = "127.0.0.1"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "mqtt-config",
        help="write a mosquitto configuration: TLS only, client certificates from our CA, an ACL",
        description=(
            "Write OUT/mosquitto.conf (one TLS listener that requires a client certificate signed by the "
            "CA and takes its CN as the username; no anonymous or plain-text access), OUT/acl (each agent "
            "publishes only under PREFIX/devices/<its device id>/; only the coordinators publish the plan, "
            "results and their own state; readers read PREFIX/#), OUT/crl.pem (the CA's revoked serials) "
            f"and the broker's certificate in OUT/broker (role {BROKER_ROLE}, name --server-name). Re-run "
            "after revoking a certificate, then restart mosquitto."
        ),
    )
    p.add_argument(
        "--ca-dir", type=Path, required=True, metavar="DIR", help="the CA directory (`synergy ca init --dir`)"
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="directory to write the broker's files into")
    p.add_argument("--port", type=int, default=DEFAULT_TLS_PORT, help=f"TLS port (default {DEFAULT_TLS_PORT})")
    p.add_argument("--bind", default=DEFAULT_BIND, help=f"address to listen on (default {DEFAULT_BIND})")
    p.add_argument(
        "--prefix",
        default=DEFAULT_MQTT_PREFIX,
        help=f"topic prefix, as the daemons' --mqtt-prefix (default {DEFAULT_MQTT_PREFIX})",
    )
    p.add_argument(
        "--coordinator-name",
        dest="coordinator_names",
        action="extend",
        nargs="+",
        metavar="NAME",
        help=f"certificate name(s) allowed to publish the plan and results (default {DEFAULT_COORDINATOR_NAME})",
    )
    p.add_argument(
        "--reader",
        dest="reader_names",
        action="extend",
        nargs="+",
        default=[],
        metavar="NAME",
        help="certificate name(s) of clients or admins allowed to read PREFIX/# (default: none)",
    )
    p.add_argument(
        "--server-name",
        default=DEFAULT_SERVER_NAME,
        metavar="NAME",
        help=f"name in the broker's own certificate (default {DEFAULT_SERVER_NAME})",
    )
    p.add_argument(
        "--san",
        dest="sans",
        action="append",
        default=[],
        metavar="HOST",
        help="extra host name or IP the clients dial the broker by (localhost, 127.0.0.1 and --bind always)",
    )
    p.add_argument(
        "--user",
        default=None,
        help="account mosquitto switches to when started as root (default: mosquitto's own, `mosquitto`)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    coordinators = args.coordinator_names or [DEFAULT_COORDINATOR_NAME]
    config = write_mosquitto_config(
        args.out,
        ca_dir=args.ca_dir,
        port=args.port,
        bind=args.bind,
        prefix=args.prefix,
        coordinator_names=coordinators,
        reader_names=args.reader_names,
        server_name=args.server_name,
        sans=args.sans,
        run_as_user=args.user,
    )
    files = broker_files(args.out)
    print(f"wrote {files.config}")
    print(
        f"wrote {files.acl}  (coordinators: {', '.join(coordinators)}; readers: {', '.join(args.reader_names) or '-'})"
    )
    print(f"wrote {files.crl}  (revoked certificates)")
    print(f"wrote {files.cert.parent}/{{cert.pem,key.pem,ca.pem}}  ({BROKER_ROLE}:{args.server_name})")
    print()
    print("run the broker with:")
    print(f"  mosquitto -c {shlex.quote(str(config))}")
    if args.user is None and hasattr(os, "geteuid") and os.geteuid() == 0:
        print(
            f"(started as root, mosquitto reads these files as the user `mosquitto`: make {files.config.parent} "
            "readable by it, e.g. chown -R mosquitto:mosquitto, or pass --user)"
        )
    host = args.bind if args.bind not in ("0.0.0.0", "::") else "HOST"
    print("then point the daemons at it; each connects with the certificate of its own --tls-dir:")
    print(f"  --mqtt mqtts://{host}:{args.port} --tls-dir DIR")
    return 0
