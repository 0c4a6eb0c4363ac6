/* Waits with deadlines and waits for blocked signals: sigtimedwait (timeout, a signal from
 * another process, a blocked SIGCHLD whose default action is "ignore", as busybox init uses
 * it), and a futex wait that times out. Each line states what happened and how long it took. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* <linux/futex.h> is not part of musl-gcc's headers. */
#define FUTEX_WAIT_PRIVATE 128

static long elapsed_ms(const struct timespec *since) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

int main(void) {
    struct timespec start;
    sigset_t usr1, chld;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &usr1, 0);
    sigprocmask(SIG_BLOCK, &chld, 0);

    /* 1. Nothing arrives: EAGAIN after the timeout, not before. */
    struct timespec timeout = {0, 60 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &start);
    int got = sigtimedwait(&usr1, 0, &timeout);
    int error = errno;
    printf("sigtimedwait timeout: %d errno=%d waited>=60ms=%d\n", got, error,
           elapsed_ms(&start) >= 60);

    /* 2. Another process sends the blocked signal; the waiter sleeps until it comes. */
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
        struct timespec pause = {0, 30 * 1000 * 1000};
        nanosleep(&pause, 0);
        kill(parent, SIGUSR1);
        _exit(0);
    }
    siginfo_t info;
    got = sigwaitinfo(&usr1, &info);
    printf("sigwaitinfo: sig=%d from child=%d\n", got, info.si_pid == child);

    /* 3. SIGCHLD is blocked and ignored by default, yet queued for sigtimedwait. */
    struct timespec long_timeout = {5, 0};
    got = sigtimedwait(&chld, &info, &long_timeout);
    printf("sigtimedwait SIGCHLD: sig=%d pid matches=%d code=%d\n", got, info.si_pid == child,
           info.si_code);
    int status;
    printf("reaped: %d\n", waitpid(child, &status, 0) == child);

    /* 4. A futex wait whose value matches and nobody wakes: ETIMEDOUT after the timeout. */
    int word = 7;
    struct timespec futex_timeout = {0, 40 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &start);
    long result = syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 7, &futex_timeout, 0, 0);
    error = errno;
    printf("futex timeout: %ld errno=%d waited>=40ms=%d\n", result, error,
           elapsed_ms(&start) >= 40);
    return 0;
}
