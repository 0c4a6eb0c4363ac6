/* A full descriptor table: pipe, pipe2, dup, F_DUPFD and open fail with EMFILE, and what they
 * had made is released. Regression (found by sysfuzz, seed 1002): a pipe end that could not get
 * a descriptor was dropped under the scheduler's lock; its release woke the tasks sleeping in
 * poll, which takes that lock, and the machine deadlocked. So a child sleeps in poll first.
 * Prints the same lines on Linux. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void limit(rlim_t n) {
    struct rlimit r = {n, n};
    setrlimit(RLIMIT_NOFILE, &r);
}

static int result(int value) { return value < 0 ? -errno : value; }

int main(void) {
    int wake[2];
    pipe(wake); /* 3 and 4, after the console's 0, 1, 2 */
    pid_t child = fork();
    if (child == 0) {
        struct pollfd p = {wake[0], POLLIN, 0};
        _exit(poll(&p, 1, -1) == 1 ? 0 : 1);
    }
    struct timespec settle = {0, 200000000};
    nanosleep(&settle, 0); /* the child is asleep in poll */

    int p[2] = {-1, -1};
    limit(5);
    printf("pipe with no descriptor free: %d\n", result(pipe(p)));
    printf("pipe2 with no descriptor free: %d\n", result(pipe2(p, O_CLOEXEC)));
    printf("dup: %d, F_DUPFD: %d\n", result(dup(1)), result(fcntl(1, F_DUPFD, 0)));
    printf("open: %d\n", result(open("/init", O_RDONLY)));
    limit(6);
    printf("pipe with one descriptor free: %d\n", result(pipe(p)));
    printf("and the read end is closed again: %d\n", result(fcntl(5, F_GETFD)));
    limit(7);
    printf("pipe with two free: %d\n", result(pipe(p)));
    printf("ends: %d %d\n", p[0], p[1]);
    int wrote = result((int)write(p[1], "x", 1));
    char c = 0;
    int got = result((int)read(p[0], &c, 1));
    printf("write and read: %d %d %c\n", wrote, got, c);

    write(wake[1], "w", 1);
    int status = -1;
    waitpid(child, &status, 0);
    printf("the child in poll woke: %d\n", WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return 0;
}
