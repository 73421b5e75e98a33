"""One synchronous ``grpc.health.v1.Health/Check`` call: the transport of ``synergy health``.

It lives at the edge with the other protobuf users (``tests/unit/test_proto_edges.py``) and
imports grpc and the health stubs only: a container runs it every few seconds, so it must not
pull in the rest of Synergy (no event loop, no TLS checks beyond the handshake's own).
"""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["check"]


def check(
    address: str, pem: tuple[bytes, bytes, bytes] | None, *, service: str = "", timeout_s: float = 3.0
) -> tuple[bool, str]:
    """(SERVING?, the status name or the call's error) for ``service`` ("" = the whole server).

    ``pem`` is (CA, certificate, key) for mutual TLS; None for plain text.
    """
    if pem is None:
        channel = grpc.insecure_channel(address)
    else:
        ca, cert, key = pem
        credentials = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
        channel = grpc.secure_channel(address, credentials)
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError as exc:
            if isinstance(exc, grpc.Call):
                return False, f"{exc.code().name}: {exc.details()}"
            return False, f"ERROR: {exc}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    return answer.status == health_pb2.HealthCheckResponse.SERVING, status
