/* The partitions in flash (store.h explains the layout and the flash rules). */
#include "store.h"

#include <string.h>

#define PAGE SYNERGY_FLASH_PAGE_BYTES
#define WORD SYNERGY_FLASH_WORD_BYTES
#define AREA SYNERGY_FLASH_AREA_BYTES

static struct synergy_partition held[SYNERGY_MAX_HOLDINGS];
static unsigned held_count;

/* Bytes in [clean_from, clean_to) are erased and not written since: a write may go there. */
static uint32_t clean_from;
static uint32_t clean_to;

/* The write in progress: program words go to cursor; a partial word waits in word[]. */
static struct {
    int open;
    uint32_t start;
    uint32_t cursor;
    uint8_t word[WORD];
    uint32_t word_used;
} pending;

/* One page: the start page of a load (its first part is kept) and compaction. */
static uint8_t page_buffer[PAGE];

static uint32_t round_to_word(uint32_t size) { return (uint32_t)SYNERGY_ROUND_UP(size, WORD); }

static uint32_t used_end(void)
{
    uint32_t end = 0;
    unsigned i;
    for (i = 0; i < held_count; i++) {
        uint32_t this_end = held[i].offset + round_to_word(held[i].size);
        if (this_end > end) {
            end = this_end;
        }
    }
    return end;
}

void synergy_store_reset(void)
{
    held_count = 0;
    clean_from = clean_to = 0;
    pending.open = 0;
}

unsigned synergy_store_count(void) { return held_count; }

const struct synergy_partition *synergy_store_at(unsigned index)
{
    return index < held_count ? &held[index] : NULL;
}

const struct synergy_partition *synergy_store_find(uint16_t id)
{
    unsigned i;
    for (i = 0; i < held_count; i++) {
        if (held[i].id == id) {
            return &held[i];
        }
    }
    return NULL;
}

uint32_t synergy_store_free(uint32_t partition_flash_bytes)
{
    uint32_t used = 0;
    unsigned i;
    for (i = 0; i < held_count; i++) {
        used += held[i].size;
    }
    return used < partition_flash_bytes ? partition_flash_bytes - used : 0;
}

void synergy_store_drop(uint16_t id)
{
    unsigned i;
    for (i = 0; i < held_count; i++) {
        if (held[i].id == id) {
            for (; i + 1u < held_count; i++) {
                held[i] = held[i + 1u];
            }
            held_count--;
            return;
        }
    }
}

/* Make the program word at `at` writable: erased, and not written since. Everything below
 * `at` in its page is kept (it may be the end of the partition before). */
static int prepare_word(uint32_t at)
{
    uint32_t page = at / PAGE * PAGE;
    if (at >= clean_from && at + WORD <= clean_to) {
        return 0;
    }
    if (at == page) {
        if (synergy_hal_flash_erase_page(page) != 0) {
            return -1;
        }
        if (at != clean_to) {
            clean_from = at;
        }
        clean_to = page + PAGE;
        return 0;
    }
    if (synergy_hal_flash_read(page, page_buffer, at - page) != 0 || synergy_hal_flash_erase_page(page) != 0 ||
        synergy_hal_flash_write(page, page_buffer, at - page) != 0) {
        return -1;
    }
    clean_from = at;
    clean_to = page + PAGE;
    return 0;
}

static int flush_word(void)
{
    if (pending.cursor + WORD > AREA || prepare_word(pending.cursor) != 0 ||
        synergy_hal_flash_write(pending.cursor, pending.word, WORD) != 0) {
        return -1;
    }
    pending.cursor += WORD;
    clean_from = pending.cursor;
    pending.word_used = 0;
    return 0;
}

/* Slide every partition down so that they are packed from offset 0, page by page: each page's
 * new content is gathered in the page buffer from offsets at or above it (partitions only move
 * down), so nothing is erased before it has been read. */
static int compact(void)
{
    uint8_t order[SYNERGY_MAX_HOLDINGS];
    uint32_t new_offset[SYNERGY_MAX_HOLDINGS];
    uint32_t cursor = 0;
    uint32_t first_moved = AREA;
    uint32_t page;
    unsigned i, j;
    for (i = 0; i < held_count; i++) {
        order[i] = (uint8_t)i;
    }
    for (i = 1; i < held_count; i++) { /* insertion sort by offset: at most 16 */
        for (j = i; j > 0 && held[order[j - 1u]].offset > held[order[j]].offset; j--) {
            uint8_t swap = order[j];
            order[j] = order[j - 1u];
            order[j - 1u] = swap;
        }
    }
    for (i = 0; i < held_count; i++) {
        new_offset[order[i]] = cursor;
        if (cursor != held[order[i]].offset && first_moved == AREA) {
            first_moved = cursor;
        }
        cursor += round_to_word(held[order[i]].size);
    }
    for (page = first_moved / PAGE * PAGE; page < cursor; page += PAGE) {
        uint32_t length = cursor - page < PAGE ? cursor - page : PAGE;
        memset(page_buffer, 0xFF, PAGE);
        for (i = 0; i < held_count; i++) {
            uint32_t start = new_offset[i];
            uint32_t end = start + round_to_word(held[i].size);
            uint32_t low = start > page ? start : page;
            uint32_t high = end < page + PAGE ? end : page + PAGE;
            if (low < high && synergy_hal_flash_read(held[i].offset + (low - start), page_buffer + (low - page),
                                                     high - low) != 0) {
                return -1;
            }
        }
        if (synergy_hal_flash_erase_page(page) != 0 || synergy_hal_flash_write(page, page_buffer, length) != 0) {
            return -1;
        }
    }
    for (i = 0; i < held_count; i++) {
        held[i].offset = new_offset[i];
    }
    clean_from = clean_to = 0;
    return 0;
}

int synergy_store_begin(uint32_t total)
{
    uint32_t need = round_to_word(total);
    uint32_t start;
    pending.open = 0;
    start = used_end();
    if (need > AREA - start) {
        if (compact() != 0) {
            return -1;
        }
        start = used_end();
        if (need > AREA - start) {
            return -1; /* the caller's free-space check makes this unreachable */
        }
    }
    pending.open = 1;
    pending.start = start;
    pending.cursor = start;
    pending.word_used = 0;
    return 0;
}

int synergy_store_append(const uint8_t *data, uint32_t length)
{
    uint32_t i;
    if (!pending.open) {
        return -1;
    }
    for (i = 0; i < length; i++) {
        pending.word[pending.word_used++] = data[i];
        if (pending.word_used == WORD && flush_word() != 0) {
            pending.open = 0;
            return -1;
        }
    }
    return 0;
}

int synergy_store_finish(uint32_t *offset)
{
    if (!pending.open) {
        return -1;
    }
    pending.open = 0;
    if (pending.word_used > 0) {
        memset(pending.word + pending.word_used, 0xFF, WORD - pending.word_used);
        if (flush_word() != 0) {
            return -1;
        }
    }
    *offset = pending.start;
    return 0;
}

void synergy_store_commit(uint16_t id, uint32_t offset, uint32_t size, const uint8_t digest[SYNERGY_DIGEST_BYTES])
{
    unsigned at = held_count;
    if (held_count >= SYNERGY_MAX_HOLDINGS) {
        return;
    }
    while (at > 0 && held[at - 1u].id > id) {
        held[at] = held[at - 1u];
        at--;
    }
    held[at].id = id;
    held[at].offset = offset;
    held[at].size = size;
    memcpy(held[at].digest, digest, SYNERGY_DIGEST_BYTES);
    held_count++;
}

void synergy_store_abandon(void) { pending.open = 0; }
