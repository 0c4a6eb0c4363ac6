/* N fork+exec+exit cycles (N = argv[1]): the leak check for processes. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "child") == 0)
        return 0;
    int cycles = argc > 1 ? atoi(argv[1]) : 0;
    for (int i = 0; i < cycles; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            execl("/init", "init", "child", (char *)0);
            _exit(127);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return 1;
    }
    return 0;
}
