/* /init for the TUI's end-to-end test: says hello on the console, then keeps two processes
 * alive (a parent in wait4, a sleeping child) for a while so that the TUI can show telemetry and
 * the process list, then exits so the kernel powers off. Seconds to stay: argv[1] (default 20). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int seconds = argc > 1 ? atoi(argv[1]) : 20;
    printf("hello from the cadenza-tui e2e init (pid %d)\n", getpid());
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        struct timespec pause = {seconds, 0};
        nanosleep(&pause, 0);
        return 0;
    }
    int status;
    waitpid(child, &status, 0);
    printf("e2e init: done\n");
    return 0;
}
