/* A parent blocked in wait4 and a child sleeping: a stable scene for debugger tests. */
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    pid_t child = fork();
    if (child == 0) {
        struct timespec pause = {30, 0};
        nanosleep(&pause, 0);
        return 0;
    }
    int status;
    waitpid(child, &status, 0);
    return 0;
}
