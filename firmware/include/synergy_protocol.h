/*
 * The serial protocol's constants (docs/serial-protocol.md), mirrored from the Python side
 * (synergy/serial/protocol.py and messages.py): framing sizes, message types, error codes and
 * the payload bounds. Shared by the firmware core and whoever else needs the numbers.
 */
#ifndef SYNERGY_PROTOCOL_H
#define SYNERGY_PROTOCOL_H

/* Versions this firmware speaks (§7): a HELLO picks the highest common one. */
#define SYNERGY_MIN_VERSION 1u
#define SYNERGY_MAX_VERSION 1u
#define SYNERGY_PROTOCOL_VERSION 1u

/* Framing (§2): header, payload, CRC-32, COBS, one 0x00 delimiter. */
#define SYNERGY_HEADER_BYTES 8u
#define SYNERGY_CRC_BYTES 4u
#define SYNERGY_MAX_PAYLOAD 1024u
#define SYNERGY_MIN_PAYLOAD 256u
#define SYNERGY_WINDOW 2u
/* COBS adds one code byte per started 254 bytes, at least one. */
#define SYNERGY_COBS_GROUP 254u
#define SYNERGY_COBS_MAX(n) ((n) + ((n) == 0u ? 1u : ((n) + SYNERGY_COBS_GROUP - 1u) / SYNERGY_COBS_GROUP))
/* The largest frame on the wire, delimiter included: 1,042 bytes at max_payload 1024 (§4). */
#define SYNERGY_MAX_FRAME_BYTES \
    (SYNERGY_COBS_MAX(SYNERGY_HEADER_BYTES + SYNERGY_MAX_PAYLOAD + SYNERGY_CRC_BYTES) + 1u)

/* Header flags. */
#define SYNERGY_FLAG_RETRANSMIT 0x01u
#define SYNERGY_FLAG_NO_SEQ 0x02u
#define SYNERGY_KNOWN_FLAGS (SYNERGY_FLAG_RETRANSMIT | SYNERGY_FLAG_NO_SEQ)

/* Payload bounds (§5). */
#define SYNERGY_DIGEST_BYTES 32u
#define SYNERGY_MAX_FIRMWARE_CHARS 32u
#define SYNERGY_MAX_HOLDINGS 16u
#define SYNERGY_MAX_TENSORS 8u
#define SYNERGY_MAX_TENSOR_RANK 4u
#define SYNERGY_MAX_DETAIL_BYTES 200u
/* Fields in front of a chunk's data: LOAD_CHUNK partition_id + offset; RUN_INPUT, OUTPUT_CHUNK offset. */
#define SYNERGY_LOAD_CHUNK_HEAD 6u
#define SYNERGY_OFFSET_HEAD 4u

enum synergy_message_type {
    SYNERGY_MSG_HELLO = 0x01,
    SYNERGY_MSG_HELLO_REPLY = 0x02,
    SYNERGY_MSG_STATUS = 0x03,
    SYNERGY_MSG_STATUS_REPLY = 0x04,
    SYNERGY_MSG_LOAD_BEGIN = 0x10,
    SYNERGY_MSG_LOAD_CHUNK = 0x11,
    SYNERGY_MSG_LOAD_END = 0x12,
    SYNERGY_MSG_UNLOAD = 0x13,
    SYNERGY_MSG_RUN = 0x20,
    SYNERGY_MSG_RUN_INPUT = 0x21,
    SYNERGY_MSG_RUN_RESULT = 0x22,
    SYNERGY_MSG_OUTPUT_READ = 0x23,
    SYNERGY_MSG_OUTPUT_CHUNK = 0x24,
    SYNERGY_MSG_ACK = 0x7E,
    SYNERGY_MSG_ERROR = 0x7F
};

/* ERROR codes (§8); 0 means "no error" in the firmware's own return values. */
enum synergy_error_code {
    SYNERGY_OK = 0,
    SYNERGY_ERR_BAD_VERSION = 1,
    SYNERGY_ERR_BAD_CRC = 2,
    SYNERGY_ERR_TOO_LARGE = 3,
    SYNERGY_ERR_NO_SPACE = 4,
    SYNERGY_ERR_UNKNOWN_PARTITION = 5,
    SYNERGY_ERR_DIGEST_MISMATCH = 6,
    SYNERGY_ERR_BUSY = 7,
    SYNERGY_ERR_INTERNAL = 8,
    SYNERGY_ERR_BAD_MESSAGE = 9,
    SYNERGY_ERR_OUT_OF_ORDER = 10
};

enum synergy_board_kind { SYNERGY_KIND_MAX78000 = 1, SYNERGY_KIND_MAX78002 = 2 };

enum synergy_board_state { SYNERGY_STATE_IDLE = 0, SYNERGY_STATE_LOADING = 1, SYNERGY_STATE_RECEIVING_INPUT = 2 };

#endif /* SYNERGY_PROTOCOL_H */
