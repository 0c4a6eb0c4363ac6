/* First light for userspace: a static musl program run as /init. Exercises the process start
 * (argv, envp, auxv), console output, uname, brk/mmap through malloc, and the error paths of
 * the system-call boundary (EFAULT for bad pointers, ENOSYS for unknown calls). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

int main(int argc, char **argv, char **envp) {
    printf("hello from userspace: argc=%d argv0=%s\n", argc, argv[0]);
    for (char **e = envp; *e; e++)
        if (strncmp(*e, "HOME=", 5) == 0)
            printf("env: %s\n", *e);
    struct utsname u;
    if (uname(&u) == 0)
        printf("uname: %s %s\n", u.sysname, u.machine);
    printf("pid=%d ppid=%d\n", getpid(), getppid());

    errno = 0;
    long r = syscall(SYS_write, 1, (void *)1, 5);
    printf("write(bad pointer) = %ld errno=%d\n", r, errno);
    errno = 0;
    r = syscall(SYS_write, 1, (void *)0xffffffff80200000UL, 5);
    printf("write(kernel pointer) = %ld errno=%d\n", r, errno);
    errno = 0;
    r = syscall(SYS_write, 99, "x", 1);
    printf("write(bad fd) = %ld errno=%d\n", r, errno);
    errno = 0;
    r = syscall(999);
    printf("syscall(999) = %ld errno=%d\n", r, errno);

    size_t size = 4 << 20;
    unsigned char *big = malloc(size); /* mmap */
    unsigned char *small = malloc(100); /* brk */
    if (!big || !small)
        return 10;
    memset(big, 7, size);
    memset(small, 9, 100);
    printf("malloc: %d %d\n", big[size - 1], small[99]);
    free(big);
    fflush(stdout);
    return 3;
}
