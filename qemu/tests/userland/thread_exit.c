/* A process whose threads are blocked in the kernel ends: by exit_group from the main thread,
 * by exit_group from another thread, by SIGKILL from its parent, or by execve (every other
 * thread dies first). Each blocked thread must unwind its own kernel stack, so nothing it
 * held is leaked: run with a round count (argv[1]) for the leak test, which compares the
 * kernel's shutdown report with that of one round. Prints each child's wait status (the
 * same on Linux). */
#define _GNU_SOURCE
#include <errno.h>
#define FUTEX_WAIT_PRIVATE 128
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum blocker { PIPE_READ, PIPE_WRITE, NANOSLEEP, FUTEX, BLOCKERS };
enum ending { MAIN_EXITS, THREAD_EXITS, KILLED, EXECS, THREAD_EXECS, ENDINGS };

static const char *blocker_names[] = {"pipe-read", "pipe-write", "nanosleep", "futex"};
static const char *ending_names[] = {"main-exits", "thread-exits", "killed", "execs",
                                     "thread-execs"};

static int data_pipe[2];
static int futex_word;
static enum blocker blocker;

/* What the sibling thread blocks in, holding kernel memory (1 MiB for the pipe calls). */
static void block(void) {
    static char buffer[1 << 20];
    struct timespec long_time = {1000, 0};
    switch (blocker) {
    case PIPE_READ:
        read(data_pipe[0], buffer, sizeof buffer);
        break;
    case PIPE_WRITE:
        write(data_pipe[1], buffer, sizeof buffer); /* nobody reads: fills, then waits */
        break;
    case NANOSLEEP:
        nanosleep(&long_time, 0);
        break;
    case FUTEX:
        syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, 0, 0, 0);
        break;
    default:
        break;
    }
}

static void *sibling(void *arg) {
    block();
    return arg;
}

/* The sibling that ends the whole process itself while main is blocked. */
static void *exiting_sibling(void *arg) {
    for (int i = 0; i < 5; i++)
        sched_yield();
    syscall(SYS_exit_group, 4);
    return arg;
}

/* The sibling that replaces the program while main is blocked: it takes over the pid. */
static void *execing_sibling(void *arg) {
    for (int i = 0; i < 5; i++)
        sched_yield();
    execl("/init", "init", "exec-child", (char *)0);
    _exit(105);
    return arg;
}

static void child(enum ending ending, int ready) {
    pthread_t thread;
    if (pipe(data_pipe) != 0)
        _exit(100);
    void *(*start)(void *) = ending == THREAD_EXITS   ? exiting_sibling
                             : ending == THREAD_EXECS ? execing_sibling
                                                      : sibling;
    if (pthread_create(&thread, 0, start, 0) != 0)
        _exit(101);
    if (ending == THREAD_EXITS || ending == THREAD_EXECS) {
        block(); /* main blocks; the sibling ends or replaces the process */
        _exit(102);
    }
    for (int i = 0; i < 5; i++)
        sched_yield(); /* let the sibling block */
    switch (ending) {
    case MAIN_EXITS:
        syscall(SYS_exit_group, 3);
        break;
    case KILLED:
        write(ready, "r", 1);
        for (;;)
            pause();
    case EXECS:
        execl("/init", "init", "exec-child", (char *)0);
        _exit(103);
    default:
        break;
    }
    _exit(104);
}

static void describe(int status, char *out, size_t size) {
    if (WIFEXITED(status))
        snprintf(out, size, "exited %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, size, "killed by signal %d", WTERMSIG(status));
    else
        snprintf(out, size, "status %#x", status);
}

static int round_of(int rounds_left, int print) {
    for (int b = 0; b < BLOCKERS; b++) {
        for (int e = 0; e < ENDINGS; e++) {
            int ready[2];
            if (pipe(ready) != 0)
                return 1;
            blocker = b;
            pid_t pid = fork();
            if (pid == 0) {
                close(ready[0]);
                child(e, ready[1]);
            }
            close(ready[1]);
            if (e == KILLED) {
                char byte;
                if (read(ready[0], &byte, 1) != 1)
                    return 1;
                kill(pid, SIGKILL);
            }
            close(ready[0]);
            int status;
            if (waitpid(pid, &status, 0) != pid) {
                printf("waitpid: %s\n", strerror(errno));
                return 1;
            }
            char text[64];
            describe(status, text, sizeof text);
            if (print)
                printf("%s %s: %s\n", blocker_names[b], ending_names[e], text);
        }
    }
    (void)rounds_left;
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "exec-child") == 0)
        return 5; /* waitpid on the original pid sees this: the pid stayed */
    /* argv[1]: rounds (the leak test); without it one round, printed (the parity test). */
    int rounds = argc > 1 ? atoi(argv[1]) : 0;
    int print = rounds == 0;
    if (rounds == 0)
        rounds = 1;
    for (int i = 0; i < rounds; i++)
        if (round_of(rounds - i, print) != 0)
            return 1;
    printf("thread_exit: %d rounds done\n", rounds);
    return 0;
}
