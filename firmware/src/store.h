/*
 * The partitions in flash: at most SYNERGY_MAX_HOLDINGS, packed back to back in the flash
 * area (each starting on a program word), with the free space accounted in bytes exactly as
 * HELLO and STATUS report it (partition_flash_bytes less the sizes held).
 *
 * Flash rules respected (the host HAL enforces them, so the tests check them): pages are
 * erased before they are programmed, every program word is written once per erase. A load
 * erases the pages it enters as it goes (one page at a time, so no request waits for a whole
 * area erase); the page it starts in may hold the end of the partition before it, which is
 * read into a page buffer and written back (read-modify-write). When the free bytes suffice
 * but are scattered between partitions (unloads), the partitions are slid down page by page
 * (compaction) before the load starts.
 *
 * Partitions are not persisted across a reset: the table lives in SRAM and a new boot starts
 * empty (a new boot_id tells the host, which loads them again).
 */
#ifndef SYNERGY_STORE_H
#define SYNERGY_STORE_H

#include <stdint.h>

#include "synergy_board.h"
#include "synergy_hal.h"

struct synergy_partition {
    uint16_t id;
    uint32_t offset; /* in the flash area, on a program word */
    uint32_t size;
    uint8_t digest[SYNERGY_DIGEST_BYTES];
};

/* Forget every partition (boot). */
void synergy_store_reset(void);

unsigned synergy_store_count(void);
/* The i-th partition held, in increasing id order (HELLO and STATUS list them so). */
const struct synergy_partition *synergy_store_at(unsigned index);
const struct synergy_partition *synergy_store_find(uint16_t id);
/* partition_flash_bytes less the sizes of the partitions held (a load in progress not counted). */
uint32_t synergy_store_free(uint32_t partition_flash_bytes);

/* Forget partition id (its bytes become reusable); nothing if not held. */
void synergy_store_drop(uint16_t id);

/* Open a write of total bytes after the last partition, compacting first if needed; 0 or non-zero
 * on a flash failure (then every partition is forgotten: the table can no longer be trusted). */
int synergy_store_begin(uint32_t total);
/* Append bytes to the open write; 0 or non-zero on a flash failure. */
int synergy_store_append(const uint8_t *data, uint32_t length);
/* Flush the open write's last program word; its offset in *offset. 0 or non-zero. */
int synergy_store_finish(uint32_t *offset);
/* Keep the finished write as partition id (the caller checked there is room in the table). */
void synergy_store_commit(uint16_t id, uint32_t offset, uint32_t size, const uint8_t digest[SYNERGY_DIGEST_BYTES]);
/* Drop the open write (its bytes stay dirty until a later write erases them). */
void synergy_store_abandon(void);

#endif
