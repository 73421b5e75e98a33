/*
 * The hardware abstraction the firmware core runs on: everything board-specific is behind
 * these functions, the core (src/) is portable C99 without dynamic allocation.
 *
 * Implementations:
 *   host/hal_host.c    a pseudo-terminal as the UART, CLOCK_MONOTONIC as the counter, flash
 *                      emulated in memory with the real controller's rules (page erase,
 *                      16-byte program words written once), and the CNN delegated to a child
 *                      process, the "CNN coprocessor" (synergy/serial/coprocessor.py, started as
 *                      python -m synergy.cli.coprocessor_cmd),
 *                      because the accelerator cannot run in C on a PC.
 *   cross/hal_null.c   does nothing: lets the cross build link and measure the core.
 *   (none for a real board yet: README.md lists what one must do with the vendor's MSDK)
 *
 * On a real board the CNN functions drive the accelerator from the partition image in flash
 * (weights into the CNN's weight memory, bias, layer registers), the UART is UART0 at
 * 921,600 baud through the FTHR's DAPLink bridge, and flash is the flash controller (FLC).
 */
#ifndef SYNERGY_HAL_H
#define SYNERGY_HAL_H

#include <stddef.h>
#include <stdint.h>

#include "synergy_protocol.h"

/* -------------------------------------------------------------------------------------------
 * Identity and limits (HELLO_REPLY). The core refuses to start when the limits exceed the
 * static buffers it was compiled with (synergy_board.h).
 */
struct synergy_limits {
    uint32_t weight_bytes;
    uint32_t bias_bytes;
    uint16_t max_layers;
    uint32_t data_bytes;
    uint32_t partition_flash_bytes;
    uint32_t frame_sram_bytes;
    uint32_t max_tensor_bytes;
    uint32_t cnn_clock_hz;
};

struct synergy_identity {
    uint8_t kind; /* enum synergy_board_kind */
    struct synergy_limits limits;
    /* Printable ASCII, at most SYNERGY_MAX_FIRMWARE_CHARS, NUL-terminated here. */
    char firmware[SYNERGY_MAX_FIRMWARE_CHARS + 1u];
    /* New at every reset (a hardware random number on a board). */
    uint32_t boot_id;
};

void synergy_hal_identity(struct synergy_identity *out);

/* -------------------------------------------------------------------------------------------
 * UART. read: the bytes received so far, at most cap, without waiting (0 if none). write:
 * sends every byte (a real UART's FIFO may make it wait for the line).
 */
size_t synergy_hal_uart_read(uint8_t *buffer, size_t cap);
void synergy_hal_uart_write(const uint8_t *data, size_t length);

/* A free-running microsecond counter; wraps at 2^32. The core calls it at least once per
 * synergy_core_poll, which must run at least once per wrap (71 minutes). */
uint32_t synergy_hal_micros(void);

/* -------------------------------------------------------------------------------------------
 * Flash for partitions: an area of SYNERGY_FLASH_AREA_BYTES (synergy_board.h), addressed from
 * 0. Erase works on whole pages (SYNERGY_FLASH_PAGE_BYTES; offset page-aligned); write on
 * whole program words (SYNERGY_FLASH_WORD_BYTES; offset and length multiples of it) that are
 * erased and not yet written since. Each returns 0, or non-zero on a failure (the core answers
 * INTERNAL).
 */
int synergy_hal_flash_erase_page(uint32_t offset);
int synergy_hal_flash_write(uint32_t offset, const uint8_t *data, uint32_t length);
int synergy_hal_flash_read(uint32_t offset, uint8_t *data, uint32_t length);

/* -------------------------------------------------------------------------------------------
 * The CNN accelerator.
 */

/* One tensor of a run's input or output (protocol §5 "tensors"). */
struct synergy_tensor {
    uint8_t element_bytes; /* 1 = int8, 4 = int32 LE */
    uint8_t rank;          /* 1..4 */
    uint16_t dims[SYNERGY_MAX_TENSOR_RANK];
};

struct synergy_tensors {
    uint8_t count; /* 0..SYNERGY_MAX_TENSORS */
    struct synergy_tensor tensor[SYNERGY_MAX_TENSORS];
};

/* Why a CNN call failed, for the ERROR's detail (UTF-8, NUL-terminated). */
struct synergy_detail {
    char text[SYNERGY_MAX_DETAIL_BYTES + 1u];
};

struct synergy_cnn_run {
    uint16_t partition_id;
    /* Where the partition's image is in the flash area now (compaction may move it). */
    uint32_t flash_offset;
    uint32_t size;
    const struct synergy_tensors *inputs;
    const uint8_t *input;
    uint32_t input_bytes;
    /* Where the output goes: at most output_capacity bytes. */
    uint8_t *output;
    uint32_t output_capacity;
};

struct synergy_cnn_result {
    struct synergy_tensors outputs;
    uint32_t output_bytes;
    /* The accelerator's cycle counter for the network; CPU copy-in and copy-out times and the
     * weight reload (0 when resident), microseconds, measured with synergy_hal_micros. */
    uint32_t cnn_cycles;
    uint32_t input_load_us;
    uint32_t output_unload_us;
    uint32_t weight_load_us;
};

/*
 * load: the partition (digest checked, written at flash_offset) becomes runnable as
 * partition_id; it may refuse (a layer the accelerator cannot run: TOO_LARGE, INTERNAL, ...).
 * run: run a held partition on the input; the output's tensors and bytes.
 * unload: forget partition_id (its flash is the core's to reuse).
 * load and run return 0 or an enum synergy_error_code, with a detail.
 */
int synergy_hal_cnn_load(uint16_t partition_id, uint32_t flash_offset, uint32_t size, struct synergy_detail *detail);
int synergy_hal_cnn_run(const struct synergy_cnn_run *run, struct synergy_cnn_result *result,
                        struct synergy_detail *detail);
void synergy_hal_cnn_unload(uint16_t partition_id);

#endif /* SYNERGY_HAL_H */
