/* The flash of the host builds: an array with the flash controller's rules (pages erased
 * before they are programmed, each 16-byte program word written once per erase), so the core's
 * flash discipline is checked by every test that loads a partition. Shared by the host HAL and
 * the fuzz harness. */
#include <stdio.h>
#include <string.h>

#include "host.h"
#include "synergy_board.h"
#include "synergy_hal.h"


#define WORDS (SYNERGY_FLASH_AREA_BYTES / SYNERGY_FLASH_WORD_BYTES)

static uint8_t flash[SYNERGY_FLASH_AREA_BYTES];
/* One bit per program word: written since its page's last erase. */
static uint8_t word_written[(WORDS + 7u) / 8u];

unsigned long host_flash_faults = 0;

static int flash_fault(const char *what, uint32_t offset, uint32_t length)
{
    host_flash_faults++;
    fprintf(stderr, "synergy-board: flash rule broken: %s at offset %lu, %lu bytes\n", what, (unsigned long)offset,
            (unsigned long)length);
    return -1;
}

void host_flash_power_on(void)
{
    memset(flash, 0xA5, sizeof flash);
    memset(word_written, 0xFF, sizeof word_written);
}

int synergy_hal_flash_erase_page(uint32_t offset)
{
    uint32_t word;
    if (offset % SYNERGY_FLASH_PAGE_BYTES != 0u || offset >= SYNERGY_FLASH_AREA_BYTES) {
        return flash_fault("erase of no page", offset, SYNERGY_FLASH_PAGE_BYTES);
    }
    memset(flash + offset, 0xFF, SYNERGY_FLASH_PAGE_BYTES);
    for (word = offset / SYNERGY_FLASH_WORD_BYTES; word < (offset + SYNERGY_FLASH_PAGE_BYTES) / SYNERGY_FLASH_WORD_BYTES;
         word++) {
        word_written[word / 8u] &= (uint8_t)~(1u << (word % 8u));
    }
    return 0;
}

int synergy_hal_flash_write(uint32_t offset, const uint8_t *data, uint32_t length)
{
    uint32_t word;
    if (offset % SYNERGY_FLASH_WORD_BYTES != 0u || length % SYNERGY_FLASH_WORD_BYTES != 0u ||
        offset > SYNERGY_FLASH_AREA_BYTES || length > SYNERGY_FLASH_AREA_BYTES - offset) {
        return flash_fault("write not on whole program words inside the area", offset, length);
    }
    for (word = offset / SYNERGY_FLASH_WORD_BYTES; word < (offset + length) / SYNERGY_FLASH_WORD_BYTES; word++) {
        if (word_written[word / 8u] & (1u << (word % 8u))) {
            return flash_fault("second write of a program word without an erase", offset, length);
        }
    }
    for (word = offset / SYNERGY_FLASH_WORD_BYTES; word < (offset + length) / SYNERGY_FLASH_WORD_BYTES; word++) {
        word_written[word / 8u] |= (uint8_t)(1u << (word % 8u));
    }
    if (length > 0u) {
        memcpy(flash + offset, data, length);
    }
    return 0;
}

int synergy_hal_flash_read(uint32_t offset, uint8_t *data, uint32_t length)
{
    if (offset > SYNERGY_FLASH_AREA_BYTES || length > SYNERGY_FLASH_AREA_BYTES - offset) {
        return flash_fault("read outside the area", offset, length);
    }
    if (length > 0u) {
        memcpy(data, flash + offset, length);
    }
    return 0;
}

