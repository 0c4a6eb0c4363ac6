/* Init for the fault-injection run: runs each command of five rounds in a child (stdin from
 * /dev/null) and prints
 * `<name>-<status>`, retrying a fork (or a wait, or a write) that fails with ENOMEM/EAGAIN. A
 * shell would give up at its first "can't fork" and end the run; this one keeps going, so every
 * round really runs under injected failures. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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
                /* Its own process group, so a hung command can be ended whole (below). */
                while (setpgid(0, 0) < 0 && errno != EPERM)
                    usleep(1000);
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
            /* A command can hang for reasons that are not the kernel's: a failed partner
             * process (the scenario's FIFO writer waits for a `cat` whose exec got ENOMEM,
             * as it would on Linux). After 20 s its process group is killed; orphans that
             * came to init are reaped. The kernel must still neither panic nor leak. */
            int status = 0, waited_ms = 0;
            for (;;) {
                pid_t done = waitpid(child, &status, WNOHANG);
                if (done == child || (done < 0 && errno == ECHILD))
                    break;
                if (waited_ms >= 20000) {
                    kill(-child, SIGKILL);
                    kill(child, SIGKILL);
                    say("timed out, killed: ");
                    waited_ms = -1000000;
                }
                usleep(10000);
                waited_ms += 10;
            }
            while (waitpid(-1, 0, WNOHANG) > 0)
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
