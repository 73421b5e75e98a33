/* The host build's HAL state, shared by host/main.c (which sets it up) and host/hal_host.c. */
#ifndef SYNERGY_HOST_H
#define SYNERGY_HOST_H

#include <signal.h>
#include <sys/types.h>

/* Set by SIGTERM / SIGINT: every wait gives up, main() cleans up and exits. */
extern volatile sig_atomic_t host_stopping;

/* The pty's master side: the board's UART. */
void host_uart_open(int fd, long baud);

/* Start the CNN coprocessor (`sh -c "exec COMMAND"`) and wait for its ready line, which must name
 * this build's board; 0, or -1 with a message on stderr. */
int host_coprocessor_start(const char *command);
void host_coprocessor_stop(void);

/* Flash starts in an unknown state (as a board's after reset): written, to be erased before use. */
void host_flash_power_on(void);
/* Operations refused for breaking a flash rule (a bug of the core's store: the tests want 0). */
extern unsigned long host_flash_faults;

#endif
