/* Memory pressure, as an unprivileged user (uid/gid 65534).
 *
 *   memhog malloc|sbrk|mmap   touch memory 256 KiB at a time until killed (the OOM killer's
 *                             SIGKILL: the shell reports 137)
 *   memhog read               a child holds nearly all memory (it touches pages until less
 *                             than 512 KiB is free, or is killed); then a 1 MiB read into a
 *                             buffer touched beforehand must return data or ENOMEM
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>

#define STEP (256 * 1024)

static void drop_privileges(void) {
    if (setgid(65534) != 0 || setuid(65534) != 0) {
        perror("memhog: dropping privileges");
        exit(2);
    }
}

static char *more(const char *how) {
    char *p;
    if (strcmp(how, "malloc") == 0) {
        p = malloc(STEP);
        return p;
    }
    if (strcmp(how, "sbrk") == 0) {
        /* musl's sbrk refuses any increment: move the break with the system call. */
        static char *end;
        if (!end)
            end = (char *)syscall(SYS_brk, 0);
        char *grown = (char *)syscall(SYS_brk, end + STEP);
        if (grown != end + STEP) {
            errno = ENOMEM;
            return NULL;
        }
        p = end;
        end = grown;
        return p;
    }
    p = mmap(NULL, STEP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static unsigned long free_bytes(void) {
    struct sysinfo info;
    if (sysinfo(&info) != 0)
        return 0;
    return info.freeram * info.mem_unit;
}

int main(int argc, char **argv) {
    const char *how = argc > 1 ? argv[1] : "malloc";
    setvbuf(stdout, NULL, _IONBF, 0);
    drop_privileges();
    if (strcmp(how, "read") != 0) {
        for (;;) {
            char *p = more(how);
            if (!p) {
                printf("memhog: %s failed: %s\n", how, strerror(errno));
                return 1;
            }
            memset(p, 0x5a, STEP);
        }
    }
    size_t len = 1 << 20;
    char *buffer = malloc(len);
    memset(buffer, 1, len);
    int ready[2];
    if (pipe(ready) != 0)
        return 1;
    pid_t hog = fork();
    if (hog == 0) {
        close(ready[0]);
        for (;;) {
            char *p = malloc(64 * 1024);
            if (!p)
                break;
            memset(p, 0x5a, 64 * 1024);
            if (free_bytes() < 512 * 1024)
                break;
        }
        write(ready[1], "x", 1);
        pause();
        return 0;
    }
    close(ready[1]);
    char byte;
    ssize_t got = read(ready[0], &byte, 1);
    int fd = open("/dev/zero", O_RDONLY);
    ssize_t n = read(fd, buffer, len);
    if (n == (ssize_t)len)
        printf("memhog: read 1 MiB: ok\n");
    else if (n < 0 && errno == ENOMEM)
        printf("memhog: read 1 MiB: ENOMEM\n");
    else
        printf("memhog: read 1 MiB: %zd (%s)\n", n, strerror(errno));
    kill(hog, SIGKILL);
    int status;
    waitpid(hog, &status, 0);
    printf("memhog: hog %s\n", got == 1 ? "held its memory" : "was killed first");
    return 0;
}
