/* The firmware's main loop on the chip: the core polled forever (a real HAL would sleep in
 * between, e.g. __WFI() until the UART or a timer interrupt). */
#include "synergy_core.h"

int main(void);

int main(void)
{
    if (synergy_core_init() != 0) {
        for (;;) {
        }
    }
    for (;;) {
        synergy_core_poll();
    }
}
