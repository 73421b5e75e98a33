/* A HAL that does nothing: the cross build links the core against it to measure its flash and
 * SRAM and to prove it links for the Cortex-M4 with the chip's memory map. It is not firmware
 * for a board (no UART, no flash, no CNN: see hal/max7800x/ and README.md). */
#include "synergy_board.h"
#include "synergy_hal.h"

#include <string.h>

void synergy_hal_identity(struct synergy_identity *out)
{
    synergy_board_identity(out, SYNERGY_FIRMWARE_VERSION, 0);
}

size_t synergy_hal_uart_read(uint8_t *buffer, size_t cap)
{
    (void)buffer;
    (void)cap;
    return 0;
}

void synergy_hal_uart_write(const uint8_t *data, size_t length)
{
    (void)data;
    (void)length;
}

uint32_t synergy_hal_micros(void) { return 0; }

int synergy_hal_flash_erase_page(uint32_t offset)
{
    (void)offset;
    return -1;
}

int synergy_hal_flash_write(uint32_t offset, const uint8_t *data, uint32_t length)
{
    (void)offset;
    (void)data;
    (void)length;
    return -1;
}

int synergy_hal_flash_read(uint32_t offset, uint8_t *data, uint32_t length)
{
    (void)offset;
    (void)data;
    (void)length;
    return -1;
}

int synergy_hal_cnn_load(uint16_t partition_id, uint32_t flash_offset, uint32_t size, struct synergy_detail *detail)
{
    (void)partition_id;
    (void)flash_offset;
    (void)size;
    strcpy(detail->text, "no CNN in the null HAL");
    return SYNERGY_ERR_INTERNAL;
}

int synergy_hal_cnn_run(const struct synergy_cnn_run *run, struct synergy_cnn_result *result,
                        struct synergy_detail *detail)
{
    (void)run;
    (void)result;
    strcpy(detail->text, "no CNN in the null HAL");
    return SYNERGY_ERR_INTERNAL;
}

void synergy_hal_cnn_unload(uint16_t partition_id) { (void)partition_id; }
