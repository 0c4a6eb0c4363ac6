/* RLIMIT_NPROC as Linux enforces it: an unprivileged user at its limit cannot fork (EAGAIN);
 * kill(-1, SIGKILL) then ends only that user's processes, and they are reaped.
 *
 *   nproc        as uid 65534 with RLIMIT_NPROC = 20 (the same count on Linux)
 *   nproc bomb   as uid 65534 with no RLIMIT_NPROC: only the kernel-wide ceiling
 *                (threads-max) stops it, with EAGAIN, not a crash
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static int errno_after_forks;

static int fork_until_failure(void) {
    fflush(stdout);
    int forked = 0;
    for (;;) {
        pid_t pid = fork();
        if (pid == 0) {
            for (;;)
                pause();
        }
        if (pid < 0)
            break;
        forked++;
    }
    errno_after_forks = errno;
    return forked;
}

static void unprivileged(rlim_t limit, int bomb) {
    struct rlimit rlimit = {limit, limit};
    if (setrlimit(RLIMIT_NPROC, &rlimit) != 0)
        printf("setrlimit: %s\n", strerror(errno));
    if (setgid(65534) != 0 || setuid(65534) != 0)
        printf("dropping privileges: %s\n", strerror(errno));
    int forked = fork_until_failure();
    const char *error = errno_after_forks == EAGAIN ? "EAGAIN" : strerror(errno_after_forks);
    if (bomb)
        printf("fork: %s after %s\n", error, forked > 100 ? "more than 100" : "too few");
    else
        printf("fork: %s after %d\n", error, forked);
    /* Only this user's processes (not init, not this one) die. */
    if (kill(-1, SIGKILL) != 0)
        printf("kill(-1): %s\n", strerror(errno));
    int reaped = 0, killed = 0, status;
    while (wait(&status) > 0) {
        reaped++;
        killed += WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    }
    printf("reaped %s, all killed: %s\n", reaped == forked ? "all" : "not all",
           killed == reaped ? "yes" : "no");
    /* With them gone, it may fork again. */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    printf("fork after reaping: %s\n", pid > 0 ? "ok" : strerror(errno));
    if (pid > 0)
        waitpid(pid, &status, 0);
    fflush(stdout);
    _exit(0);
}

int main(int argc, char **argv) {
    int bomb = argc > 1 && strcmp(argv[1], "bomb") == 0;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        unprivileged(bomb ? RLIM_INFINITY : 20, bomb);
    int status;
    waitpid(pid, &status, 0);
    printf("unprivileged child: %s %d\n", WIFEXITED(status) ? "exited" : "killed",
           WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    /* Root is exempt from RLIMIT_NPROC. */
    struct rlimit rlimit = {1, 1};
    setrlimit(RLIMIT_NPROC, &rlimit);
    fflush(stdout);
    pid = fork();
    if (pid == 0)
        _exit(0);
    printf("root fork at RLIMIT_NPROC 1: %s\n", pid > 0 ? "ok" : strerror(errno));
    if (pid > 0)
        waitpid(pid, &status, 0);
    return 0;
}
