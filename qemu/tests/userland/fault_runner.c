/* Init for the fault-injection run: runs each command of five rounds in a child (stdin from
 * /dev/null) and prints
 * `<name>-<status>`, retrying a fork (or a wait, or a write) that fails with ENOMEM/EAGAIN. A
 * shell would give up at its first "can't fork" and end the run; this one keeps going, so every
 * round really runs under injected failures. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void say(const char *text) {
    size_t done = 0, len = strlen(text);
    while (done < len) {
        ssize_t n = write(1, text + done, len - done);
        if (n > 0)
            done += (size_t)n;
        else if (n < 0 && errno != EINTR && errno != ENOMEM && errno != EAGAIN)
            return;
    }
}

int main(void) {
    static char *const commands[][3] = {
        {"/bin/sh", "/scenario", 0}, {"/bin/forkexec", 0, 0}, {"/bin/memory", 0, 0},
        {"/bin/mmap_file", 0, 0},    {"/bin/threads", 0, 0},
    };
    static char *const envp[] = {"PATH=/bin", 0};
    for (int round = 0; round < 5; round++) {
        for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
            pid_t child;
            while ((child = fork()) < 0)
                usleep(1000);
            if (child == 0) {
                /* No terminal input: an injected failure can make a program ask a question
                 * (busybox rm prompts when `access(W_OK)` fails and stdin is a terminal), and
                 * nobody would answer. Retried like the fork: the open may fail too. */
                int null;
                while ((null = open("/dev/null", O_RDONLY)) < 0)
                    usleep(1000);
                while (dup2(null, 0) < 0)
                    usleep(1000);
                if (null != 0)
                    close(null);
                execve(commands[i][0], commands[i], envp);
                _exit(126);
            }
            int status = 0;
            while (waitpid(child, &status, 0) < 0 && errno != ECHILD)
                ;
            char line[80];
            snprintf(line, sizeof line, "%s-%d\n", strrchr(commands[i][0], '/') + 1,
                     WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
            say(line);
        }
    }
    say("rounds-done\n");
    return 0;
}
