"""``synergy health [HOST:PORT]``: ask a daemon's standard gRPC health service whether it serves.

    synergy health 127.0.0.1:50051 --tls-dir tls/alice     # a coordinator, from a client
    python -m synergy.cli.health_cmd                         # what the image's HEALTHCHECK runs

Every Synergy daemon serves ``grpc.health.v1.Health`` (see :mod:`synergy.wire.server`). This
calls its ``Check`` for the whole server (service ``""``, or ``--service NAME``) and exits 0
when the answer is SERVING, 1 otherwise (not serving, unreachable, TLS refused, timed out):
the convention of Docker's ``HEALTHCHECK`` and of grpc-health-probe.

The address defaults to ``SYNERGY_HEALTH_ADDRESS`` (else ``127.0.0.1:50051``) and the TLS
directory to ``SYNERGY_TLS_DIR``, so a container states them once in its environment.

A container runs this every few seconds, so it stays light: run as ``python -m`` it imports
grpc and the health stubs only (about 0.2 s of CPU instead of the full CLI's 1 s), and it
reads the TLS directory's three files itself instead of loading them through
:class:`~synergy.security.tls.TlsConfig` and its certificate checks — a bad certificate
still fails here, in the handshake, which is what a probe must report. The call itself is
:func:`synergy.wire.health_probe.check` (protobuf stays at the edge).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["DEFAULT_ADDRESS", "EXIT_UNHEALTHY", "add_arguments", "check", "main", "register", "run"]

DEFAULT_ADDRESS = "127.0.0.1:50051"
#: Docker counts any status but 0 as a failed probe; 1 is the documented one.
EXIT_UNHEALTHY = 1
_TLS_FILES = ("ca.pem", "cert.pem", "key.pem")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "address",
        nargs="?",
        default=os.environ.get("SYNERGY_HEALTH_ADDRESS", DEFAULT_ADDRESS),
        help="HOST:PORT of the daemon (env SYNERGY_HEALTH_ADDRESS; default %(default)s)",
    )
    tls = p.add_mutually_exclusive_group()
    tls.add_argument(
        "--tls-dir",
        type=Path,
        default=os.environ.get("SYNERGY_TLS_DIR") or None,
        help="directory with ca.pem, cert.pem and key.pem of any identity of the daemon's CA (env SYNERGY_TLS_DIR)",
    )
    tls.add_argument("--insecure", action="store_true", help="plain text, for a daemon run with --insecure")
    p.add_argument("--service", default="", help="a service name to check (default: the whole server)")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer (default %(default)s)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "health",
        help="ask a daemon's gRPC health service whether it serves (exit 0) or not (exit 1)",
        description=(
            "Call grpc.health.v1.Health/Check on a coordinator or agent. Exit 0 when it answers SERVING, 1 "
            "otherwise (unreachable, TLS refused, timed out, not serving). What the images' HEALTHCHECK runs."
        ),
    )
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ok, text = check(args.address, args.tls_dir, insecure=args.insecure, service=args.service, timeout_s=args.timeout)
    print(f"{args.address}: {text}", file=sys.stdout if ok else sys.stderr)
    return 0 if ok else EXIT_UNHEALTHY


def check(
    address: str, tls_dir: Path | None, *, insecure: bool = False, service: str = "", timeout_s: float = 3.0
) -> tuple[bool, str]:
    """(serving?, what was seen): one Check call, synchronous (no event loop to start)."""
    # Imported here: `synergy --help` and the other commands need none of it.
    from synergy.wire.health_probe import check as call_check

    pem: tuple[bytes, bytes, bytes] | None = None
    if not insecure:
        if tls_dir is None:
            return False, "no TLS directory: pass --tls-dir DIR (or set SYNERGY_TLS_DIR), or --insecure"
        try:
            ca, cert, key = (Path(tls_dir, name).read_bytes() for name in _TLS_FILES)
        except OSError as exc:
            return False, f"cannot read the TLS directory {tls_dir}: {exc.strerror or exc} ({exc.filename})"
        pem = (ca, cert, key)
    return call_check(address, pem, service=service, timeout_s=timeout_s)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="synergy health", description="Check a Synergy daemon's gRPC health.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
