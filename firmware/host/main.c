/*
 * synergy-board: the firmware core on a PC, serving the serial protocol on a pseudo-terminal.
 *
 *     synergy-board [--symlink PATH] [--baud N] [--coprocessor COMMAND]
 *
 * Opens a pty in raw mode, starts the CNN coprocessor (default
 * `python3 -m synergy.cli.coprocessor_cmd --board <this build's board>`), prints the pty's slave
 * path (what a host opens, like /dev/ttyACM0) on stdout and answers the protocol until SIGTERM
 * or SIGINT, as `synergy board-sim --pty` does. --baud paces every byte both ways at 10 bits
 * per byte (default 921600; 0: no pacing). --symlink names the pty by a stable path (replaced
 * if it exists, removed at exit), as udev's /dev/serial/by-id does: a test replugs a board by
 * starting another one on the same name.
 */
#define _XOPEN_SOURCE 700

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "host.h"
#include "synergy_board.h"
#include "synergy_core.h"

static void on_stop(int signal_number)
{
    (void)signal_number;
    host_stopping = 1;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: synergy-board [--symlink PATH] [--baud N] [--coprocessor COMMAND]\n"
                 "  a " SYNERGY_BOARD_NAME " board's firmware core on a pseudo-terminal (prints its path)\n");
}

/* Raw 8N1: no echo, no line editing, no CR/LF translation (cfmakeraw, which is not POSIX). */
static int make_raw(int fd)
{
    struct termios t;
    if (tcgetattr(fd, &t) != 0) {
        return -1;
    }
    t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    t.c_oflag &= ~(tcflag_t)OPOST;
    t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB);
    t.c_cflag |= CS8;
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    return tcsetattr(fd, TCSANOW, &t);
}

int main(int argc, char **argv)
{
    const char *symlink_path = NULL;
    const char *coprocessor = NULL;
    char default_coprocessor[128];
    long baud = 921600;
    struct sigaction action;
    int master, slave, i;
    char *end;
    const char *slave_path;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--symlink") == 0 && i + 1 < argc) {
            symlink_path = argv[++i];
        } else if (strcmp(argv[i], "--baud") == 0 && i + 1 < argc) {
            errno = 0;
            baud = strtol(argv[++i], &end, 10);
            if (errno != 0 || *end != '\0' || baud < 0) {
                fprintf(stderr, "synergy-board: --baud must be a number >= 0 (0: no pacing)\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--coprocessor") == 0 && i + 1 < argc) {
            coprocessor = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (coprocessor == NULL) {
        snprintf(default_coprocessor, sizeof default_coprocessor,
                 "python3 -m synergy.cli.coprocessor_cmd --board %s", SYNERGY_BOARD_NAME);
        coprocessor = default_coprocessor;
    }

    memset(&action, 0, sizeof action);
    action.sa_handler = on_stop;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    /* A coprocessor that died must not take the board with it: writes to it then fail. */
    action.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &action, NULL);

    master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0 || (slave_path = ptsname(master)) == NULL) {
        perror("synergy-board: pseudo-terminal");
        return 1;
    }
    /* The board keeps the slave open too, so a host closing its side is not a hangup here. */
    slave = open(slave_path, O_RDWR | O_NOCTTY);
    if (slave < 0 || make_raw(slave) != 0 || fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK) != 0) {
        perror("synergy-board: pseudo-terminal setup");
        return 1;
    }
    (void)fcntl(master, F_SETFD, FD_CLOEXEC);
    (void)fcntl(slave, F_SETFD, FD_CLOEXEC);

    host_flash_power_on();
    host_uart_open(master, baud);
    if (synergy_core_init() != 0) {
        fprintf(stderr, "synergy-board: the HAL's limits exceed this build's buffers\n");
        return 1;
    }
    if (host_coprocessor_start(coprocessor) != 0) {
        return 1;
    }
    if (symlink_path != NULL) {
        (void)unlink(symlink_path);
        if (symlink(slave_path, symlink_path) != 0) {
            perror("synergy-board: --symlink");
            host_coprocessor_stop();
            return 1;
        }
    }
    printf("%s\n", slave_path);
    fflush(stdout);

    while (!host_stopping) {
        struct pollfd p;
        p.fd = master;
        p.events = POLLIN;
        p.revents = 0;
        /* Also on a timeout: the core's uptime follows the 32-bit microsecond counter. */
        (void)poll(&p, 1, 100);
        synergy_core_poll();
    }

    /* Unplugged: the port goes away first, then the name, then the chip. */
    close(master);
    close(slave);
    if (symlink_path != NULL) {
        (void)unlink(symlink_path);
    }
    host_coprocessor_stop();
    return 0;
}
