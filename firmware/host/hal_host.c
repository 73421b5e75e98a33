/*
 * The HAL of the host build: the board's UART is a pseudo-terminal, its flash an array with
 * the flash controller's rules, and its CNN accelerator a child process, the CNN coprocessor
 * (synergy/serial/coprocessor.py), which runs the partition on the emulated board. The
 * firmware core above it is the same code the cross build compiles for the chip.
 *
 * Coprocessor link (the coprocessor's module doc is the reference): on its stdin/stdout, one
 * request then one reply, each `type u8, length u32 LE, payload[length]`:
 *   COMMIT 0x12  partition_id u16, the partition's bytes       -> ACK or ERROR
 *   RUN    0x20  the serial protocol's RUN payload, all input  -> RUN_RESULT (all output) or ERROR
 *   DROP   0x13  partition_id u16                              -> ACK
 * Replies use the serial protocol's ACK (0x7E), RUN_RESULT (0x22) and ERROR (0x7F) payloads.
 * Once started it sends an ACK whose payload is the board preset it emulates.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "host.h"
#include "synergy_board.h"
#include "synergy_hal.h"

#define COPROCESSOR_COMMIT 0x12u
#define COPROCESSOR_RUN 0x20u
#define COPROCESSOR_DROP 0x13u
/* A reply that takes longer is a hung coprocessor (the emulated chip's longest run is far less). */
#define COPROCESSOR_TIMEOUT_MS 120000
/* Its start imports onnxruntime and numpy: a few seconds on a loaded machine. */
#define COPROCESSOR_START_TIMEOUT_MS 120000

volatile sig_atomic_t host_stopping = 0;

/* ------------------------------------------------------------------------------------------ */
/* Time */

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void sleep_until(double deadline)
{
    double wait = deadline - now_seconds();
    if (wait > 0) {
        struct timespec t;
        t.tv_sec = (time_t)wait;
        t.tv_nsec = (long)((wait - (double)t.tv_sec) * 1e9);
        while (nanosleep(&t, &t) != 0 && errno == EINTR && !host_stopping) {
        }
    }
}

uint32_t synergy_hal_micros(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint32_t)((uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u);
}

/* ------------------------------------------------------------------------------------------ */
/* Identity */

void synergy_hal_identity(struct synergy_identity *out)
{
    uint32_t boot_id = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0 || read(fd, &boot_id, sizeof boot_id) != (ssize_t)sizeof boot_id) {
        boot_id = (uint32_t)getpid() ^ synergy_hal_micros();
    }
    if (fd >= 0) {
        close(fd);
    }
    synergy_board_identity(out, SYNERGY_FIRMWARE_VERSION "+host", boot_id);
}

/* ------------------------------------------------------------------------------------------ */
/* UART on the pty master, paced like a UART at `baud` (10 bits per byte, 8N1) both ways on
 * running deadlines, as synergy/serial/responder.py's serve_stream does. */

static int uart_fd = -1;
static double byte_seconds;
static double rx_free;
static double tx_free;

void host_uart_open(int fd, long baud)
{
    uart_fd = fd;
    byte_seconds = baud > 0 ? 10.0 / (double)baud : 0.0;
    rx_free = tx_free = now_seconds();
}

size_t synergy_hal_uart_read(uint8_t *buffer, size_t cap)
{
    ssize_t got;
    if (host_stopping) {
        return 0;
    }
    got = read(uart_fd, buffer, cap);
    if (got <= 0) {
        return 0; /* EAGAIN: nothing now; EIO (no one has the slave open): nothing either */
    }
    if (byte_seconds > 0) {
        double now = now_seconds();
        double line = (double)got * byte_seconds;
        rx_free = (rx_free > now - line ? rx_free : now - line) + line;
        sleep_until(rx_free);
    }
    return (size_t)got;
}

void synergy_hal_uart_write(const uint8_t *data, size_t length)
{
    size_t sent = 0;
    double stuck_since = 0;
    while (sent < length && !host_stopping) {
        ssize_t wrote = write(uart_fd, data + sent, length - sent);
        if (wrote > 0) {
            sent += (size_t)wrote;
            stuck_since = 0;
            continue;
        }
        if (wrote < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            return; /* the port is gone: the bytes are lost, as on a pulled cable */
        }
        /* The pty is full because nobody reads it: a real UART's bytes would be lost after a
         * while too, and the board must keep answering STATUS-less hosts, not hang. */
        if (stuck_since == 0) {
            stuck_since = now_seconds();
        } else if (now_seconds() - stuck_since > 1.0) {
            return;
        }
        {
            struct pollfd p;
            p.fd = uart_fd;
            p.events = POLLOUT;
            p.revents = 0;
            (void)poll(&p, 1, 100);
        }
    }
    if (byte_seconds > 0) {
        double now = now_seconds();
        tx_free = (tx_free > now ? tx_free : now) + (double)length * byte_seconds;
        sleep_until(tx_free);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* The CNN coprocessor */

static pid_t coprocessor_pid = -1;
static int coprocessor_in = -1;  /* its stdin: we write requests */
static int coprocessor_out = -1; /* its stdout: we read replies */

static void coprocessor_lost(const char *why)
{
    if (coprocessor_pid > 0) {
        fprintf(stderr, "synergy-board: the CNN coprocessor failed (%s); CNN requests now fail\n", why);
    }
    host_coprocessor_stop();
}

static int write_all(int fd, const uint8_t *data, size_t length)
{
    while (length > 0u) {
        ssize_t wrote = write(fd, data, length);
        if (wrote < 0 && errno == EINTR && !host_stopping) {
            continue;
        }
        if (wrote <= 0) {
            return -1;
        }
        data += wrote;
        length -= (size_t)wrote;
    }
    return 0;
}

static int read_all(int fd, uint8_t *data, size_t length, int timeout_ms)
{
    while (length > 0u) {
        struct pollfd p;
        ssize_t got;
        int ready;
        p.fd = fd;
        p.events = POLLIN;
        p.revents = 0;
        ready = poll(&p, 1, timeout_ms);
        if (ready < 0 && errno == EINTR && !host_stopping) {
            continue;
        }
        if (ready <= 0) {
            return -1;
        }
        got = read(fd, data, length);
        if (got < 0 && errno == EINTR && !host_stopping) {
            continue;
        }
        if (got <= 0) {
            return -1;
        }
        data += got;
        length -= (size_t)got;
    }
    return 0;
}

static void put_u16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    put_u16(p, v);
    put_u16(p + 2, v >> 16);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static int send_head(uint8_t type, uint32_t length)
{
    uint8_t head[5];
    head[0] = type;
    put_u32(head + 1, length);
    return write_all(coprocessor_in, head, sizeof head);
}

/* A reply's type and length (0, or -1: the coprocessor is gone or hung). */
static int receive_head(uint8_t *type, uint32_t *length, int timeout_ms)
{
    uint8_t head[5];
    if (read_all(coprocessor_out, head, sizeof head, timeout_ms) != 0) {
        return -1;
    }
    *type = head[0];
    *length = get_u32(head + 1);
    return 0;
}

/* Drop `length` bytes of a reply not used (an output too large for the board). */
static int skip(uint32_t length)
{
    uint8_t sink[4096];
    while (length > 0u) {
        uint32_t piece = length < sizeof sink ? length : (uint32_t)sizeof sink;
        if (read_all(coprocessor_out, sink, piece, COPROCESSOR_TIMEOUT_MS) != 0) {
            return -1;
        }
        length -= piece;
    }
    return 0;
}

static int failed(struct synergy_detail *detail, int code, const char *text)
{
    strncpy(detail->text, text, SYNERGY_MAX_DETAIL_BYTES);
    detail->text[SYNERGY_MAX_DETAIL_BYTES] = '\0';
    return code;
}

/* An ERROR payload (code, versions, detail) or ACK; anything else is a broken coprocessor. */
static int receive_ack_or_error(struct synergy_detail *detail)
{
    uint8_t type;
    uint32_t length;
    uint8_t payload[4u + SYNERGY_MAX_DETAIL_BYTES];
    if (receive_head(&type, &length, COPROCESSOR_TIMEOUT_MS) != 0) {
        coprocessor_lost("no reply");
        return failed(detail, SYNERGY_ERR_INTERNAL, "the CNN coprocessor did not answer");
    }
    if (type == SYNERGY_MSG_ACK && length == 0u) {
        return SYNERGY_OK;
    }
    if (type != SYNERGY_MSG_ERROR || length < 4u || length > sizeof payload ||
        read_all(coprocessor_out, payload, length, COPROCESSOR_TIMEOUT_MS) != 0 || payload[0] == 0u ||
        payload[3] != length - 4u) {
        coprocessor_lost("a malformed reply");
        return failed(detail, SYNERGY_ERR_INTERNAL, "the CNN coprocessor sent a malformed reply");
    }
    memcpy(detail->text, payload + 4, payload[3]);
    detail->text[payload[3]] = '\0';
    return payload[0];
}

int host_coprocessor_start(const char *command)
{
    int to_child[2], from_child[2];
    uint8_t type;
    uint32_t length;
    char board[33];
    pid_t pid;
    if (pipe(to_child) != 0 || pipe(from_child) != 0) {
        perror("synergy-board: pipe");
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        perror("synergy-board: fork");
        return -1;
    }
    if (pid == 0) {
        char script[4096];
        dup2(to_child[0], STDIN_FILENO);
        dup2(from_child[1], STDOUT_FILENO);
        close(to_child[0]);
        close(to_child[1]);
        close(from_child[0]);
        close(from_child[1]);
        snprintf(script, sizeof script, "exec %s", command);
        execl("/bin/sh", "sh", "-c", script, (char *)NULL);
        perror("synergy-board: /bin/sh");
        _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);
    coprocessor_pid = pid;
    coprocessor_in = to_child[1];
    coprocessor_out = from_child[0];
    (void)fcntl(coprocessor_in, F_SETFD, FD_CLOEXEC);
    (void)fcntl(coprocessor_out, F_SETFD, FD_CLOEXEC);
    if (receive_head(&type, &length, COPROCESSOR_START_TIMEOUT_MS) != 0 || type != SYNERGY_MSG_ACK ||
        length >= sizeof board || read_all(coprocessor_out, (uint8_t *)board, length, COPROCESSOR_TIMEOUT_MS) != 0) {
        fprintf(stderr, "synergy-board: the CNN coprocessor (%s) did not start\n", command);
        host_coprocessor_stop();
        return -1;
    }
    board[length] = '\0';
    if (strcmp(board, SYNERGY_BOARD_NAME) != 0) {
        fprintf(stderr, "synergy-board: the CNN coprocessor emulates %s, this firmware is built for %s\n", board,
                SYNERGY_BOARD_NAME);
        host_coprocessor_stop();
        return -1;
    }
    return 0;
}

void host_coprocessor_stop(void)
{
    int waited;
    if (coprocessor_in >= 0) {
        close(coprocessor_in); /* EOF on its stdin: it exits */
        coprocessor_in = -1;
    }
    if (coprocessor_out >= 0) {
        close(coprocessor_out);
        coprocessor_out = -1;
    }
    if (coprocessor_pid <= 0) {
        return;
    }
    for (waited = 0; waited < 50; waited++) { /* 5 s, then it is killed */
        struct timespec tenth = {0, 100000000L};
        if (waitpid(coprocessor_pid, NULL, WNOHANG) == coprocessor_pid) {
            coprocessor_pid = -1;
            return;
        }
        nanosleep(&tenth, NULL);
    }
    kill(coprocessor_pid, SIGKILL);
    waitpid(coprocessor_pid, NULL, 0);
    coprocessor_pid = -1;
}

int synergy_hal_cnn_load(uint16_t partition_id, uint32_t flash_offset, uint32_t size, struct synergy_detail *detail)
{
    uint8_t piece[4096];
    uint32_t sent = 0;
    if (coprocessor_in < 0) {
        return failed(detail, SYNERGY_ERR_INTERNAL, "the CNN coprocessor is gone");
    }
    put_u16(piece, partition_id);
    if (send_head(COPROCESSOR_COMMIT, 2u + size) != 0 || write_all(coprocessor_in, piece, 2) != 0) {
        coprocessor_lost("its stdin closed");
        return failed(detail, SYNERGY_ERR_INTERNAL, "the CNN coprocessor is gone");
    }
    /* The bytes come back out of flash, as the accelerator's loader would read them. */
    while (sent < size) {
        uint32_t length = size - sent < sizeof piece ? size - sent : (uint32_t)sizeof piece;
        if (synergy_hal_flash_read(flash_offset + sent, piece, length) != 0) {
            coprocessor_lost("a flash read failed mid-request");
            return failed(detail, SYNERGY_ERR_INTERNAL, "flash read failed");
        }
        if (write_all(coprocessor_in, piece, length) != 0) {
            coprocessor_lost("its stdin closed");
            return failed(detail, SYNERGY_ERR_INTERNAL, "the CNN coprocessor is gone");
        }
        sent += length;
    }
    return receive_ack_or_error(detail);
}

void synergy_hal_cnn_unload(uint16_t partition_id)
{
    struct synergy_detail ignored;
    uint8_t id[2];
    if (coprocessor_in < 0) {
        return;
    }
    put_u16(id, partition_id);
    if (send_head(COPROCESSOR_DROP, 2) != 0 || write_all(coprocessor_in, id, 2) != 0) {
        coprocessor_lost("its stdin closed");
        return;
    }
    (void)receive_ack_or_error(&ignored);
}

/* Bytes of the reply being read that are still in the pipe. */
static uint32_t reply_left;

static int reply_take(uint8_t *data, uint32_t length)
{
    if (length > reply_left || read_all(coprocessor_out, data, length, COPROCESSOR_TIMEOUT_MS) != 0) {
        return -1;
    }
    reply_left -= length;
    return 0;
}

static int reply_tensors(struct synergy_tensors *out)
{
    unsigned i, axis;
    uint8_t field[2u * SYNERGY_MAX_TENSOR_RANK];
    if (reply_take(&out->count, 1) != 0 || out->count > SYNERGY_MAX_TENSORS) {
        return -1;
    }
    for (i = 0; i < out->count; i++) {
        struct synergy_tensor *t = &out->tensor[i];
        if (reply_take(field, 2) != 0) {
            return -1;
        }
        t->element_bytes = field[0];
        t->rank = field[1];
        if (t->rank < 1u || t->rank > SYNERGY_MAX_TENSOR_RANK || reply_take(field, 2u * t->rank) != 0) {
            return -1;
        }
        for (axis = 0; axis < t->rank; axis++) {
            t->dims[axis] = (uint16_t)(field[2u * axis] | (field[2u * axis + 1u] << 8));
        }
    }
    return 0;
}

int synergy_hal_cnn_run(const struct synergy_cnn_run *run, struct synergy_cnn_result *result,
                        struct synergy_detail *detail)
{
    uint8_t head[3u + SYNERGY_MAX_TENSORS * (2u + 2u * SYNERGY_MAX_TENSOR_RANK)];
    uint8_t timings[16];
    uint32_t head_length = 0, length;
    unsigned i, axis;
    uint8_t type;
    if (coprocessor_in < 0) {
        return failed(detail, SYNERGY_ERR_INTERNAL, "the CNN coprocessor is gone");
    }
    put_u16(head, run->partition_id);
    head[2] = run->inputs->count;
    head_length = 3;
    for (i = 0; i < run->inputs->count && i < SYNERGY_MAX_TENSORS; i++) {
        const struct synergy_tensor *t = &run->inputs->tensor[i];
        head[head_length++] = t->element_bytes;
        head[head_length++] = t->rank;
        for (axis = 0; axis < t->rank && axis < SYNERGY_MAX_TENSOR_RANK; axis++) {
            put_u16(head + head_length, t->dims[axis]);
            head_length += 2u;
        }
    }
    if (send_head(COPROCESSOR_RUN, head_length + run->input_bytes) != 0 ||
        write_all(coprocessor_in, head, head_length) != 0 ||
        write_all(coprocessor_in, run->input, run->input_bytes) != 0) {
        coprocessor_lost("its stdin closed");
        return failed(detail, SYNERGY_ERR_INTERNAL, "the CNN coprocessor is gone");
    }
    if (receive_head(&type, &length, COPROCESSOR_TIMEOUT_MS) != 0) {
        coprocessor_lost("no reply");
        return failed(detail, SYNERGY_ERR_INTERNAL, "the CNN coprocessor did not answer");
    }
    reply_left = length;
    if (type == SYNERGY_MSG_ERROR) {
        uint8_t error_head[4];
        if (reply_take(error_head, 4) != 0 || error_head[0] == 0u || error_head[3] != reply_left ||
            error_head[3] > SYNERGY_MAX_DETAIL_BYTES ||
            reply_take((uint8_t *)detail->text, error_head[3]) != 0) {
            coprocessor_lost("a malformed ERROR");
            return failed(detail, SYNERGY_ERR_INTERNAL, "the CNN coprocessor sent a malformed reply");
        }
        detail->text[error_head[3]] = '\0';
        return error_head[0];
    }
    if (type != SYNERGY_MSG_RUN_RESULT || reply_take(timings, sizeof timings) != 0 ||
        reply_tensors(&result->outputs) != 0) {
        coprocessor_lost("a malformed RUN_RESULT");
        return failed(detail, SYNERGY_ERR_INTERNAL, "the CNN coprocessor sent a malformed reply");
    }
    result->cnn_cycles = get_u32(timings);
    result->input_load_us = get_u32(timings + 4);
    result->output_unload_us = get_u32(timings + 8);
    result->weight_load_us = get_u32(timings + 12);
    result->output_bytes = reply_left;
    if (reply_left > run->output_capacity) {
        char text[SYNERGY_MAX_DETAIL_BYTES + 1u];
        snprintf(text, sizeof text, "output of %lu bytes is over max_tensor_bytes %lu", (unsigned long)reply_left,
                 (unsigned long)run->output_capacity);
        if (skip(reply_left) != 0) {
            coprocessor_lost("a truncated RUN_RESULT");
        }
        return failed(detail, SYNERGY_ERR_TOO_LARGE, text);
    }
    if (reply_take(run->output, reply_left) != 0) {
        coprocessor_lost("a truncated RUN_RESULT");
        return failed(detail, SYNERGY_ERR_INTERNAL, "the CNN coprocessor sent a truncated reply");
    }
    return SYNERGY_OK;
}
