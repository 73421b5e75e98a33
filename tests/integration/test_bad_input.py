"""Every bad input gets a fitting status code, a message naming the constraint, and changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import numpy as np
import onnx
import pytest
import pytest_asyncio
from onnx import TensorProto, helper, numpy_helper

from synergy.cluster import LocalCluster
from synergy.devices import preset_device
from synergy.hardware.analysis import analyze_model
from synergy.hardware.model import TensorSpec
from synergy.models.partition import split_model
from synergy.models.zoo import build_model
from synergy.sdk import AppRequest
from synergy.v1 import agent_pb2, agent_pb2_grpc, apps_pb2, apps_pb2_grpc, common_pb2, registry_pb2, registry_pb2_grpc
from synergy.wire.convert import device_to_proto
from synergy.wire.tensors import Frame, frame_to_chunks, spec_to_meta
from tests.integration.conftest import GLASSES, RING, WATCH

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalCluster]:
    log_dir = tmp_path_factory.mktemp("bad-input") / "logs"
    async with LocalCluster((GLASSES, WATCH, RING), log_dir=log_dir) as running:
        await running.wait_for_devices(3)
        yield running


#: Channels the stub helpers below opened during the running test; closed when it ends.
_open_channels: list[grpc.aio.Channel] = []


def channel(cluster: LocalCluster, address: str, role: str = "admin", name: str = "admin") -> grpc.aio.Channel:
    opened = cluster.channel(address, role=role, name=name)
    _open_channels.append(opened)
    return opened


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def close_channels() -> AsyncIterator[None]:
    yield
    while _open_channels:
        await _open_channels.pop().close()


async def assert_status(call: object, code: grpc.StatusCode, *needles: str) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    assert info.value.code() == code, info.value.details()
    details = info.value.details() or ""
    for needle in needles:
        assert needle in details, details
    return details


def apps_stub(cluster: LocalCluster) -> apps_pb2_grpc.AppsServiceStub:
    return apps_pb2_grpc.AppsServiceStub(channel(cluster, cluster.address))


def submit(spec: common_pb2.AppSpec, **model: object) -> apps_pb2.SubmitAppRequest:
    return apps_pb2.SubmitAppRequest(spec=spec, **model)  # type: ignore[arg-type]


CAMERA_TO_DISPLAY = common_pb2.AppSpec(source_type="camera", target_type="display")


async def no_apps_left(cluster: LocalCluster) -> None:
    async with cluster.client() as client:
        assert await client.list_apps() == []


async def test_model_that_is_not_onnx(cluster: LocalCluster) -> None:
    stub = apps_stub(cluster)
    spec = common_pb2.AppSpec(source_type="camera", target_type="display", model="junk.onnx")
    await assert_status(
        stub.SubmitApp(submit(spec, onnx=b"this is not a protobuf")), grpc.StatusCode.INVALID_ARGUMENT, "junk"
    )
    await no_apps_left(cluster)


async def test_operator_no_board_supports(cluster: LocalCluster) -> None:
    """ConvNet5 with an Erf between its first two layers: no accelerator and no CPU path runs it."""
    model = build_model("convnet5")
    first_out = model.graph.node[[n.name for n in model.graph.node].index("l00_q_clip")].output[0]
    for node in model.graph.node:
        for k, name in enumerate(node.input):
            if name == first_out:
                node.input[k] = "erf_out"
    model.graph.node.insert(
        [n.name for n in model.graph.node].index("l00_q_clip") + 1,
        helper.make_node("Erf", [first_out], ["erf_out"], name="mystery_erf"),
    )
    onnx.checker.check_model(model)
    stub = apps_stub(cluster)
    await assert_status(
        stub.SubmitApp(submit(CAMERA_TO_DISPLAY, onnx=model.SerializeToString())),
        grpc.StatusCode.INVALID_ARGUMENT,
        "mystery_erf",
        "Erf",
    )
    await no_apps_left(cluster)


def huge_conv_model() -> onnx.ModelProto:
    """One 512 -> 1024 3x3 conv layer at 8 bit: 4.7 MB of weights, more than any board holds."""
    c_in, c_out = 512, 1024
    rng = np.random.default_rng(0)
    weight = rng.integers(-2, 3, size=(c_out, c_in, 3, 3)).astype(np.float32)
    inits = [
        numpy_helper.from_array(weight, "w"),
        numpy_helper.from_array(np.array(2.0**-8, np.float32), "scale"),
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
        numpy_helper.from_array(np.array(-128.0, np.float32), "lo"),
        numpy_helper.from_array(np.array(127.0, np.float32), "hi"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["c"], name="l00_conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="l00_relu"),
        helper.make_node("Mul", ["r", "scale"], ["m"], name="l00_q_mul"),
        helper.make_node("Add", ["m", "half"], ["a"], name="l00_q_add"),
        helper.make_node("Floor", ["a"], ["f"], name="l00_q_floor"),
        helper.make_node("Clip", ["f", "lo", "hi"], ["out"], name="l00_q_clip"),
    ]
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, c_in, 8, 8])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, c_out, 8, 8])
    model = helper.make_model(
        helper.make_graph(nodes, "huge", [x], [y], inits), opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    return model


async def test_model_that_fits_no_device(cluster: LocalCluster) -> None:
    stub = apps_stub(cluster)
    details = await assert_status(
        stub.SubmitApp(submit(CAMERA_TO_DISPLAY, onnx=huge_conv_model().SerializeToString())),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "fits no device",
    )
    assert "max78000" in details and "max78002" in details, details
    await no_apps_left(cluster)


async def test_unknown_sensor_and_output_types(cluster: LocalCluster) -> None:
    stub = apps_stub(cluster)
    await assert_status(
        stub.SubmitApp(submit(common_pb2.AppSpec(source_type="radar", target_type="display"), zoo_name="convnet5")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "unknown sensor type 'radar'",
        "camera",
    )
    await assert_status(
        stub.SubmitApp(submit(common_pb2.AppSpec(source_type="camera", target_type="hologram"), zoo_name="convnet5")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "unknown output type 'hologram'",
    )
    await no_apps_left(cluster)


async def test_pin_to_missing_device(cluster: LocalCluster) -> None:
    stub = apps_stub(cluster)
    spec = common_pb2.AppSpec(source_type="camera", target_type="display", source_device="toaster")
    await assert_status(stub.SubmitApp(submit(spec, zoo_name="convnet5")), grpc.StatusCode.NOT_FOUND, "toaster")
    await no_apps_left(cluster)


async def test_unknown_zoo_name(cluster: LocalCluster) -> None:
    stub = apps_stub(cluster)
    await assert_status(
        stub.SubmitApp(submit(CAMERA_TO_DISPLAY, zoo_name="resnet9000")), grpc.StatusCode.NOT_FOUND, "resnet9000"
    )


async def test_unknown_app_id(cluster: LocalCluster) -> None:
    stub = apps_stub(cluster)
    await assert_status(stub.RemoveApp(apps_pb2.RemoveAppRequest(app_id="app-x")), grpc.StatusCode.NOT_FOUND, "app-x")
    await assert_status(stub.Infer(apps_pb2.InferRequest(app_id="app-x")), grpc.StatusCode.NOT_FOUND, "app-x")
    call = stub.WatchResults(apps_pb2.WatchResultsRequest(app_ids=["app-x"]))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in call:
            pass
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_second_agent_with_a_live_device_id(cluster: LocalCluster) -> None:
    # Even with glasses' own certificate (a copy of it), a live device id is not taken over.
    registry = registry_pb2_grpc.RegistryServiceStub(channel(cluster, cluster.address, "agent", "glasses"))
    impostor = device_to_proto(preset_device("glasses"))
    impostor.address = "127.0.0.1:1"
    await assert_status(
        registry.Register(registry_pb2.RegisterRequest(device=impostor)),
        grpc.StatusCode.PERMISSION_DENIED,
        "device glasses is live, held by another connection",
    )
    async with cluster.client() as client:
        glasses = next(d for d in await client.list_devices() if d.spec.device_id == "glasses")
    assert glasses.spec.address == cluster.agents["glasses"].address, "the live agent must be kept"


def agent_stub(cluster: LocalCluster, name: str, role: str = "coordinator", as_name: str = "coordinator") -> (
    agent_pb2_grpc.AgentServiceStub
):
    # As the coordinator unless told: only it may control an agent; a frame stream is taken
    # only from the upstream agent of its hop.
    return agent_pb2_grpc.AgentServiceStub(channel(cluster, cluster.agents[name].address, role, as_name))


#: The stream metadata of a frame stream into (app, epoch, segment), as a sender writes it.
def stream_metadata(app_id: str, epoch: int, segment: int) -> tuple[tuple[str, str], ...]:
    return (("synergy-app", app_id), ("synergy-epoch", str(epoch)), ("synergy-segment", str(segment)))


def partition_assignment(model_name: str, app_id: str, weights_8bit: bool = False) -> agent_pb2.Assignment:
    model = build_model(model_name)
    if weights_8bit:
        del model.metadata_props[:]
    hardware = analyze_model(model, model_name)
    last = len(hardware.layers) - 1
    part = split_model(model, hardware, 0, last)
    return agent_pb2.Assignment(
        app_id=app_id,
        segment=1,
        inputs=[spec_to_meta(t) for t in part.inputs],
        partition=agent_pb2.Partition(
            first_layer=0,
            last_layer=last,
            onnx=part.onnx,
            inputs=[spec_to_meta(t) for t in part.inputs],
            outputs=[spec_to_meta(t) for t in part.outputs],
        ),
        output_type="haptics",
        model=model_name,
        upstream_device_id="glasses",
    )


async def test_partition_too_large_for_the_receiving_board(cluster: LocalCluster) -> None:
    stub = agent_stub(cluster, "ring")
    request = agent_pb2.DeployRequest(epoch=900, assignments=[partition_assignment("widenet", "big", True)])
    details = await assert_status(stub.Deploy(request), grpc.StatusCode.RESOURCE_EXHAUSTED, "do not fit max78000")
    assert "weight" in details
    status = await stub.Status(agent_pb2.StatusRequest())
    assert 900 not in status.loaded_epochs, "a refused deployment must leave nothing loaded"


async def test_frame_with_wrong_shape_or_dtype_is_rejected(cluster: LocalCluster) -> None:
    stub = agent_stub(cluster, "ring")
    await stub.Deploy(agent_pb2.DeployRequest(epoch=901, assignments=[partition_assignment("convnet5", "shape")]))
    try:
        good = np.zeros((1, 1, 28, 28), np.int8)
        frames = [
            Frame("shape", 901, 1, 1, 0.0, {"input": np.zeros((1, 1, 28, 27), np.int8)}),
            Frame("shape", 901, 1, 2, 0.0, {"input": np.zeros((1, 1, 28, 28), np.float32)}),
            Frame("shape", 901, 1, 3, 0.0, {"input": good}),
        ]
        chunks = [c for f in frames for c in frame_to_chunks(f)]

        async def requests() -> AsyncIterator[agent_pb2.FrameChunk]:
            for chunk in chunks:
                yield chunk

        upstream = agent_stub(cluster, "ring", "agent", "glasses")  # the assignment's upstream
        acks = {ack.seq: ack async for ack in upstream.Frames(requests(), metadata=stream_metadata("shape", 901, 1))}
        assert acks[1].outcome == agent_pb2.FRAME_OUTCOME_REJECTED and "[1, 1, 28, 27]" in acks[1].reason
        assert acks[2].outcome == agent_pb2.FRAME_OUTCOME_REJECTED and "float32" in acks[2].reason
        assert acks[3].outcome == agent_pb2.FRAME_OUTCOME_ACCEPTED, acks[3].reason
    finally:
        await stub.Undeploy(agent_pb2.UndeployRequest(epoch=901))


async def test_infer_with_wrong_input_shape(cluster: LocalCluster) -> None:
    async with cluster.client() as client:
        app = await client.submit_app(AppRequest("client", "convnet5", "display"))
        try:
            bad = TensorSpec("input", (1, 1, 14, 14), "int8")
            with pytest.raises(Exception) as info:
                await client.infer(app.app_id, {bad: np.zeros(bad.shape, np.int8)})
            assert info.value.grpc_code == "INVALID_ARGUMENT"  # type: ignore[attr-defined]
            assert "[1, 1, 14, 14]" in str(info.value)
        finally:
            await client.remove_app(app.app_id)


async def test_clients_disconnecting_mid_stream_harm_nothing(cluster: LocalCluster) -> None:
    # A results watcher that goes away...
    async with cluster.client() as client:
        app = await client.submit_app(AppRequest("camera", "convnet5", "display", max_rate_hz=20))
        async with cluster.client() as watcher:
            stream = watcher.watch_results([app.app_id])
            await asyncio.wait_for(stream.__anext__(), 30)
        # ...and a peer that cuts a frame stream in the middle of a frame.
        stub = agent_stub(cluster, "ring")
        frame = Frame("nobody", 5, 1, 1, 0.0, {"input": np.zeros((1, 1, 28, 28), np.int8)})
        chunks = list(frame_to_chunks(frame, chunk_bytes=100))[:3]

        async def cut() -> AsyncIterator[agent_pb2.FrameChunk]:
            for chunk in chunks:
                yield chunk
            await asyncio.sleep(0.2)
            raise ConnectionError("peer vanished")

        call = stub.Frames(cut())
        # grpc.aio cancels the call locally when the request iterator fails.
        with pytest.raises((grpc.aio.AioRpcError, asyncio.CancelledError)):
            async for _ in call:
                pass
        # The system keeps working: results still flow to a new watcher, agents still answer.
        async for result in client.watch_results([app.app_id]):
            if not result.dropped:
                break
        assert (await stub.Status(agent_pb2.StatusRequest())).device_id == "ring"
        await client.remove_app(app.app_id)
