/* The least a Cortex-M4 image needs to link and boot: the vector table's first two entries
 * (initial stack pointer, reset handler), .data copied from flash, .bss zeroed, main(). The
 * vendor's MSDK brings its own (startup_max78000.S) for a real board. */
#include <stdint.h>
#include <string.h>

extern uint32_t __stack_top;
extern uint32_t __data_load;
extern uint32_t __data_start;
extern uint32_t __data_end;
extern uint32_t __bss_start;
extern uint32_t __bss_end;

int main(void);
void reset_handler(void);

void reset_handler(void)
{
    memcpy(&__data_start, &__data_load, (size_t)((uint8_t *)&__data_end - (uint8_t *)&__data_start));
    memset(&__bss_start, 0, (size_t)((uint8_t *)&__bss_end - (uint8_t *)&__bss_start));
    (void)main();
    for (;;) {
    }
}

__attribute__((section(".vectors"), used)) static const uintptr_t vectors[2] = {
    (uintptr_t)&__stack_top,
    (uintptr_t)reset_handler,
};
