/*
 * The board side of the serial protocol (docs/serial-protocol.md), mirroring
 * synergy/serial/responder.py (the reference) and the decoder of synergy/serial/protocol.py:
 *
 *   bytes -> frames (COBS, delimiter, resynchronisation; §2)
 *         -> checks in the order of §3 (each failure counted in rx_bad_frames)
 *         -> a reply: from the reply cache for a retransmission (§6), else the request executed
 *            (HELLO, STATUS, LOAD_*, UNLOAD, RUN, RUN_INPUT, OUTPUT_READ), refusals as ERRORs.
 *
 * Every buffer is static and bounded: the frame being received (one frame), the reply being
 * built (one frame), the encoded replies of the last `window` requests, a small buffer for
 * replies that are not kept (ERRORs), a run's input and output (max_tensor_bytes each) and the
 * partition store's page buffer. Every length from the wire is checked before it is used.
 */
#include "synergy_core.h"

#include <string.h>

#include "cobs.h"
#include "crc32.h"
#include "sha256.h"
#include "store.h"
#include "synergy_board.h"
#include "synergy_hal.h"

/* ------------------------------------------------------------------------------------------ */
/* Sizes */

/* A received frame without its delimiter: the decoder's limit (protocol.py `_limit`). */
#define RX_LIMIT (SYNERGY_MAX_FRAME_BYTES - 1u)
/* Header, payload and CRC of the largest reply. */
#define BODY_BYTES (SYNERGY_HEADER_BYTES + SYNERGY_MAX_PAYLOAD + SYNERGY_CRC_BYTES)
/* The largest ERROR on the wire: code, versions, detail length, detail. */
#define ERROR_PAYLOAD_BYTES (4u + SYNERGY_MAX_DETAIL_BYTES)
#define SCRATCH_BYTES (SYNERGY_COBS_MAX(SYNERGY_HEADER_BYTES + ERROR_PAYLOAD_BYTES + SYNERGY_CRC_BYTES) + 1u)
/* Bytes of RUN_RESULT in front of the tensors: four u32 timings. */
#define RUN_RESULT_HEAD 16u
/* Tensor totals are computed saturating at this bound (8 tensors of 65535^4 x 4 bytes would
 * overflow 64 bits); anything that large is over every limit anyway. */
#define SATURATED_BYTES 0xFFFFFFFFFFull

/* Decoder outcomes counted as errors (protocol.py FrameErrorKind). */
enum frame_error_kind {
    FRAME_TOO_LONG,
    FRAME_BAD_COBS,
    FRAME_TRUNCATED,
    FRAME_BAD_CRC,
    FRAME_BAD_HEADER,
    FRAME_BAD_VERSION,
    FRAME_UNKNOWN_TYPE,
    FRAME_BAD_PAYLOAD
};

static const char *const frame_error_names[] = {"too_long",   "bad_cobs",    "truncated",    "bad_crc",
                                                "bad_header", "bad_version", "unknown_type", "bad_payload"};

/* ------------------------------------------------------------------------------------------ */
/* State */

static struct synergy_identity identity;
/* Negotiated by HELLO (§7). */
static uint8_t version;
static uint16_t max_payload;

static struct {
    uint8_t buffer[RX_LIMIT];
    uint32_t length;
    /* Dropping the rest of an over-long frame up to the next delimiter. */
    int skipping;
    uint32_t frames;
    uint32_t bad_frames;
} rx;

/* The reply being built: header, payload, CRC. */
static uint8_t tx_body[BODY_BYTES];
static uint32_t tx_payload_length;
static uint8_t tx_type;
static int tx_overflow;

/* Replies not kept (ERRORs: frame errors, transient refusals) are encoded here. */
static uint8_t tx_scratch[SCRATCH_BYTES];

/* The encoded replies to the last `window` requests executed, oldest first in `order`. */
static struct {
    uint16_t seq;
    uint32_t length;
    uint8_t bytes[SYNERGY_MAX_FRAME_BYTES];
} cache[SYNERGY_WINDOW];
static uint8_t cache_order[SYNERGY_WINDOW];
static unsigned cache_count;

static struct {
    int open;
    uint16_t partition_id;
    uint32_t total;
    uint32_t received;
    uint8_t digest[SYNERGY_DIGEST_BYTES];
    struct synergy_sha256 sha;
} load;

static struct {
    int open;
    uint16_t partition_id;
    struct synergy_tensors tensors;
    uint32_t total;
    uint32_t received;
} input;

static uint8_t input_buffer[SYNERGY_MAX_TENSOR_BYTES];
static uint8_t output_buffer[SYNERGY_MAX_TENSOR_BYTES];
static uint32_t output_length;

static uint32_t last_micros;
static uint64_t uptime_us;

/* The detail of the ERROR being built (also what the HAL's CNN calls fill in). */
static struct synergy_detail detail;
static size_t detail_length;

/* ------------------------------------------------------------------------------------------ */
/* Details: short human-readable texts without printf (kept small for the board). */

static void detail_clear(void)
{
    detail_length = 0;
    detail.text[0] = '\0';
}

static void detail_text(const char *text)
{
    while (*text != '\0' && detail_length < SYNERGY_MAX_DETAIL_BYTES) {
        detail.text[detail_length++] = *text++;
    }
    detail.text[detail_length] = '\0';
}

static void detail_number(uint32_t value)
{
    char digits[11];
    unsigned count = 0;
    do {
        digits[count++] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value != 0u);
    while (count > 0u && detail_length < SYNERGY_MAX_DETAIL_BYTES) {
        detail.text[detail_length++] = digits[--count];
    }
    detail.text[detail_length] = '\0';
}

static void detail_hex(uint32_t value)
{
    static const char hex[] = "0123456789abcdef";
    char text[11];
    int i;
    text[0] = '0';
    text[1] = 'x';
    for (i = 0; i < 8; i++) {
        text[2 + i] = hex[(value >> (28 - 4 * i)) & 0x0Fu];
    }
    text[10] = '\0';
    detail_text(text);
}

/* A detail filled by the HAL: measure it, bounded, and cut at a UTF-8 character boundary. */
static void detail_adopt(void)
{
    size_t length = 0;
    while (length < SYNERGY_MAX_DETAIL_BYTES && detail.text[length] != '\0') {
        length++;
    }
    if (length == SYNERGY_MAX_DETAIL_BYTES && detail.text[length] != '\0') {
        while (length > 0u && ((unsigned char)detail.text[length] & 0xC0u) == 0x80u) {
            length--;
        }
    }
    detail_length = length;
    detail.text[length] = '\0';
}

/* ------------------------------------------------------------------------------------------ */
/* Little-endian fields */

static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* ------------------------------------------------------------------------------------------ */
/* Writing a reply's payload (bounded by the board's max_payload; overflow -> INTERNAL) */

static void reply_begin(uint8_t type)
{
    tx_type = type;
    tx_payload_length = 0;
    tx_overflow = 0;
}

static uint8_t *reply_room(uint32_t size)
{
    uint8_t *at;
    if (tx_overflow || size > SYNERGY_MAX_PAYLOAD - tx_payload_length) {
        tx_overflow = 1;
        return NULL;
    }
    at = tx_body + SYNERGY_HEADER_BYTES + tx_payload_length;
    tx_payload_length += size;
    return at;
}

static void w_u8(uint8_t v)
{
    uint8_t *at = reply_room(1);
    if (at != NULL) {
        at[0] = v;
    }
}

static void w_u16(uint16_t v)
{
    uint8_t *at = reply_room(2);
    if (at != NULL) {
        put_u16(at, v);
    }
}

static void w_u32(uint32_t v)
{
    uint8_t *at = reply_room(4);
    if (at != NULL) {
        put_u32(at, v);
    }
}

static void w_bytes(const uint8_t *data, uint32_t length)
{
    uint8_t *at = reply_room(length);
    if (at != NULL && length > 0u) {
        memcpy(at, data, length);
    }
}

static void w_tensors(const struct synergy_tensors *tensors)
{
    unsigned i, axis;
    w_u8(tensors->count);
    for (i = 0; i < tensors->count; i++) {
        w_u8(tensors->tensor[i].element_bytes);
        w_u8(tensors->tensor[i].rank);
        for (axis = 0; axis < tensors->tensor[i].rank; axis++) {
            w_u16(tensors->tensor[i].dims[axis]);
        }
    }
}

static void w_holdings(void)
{
    unsigned i, count = synergy_store_count();
    w_u8((uint8_t)count);
    for (i = 0; i < count; i++) {
        const struct synergy_partition *p = synergy_store_at(i);
        w_u16(p->id);
        w_u32(p->size);
        w_bytes(p->digest, SYNERGY_DIGEST_BYTES);
    }
}

static void w_error(uint8_t code)
{
    reply_begin(SYNERGY_MSG_ERROR);
    w_u8(code);
    w_u8((uint8_t)SYNERGY_MIN_VERSION);
    w_u8((uint8_t)SYNERGY_MAX_VERSION);
    w_u8((uint8_t)detail_length);
    w_bytes((const uint8_t *)detail.text, (uint32_t)detail_length);
}

/* Header, CRC, COBS and the delimiter around the payload built; the wire length, or 0 if it
 * does not fit `cap` (cannot happen with the buffers above: defensive). */
static uint32_t reply_encode(uint16_t seq, uint8_t flags, uint8_t *out, uint32_t cap)
{
    uint32_t body_length = SYNERGY_HEADER_BYTES + tx_payload_length;
    uint32_t crc;
    size_t encoded;
    tx_body[0] = version;
    tx_body[1] = tx_type;
    tx_body[2] = flags;
    tx_body[3] = 0;
    put_u16(tx_body + 4, seq);
    put_u16(tx_body + 6, (uint16_t)tx_payload_length);
    crc = synergy_crc32(0, tx_body, body_length);
    put_u32(tx_body + body_length, crc);
    if (cap < 2u) {
        return 0;
    }
    encoded = synergy_cobs_encode(tx_body, body_length + SYNERGY_CRC_BYTES, out, cap - 1u);
    if (encoded == 0u) {
        return 0;
    }
    out[encoded] = 0;
    return (uint32_t)encoded + 1u;
}

static void send_uncached(uint16_t seq, uint8_t flags)
{
    uint32_t length = reply_encode(seq, flags, tx_scratch, sizeof tx_scratch);
    if (length > 0u) {
        synergy_hal_uart_write(tx_scratch, length);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* The reply cache (§6): replies to the last `window` requests executed, by seq. */

static int cache_find(uint16_t seq)
{
    unsigned k;
    for (k = 0; k < cache_count; k++) {
        if (cache[cache_order[k]].seq == seq) {
            return cache_order[k];
        }
    }
    return -1;
}

/* The slot to keep seq's reply in: its own if present (it keeps its age, as an OrderedDict
 * entry assigned again does), else a free one, else the oldest (evicted). */
static unsigned cache_slot(uint16_t seq)
{
    int found = cache_find(seq);
    unsigned slot, k;
    if (found >= 0) {
        return (unsigned)found;
    }
    if (cache_count < SYNERGY_WINDOW) {
        for (slot = 0; slot < SYNERGY_WINDOW; slot++) {
            int used = 0;
            for (k = 0; k < cache_count; k++) {
                used |= cache_order[k] == slot;
            }
            if (!used) {
                break;
            }
        }
        cache_order[cache_count++] = (uint8_t)slot;
        cache[slot].seq = seq;
        return slot;
    }
    slot = cache_order[0];
    for (k = 1; k < SYNERGY_WINDOW; k++) {
        cache_order[k - 1u] = cache_order[k];
    }
    cache_order[SYNERGY_WINDOW - 1u] = (uint8_t)slot;
    cache[slot].seq = seq;
    return slot;
}

static void send_cached(uint16_t seq)
{
    unsigned slot = cache_slot(seq);
    cache[slot].length = reply_encode(seq, 0, cache[slot].bytes, sizeof cache[slot].bytes);
    synergy_hal_uart_write(cache[slot].bytes, cache[slot].length);
}

/* ------------------------------------------------------------------------------------------ */
/* Reading payloads (messages.py's _Reader): the first failure is kept, with the field's name. */

struct reader {
    const uint8_t *data;
    uint32_t length;
    uint32_t position;
    int failed;
};

static void read_fail(struct reader *r, const char *field, const char *why)
{
    if (!r->failed) {
        r->failed = 1;
        detail_clear();
        detail_text(field);
        detail_text(why);
    }
}

static const uint8_t *take(struct reader *r, const char *field, uint32_t size)
{
    const uint8_t *at;
    if (r->failed) {
        return NULL;
    }
    if (size > r->length - r->position) {
        read_fail(r, field, ": the payload ends before it");
        return NULL;
    }
    at = r->data + r->position;
    r->position += size;
    return at;
}

static uint8_t r_u8(struct reader *r, const char *field)
{
    const uint8_t *at = take(r, field, 1);
    return at != NULL ? at[0] : 0u;
}

static uint16_t r_u16(struct reader *r, const char *field)
{
    const uint8_t *at = take(r, field, 2);
    return at != NULL ? get_u16(at) : 0u;
}

static uint32_t r_u32(struct reader *r, const char *field)
{
    const uint8_t *at = take(r, field, 4);
    return at != NULL ? get_u32(at) : 0u;
}

static const uint8_t *r_rest(struct reader *r, uint32_t *size)
{
    const uint8_t *at = r->data + r->position;
    *size = r->failed ? 0u : r->length - r->position;
    r->position = r->length;
    return at;
}

static void r_end(struct reader *r)
{
    if (!r->failed && r->position != r->length) {
        read_fail(r, "payload", ": unexpected bytes after the last field");
    }
}

static uint64_t saturating_multiply(uint64_t a, uint64_t b)
{
    return (b != 0u && a > SATURATED_BYTES / b) ? SATURATED_BYTES : a * b;
}

static uint64_t tensors_total(const struct synergy_tensors *tensors)
{
    uint64_t total = 0;
    unsigned i, axis;
    for (i = 0; i < tensors->count; i++) {
        uint64_t bytes = tensors->tensor[i].element_bytes;
        for (axis = 0; axis < tensors->tensor[i].rank; axis++) {
            bytes = saturating_multiply(bytes, tensors->tensor[i].dims[axis]);
        }
        total += bytes;
        if (total > SATURATED_BYTES) {
            total = SATURATED_BYTES;
        }
    }
    return total;
}

static void r_tensors(struct reader *r, struct synergy_tensors *out)
{
    unsigned i, axis;
    out->count = r_u8(r, "tensor_count");
    if (out->count > SYNERGY_MAX_TENSORS) {
        read_fail(r, "tensor_count", " is over the limit of 8");
        out->count = 0;
        return;
    }
    for (i = 0; i < out->count && !r->failed; i++) {
        struct synergy_tensor *t = &out->tensor[i];
        t->element_bytes = r_u8(r, "tensors[].element_bytes");
        t->rank = r_u8(r, "tensors[].rank");
        if (r->failed) {
            break;
        }
        if (t->rank < 1u || t->rank > SYNERGY_MAX_TENSOR_RANK) {
            read_fail(r, "tensors[].rank", " is outside 1..4");
            break;
        }
        for (axis = 0; axis < t->rank; axis++) {
            t->dims[axis] = r_u16(r, "tensors[].dims[]");
        }
        if (r->failed) {
            break;
        }
        if (t->element_bytes != 1u && t->element_bytes != 4u) {
            read_fail(r, "tensors[].element_bytes", " is not one of (1, 4)");
            break;
        }
        for (axis = 0; axis < t->rank; axis++) {
            if (t->dims[axis] == 0u) {
                read_fail(r, "tensors[].dims[]", " is outside 1..65535");
                break;
            }
        }
    }
    if (r->failed) {
        out->count = 0;
    }
}

static void r_holdings(struct reader *r)
{
    unsigned i, count = r_u8(r, "holding_count");
    if (count > SYNERGY_MAX_HOLDINGS) {
        read_fail(r, "holding_count", " is over the limit of 16");
        return;
    }
    for (i = 0; i < count; i++) {
        (void)take(r, "holdings[]", 2u + 4u + SYNERGY_DIGEST_BYTES);
    }
}

static void r_enum(struct reader *r, const char *field, uint8_t low, uint8_t high)
{
    uint8_t value = r_u8(r, field);
    if (!r->failed && (value < low || value > high)) {
        read_fail(r, field, " is not a known value");
    }
}

/* A decoded request (pointers into the received frame, valid while it is handled). */
struct request {
    uint8_t version;
    uint8_t type;
    uint16_t seq;
    uint8_t min_version;
    uint8_t max_version;
    uint16_t max_payload;
    uint16_t partition_id;
    uint32_t total_bytes;
    const uint8_t *digest;
    uint32_t offset;
    const uint8_t *data;
    uint32_t data_length;
    uint16_t length;
    struct synergy_tensors tensors;
};

static int known_type(uint8_t type)
{
    switch (type) {
    case SYNERGY_MSG_HELLO: case SYNERGY_MSG_HELLO_REPLY: case SYNERGY_MSG_STATUS:
    case SYNERGY_MSG_STATUS_REPLY: case SYNERGY_MSG_LOAD_BEGIN: case SYNERGY_MSG_LOAD_CHUNK:
    case SYNERGY_MSG_LOAD_END: case SYNERGY_MSG_UNLOAD: case SYNERGY_MSG_RUN: case SYNERGY_MSG_RUN_INPUT:
    case SYNERGY_MSG_RUN_RESULT: case SYNERGY_MSG_OUTPUT_READ: case SYNERGY_MSG_OUTPUT_CHUNK:
    case SYNERGY_MSG_ACK: case SYNERGY_MSG_ERROR:
        return 1;
    default:
        return 0;
    }
}

static const char *type_name(uint8_t type)
{
    switch (type) {
    case SYNERGY_MSG_HELLO: return "HELLO";
    case SYNERGY_MSG_HELLO_REPLY: return "HELLO_REPLY";
    case SYNERGY_MSG_STATUS: return "STATUS";
    case SYNERGY_MSG_STATUS_REPLY: return "STATUS_REPLY";
    case SYNERGY_MSG_LOAD_BEGIN: return "LOAD_BEGIN";
    case SYNERGY_MSG_LOAD_CHUNK: return "LOAD_CHUNK";
    case SYNERGY_MSG_LOAD_END: return "LOAD_END";
    case SYNERGY_MSG_UNLOAD: return "UNLOAD";
    case SYNERGY_MSG_RUN: return "RUN";
    case SYNERGY_MSG_RUN_INPUT: return "RUN_INPUT";
    case SYNERGY_MSG_RUN_RESULT: return "RUN_RESULT";
    case SYNERGY_MSG_OUTPUT_READ: return "OUTPUT_READ";
    case SYNERGY_MSG_OUTPUT_CHUNK: return "OUTPUT_CHUNK";
    case SYNERGY_MSG_ACK: return "ACK";
    default: return "ERROR";
    }
}

/* Every field of the payload read and checked against its bound (messages.py decode_payload);
 * 0, or -1 with the detail set. Reply types are checked too: a host sending one gets
 * BAD_MESSAGE either way, but which one (payload or "not a request") follows the reference. */
static int parse_payload(struct request *q, const uint8_t *payload, uint32_t length)
{
    struct reader r;
    uint32_t ignored;
    r.data = payload;
    r.length = length;
    r.position = 0;
    r.failed = 0;
    switch (q->type) {
    case SYNERGY_MSG_HELLO:
        q->min_version = r_u8(&r, "min_version");
        q->max_version = r_u8(&r, "max_version");
        q->max_payload = r_u16(&r, "max_payload");
        break;
    case SYNERGY_MSG_STATUS:
    case SYNERGY_MSG_ACK:
        break;
    case SYNERGY_MSG_LOAD_BEGIN:
        q->partition_id = r_u16(&r, "partition_id");
        q->total_bytes = r_u32(&r, "total_bytes");
        q->digest = take(&r, "digest", SYNERGY_DIGEST_BYTES);
        break;
    case SYNERGY_MSG_LOAD_CHUNK:
        q->partition_id = r_u16(&r, "partition_id");
        q->offset = r_u32(&r, "offset");
        q->data = r_rest(&r, &q->data_length);
        break;
    case SYNERGY_MSG_LOAD_END:
    case SYNERGY_MSG_UNLOAD:
        q->partition_id = r_u16(&r, "partition_id");
        break;
    case SYNERGY_MSG_RUN:
        q->partition_id = r_u16(&r, "partition_id");
        r_tensors(&r, &q->tensors);
        q->data = r_rest(&r, &q->data_length);
        if (!r.failed && q->data_length > tensors_total(&q->tensors)) {
            read_fail(&r, "data", " is longer than its tensors");
        }
        break;
    case SYNERGY_MSG_RUN_INPUT:
    case SYNERGY_MSG_OUTPUT_CHUNK:
        q->offset = r_u32(&r, "offset");
        q->data = r_rest(&r, &q->data_length);
        break;
    case SYNERGY_MSG_OUTPUT_READ:
        q->offset = r_u32(&r, "offset");
        q->length = r_u16(&r, "length");
        break;
    case SYNERGY_MSG_HELLO_REPLY: {
        const uint8_t *firmware;
        uint8_t firmware_length;
        uint8_t i;
        (void)r_u8(&r, "version");
        r_enum(&r, "kind", SYNERGY_KIND_MAX78000, SYNERGY_KIND_MAX78002);
        (void)take(&r, "limits", 2u + 1u + 4u + 4u + 4u + 2u + 4u * 5u);
        firmware_length = r_u8(&r, "firmware_length");
        if (!r.failed && firmware_length > SYNERGY_MAX_FIRMWARE_CHARS) {
            read_fail(&r, "firmware_length", " is over the limit of 32");
        }
        firmware = take(&r, "firmware", firmware_length);
        for (i = 0; firmware != NULL && i < firmware_length; i++) {
            if (firmware[i] < 0x20u || firmware[i] > 0x7Eu) {
                read_fail(&r, "firmware", " is not printable ASCII");
            }
        }
        r_holdings(&r);
        break;
    }
    case SYNERGY_MSG_STATUS_REPLY:
        r_enum(&r, "state", SYNERGY_STATE_IDLE, SYNERGY_STATE_RECEIVING_INPUT);
        (void)take(&r, "counters", 4u * 5u);
        r_holdings(&r);
        break;
    case SYNERGY_MSG_RUN_RESULT:
        (void)take(&r, "timings", RUN_RESULT_HEAD);
        r_tensors(&r, &q->tensors);
        (void)r_rest(&r, &ignored);
        if (!r.failed && ignored > tensors_total(&q->tensors)) {
            read_fail(&r, "data", " is longer than its tensors");
        }
        break;
    case SYNERGY_MSG_ERROR: {
        uint8_t detail_size;
        r_enum(&r, "code", SYNERGY_ERR_BAD_VERSION, SYNERGY_ERR_OUT_OF_ORDER);
        (void)take(&r, "versions", 2);
        detail_size = r_u8(&r, "detail_length");
        if (!r.failed && detail_size > SYNERGY_MAX_DETAIL_BYTES) {
            read_fail(&r, "detail_length", " is over the limit of 200");
        }
        (void)take(&r, "detail", detail_size);
        break;
    }
    default:
        read_fail(&r, "type", " is unknown");
        break;
    }
    r_end(&r);
    return r.failed ? -1 : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Requests. Each handler builds its reply and returns SYNERGY_OK, or an error code with the
 * detail set (then an ERROR is sent instead). */

static int refuse(int code, const char *text)
{
    detail_clear();
    detail_text(text);
    return code;
}

static void forget_every_partition(void)
{
    unsigned count = synergy_store_count();
    while (count-- > 0u) {
        synergy_hal_cnn_unload(synergy_store_at(count)->id);
    }
    synergy_store_reset();
}

static void close_load(void)
{
    if (load.open) {
        synergy_store_abandon();
    }
    load.open = 0;
}

static int handle_hello(const struct request *q)
{
    unsigned common = 0, v;
    for (v = SYNERGY_MIN_VERSION; v <= SYNERGY_MAX_VERSION; v++) {
        if (q->min_version <= v && v <= q->max_version) {
            common = v;
        }
    }
    if (common == 0u) {
        detail_clear();
        detail_text("board speaks ");
        detail_number(SYNERGY_MIN_VERSION);
        detail_text("..");
        detail_number(SYNERGY_MAX_VERSION);
        detail_text(", host ");
        detail_number(q->min_version);
        detail_text("..");
        detail_number(q->max_version);
        return SYNERGY_ERR_BAD_VERSION;
    }
    if (q->max_payload < SYNERGY_MIN_PAYLOAD) {
        detail_clear();
        detail_text("HELLO.max_payload ");
        detail_number(q->max_payload);
        detail_text(" is under 256");
        return SYNERGY_ERR_BAD_MESSAGE;
    }
    /* HELLO resets the session: no cached replies, no open load or run (§7). */
    cache_count = 0;
    close_load();
    input.open = 0;
    output_length = 0;
    version = (uint8_t)common;
    max_payload = q->max_payload < SYNERGY_MAX_PAYLOAD ? q->max_payload : (uint16_t)SYNERGY_MAX_PAYLOAD;
    reply_begin(SYNERGY_MSG_HELLO_REPLY);
    w_u8(version);
    w_u8(identity.kind);
    w_u16(max_payload);
    w_u8((uint8_t)SYNERGY_WINDOW);
    w_u32(identity.boot_id);
    w_u32(identity.limits.weight_bytes);
    w_u32(identity.limits.bias_bytes);
    w_u16(identity.limits.max_layers);
    w_u32(identity.limits.data_bytes);
    w_u32(identity.limits.partition_flash_bytes);
    w_u32(identity.limits.frame_sram_bytes);
    w_u32(identity.limits.max_tensor_bytes);
    w_u32(identity.limits.cnn_clock_hz);
    w_u8((uint8_t)strlen(identity.firmware));
    w_bytes((const uint8_t *)identity.firmware, (uint32_t)strlen(identity.firmware));
    w_holdings();
    return SYNERGY_OK;
}

static uint32_t uptime_ms(void)
{
    uint32_t now = synergy_hal_micros();
    uptime_us += (uint32_t)(now - last_micros);
    last_micros = now;
    return (uint32_t)(uptime_us / 1000u);
}

static int handle_status(void)
{
    uint8_t state = load.open ? SYNERGY_STATE_LOADING : input.open ? SYNERGY_STATE_RECEIVING_INPUT : SYNERGY_STATE_IDLE;
    reply_begin(SYNERGY_MSG_STATUS_REPLY);
    w_u8(state);
    w_u32(identity.boot_id);
    w_u32(uptime_ms());
    w_u32(synergy_store_free(identity.limits.partition_flash_bytes));
    w_u32(rx.frames);
    w_u32(rx.bad_frames);
    w_holdings();
    return SYNERGY_OK;
}

static int handle_load_begin(const struct request *q)
{
    uint32_t free_bytes;
    close_load();
    if (q->total_bytes > identity.limits.partition_flash_bytes) {
        detail_clear();
        detail_text("partition of ");
        detail_number(q->total_bytes);
        detail_text(" bytes is over partition_flash_bytes ");
        detail_number(identity.limits.partition_flash_bytes);
        return SYNERGY_ERR_TOO_LARGE;
    }
    if (synergy_store_find(q->partition_id) != NULL) {
        synergy_store_drop(q->partition_id);
        synergy_hal_cnn_unload(q->partition_id);
    }
    free_bytes = synergy_store_free(identity.limits.partition_flash_bytes);
    if (q->total_bytes > free_bytes) {
        detail_clear();
        detail_text("partition of ");
        detail_number(q->total_bytes);
        detail_text(" bytes, ");
        detail_number(free_bytes);
        detail_text(" bytes of flash free");
        return SYNERGY_ERR_NO_SPACE;
    }
    if (synergy_store_count() >= SYNERGY_MAX_HOLDINGS) {
        return refuse(SYNERGY_ERR_NO_SPACE, "16 partitions are held, the most a board reports");
    }
    if (synergy_store_begin(q->total_bytes) != 0) {
        forget_every_partition();
        return refuse(SYNERGY_ERR_INTERNAL, "flash failure while making room: every partition was dropped");
    }
    load.open = 1;
    load.partition_id = q->partition_id;
    load.total = q->total_bytes;
    load.received = 0;
    memcpy(load.digest, q->digest, SYNERGY_DIGEST_BYTES);
    synergy_sha256_init(&load.sha);
    reply_begin(SYNERGY_MSG_ACK);
    return SYNERGY_OK;
}

/* The open load, or a refusal: none open is OUT_OF_ORDER (its LOAD_BEGIN may be the frame lost
 * on the way, §10), another partition's is UNKNOWN_PARTITION. */
static int open_load(uint16_t partition_id)
{
    if (!load.open) {
        detail_clear();
        detail_text("no load is open (partition ");
        detail_number(partition_id);
        detail_text(")");
        return SYNERGY_ERR_OUT_OF_ORDER;
    }
    if (load.partition_id != partition_id) {
        detail_clear();
        detail_text("no load of partition ");
        detail_number(partition_id);
        detail_text(" is open");
        return SYNERGY_ERR_UNKNOWN_PARTITION;
    }
    return SYNERGY_OK;
}

/* A chunk must start at the next byte expected (else OUT_OF_ORDER, not kept: the host resends)
 * and end within the total (else BAD_MESSAGE). */
static int in_order(const char *what, uint32_t received, uint32_t total, uint32_t offset, uint32_t length)
{
    if (offset != received) {
        detail_clear();
        detail_text(what);
        detail_text(" chunk at offset ");
        detail_number(offset);
        detail_text(", expected ");
        detail_number(received);
        return SYNERGY_ERR_OUT_OF_ORDER;
    }
    if (length > total - received) {
        detail_clear();
        detail_text(what);
        detail_text(": chunk at offset ");
        detail_number(offset);
        detail_text(" of ");
        detail_number(length);
        detail_text(" bytes runs past the declared total_bytes of ");
        detail_number(total);
        return SYNERGY_ERR_BAD_MESSAGE;
    }
    return SYNERGY_OK;
}

static int handle_load_chunk(const struct request *q)
{
    int code = open_load(q->partition_id);
    if (code == SYNERGY_OK) {
        code = in_order("LOAD", load.received, load.total, q->offset, q->data_length);
    }
    if (code != SYNERGY_OK) {
        return code;
    }
    if (synergy_store_append(q->data, q->data_length) != 0) {
        close_load();
        return refuse(SYNERGY_ERR_INTERNAL, "flash write failed: the load was dropped");
    }
    synergy_sha256_update(&load.sha, q->data, q->data_length);
    load.received += q->data_length;
    reply_begin(SYNERGY_MSG_ACK);
    return SYNERGY_OK;
}

static int handle_load_end(const struct request *q)
{
    uint8_t digest[SYNERGY_DIGEST_BYTES];
    uint32_t offset = 0;
    int code = open_load(q->partition_id);
    if (code != SYNERGY_OK) {
        return code;
    }
    if (load.received != load.total) {
        /* A chunk before it was lost on the way: the host resends it, then this (§6). */
        detail_clear();
        detail_text("LOAD_END after ");
        detail_number(load.received);
        detail_text(" of ");
        detail_number(load.total);
        detail_text(" bytes");
        return SYNERGY_ERR_OUT_OF_ORDER;
    }
    load.open = 0;
    if (synergy_store_finish(&offset) != 0) {
        synergy_store_abandon();
        return refuse(SYNERGY_ERR_INTERNAL, "flash write failed: the load was dropped");
    }
    synergy_sha256_final(&load.sha, digest);
    if (memcmp(digest, load.digest, SYNERGY_DIGEST_BYTES) != 0) {
        return refuse(SYNERGY_ERR_DIGEST_MISMATCH, "the partition's bytes do not match LOAD_BEGIN's digest");
    }
    detail_clear();
    code = synergy_hal_cnn_load(q->partition_id, offset, load.total, &detail);
    if (code != SYNERGY_OK) {
        detail_adopt();
        return code;
    }
    synergy_store_commit(q->partition_id, offset, load.total, digest);
    reply_begin(SYNERGY_MSG_ACK);
    return SYNERGY_OK;
}

static int handle_unload(const struct request *q)
{
    if (synergy_store_find(q->partition_id) == NULL) {
        detail_clear();
        detail_text("partition ");
        detail_number(q->partition_id);
        detail_text(" is not held");
        return SYNERGY_ERR_UNKNOWN_PARTITION;
    }
    synergy_store_drop(q->partition_id);
    synergy_hal_cnn_unload(q->partition_id);
    output_length = 0;
    reply_begin(SYNERGY_MSG_ACK);
    return SYNERGY_OK;
}

static int check_outputs(const struct synergy_cnn_result *result)
{
    unsigned i, axis;
    if (result->outputs.count > SYNERGY_MAX_TENSORS || result->output_bytes > sizeof output_buffer) {
        return -1;
    }
    for (i = 0; i < result->outputs.count; i++) {
        const struct synergy_tensor *t = &result->outputs.tensor[i];
        if ((t->element_bytes != 1u && t->element_bytes != 4u) || t->rank < 1u || t->rank > SYNERGY_MAX_TENSOR_RANK) {
            return -1;
        }
        for (axis = 0; axis < t->rank; axis++) {
            if (t->dims[axis] == 0u) {
                return -1;
            }
        }
    }
    return tensors_total(&result->outputs) == result->output_bytes ? 0 : -1;
}

/* Run once the input is complete (RUN_RESULT with the first output bytes), else ACK. */
static int maybe_execute(void)
{
    const struct synergy_partition *partition;
    struct synergy_cnn_run run;
    struct synergy_cnn_result result;
    uint32_t head, first;
    unsigned i;
    int code;
    if (!input.open || input.received != input.total) {
        reply_begin(SYNERGY_MSG_ACK);
        return SYNERGY_OK;
    }
    input.open = 0;
    partition = synergy_store_find(input.partition_id);
    if (partition == NULL) { /* unloaded while its input arrived */
        detail_clear();
        detail_text("partition ");
        detail_number(input.partition_id);
        detail_text(" is not held");
        return SYNERGY_ERR_UNKNOWN_PARTITION;
    }
    run.partition_id = partition->id;
    run.flash_offset = partition->offset;
    run.size = partition->size;
    run.inputs = &input.tensors;
    run.input = input_buffer;
    run.input_bytes = input.total;
    run.output = output_buffer;
    run.output_capacity = (uint32_t)sizeof output_buffer;
    memset(&result, 0, sizeof result);
    detail_clear();
    code = synergy_hal_cnn_run(&run, &result, &detail);
    if (code != SYNERGY_OK) {
        detail_adopt();
        return code;
    }
    if (check_outputs(&result) != 0) {
        return refuse(SYNERGY_ERR_INTERNAL, "the CNN returned outputs that do not match their shapes");
    }
    output_length = result.output_bytes;
    head = RUN_RESULT_HEAD + 1u;
    for (i = 0; i < result.outputs.count; i++) {
        head += 2u + 2u * result.outputs.tensor[i].rank;
    }
    first = max_payload - head; /* head <= 97 < 256 <= max_payload */
    if (first > output_length) {
        first = output_length;
    }
    reply_begin(SYNERGY_MSG_RUN_RESULT);
    w_u32(result.cnn_cycles);
    w_u32(result.input_load_us);
    w_u32(result.output_unload_us);
    w_u32(result.weight_load_us);
    w_tensors(&result.outputs);
    w_bytes(output_buffer, first);
    return SYNERGY_OK;
}

static int handle_run(const struct request *q)
{
    uint64_t total;
    input.open = 0;
    output_length = 0;
    if (synergy_store_find(q->partition_id) == NULL) {
        detail_clear();
        detail_text("partition ");
        detail_number(q->partition_id);
        detail_text(" is not held");
        return SYNERGY_ERR_UNKNOWN_PARTITION;
    }
    total = tensors_total(&q->tensors);
    if (total > identity.limits.max_tensor_bytes) {
        detail_clear();
        detail_text("input of ");
        if (total > 0xFFFFFFFFu) {
            detail_text("more than 4294967295");
        } else {
            detail_number((uint32_t)total);
        }
        detail_text(" bytes is over max_tensor_bytes ");
        detail_number(identity.limits.max_tensor_bytes);
        return SYNERGY_ERR_TOO_LARGE;
    }
    input.open = 1;
    input.partition_id = q->partition_id;
    input.tensors = q->tensors;
    input.total = (uint32_t)total;
    /* The payload check guarantees data_length <= total. */
    if (q->data_length > 0u) {
        memcpy(input_buffer, q->data, q->data_length);
    }
    input.received = q->data_length;
    return maybe_execute();
}

static int handle_run_input(const struct request *q)
{
    int code;
    if (!input.open) {
        /* Its RUN may be the frame lost on the way: the host resends it first. */
        return refuse(SYNERGY_ERR_OUT_OF_ORDER, "RUN_INPUT without a RUN awaiting input");
    }
    code = in_order("RUN", input.received, input.total, q->offset, q->data_length);
    if (code != SYNERGY_OK) {
        return code;
    }
    if (q->data_length > 0u) {
        memcpy(input_buffer + input.received, q->data, q->data_length);
    }
    input.received += q->data_length;
    return maybe_execute();
}

static int handle_output_read(const struct request *q)
{
    uint32_t room = (uint32_t)max_payload - SYNERGY_OFFSET_HEAD;
    uint32_t length;
    if (q->length > room) {
        detail_clear();
        detail_text("OUTPUT_READ.length ");
        detail_number(q->length);
        detail_text(" is over one chunk (");
        detail_number(room);
        detail_text(")");
        return SYNERGY_ERR_TOO_LARGE;
    }
    if (q->offset >= output_length || q->length == 0u) {
        detail_clear();
        detail_text("OUTPUT_READ.offset = ");
        detail_number(q->offset);
        detail_text(" length = ");
        detail_number(q->length);
        detail_text(" asks nothing of ");
        detail_number(output_length);
        detail_text(" bytes");
        return SYNERGY_ERR_BAD_MESSAGE;
    }
    length = output_length - q->offset < q->length ? output_length - q->offset : q->length;
    reply_begin(SYNERGY_MSG_OUTPUT_CHUNK);
    w_u32(q->offset);
    w_bytes(output_buffer + q->offset, length);
    return SYNERGY_OK;
}

static int dispatch(const struct request *q)
{
    switch (q->type) {
    case SYNERGY_MSG_HELLO: return handle_hello(q);
    case SYNERGY_MSG_STATUS: return handle_status();
    case SYNERGY_MSG_LOAD_BEGIN: return handle_load_begin(q);
    case SYNERGY_MSG_LOAD_CHUNK: return handle_load_chunk(q);
    case SYNERGY_MSG_LOAD_END: return handle_load_end(q);
    case SYNERGY_MSG_UNLOAD: return handle_unload(q);
    case SYNERGY_MSG_RUN: return handle_run(q);
    case SYNERGY_MSG_RUN_INPUT: return handle_run_input(q);
    case SYNERGY_MSG_OUTPUT_READ: return handle_output_read(q);
    default:
        detail_clear();
        detail_text(type_name(q->type));
        detail_text(" is not a request");
        return SYNERGY_ERR_BAD_MESSAGE;
    }
}

static int transient(int code)
{
    return code == SYNERGY_ERR_BAD_CRC || code == SYNERGY_ERR_BUSY || code == SYNERGY_ERR_OUT_OF_ORDER;
}

static void handle_request(const struct request *q)
{
    int slot = cache_find(q->seq);
    int code;
    if (slot >= 0 && q->type != SYNERGY_MSG_HELLO) {
        /* A retransmission: the stored reply, not a second execution (§6). */
        synergy_hal_uart_write(cache[slot].bytes, cache[slot].length);
        return;
    }
    if (q->version != version && q->type != SYNERGY_MSG_HELLO) {
        detail_clear();
        detail_text("version ");
        detail_number(q->version);
        detail_text(" after agreeing on ");
        detail_number(version);
        w_error(SYNERGY_ERR_BAD_VERSION);
        send_uncached(q->seq, 0);
        return;
    }
    code = dispatch(q);
    if (code == SYNERGY_OK && (tx_overflow || tx_payload_length > max_payload)) {
        detail_clear();
        detail_text(type_name(tx_type));
        detail_text(" does not fit the negotiated max_payload of ");
        detail_number(max_payload);
        code = SYNERGY_ERR_INTERNAL;
    }
    if (code != SYNERGY_OK) {
        w_error((uint8_t)code);
        if (transient(code)) {
            /* Not executed: a retransmission is tried afresh. */
            send_uncached(q->seq, 0);
            return;
        }
    }
    send_cached(q->seq);
}

/* ------------------------------------------------------------------------------------------ */
/* Frames */

static void frame_error(enum frame_error_kind kind, int trusted, uint16_t seq)
{
    /* The reason was written to the detail by the check; prefix the kind as the reference does. */
    struct synergy_detail reason = detail;
    rx.bad_frames++;
    if (!trusted) {
        detail_clear();
        detail_text(frame_error_names[kind]);
        detail_text(": ");
        detail_text(reason.text);
        w_error(SYNERGY_ERR_BAD_CRC);
        send_uncached(0, SYNERGY_FLAG_NO_SEQ);
        return;
    }
    w_error(kind == FRAME_BAD_VERSION ? SYNERGY_ERR_BAD_VERSION : SYNERGY_ERR_BAD_MESSAGE);
    send_uncached(seq, 0);
}

/* One delimited block, judged in the order of §3. */
static void judge(uint8_t *block, uint32_t length)
{
    long decoded = synergy_cobs_decode_in_place(block, length);
    uint32_t body_length, content_length, payload_length;
    struct request q;
    if (decoded < 0) {
        refuse(0, "a COBS group runs past the end of the frame");
        frame_error(FRAME_BAD_COBS, 0, 0);
        return;
    }
    body_length = (uint32_t)decoded;
    if (body_length < SYNERGY_HEADER_BYTES + SYNERGY_CRC_BYTES) {
        detail_clear();
        detail_number(body_length);
        detail_text(" bytes, fewer than header and CRC (12)");
        frame_error(FRAME_TRUNCATED, 0, 0);
        return;
    }
    content_length = body_length - SYNERGY_CRC_BYTES;
    payload_length = get_u16(block + 6);
    {
        uint32_t check = get_u32(block + content_length);
        uint32_t crc = synergy_crc32(0, block, content_length);
        if (crc != check) {
            detail_clear();
            if (SYNERGY_HEADER_BYTES + payload_length > content_length) {
                /* Likely cut short; a flipped length bit looks the same, and is counted so. */
                detail_text("payload_length ");
                detail_number(payload_length);
                detail_text(" but only ");
                detail_number(content_length - SYNERGY_HEADER_BYTES);
                detail_text(" payload bytes (CRC fails)");
                frame_error(FRAME_TRUNCATED, 0, 0);
            } else {
                detail_text("CRC ");
                detail_hex(check);
                detail_text(" does not match ");
                detail_hex(crc);
                frame_error(FRAME_BAD_CRC, 0, 0);
            }
            return;
        }
    }
    if (SYNERGY_HEADER_BYTES + payload_length != content_length) {
        detail_clear();
        detail_text("payload_length ");
        detail_number(payload_length);
        detail_text(" but the frame carries ");
        detail_number(content_length - SYNERGY_HEADER_BYTES);
        detail_text(" payload bytes");
        frame_error(FRAME_BAD_HEADER, 0, 0);
        return;
    }
    if (block[3] != 0u || (block[2] & (uint8_t)~SYNERGY_KNOWN_FLAGS) != 0u) {
        refuse(0, "reserved byte or unknown flags set");
        frame_error(FRAME_BAD_HEADER, 0, 0);
        return;
    }
    q.version = block[0];
    q.type = block[1];
    q.seq = get_u16(block + 4);
    if (q.version < SYNERGY_MIN_VERSION || q.version > SYNERGY_MAX_VERSION) {
        detail_clear();
        detail_text("version ");
        detail_number(q.version);
        detail_text(" is not one of [1]");
        frame_error(FRAME_BAD_VERSION, 1, q.seq);
        return;
    }
    /* The board's own max_payload, as the reference decoder (never renegotiated downwards). */
    if (payload_length > SYNERGY_MAX_PAYLOAD) {
        detail_clear();
        detail_text("payload_length ");
        detail_number(payload_length);
        detail_text(" is over the max_payload of 1024");
        frame_error(FRAME_TOO_LONG, 0, 0);
        return;
    }
    if (!known_type(q.type)) {
        detail_clear();
        detail_text("type byte ");
        detail_hex(q.type);
        detail_text(" is unknown");
        frame_error(FRAME_UNKNOWN_TYPE, 1, q.seq);
        return;
    }
    if (parse_payload(&q, block + SYNERGY_HEADER_BYTES, payload_length) != 0) {
        struct synergy_detail field = detail;
        detail_clear();
        detail_text(type_name(q.type));
        detail_text(".");
        detail_text(field.text);
        frame_error(FRAME_BAD_PAYLOAD, 1, q.seq);
        return;
    }
    rx.frames++;
    handle_request(&q);
}

void synergy_core_feed(const uint8_t *data, size_t length)
{
    size_t i;
    for (i = 0; i < length; i++) {
        uint8_t byte = data[i];
        if (byte == 0u) {
            if (rx.skipping) {
                rx.skipping = 0;
            } else if (rx.length > 0u) {
                judge(rx.buffer, rx.length);
            } /* else: an empty frame (a sender's resync 0x00), not an error */
            rx.length = 0;
        } else if (!rx.skipping) {
            if (rx.length >= RX_LIMIT) {
                refuse(0, "no delimiter within 1041 bytes (the largest frame at max_payload 1024)");
                frame_error(FRAME_TOO_LONG, 0, 0);
                rx.length = 0;
                rx.skipping = 1;
            } else {
                rx.buffer[rx.length++] = byte;
            }
        }
    }
}

void synergy_core_poll(void)
{
    uint8_t chunk[256];
    size_t received;
    (void)uptime_ms();
    while ((received = synergy_hal_uart_read(chunk, sizeof chunk)) > 0u) {
        synergy_core_feed(chunk, received);
    }
}

int synergy_core_init(void)
{
    size_t firmware_length;
    memset(&identity, 0, sizeof identity);
    synergy_hal_identity(&identity);
    identity.firmware[SYNERGY_MAX_FIRMWARE_CHARS] = '\0';
    firmware_length = strlen(identity.firmware);
    /* The buffers were sized for this build's board: a HAL claiming more must not start. */
    if (identity.limits.max_tensor_bytes > SYNERGY_MAX_TENSOR_BYTES ||
        identity.limits.partition_flash_bytes > SYNERGY_PARTITION_FLASH_BYTES || firmware_length == 0u) {
        return -1;
    }
    version = (uint8_t)SYNERGY_PROTOCOL_VERSION;
    max_payload = (uint16_t)SYNERGY_MAX_PAYLOAD;
    rx.length = 0;
    rx.skipping = 0;
    rx.frames = 0;
    rx.bad_frames = 0;
    cache_count = 0;
    load.open = 0;
    input.open = 0;
    output_length = 0;
    synergy_store_reset();
    last_micros = synergy_hal_micros();
    uptime_us = 0;
    detail_clear();
    return 0;
}
