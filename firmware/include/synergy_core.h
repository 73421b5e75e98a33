/*
 * The firmware core: the board side of the serial protocol (docs/serial-protocol.md), the C
 * counterpart of synergy/serial/responder.py. It owns every buffer statically and reaches the
 * hardware only through synergy_hal.h.
 *
 *     if (synergy_core_init() != 0) { ... the HAL claims more than the buffers hold ... }
 *     for (;;) { synergy_core_poll(); wait for the UART or a timer tick; }
 */
#ifndef SYNERGY_CORE_H
#define SYNERGY_CORE_H

#include <stddef.h>
#include <stdint.h>

/* Reset the protocol state and read the identity; 0, or non-zero if the HAL's limits do not
 * fit the buffers this build was compiled with (the board must not start). */
int synergy_core_init(void);

/* Read whatever the UART has received, answer every frame it completes. */
void synergy_core_poll(void);

/* The same for bytes from elsewhere (tests): judged and answered exactly as received ones. */
void synergy_core_feed(const uint8_t *data, size_t length);

#endif /* SYNERGY_CORE_H */
