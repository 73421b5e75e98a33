"""Named bounds on everything that crosses a process boundary.

Every record a daemon receives is checked against these before anything keeps it
(:mod:`synergy.wire.validate`), and every request is first held to its method's size limit
(:mod:`synergy.wire.status`). The numbers leave generous headroom over what real devices and
the model zoo need; they exist so that one hostile or broken peer cannot make a daemon
allocate gigabytes, stall its planner, or overflow a counter.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "DEFAULT_METHOD_MESSAGE_BYTES",
    "MAX_ADDRESS_CHARS",
    "MAX_ASSIGNMENTS",
    "MAX_BOARD_BYTES",
    "MAX_CALIBRATION_FACTOR",
    "MAX_BOARD_COUNT",
    "MAX_BANDWIDTH_BYTES_PER_S",
    "MAX_BAUD",
    "MAX_CLOCK_HZ",
    "MAX_COUNTER",
    "MAX_DATA_RATE_BYTES_PER_S",
    "MAX_DEVICE_OUTPUTS",
    "MAX_PEER_LINKS",
    "MAX_DEVICE_SENSORS",
    "MAX_DIGEST_CHARS",
    "MAX_ECHO_CHARS",
    "MAX_EPOCH",
    "MAX_FRAME_BYTES",
    "MAX_FRAME_CHUNK_MESSAGE_BYTES",
    "FRAME_MESSAGE_BYTES",
    "MAX_HELD_SEGMENTS",
    "MAX_ID_CHARS",
    "MAX_INFER_BYTES",
    "MAX_INFER_TIMEOUT_S",
    "MAX_LAYER_INDEX",
    "MAX_LINK_LATENCY_S",
    "MAX_LOADED_EPOCHS",
    "MAX_MESSAGE_OVERHEAD_BYTES",
    "MAX_MODEL_BYTES",
    "MAX_NAME_CHARS",
    "MAX_PATH_CHARS",
    "MAX_POWER_W",
    "MAX_PROCESSORS",
    "MAX_RATE_HZ",
    "MAX_RECEIVE_MESSAGE_BYTES",
    "MAX_REPORT_BATCH_BYTES",
    "MAX_RESULTS_PER_REPORT",
    "MAX_RESULT_BYTES",
    "MAX_SECONDS",
    "MAX_SEGMENT_INDEX",
    "MAX_SEQ",
    "MAX_STATUS_DETAILS_CHARS",
    "MAX_STAGE_TIMINGS",
    "MAX_TENSORS",
    "MAX_TENSOR_BYTES",
    "MAX_TENSOR_DIM",
    "MAX_TENSOR_RANK",
    "MAX_TEXT_CHARS",
    "MAX_UNIX_TIME",
    "MAX_WATCHED_APPS",
    "MAX_WEIGHT_WORDS_PER_PROCESSOR",
    "METHOD_MESSAGE_BYTES",
    "PROCESSORS_PER_QUADRANT",
    "message_limit",
]

KiB = 1024
MiB = 1024 * KiB

# --- strings -------------------------------------------------------------------------------

#: Device ids, app ids, lease ids: short tokens that end up in logs, MQTT topics and tables.
MAX_ID_CHARS = 128
#: Names and types: sensor / output types, board, link and model names, tensor names, kinds.
#: ONNX tensor names of exported models can be long paths ("/features/features.0/Conv_output_0").
MAX_NAME_CHARS = 256
#: host:port of a daemon: a DNS name is at most 253 characters, plus ":65535".
MAX_ADDRESS_CHARS = 260
#: A partition digest is a sha256 hex string (64); leave room for other hash names.
MAX_DIGEST_CHARS = 128
#: A file path (a sensor's recording to replay); Linux's PATH_MAX.
MAX_PATH_CHARS = 4096
#: Free text for people: board notes, drop reasons, result summaries.
MAX_TEXT_CHARS = 4096
#: How much of an offending value an error message repeats (then "…"): refusals never echo
#: megabytes of input back, into logs or to the caller.
MAX_ECHO_CHARS = 80
#: A gRPC status's details: a reason of a line or a few; longer ones are cut with "…".
MAX_STATUS_DETAILS_CHARS = 4096

# --- counts and indexes --------------------------------------------------------------------

#: Epochs and sequence numbers stay below 2**53 so they survive JSON (float) and SQLite.
MAX_EPOCH = 2**53 - 1
MAX_SEQ = 2**53 - 1
#: Monotonic counters (frames, bytes, samples): SQLite's INTEGER is a signed 64-bit value.
MAX_COUNTER = 2**63 - 1
#: Position of a segment in one app's pipeline; a body carries a handful of devices.
MAX_SEGMENT_INDEX = 1023
#: Hardware layer index in one model; a MAX78002 runs 128 per network, models span devices.
MAX_LAYER_INDEX = 65_535
#: Sensors and outputs one device declares.
MAX_DEVICE_SENSORS = 32
MAX_DEVICE_OUTPUTS = 32
#: Links to particular peers one device may declare (a body has a few dozen devices at most).
MAX_PEER_LINKS = 64
#: Segments one Deploy carries for one device (one per app it takes part in).
MAX_ASSIGNMENTS = 256
#: Epochs an agent holds at once (active, the one being deployed, those draining).
MAX_LOADED_EPOCHS = 64
#: Segments an agent reports holding, over all its loaded epochs.
MAX_HELD_SEGMENTS = 1024
#: Per-partition timings in one heartbeat.
MAX_STAGE_TIMINGS = 1024
#: App ids one WatchResults names.
MAX_WATCHED_APPS = 1024

# --- boards --------------------------------------------------------------------------------

#: The MAX7800x CNN has 64 processors in 4 quadrants of 16 (bias memory is per quadrant), so a
#: board has 1 to 4 whole quadrants.
MAX_PROCESSORS = 64
PROCESSORS_PER_QUADRANT = 16
#: Weight words per processor: the MAX78002 has 5,120; 2**20 leaves room for bigger chips while
#: keeping the planner's weight tables small.
MAX_WEIGHT_WORDS_PER_PROCESSOR = 2**20
#: Any other board count (layers, channels, pixels, instances, offsets): far above both chips.
MAX_BOARD_COUNT = 2**24
#: Board memory sizes in bytes (data instance, bias per quadrant).
MAX_BOARD_BYTES = 2**30
#: Clocks: the MAX78002 runs its CNN at 200 MHz; 10 GHz is beyond any such chip.
MAX_CLOCK_HZ = 10e9
#: CPU copy and weight load rates.
MAX_DATA_RATE_BYTES_PER_S = 1e12
#: Power figures: milliwatts in reality; a kilowatt is surely a mistake.
MAX_POWER_W = 1e3

# --- links, rates, times ---------------------------------------------------------------------

#: Link payload rate: the loopback preset is 1e9 B/s.
MAX_BANDWIDTH_BYTES_PER_S = 1e12
#: A serial board's baud rate (USB CDC ports accept any figure; 100 Mbaud is far past real UARTs).
MAX_BAUD = 100_000_000
#: One-way link latency.
MAX_LINK_LATENCY_S = 60.0
#: Per-message link overhead.
MAX_MESSAGE_OVERHEAD_BYTES = 64 * KiB
#: Sensor rates, app rate caps, source rates (frames per second).
MAX_RATE_HZ = 100_000.0
#: Durations reported in telemetry (busy seconds, stage times): about 30 years.
MAX_SECONDS = 1e9
#: Wall-clock timestamps (capture, delivery): year 5138.
MAX_UNIX_TIME = 1e11
#: Longest Infer wait a client may ask for.
MAX_INFER_TIMEOUT_S = 3600.0
#: A device's measured / predicted time factor (calibration): a device a million times off
#: its model is broken.
MAX_CALIBRATION_FACTOR = 1e6

# --- tensors -------------------------------------------------------------------------------

#: Tensors in one list (a partition's inputs or outputs, a frame, a result, an Infer call).
MAX_TENSORS = 64
#: Rank of one tensor (batch dimension included); the zoo uses at most 4.
MAX_TENSOR_RANK = 8
#: One dimension; keeps shape arithmetic small (the byte bound below decides in the end).
MAX_TENSOR_DIM = 2**24
#: The largest frame (sum of its tensors' bytes) and so the largest tensor. The biggest zoo
#: activation (UNet's 64x88x88 wide output) is ~2 MiB.
MAX_FRAME_BYTES = 16 * MiB
MAX_TENSOR_BYTES = MAX_FRAME_BYTES
#: Inputs of one Infer / Inject call, and the tensors of one reported result: the largest zoo
#: input and output (UNet) are ~0.5 MB each.
MAX_INFER_BYTES = 4 * MiB
MAX_RESULT_BYTES = 4 * MiB
#: Results one ReportResults call carries (an agent batches what queued while its previous
#: call was in flight), and the tensor bytes of all of them together: a batch is never bigger
#: than one largest result, which still travels alone.
MAX_RESULTS_PER_REPORT = 256
MAX_REPORT_BATCH_BYTES = MAX_RESULT_BYTES
#: An ONNX model or partition (SubmitApp, Deploy).
MAX_MODEL_BYTES = 64 * MiB - 64 * KiB

# --- gRPC messages ---------------------------------------------------------------------------

#: The server-wide receive limit gRPC enforces before Python sees a byte: the largest of the
#: per-method limits below (SubmitApp and Deploy carry whole ONNX models).
MAX_RECEIVE_MESSAGE_BYTES = 64 * MiB
#: Room for the fields around a bounded payload (ids, specs, tensor metadata).
_ENVELOPE = 64 * KiB
#: Room for the fields of one result besides its tensors, in a batch (ids, tensor metadata,
#: a summary and a drop reason of a few hundred bytes; long texts make batches smaller).
_RESULT_FIELDS = 8 * KiB
#: The most tensor bytes in one message of a Frames stream: a frame up to this size travels as
#: one message (header and data), a larger one in chunks of this size. One message per frame
#: for every zoo activation (the largest is ~2 MiB); gRPC's own default limit is 4 MiB.
FRAME_MESSAGE_BYTES = 4 * MiB
#: One message on a Frames stream: a frame's header and up to FRAME_MESSAGE_BYTES of its data.
MAX_FRAME_CHUNK_MESSAGE_BYTES = FRAME_MESSAGE_BYTES + _ENVELOPE
#: Every method not named below: List*, Get*, Status, Activate, Undeploy, health, reflection.
DEFAULT_METHOD_MESSAGE_BYTES = 64 * KiB

#: Largest request message, per full method name. Registration and heartbeats carry a
#: capability record and what the agent holds (up to MAX_HELD_SEGMENTS entries).
METHOD_MESSAGE_BYTES: Mapping[str, int] = {
    "/synergy.v1.RegistryService/Register": 512 * KiB,
    "/synergy.v1.RegistryService/Heartbeat": 512 * KiB,
    "/synergy.v1.RegistryService/Deregister": DEFAULT_METHOD_MESSAGE_BYTES,
    "/synergy.v1.RegistryService/ReportResult": MAX_RESULT_BYTES + _ENVELOPE,
    "/synergy.v1.RegistryService/ReportResults": (
        MAX_REPORT_BATCH_BYTES + MAX_RESULTS_PER_REPORT * _RESULT_FIELDS + _ENVELOPE
    ),
    "/synergy.v1.AppsService/SubmitApp": MAX_RECEIVE_MESSAGE_BYTES,
    "/synergy.v1.AppsService/Infer": MAX_INFER_BYTES + _ENVELOPE,
    "/synergy.v1.AgentService/Deploy": MAX_RECEIVE_MESSAGE_BYTES,
    "/synergy.v1.AgentService/Inject": MAX_INFER_BYTES + _ENVELOPE,
    "/synergy.v1.AgentService/Frames": MAX_FRAME_CHUNK_MESSAGE_BYTES,
}


def message_limit(method: str) -> int:
    """The largest request message ``method`` ("/package.Service/Method") accepts, in bytes."""
    return METHOD_MESSAGE_BYTES.get(method, DEFAULT_METHOD_MESSAGE_BYTES)
