/* Resource limits, prctl and the robust-futex list: what programs ask of the kernel at start-up
 * and when parents die. Prints the same lines on Linux (the parity test). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int result(long value) { return value < 0 ? -errno : (int)value; }

int main(void) {
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    printf("nofile: %lu/%lu\n", (unsigned long)limit.rlim_cur, (unsigned long)limit.rlim_max);
    getrlimit(RLIMIT_STACK, &limit);
    printf("stack: %lu MiB, hard %s\n", (unsigned long)(limit.rlim_cur >> 20),
           limit.rlim_max == RLIM_INFINITY ? "unlimited" : "limited");
    printf("bad resource: %d\n", result(getrlimit(99, &limit)));
    struct rlimit inverted = {10, 5};
    printf("soft above hard: %d\n", result(setrlimit(RLIMIT_NOFILE, &inverted)));

    struct rlimit few = {8, 4096};
    printf("nofile soft 8: %d\n", result(setrlimit(RLIMIT_NOFILE, &few)));
    int opened = 0, last = 0;
    for (int i = 0; i < 20; i++) {
        int fd = open("/init", O_RDONLY);
        if (fd < 0) {
            last = errno;
            break;
        }
        opened++;
    }
    printf("opened %d more before errno %d\n", opened, last);
    struct rlimit old;
    struct rlimit more = {1024, 4096};
    printf("prlimit64 self: %d", result(prlimit(0, RLIMIT_NOFILE, &more, &old)));
    printf(" (old soft %lu)\n", (unsigned long)old.rlim_cur);

    pid_t child = fork();
    if (child == 0) {
        setuid(1000);
        struct rlimit raise = {1024, 8192};
        printf("raise hard as a user: %d\n", result(setrlimit(RLIMIT_NOFILE, &raise)));
        struct rlimit lower = {100, 200};
        printf("lower as a user: %d\n", result(setrlimit(RLIMIT_NOFILE, &lower)));
        printf("prlimit64 on init as a user: %d\n", result(prlimit(1, RLIMIT_NOFILE, 0, &old)));
        return 0;
    }
    int status;
    waitpid(child, &status, 0);

    char name[16] = {0};
    prctl(PR_SET_NAME, "renamed-process-long");
    prctl(PR_GET_NAME, name);
    printf("prctl name: %s\n", name);
    printf("prctl dumpable: %d\n", result(prctl(PR_GET_DUMPABLE)));
    printf("prctl unknown option: %d\n", result(prctl(4242, 0, 0, 0, 0)));
    int set = result(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    printf("no_new_privs: set %d, now %d\n", set, result(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)));
    void *head = 0;
    size_t length = 0;
    int got = result(syscall(SYS_get_robust_list, 0, &head, &length));
    printf("robust list registered by libc: %d, length %zu, head set %d\n", got, length, head != 0);

    /* A grandchild asks for SIGTERM when its parent dies, then sleeps; its parent exits; init
     * (this program) inherits it and reaps it. */
    child = fork();
    if (child == 0) {
        pid_t grandchild = fork();
        if (grandchild == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            int signal = 0;
            prctl(PR_GET_PDEATHSIG, &signal);
            printf("pdeathsig set: %d\n", signal);
            fflush(stdout);
            for (;;)
                pause();
        }
        usleep(100 * 1000);
        _exit(0);
    }
    waitpid(child, &status, 0);
    pid_t reaped = wait(&status);
    printf("orphan reaped by init: %d, killed by signal %d\n", reaped > 0, WTERMSIG(status));

    return 0;
}
