/* SIGKILL and SIGSTOP reach a process waiting in sigtimedwait for every signal: they cannot be
 * waited for (Linux removes them from the set). Regression (found by sysfuzz, seed 7): the
 * wait took SIGKILL as an awaited signal and returned it, so the process could not be killed.
 * Prints the same lines on Linux. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    pid_t child = fork();
    if (child == 0) {
        sigset_t all;
        sigfillset(&all);
        sigprocmask(SIG_BLOCK, &all, 0);
        int got = sigtimedwait(&all, 0, 0);
        printf("sigtimedwait returned %d\n", got);
        _exit(3);
    }
    struct timespec settle = {0, 200000000};
    nanosleep(&settle, 0); /* the child is waiting */
    int status = 0;
    kill(child, SIGSTOP);
    waitpid(child, &status, WUNTRACED);
    printf("SIGSTOP stops the waiter: %d sig %d\n", WIFSTOPPED(status), WSTOPSIG(status));
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    printf("SIGKILL kills the waiter: %d sig %d\n", WIFSIGNALED(status), WTERMSIG(status));
    return 0;
}
