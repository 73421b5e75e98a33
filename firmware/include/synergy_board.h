/*
 * What the firmware is compiled for: one board kind per build (-DSYNERGY_BOARD_MAX78000 or
 * -DSYNERGY_BOARD_MAX78002). The figures are the ones HELLO_REPLY reports; they must equal
 * synergy.serial.board_limits.limits_for_profile() of the board's preset
 * (synergy/hardware/boards.py for the CNN memories and clock, synergy/hardware/mcu.py for what
 * flash and SRAM the firmware leaves); tests/integration/test_firmware_host.py asks the host
 * build for HELLO and compares. They also size the firmware's static buffers, so a change here
 * changes its SRAM use (the cross build's link fails if that no longer fits).
 */
#ifndef SYNERGY_BOARD_H
#define SYNERGY_BOARD_H

#include "synergy_protocol.h"

#if defined(SYNERGY_BOARD_MAX78000) && defined(SYNERGY_BOARD_MAX78002)
#error "define one of SYNERGY_BOARD_MAX78000, SYNERGY_BOARD_MAX78002"
#elif defined(SYNERGY_BOARD_MAX78000)
#define SYNERGY_BOARD_KIND SYNERGY_KIND_MAX78000
#define SYNERGY_BOARD_NAME "max78000"
/* 64 processors x 768 weight words x 9 bytes; 4 quadrants x 512 bytes of bias. */
#define SYNERGY_WEIGHT_BYTES 442368ul
#define SYNERGY_BIAS_BYTES 2048ul
#define SYNERGY_MAX_LAYERS 32u
/* 16 data memory instances x 32 KB. */
#define SYNERGY_DATA_BYTES 524288ul
/* 512 KB flash less 64 KB for the firmware; 128 KB SRAM less 32 KB (synergy/hardware/mcu.py). */
#define SYNERGY_PARTITION_FLASH_BYTES 458752ul
#define SYNERGY_FRAME_SRAM_BYTES 98304ul
#define SYNERGY_CNN_CLOCK_HZ 50000000ul
/* Flash controller: 8 KB pages, 128-bit (16-byte) program words (MAX78000 user guide, FLC). */
#define SYNERGY_FLASH_PAGE_BYTES 8192ul
#define SYNERGY_FLASH_WORD_BYTES 16ul
#elif defined(SYNERGY_BOARD_MAX78002)
#define SYNERGY_BOARD_KIND SYNERGY_KIND_MAX78002
#define SYNERGY_BOARD_NAME "max78002"
/* 4 processors x 5,120 + 60 x 4,096 weight words x 9 bytes; 4 quadrants x 2 KB of bias. */
#define SYNERGY_WEIGHT_BYTES 2396160ul
#define SYNERGY_BIAS_BYTES 8192ul
#define SYNERGY_MAX_LAYERS 128u
/* 16 data memory instances x 80 KB. */
#define SYNERGY_DATA_BYTES 1310720ul
/* 2.5 MB flash less 64 KB; 384 KB SRAM less 32 KB (synergy/hardware/mcu.py). */
#define SYNERGY_PARTITION_FLASH_BYTES 2555904ul
#define SYNERGY_FRAME_SRAM_BYTES 360448ul
#define SYNERGY_CNN_CLOCK_HZ 200000000ul
/* Flash controller: 16 KB pages, 128-bit program words. */
#define SYNERGY_FLASH_PAGE_BYTES 16384ul
#define SYNERGY_FLASH_WORD_BYTES 16ul
#else
#error "compile the firmware for one board: -DSYNERGY_BOARD_MAX78000 or -DSYNERGY_BOARD_MAX78002"
#endif

/* A run's input and output are both buffered in SRAM at once: each gets half. */
#define SYNERGY_MAX_TENSOR_BYTES (SYNERGY_FRAME_SRAM_BYTES / 2ul)

/*
 * The flash area the partitions live in, in whole pages. Partitions are packed back to back,
 * each starting on a program word, so up to one word less one byte per partition is padding:
 * the area holds partition_flash_bytes of partitions plus that padding, and HELLO's figure
 * stays exact (a load that fits the free bytes always fits the area after compaction).
 */
#define SYNERGY_ROUND_UP(n, unit) ((((n) + (unit) - 1ul) / (unit)) * (unit))
#define SYNERGY_FLASH_AREA_BYTES \
    SYNERGY_ROUND_UP(SYNERGY_PARTITION_FLASH_BYTES + SYNERGY_MAX_HOLDINGS * SYNERGY_FLASH_WORD_BYTES, \
                     SYNERGY_FLASH_PAGE_BYTES)

#ifndef SYNERGY_FIRMWARE_VERSION
#define SYNERGY_FIRMWARE_VERSION "1.0.0"
#endif

#include "synergy_hal.h"

/* The identity every HAL reports: the limits compiled in above, its own firmware string (cut
 * to SYNERGY_MAX_FIRMWARE_CHARS) and boot id. One place, so the HALs cannot disagree. */
static inline void synergy_board_identity(struct synergy_identity *out, const char *firmware, uint32_t boot_id)
{
    size_t n = 0;
    out->kind = SYNERGY_BOARD_KIND;
    out->limits.weight_bytes = SYNERGY_WEIGHT_BYTES;
    out->limits.bias_bytes = SYNERGY_BIAS_BYTES;
    out->limits.max_layers = SYNERGY_MAX_LAYERS;
    out->limits.data_bytes = SYNERGY_DATA_BYTES;
    out->limits.partition_flash_bytes = SYNERGY_PARTITION_FLASH_BYTES;
    out->limits.frame_sram_bytes = SYNERGY_FRAME_SRAM_BYTES;
    out->limits.max_tensor_bytes = SYNERGY_MAX_TENSOR_BYTES;
    out->limits.cnn_clock_hz = SYNERGY_CNN_CLOCK_HZ;
    while (n < SYNERGY_MAX_FIRMWARE_CHARS && firmware[n] != '\0') {
        out->firmware[n] = firmware[n];
        n++;
    }
    out->firmware[n] = '\0';
    out->boot_id = boot_id;
}

#endif /* SYNERGY_BOARD_H */
