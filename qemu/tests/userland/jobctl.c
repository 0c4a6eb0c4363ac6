/* Job control as a shell sees it, from C: SIGSTOP/SIGTSTP stop a child, SIGCONT continues it,
 * waitpid reports each once with WUNTRACED/WCONTINUED, the parent gets SIGCHLD with
 * CLD_STOPPED/CLD_CONTINUED, a stopped child does not run, SIGCONT and stop signals cancel each
 * other while pending, and an orphaned process group is not stopped by SIGTSTP/SIGTTIN/SIGTTOU
 * but gets SIGHUP and SIGCONT when it is orphaned while stopped. Children report through pipes:
 * one byte per 5 ms while running ('x'), 'C'/'T'/'H' from their SIGCONT/SIGTSTP/SIGHUP handlers.
 * The tests run in a session of their own, so that they behave the same as init on Cadenza and
 * under any shell on Linux. Every line must print the same on both. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile int chld_code[32], chld_status[32], chld_count;
static int report_fd;

static void on_chld(int sig, siginfo_t *info, void *context) {
    (void)sig;
    (void)context;
    if (chld_count < 32) {
        chld_code[chld_count] = info->si_code;
        chld_status[chld_count] = info->si_status;
        chld_count++;
    }
}

static void report(int sig) {
    char byte = sig == SIGCONT ? 'C' : sig == SIGTSTP ? 'T' : 'H';
    (void)write(report_fd, &byte, 1);
}

static void handle(int sig, void (*handler)(int)) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = handler;
    sigaction(sig, &action, 0);
}

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&t, &t) < 0 && errno == EINTR) {
    }
}

/* A child that shows it runs: a byte every 5 ms. */
static void ticker(int fd) {
    report_fd = fd;
    for (;;) {
        (void)write(fd, "x", 1);
        sleep_ms(5);
    }
}

/* Waits up to 2 s for the bytes of `wanted` on `fd` (O_NONBLOCK), in any order, skipping
 * others: how many came. */
static int wait_for_all(int fd, const char *wanted) {
    char seen[8] = {0};
    size_t count = 0, n = strlen(wanted);
    for (int tries = 0; tries < 200 && count < n; tries++) {
        char got;
        while (count < n && read(fd, &got, 1) == 1) {
            const char *at = memchr(wanted, got, n);
            if (at && !seen[at - wanted]) {
                seen[at - wanted] = 1;
                count++;
            }
        }
        struct pollfd p = {fd, POLLIN, 0};
        poll(&p, 1, 10);
    }
    return (int)count;
}

/* Waits up to 2 s for `byte` on `fd`: 1 if it came. */
static int wait_for(int fd, char byte) {
    char wanted[2] = {byte, 0};
    return wait_for_all(fd, wanted);
}

/* How many bytes were waiting on `fd`. */
static int drain(int fd) {
    int n = 0;
    char buf[256];
    ssize_t got;
    while ((got = read(fd, buf, sizeof buf)) > 0) {
        n += (int)got;
    }
    return n;
}

static void open_pipe(int fds[2]) {
    if (pipe(fds) < 0) {
        perror("pipe");
        exit(1);
    }
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
}

static pid_t wait_child(pid_t pid, int *status, int options) {
    pid_t r;
    while ((r = waitpid(pid, status, options)) < 0 && errno == EINTR) {
    }
    return r;
}

/* Prints the SIGCHLDs received since the last call, after waiting (up to 2 s) for `expected`:
 * on Linux the child itself sends the CLD_CONTINUED, after waitpid may already have seen it. */
static void print_chld(const char *what, int expected) {
    for (int tries = 0; tries < 200 && chld_count < expected; tries++) {
        sleep_ms(10);
    }
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old);
    printf("SIGCHLD after %s:", what);
    for (int i = 0; i < chld_count; i++) {
        printf(" code=%d status=%d", chld_code[i], chld_status[i]);
    }
    printf("\n");
    chld_count = 0;
    sigprocmask(SIG_SETMASK, &old, 0);
}

/* A child in a process group of its own, as a shell starts a job: its parent is in another
 * group of the same session, so the group is not orphaned and SIGTSTP stops it. */
static pid_t job(void) {
    pid_t child = fork();
    if (child >= 0) {
        setpgid(child, child);
    }
    return child;
}

static void stop_and_continue(void) {
    int ticks[2];
    open_pipe(ticks);
    pid_t child = job();
    if (child == 0) {
        handle(SIGCONT, report);
        handle(SIGTSTP, report);
        ticker(ticks[1]);
    }
    int status;
    printf("child runs: %d\n", wait_for(ticks[0], 'x'));

    kill(child, SIGSTOP);
    pid_t r = wait_child(child, &status, WUNTRACED);
    printf("SIGSTOP: stopped=%d sig=%d\n", r == child && WIFSTOPPED(status), WSTOPSIG(status));
    print_chld("SIGSTOP", 1);
    drain(ticks[0]);
    sleep_ms(100);
    printf("ticks while stopped: %d\n", drain(ticks[0]));
    printf("stop reported once: %d\n", wait_child(child, &status, WUNTRACED | WNOHANG));

    kill(child, SIGCONT);
    r = wait_child(child, &status, WCONTINUED);
    printf("SIGCONT: continued=%d status=%#x\n", r == child && WIFCONTINUED(status), status);
    print_chld("SIGCONT", 1);
    int handled = wait_for(ticks[0], 'C');
    printf("SIGCONT handler ran: %d, ticks again: %d\n", handled, wait_for(ticks[0], 'x'));
    printf("continue reported once: %d\n", wait_child(child, &status, WCONTINUED | WNOHANG));

    kill(child, SIGTSTP);
    printf("SIGTSTP with a handler is caught: %d\n", wait_for(ticks[0], 'T'));
    int ticking = wait_for(ticks[0], 'x');
    printf("and does not stop: %d, ticks: %d\n", wait_child(child, &status, WUNTRACED | WNOHANG),
           ticking);

    kill(child, SIGSTOP);
    wait_child(child, &status, WUNTRACED);
    kill(child, SIGKILL);
    r = wait_child(child, &status, WUNTRACED);
    printf("SIGKILL ends a stopped child: killed=%d sig=%d\n",
           r == child && WIFSIGNALED(status), WTERMSIG(status));
    print_chld("SIGSTOP and SIGKILL", 2);
    close(ticks[0]);
    close(ticks[1]);
}

static void pending_stops_and_continues(void) {
    int commands[2], replies[2];
    if (pipe(commands) < 0 || pipe(replies) < 0) {
        exit(1);
    }
    pid_t child = job();
    if (child == 0) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGCONT);
        sigaddset(&set, SIGTSTP);
        sigprocmask(SIG_BLOCK, &set, 0);
        (void)write(replies[1], "r", 1);
        char command;
        while (read(commands[0], &command, 1) == 1) {
            if (command == 'p') {
                sigset_t pending;
                sigpending(&pending);
                char reply[2] = {'0' + sigismember(&pending, SIGTSTP),
                                 '0' + sigismember(&pending, SIGCONT)};
                (void)write(replies[1], reply, 2);
            } else if (command == 'u') {
                sigset_t tstp;
                sigemptyset(&tstp);
                sigaddset(&tstp, SIGTSTP);
                sigprocmask(SIG_UNBLOCK, &tstp, 0); /* the pending SIGTSTP stops us here */
                (void)write(replies[1], "u", 1);
            } else {
                _exit(0);
            }
        }
        _exit(1);
    }
    char reply[3] = {0};
    (void)read(replies[0], reply, 1); /* ready: both blocked */
    kill(child, SIGTSTP);
    kill(child, SIGCONT);
    (void)write(commands[1], "p", 1);
    (void)read(replies[0], reply, 2);
    printf("SIGCONT discards a pending SIGTSTP: tstp=%c cont=%c\n", reply[0], reply[1]);
    kill(child, SIGTSTP);
    (void)write(commands[1], "p", 1);
    (void)read(replies[0], reply, 2);
    printf("SIGTSTP discards a pending SIGCONT: tstp=%c cont=%c\n", reply[0], reply[1]);

    int status;
    (void)write(commands[1], "u", 1);
    pid_t r = wait_child(child, &status, WUNTRACED);
    printf("unblocked SIGTSTP stops: stopped=%d sig=%d\n", r == child && WIFSTOPPED(status),
           WSTOPSIG(status));
    kill(child, SIGCONT);
    r = wait_child(child, &status, WCONTINUED);
    (void)read(replies[0], reply, 1);
    printf("a blocked SIGCONT continues: continued=%d reply=%c\n",
           r == child && WIFCONTINUED(status), reply[0]);
    (void)write(commands[1], "q", 1);
    r = wait_child(child, &status, 0);
    printf("exited: %d\n", r == child && WIFEXITED(status));
    print_chld("SIGTSTP, SIGCONT, exit", 3);
}

static void orphaned_groups(void) {
    int ticks[2], pids[2], commands[2];
    open_pipe(ticks);
    if (pipe(pids) < 0 || pipe(commands) < 0) {
        exit(1);
    }
    /* A middle child makes a group, forks a ticker into it and exits: the group is orphaned
     * (the ticker's new parent is outside this session). */
    pid_t middle = fork();
    if (middle == 0) {
        setpgid(0, 0);
        pid_t ticker_pid = fork();
        if (ticker_pid == 0) {
            ticker(ticks[1]);
        }
        (void)write(pids[1], &ticker_pid, sizeof ticker_pid);
        _exit(0);
    }
    pid_t orphan;
    int status;
    (void)read(pids[0], &orphan, sizeof orphan);
    wait_child(middle, &status, 0);
    wait_for(ticks[0], 'x');
    kill(orphan, SIGTSTP);
    kill(orphan, SIGTTIN);
    kill(orphan, SIGTTOU);
    sleep_ms(50);
    drain(ticks[0]);
    printf("orphaned group ignores SIGTSTP/SIGTTIN/SIGTTOU: runs=%d\n", wait_for(ticks[0], 'x'));
    kill(orphan, SIGSTOP);
    sleep_ms(50);
    drain(ticks[0]);
    sleep_ms(100);
    printf("but SIGSTOP stops it: ticks=%d\n", drain(ticks[0]));
    kill(orphan, SIGKILL);

    /* The middle child stays until its ticker is stopped: its exit then orphans a group with a
     * stopped member, which gets SIGHUP and SIGCONT. */
    middle = fork();
    if (middle == 0) {
        setpgid(0, 0);
        pid_t ticker_pid = fork();
        if (ticker_pid == 0) {
            report_fd = ticks[1];
            handle(SIGHUP, report);
            handle(SIGCONT, report);
            ticker(ticks[1]);
        }
        (void)write(pids[1], &ticker_pid, sizeof ticker_pid);
        wait_child(ticker_pid, &status, WUNTRACED);
        _exit(0);
    }
    (void)read(pids[0], &orphan, sizeof orphan);
    wait_for(ticks[0], 'x');
    kill(orphan, SIGSTOP);
    wait_child(middle, &status, 0);
    /* Their handlers run in either order: Linux sets up both frames before returning. */
    printf("orphaned while stopped: SIGHUP and SIGCONT handled=%d\n",
           wait_for_all(ticks[0], "HC"));
    kill(orphan, SIGKILL);
    chld_count = 0;
}

int main(void) {
    setvbuf(stdout, 0, _IOLBF, 0);
    pid_t leader = fork();
    if (leader != 0) {
        int status;
        pid_t r = wait_child(leader, &status, 0);
        printf("job control tests done: %d\n", r == leader && WIFEXITED(status) &&
                                                   WEXITSTATUS(status) == 0);
        return 0;
    }
    setsid();
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_chld;
    action.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGCHLD, &action, 0);

    errno = 0;
    int r = sigaction(SIGSTOP, &action, 0);
    printf("sigaction(SIGSTOP) = %d errno=%d\n", r, errno);

    stop_and_continue();
    pending_stops_and_continues();
    orphaned_groups();

    /* SA_NOCLDSTOP: no SIGCHLD for stops and continues, only for the exit. */
    action.sa_flags |= SA_NOCLDSTOP;
    sigaction(SIGCHLD, &action, 0);
    pid_t child = job();
    if (child == 0) {
        for (;;) {
            pause();
        }
    }
    int status;
    kill(child, SIGSTOP);
    wait_child(child, &status, WUNTRACED);
    kill(child, SIGCONT);
    wait_child(child, &status, WCONTINUED);
    kill(child, SIGTERM);
    wait_child(child, &status, 0);
    print_chld("SA_NOCLDSTOP", 1);
    return 0;
}
