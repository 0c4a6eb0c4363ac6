/* Processes: fork copies memory, execve replaces the program, wait4 reaps children (exit codes,
 * ECHILD), orphans and many children, and the timer preempts a task that never yields. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int shared = 1;

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "child") == 0) {
        printf("exec'd child: argv[2]=%s ppid-is-parent=%d\n", argc > 2 ? argv[2] : "-", getppid() > 0);
        return 7;
    }
    printf("parent pid=%d\n", getpid());
    fflush(stdout);

    pid_t pid = fork();
    if (pid == 0) {
        execl("/forkexec", "forkexec", "child", "two", (char *)0);
        printf("exec failed errno=%d\n", errno);
        _exit(99);
    }
    int status = 0;
    pid_t waited = waitpid(pid, &status, 0);
    printf("waitpid: %s exited=%d status=%d\n", waited == pid ? "same pid" : "WRONG pid",
           WIFEXITED(status), WEXITSTATUS(status));

    for (int i = 0; i < 20; i++) {
        pid_t child = fork();
        if (child == 0)
            _exit(i);
    }
    int sum = 0, reaped = 0;
    while ((waited = wait(&status)) > 0) {
        sum += WEXITSTATUS(status);
        reaped++;
    }
    printf("reaped %d children, exit codes sum %d, then errno=%d\n", reaped, sum, errno);

    pid = fork();
    if (pid == 0) {
        shared = 42;
        _exit(shared);
    }
    waitpid(pid, &status, 0);
    printf("copy on fork: parent sees %d, child exited with %d\n", shared, WEXITSTATUS(status));

    /* Both sides write after fork (copy-on-write in both directions), big buffers included. */
    static char buffer[1 << 20];
    memset(buffer, 'p', sizeof buffer);
    pid = fork();
    if (pid == 0) {
        int ok = buffer[12345] == 'p';
        memset(buffer, 'c', sizeof buffer);
        _exit(ok && buffer[sizeof buffer - 1] == 'c' ? 0 : 1);
    }
    buffer[0] = 'P';
    waitpid(pid, &status, 0);
    printf("cow both ways: child ok=%d parent intact=%d\n", WEXITSTATUS(status) == 0,
           buffer[0] == 'P' && buffer[sizeof buffer - 1] == 'p');

    errno = 0;
    execl("/does-not-exist", "x", (char *)0);
    printf("exec of a missing file: errno=%d\n", errno);

    /* Process groups and sessions. */
    pid = fork();
    if (pid == 0) {
        int moved = setpgid(0, 0);
        pid_t session = setsid(); /* EPERM: now a group leader */
        printf("child groups: setpgid=%d pgid-is-self=%d setsid=%d errno=%d\n", moved, getpgid(0) == getpid(),
               (int)session, errno);
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, &status, 0);
    printf("parent groups: pgrp=%d sid=%d\n", (int)getpgrp(), (int)getsid(0));

    /* A child that never yields: only the timer can give the CPU back to us. */
    pid_t spinner = fork();
    if (spinner == 0)
        for (;;)
            ;
    struct timespec pause = {0, 50 * 1000 * 1000};
    nanosleep(&pause, 0);
    volatile unsigned long work = 0;
    for (unsigned long i = 0; i < 20000000; i++)
        work += i;
    printf("preempted the spinner: work done\n");
    fflush(stdout);
    if (argc > 1 && strcmp(argv[1], "poweroff") == 0) {
        sync();
        reboot(RB_POWER_OFF);
        printf("reboot returned?\n");
    }
    return 0;
}
