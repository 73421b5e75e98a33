"""Generic gRPC tooling works: reflection lists the services, health checks answer, and a
client built only from reflected descriptors (no generated code) can call the API."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from synergy.cluster import LocalCluster
from synergy.security.tls import channel_credentials
from tests.integration.conftest import GLASSES

pytestmark = pytest.mark.integration


def sync_channel(cluster: LocalCluster, address: str) -> grpc.Channel:
    """A blocking channel (what the reflection client needs), with the cluster's admin certificate."""
    return grpc.secure_channel(address, channel_credentials(cluster.tls_config("admin", "admin")))


async def test_reflection_health_and_a_reflected_call(log_dir: Path) -> None:
    async with LocalCluster((GLASSES,), log_dir=log_dir) as cluster:
        await cluster.wait_for_devices(1)
        for address, expected in (
            (cluster.address, {"synergy.v1.AppsService", "synergy.v1.RegistryService"}),
            (cluster.agents["glasses"].address, {"synergy.v1.AgentService"}),
        ):
            with sync_channel(cluster, address) as channel:
                database = ProtoReflectionDescriptorDatabase(channel)
                services = set(database.get_services())
                assert expected | {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= services
                health = health_pb2_grpc.HealthStub(channel)
                for service in ("", *expected):
                    answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
                    assert answer.status == health_pb2.HealthCheckResponse.SERVING

        with sync_channel(cluster, cluster.address) as channel:
            pool = DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
            method = pool.FindServiceByName("synergy.v1.AppsService").FindMethodByName("ListDevices")
            request_class = GetMessageClass(method.input_type)
            response_class = GetMessageClass(method.output_type)
            call = channel.unary_unary(
                "/synergy.v1.AppsService/ListDevices",
                request_serializer=request_class.SerializeToString,
                response_deserializer=response_class.FromString,
            )
            answer = call(request_class(), timeout=5)
            assert [d.capabilities.device_id for d in answer.devices] == ["glasses"]
