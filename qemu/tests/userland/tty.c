/* The console as a terminal: termios, window size, canonical editing and echo, raw mode,
 * ^C as SIGINT to the foreground group (interrupting a read), ^D as end of file. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <termios.h>
#include <unistd.h>

static volatile sig_atomic_t got_sigint;
static void on_sigint(int sig) { got_sigint = sig == SIGINT; }

int main(void) {
    setsid();
    ioctl(0, TIOCSCTTY, 0);
    struct termios t;
    tcgetattr(0, &t);
    printf("canonical=%d echo=%d\n", !!(t.c_lflag & ICANON), !!(t.c_lflag & ECHO));
    struct winsize w;
    ioctl(0, TIOCGWINSZ, &w);
    printf("winsize %dx%d isatty=%d\n", w.ws_col, w.ws_row, isatty(1));

    printf("type a line: ");
    fflush(stdout);
    char buf[128];
    ssize_t n = read(0, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    if (n > 0 && buf[n - 1] == '\n')
        buf[n - 1] = 0;
    printf("got %zd bytes: [%s]\n", n, buf);

    struct termios raw = t;
    raw.c_lflag &= ~(ICANON | ECHO);
    raw.c_cc[VMIN] = 1;
    tcsetattr(0, TCSANOW, &raw);
    struct pollfd pfd = {0, POLLIN, 0};
    int idle = poll(&pfd, 1, 50);
    fd_set readable;
    FD_ZERO(&readable);
    FD_SET(0, &readable);
    struct timeval tv = {0, 50000};
    int idle_select = select(1, &readable, 0, 0, &tv);
    printf("poll and select time out with no input: %d %d\n", idle, idle_select);
    printf("raw: press a key\n");
    fflush(stdout);
    int woke = poll(&pfd, 1, -1);
    printf("poll woke: %d revents=%d\n", woke, pfd.revents);
    n = read(0, buf, 1);
    printf("raw got %zd '%c'\n", n, buf[0]);
    tcsetattr(0, TCSANOW, &t);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, 0);
    tcsetpgrp(0, getpgrp());
    printf("press ^C\n");
    fflush(stdout);
    errno = 0;
    n = read(0, buf, sizeof buf);
    printf("read interrupted: n=%zd errno=%d sigint=%d\n", n, errno, got_sigint);

    printf("press ^D\n");
    fflush(stdout);
    n = read(0, buf, sizeof buf);
    printf("eof read returned %zd\n", n);
    return 0;
}
