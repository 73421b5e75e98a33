/*
 * synergy-fuzz: hostile input for the firmware core, under AddressSanitizer and UBSan.
 *
 *     synergy-fuzz [ITERATIONS] [SEED]
 *
 * Feeds the core (synergy_core_feed) a stream of frames that are mostly well-formed but carry
 * out-of-range fields, then damages some (bit flips, cuts, garbage, over-long runs, repeated
 * sequence numbers). The sanitizers abort on any out-of-bounds access or undefined behaviour;
 * the harness also checks that every reply the core writes is one intact frame (COBS, CRC,
 * length), that the flash rules were never broken, and that a HELLO is still answered at the
 * end. The CNN is an echo (input reversed), the flash the host builds' simulated one.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cobs.h"
#include "crc32.h"
#include "host.h"
#include "sha256.h"
#include "synergy_board.h"
#include "synergy_core.h"
#include "synergy_hal.h"

volatile sig_atomic_t host_stopping = 0;

static unsigned long replies;
static unsigned long bad_replies;
static uint8_t last_reply_type;
static uint32_t clock_us;
static uint64_t random_state = 0x9E3779B97F4A7C15ull;

static uint32_t next_random(void)
{
    random_state ^= random_state << 13;
    random_state ^= random_state >> 7;
    random_state ^= random_state << 17;
    return (uint32_t)(random_state >> 16);
}

static uint32_t pick(const uint32_t *values, size_t count) { return values[next_random() % count]; }

/* -- the HAL ------------------------------------------------------------------------------- */

void synergy_hal_identity(struct synergy_identity *out)
{
    synergy_board_identity(out, "fuzz", 7);
}

size_t synergy_hal_uart_read(uint8_t *buffer, size_t cap)
{
    (void)buffer;
    (void)cap;
    return 0;
}

/* Every write is one reply frame: check it is intact. */
void synergy_hal_uart_write(const uint8_t *data, size_t length)
{
    static uint8_t copy[SYNERGY_MAX_FRAME_BYTES];
    long decoded;
    replies++;
    if (length < 2u || length > sizeof copy || data[length - 1u] != 0u || memchr(data, 0, length - 1u) != NULL) {
        bad_replies++;
        return;
    }
    memcpy(copy, data, length - 1u);
    decoded = synergy_cobs_decode_in_place(copy, length - 1u);
    if (decoded < 12 ||
        synergy_crc32(0, copy, (size_t)decoded - 4u) !=
            ((uint32_t)copy[decoded - 4] | ((uint32_t)copy[decoded - 3] << 8) | ((uint32_t)copy[decoded - 2] << 16) |
             ((uint32_t)copy[decoded - 1] << 24)) ||
        (uint32_t)(copy[6] | (copy[7] << 8)) + 12u != (uint32_t)decoded) {
        bad_replies++;
        return;
    }
    last_reply_type = copy[1];
}

uint32_t synergy_hal_micros(void) { return clock_us += 1000u; }

int synergy_hal_cnn_load(uint16_t partition_id, uint32_t flash_offset, uint32_t size, struct synergy_detail *detail)
{
    (void)partition_id;
    (void)flash_offset;
    if (size % 7u == 3u) { /* some partitions the "chip" refuses, as a real one would */
        strcpy(detail->text, "refused by the echo chip");
        return SYNERGY_ERR_TOO_LARGE;
    }
    return SYNERGY_OK;
}

int synergy_hal_cnn_run(const struct synergy_cnn_run *run, struct synergy_cnn_result *result,
                        struct synergy_detail *detail)
{
    uint32_t i;
    (void)detail;
    if (run->input_bytes > run->output_capacity) {
        return SYNERGY_ERR_TOO_LARGE;
    }
    for (i = 0; i < run->input_bytes; i++) {
        run->output[i] = run->input[run->input_bytes - 1u - i];
    }
    result->outputs = *run->inputs;
    result->output_bytes = run->input_bytes;
    result->cnn_cycles = run->size;
    return SYNERGY_OK;
}

void synergy_hal_cnn_unload(uint16_t partition_id) { (void)partition_id; }

/* -- frames -------------------------------------------------------------------------------- */

static uint8_t payload[SYNERGY_MAX_PAYLOAD + 64u];
static size_t payload_length;
static uint16_t next_seq;

static void p_u8(uint32_t v) { payload[payload_length++] = (uint8_t)v; }
static void p_u16(uint32_t v) { p_u8(v); p_u8(v >> 8); }
static void p_u32(uint32_t v) { p_u16(v); p_u16(v >> 16); }

static void p_bytes(size_t count)
{
    while (count-- > 0u && payload_length < sizeof payload) {
        p_u8(next_random());
    }
}

/* The wire bytes of a frame around the payload built (delimiter included). */
static size_t frame(uint8_t version, uint8_t type, uint8_t flags, uint16_t seq, uint8_t *out, size_t cap)
{
    static uint8_t body[8u + sizeof payload + 4u];
    size_t length = 8u + payload_length, encoded;
    uint32_t crc;
    body[0] = version;
    body[1] = type;
    body[2] = flags;
    body[3] = 0;
    body[4] = (uint8_t)seq;
    body[5] = (uint8_t)(seq >> 8);
    body[6] = (uint8_t)payload_length;
    body[7] = (uint8_t)(payload_length >> 8);
    memcpy(body + 8, payload, payload_length);
    crc = synergy_crc32(0, body, length);
    body[length] = (uint8_t)crc;
    body[length + 1u] = (uint8_t)(crc >> 8);
    body[length + 2u] = (uint8_t)(crc >> 16);
    body[length + 3u] = (uint8_t)(crc >> 24);
    encoded = synergy_cobs_encode(body, length + 4u, out, cap - 1u);
    out[encoded] = 0;
    return encoded + 1u;
}

/* A load the core can accept: LOAD_BEGIN with the right digest is built from this. */
static uint32_t load_total;
static uint32_t load_sent;
static uint16_t load_id;

static uint8_t pattern(uint32_t offset) { return (uint8_t)(offset * 31u + load_id); }

static void build_request(uint8_t *type)
{
    static const uint32_t ids[] = {0, 1, 2, 3, 0xFFFF};
    static const uint32_t totals[] = {0, 1, 15, 16, 17, 1018, 5000, 60000, 200000, SYNERGY_PARTITION_FLASH_BYTES,
                                      SYNERGY_PARTITION_FLASH_BYTES + 1u, 0xFFFFFFFFu};
    static const uint32_t dims[] = {0, 1, 2, 3, 17, 255, 1024, 65535};
    static const uint32_t sizes[] = {0, 1, 4, 100, 255, 256, 300, 1017, 1018, 1020, 1024, 1025};
    static const uint8_t types[] = {0x01, 0x02, 0x03, 0x04, 0x10, 0x11, 0x11, 0x11, 0x11, 0x12, 0x13,
                                    0x20, 0x21, 0x22, 0x23, 0x24, 0x7E, 0x7F, 0x00, 0x55};
    uint32_t i, count;
    payload_length = 0;
    *type = types[next_random() % sizeof types];
    switch (*type) {
    case 0x01:
        p_u8(next_random() % 3u);
        p_u8(next_random() % 3u);
        p_u16(pick(sizes, sizeof sizes / sizeof sizes[0]));
        break;
    case 0x10: {
        struct synergy_sha256 sha;
        uint8_t digest[32];
        load_id = (uint16_t)pick(ids, 5);
        load_total = pick(totals, sizeof totals / sizeof totals[0]);
        load_sent = 0;
        p_u16(load_id);
        p_u32(load_total);
        synergy_sha256_init(&sha);
        for (i = 0; load_total <= 200000u && i < load_total; i++) {
            uint8_t b = pattern(i);
            synergy_sha256_update(&sha, &b, 1);
        }
        synergy_sha256_final(&sha, digest);
        if (next_random() % 4u == 0u) {
            digest[next_random() % 32u] ^= 1u;
        }
        for (i = 0; i < 32u; i++) {
            p_u8(digest[i]);
        }
        break;
    }
    case 0x11:
        count = next_random() % 4u == 0u ? next_random() % 1019u : 1018u;
        p_u16(next_random() % 8u == 0u ? pick(ids, 5) : load_id);
        p_u32(next_random() % 8u == 0u ? next_random() : load_sent);
        for (i = 0; i < count; i++) {
            p_u8(pattern(load_sent + i));
        }
        load_sent += count;
        break;
    case 0x12:
    case 0x13:
        p_u16(next_random() % 2u ? load_id : pick(ids, 5));
        break;
    case 0x20:
        p_u16(next_random() % 2u ? load_id : pick(ids, 5));
        count = next_random() % 10u;
        p_u8(count);
        for (i = 0; i < count; i++) {
            uint32_t rank = next_random() % 6u, axis;
            p_u8(next_random() % 8u == 0u ? next_random() % 6u : (next_random() % 2u ? 1u : 4u));
            p_u8(rank);
            for (axis = 0; axis < rank; axis++) {
                p_u16(next_random() % 2u ? 1u + next_random() % 40u : pick(dims, 8));
            }
        }
        p_bytes(next_random() % 2u ? next_random() % 64u : next_random() % 1100u);
        break;
    case 0x21:
        p_u32(next_random() % 2u ? next_random() % 4096u : next_random());
        p_bytes(pick(sizes, sizeof sizes / sizeof sizes[0]));
        break;
    case 0x23:
        p_u32(next_random() % 2u ? next_random() % 4096u : next_random());
        p_u16(pick(sizes, sizeof sizes / sizeof sizes[0]));
        break;
    default:
        p_bytes(next_random() % 3u == 0u ? next_random() % 1100u : next_random() % 48u);
        break;
    }
    if (payload_length > 0u && next_random() % 16u == 0u) {
        payload_length = next_random() % payload_length; /* cut a field short */
    }
}

int main(int argc, char **argv)
{
    static uint8_t wire[2u * SYNERGY_MAX_FRAME_BYTES + 4096u];
    unsigned long iterations = argc > 1 ? strtoul(argv[1], NULL, 10) : 20000ul;
    unsigned long n;
    if (argc > 2) {
        random_state ^= strtoull(argv[2], NULL, 10) * 0x2545F4914F6CDD1Dull;
    }
    host_flash_power_on();
    if (synergy_core_init() != 0) {
        fprintf(stderr, "synergy-fuzz: core refused to start\n");
        return 1;
    }
    for (n = 0; n < iterations; n++) {
        uint8_t type;
        uint32_t choice = next_random() % 100u;
        size_t length;
        build_request(&type);
        length = frame(next_random() % 64u == 0u ? (uint8_t)(next_random() % 4u) : 1u, type,
                       next_random() % 32u == 0u ? (uint8_t)next_random() : 0u,
                       next_random() % 8u == 0u ? (uint16_t)(next_seq - next_random() % 4u) : next_seq++, wire,
                       sizeof wire);
        if (choice < 10u) { /* a flipped bit somewhere */
            wire[next_random() % length] ^= (uint8_t)(1u << (next_random() % 8u));
        } else if (choice < 15u) { /* cut short, the delimiter kept */
            size_t keep = next_random() % length;
            wire[keep] = 0;
            length = keep + 1u;
        } else if (choice < 18u) { /* garbage, zeros included */
            size_t i;
            length = next_random() % 3000u;
            for (i = 0; i < length; i++) {
                wire[i] = (uint8_t)(next_random() % 5u == 0u ? 0u : next_random());
            }
        } else if (choice < 20u) { /* an over-long run without a delimiter */
            size_t i;
            length = 1000u + next_random() % 3000u;
            for (i = 0; i < length; i++) {
                wire[i] = (uint8_t)(1u + next_random() % 255u);
            }
        }
        synergy_core_feed(wire, length);
    }
    /* Whatever came before, a clean HELLO is answered. */
    payload_length = 0;
    p_u8(1);
    p_u8(1);
    p_u16(1024);
    wire[0] = 0;

    {
        size_t length = frame(1, SYNERGY_MSG_HELLO, 0, (uint16_t)(next_seq + 100u), wire + 1, sizeof wire - 1u);
        last_reply_type = 0;
        synergy_core_feed(wire, length + 1u);
    }
    if (last_reply_type != SYNERGY_MSG_HELLO_REPLY || bad_replies != 0u || host_flash_faults != 0u) {
        fprintf(stderr, "synergy-fuzz: FAILED: last reply type %#x, %lu malformed replies, %lu flash faults\n",
                last_reply_type, bad_replies, host_flash_faults);
        return 1;
    }
    printf("synergy-fuzz: %lu frames fed, %lu replies, all intact; HELLO answered after\n", iterations, replies);
    return 0;
}
