/* Edges of data transfer and signal return that must match Linux:
 * - rt_sigreturn with an unreadable frame kills with SIGSEGV (not an EFAULT return);
 * - a pipe read into a bad buffer leaves the data in the pipe (EFAULT only if nothing was
 *   copied; the part a partly bad buffer cannot take stays too);
 * - getdents64 into a bad buffer does not move the directory past entries it did not copy;
 * - a blocking pipe write writes everything (64 MiB), a signal ends it with the count so far,
 *   and a write of at most PIPE_BUF is never split.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096

static void report(const char *what, long result) {
    if (result < 0)
        printf("%s: -1 %s\n", what, strerror(errno));
    else
        printf("%s: %ld\n", what, result);
}

/* Two pages whose second is unmapped: a buffer that is good for exactly one page. */
static char *half_good_buffer(void) {
    char *pages = mmap(0, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(pages + PAGE, PAGE);
    return pages;
}

static void bad_sigreturn(void) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        /* The frame would be at the stack pointer, which points nowhere. */
        __asm__ volatile("xor %%esp, %%esp\n\tmov $15, %%eax\n\tsyscall" ::: "memory");
        _exit(1); /* not reached: the stack is gone */
    }
    int status;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status))
        printf("bad rt_sigreturn frame: killed by signal %d\n", WTERMSIG(status));
    else
        printf("bad rt_sigreturn frame: exited %d\n", WEXITSTATUS(status));
}

static void pipe_reads(void) {
    int fds[2];
    char buffer[PAGE * 2];
    pipe(fds);
    write(fds[1], "hello", 5);
    report("pipe read into a bad buffer", read(fds[0], (void *)8, 5));
    long n = read(fds[0], buffer, sizeof buffer);
    printf("then: %ld %.*s\n", n, (int)(n > 0 ? n : 0), buffer);

    char *half = half_good_buffer();
    memset(buffer, 'a', PAGE);
    write(fds[1], buffer, PAGE);
    memset(buffer, 'b', PAGE);
    write(fds[1], buffer, PAGE);
    report("pipe read into a half-bad buffer", read(fds[0], half, 2 * PAGE));
    printf("first byte: %c\n", half[0]);
    n = read(fds[0], buffer, sizeof buffer);
    printf("then: %ld bytes of %c\n", n, buffer[0]);
    close(fds[0]);
    close(fds[1]);
}

static int count_entries(int fd) {
    char buffer[PAGE];
    int entries = 0;
    long n;
    while ((n = syscall(SYS_getdents64, fd, buffer, sizeof buffer)) > 0) {
        for (long at = 0; at < n;) {
            struct dirent64 *entry = (struct dirent64 *)(buffer + at);
            entries++;
            at += entry->d_reclen;
        }
    }
    return entries;
}

static void directory_reads(void) {
    char name[64];
    mkdir("/entries", 0755);
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "/entries/file%04d", i);
        close(open(name, O_CREAT | O_WRONLY, 0644));
    }
    int fd = open("/entries", O_RDONLY | O_DIRECTORY);
    report("getdents64 into a bad buffer", syscall(SYS_getdents64, fd, (void *)8, 4096));
    printf("then: %d entries\n", count_entries(fd));

    lseek(fd, 0, SEEK_SET);
    char *half = half_good_buffer();
    long n = syscall(SYS_getdents64, fd, half, 2 * PAGE);
    int first = 0;
    for (long at = 0; at < n; first++)
        at += ((struct dirent64 *)(half + at))->d_reclen;
    printf("getdents64 into a half-bad buffer: %s\n", n > 0 && n <= PAGE ? "part" : "wrong");
    printf("then: %d entries in all\n", first + count_entries(fd));
    close(fd);
}

static void on_signal(int signal) {
    (void)signal;
}

static void pipe_writes(void) {
    int fds[2];
    pipe(fds);
    /* 64 MiB in one blocking write, read by a child. */
    size_t size = 64 << 20;
    char *data = malloc(size);
    memset(data, 'x', size);
    fflush(stdout);
    pid_t reader = fork();
    if (reader == 0) {
        close(fds[1]);
        static char chunk[1 << 16];
        long total = 0, n;
        while ((n = read(fds[0], chunk, sizeof chunk)) > 0)
            total += n;
        printf("reader got %ld bytes\n", total);
        fflush(stdout);
        _exit(0);
    }
    close(fds[0]);
    report("blocking 64 MiB pipe write", write(fds[1], data, size));
    close(fds[1]);
    waitpid(reader, 0, 0);
    free(data);

    /* A signal ends a blocking write that is stuck with a full pipe: the count so far. */
    struct sigaction action = {0};
    action.sa_handler = on_signal;
    sigaction(SIGUSR1, &action, 0);
    pipe(fds);
    fflush(stdout);
    pid_t sender = fork();
    if (sender == 0) {
        usleep(200 * 1000);
        kill(getppid(), SIGUSR1);
        _exit(0);
    }
    static char megabyte[1 << 20];
    report("pipe write interrupted after filling the pipe", write(fds[1], megabyte, sizeof megabyte));
    waitpid(sender, 0, 0);
    close(fds[0]);
    close(fds[1]);

    /* PIPE_BUF: with 100 bytes of room, 200 bytes do not go in part; 100 do. */
    pipe2(fds, O_NONBLOCK);
    report("filling", write(fds[1], megabyte, 65536 - 100));
    report("200 bytes with room for 100", write(fds[1], megabyte, 200));
    report("100 bytes with room for 100", write(fds[1], megabyte, 100));
    close(fds[0]);
    close(fds[1]);
}

/* pipe2 into an unwritable array: EFAULT, and no descriptor is left behind (Linux copies the
 * pair out before it installs the descriptors). */
static void pipe_into_bad_array(void) {
    int probe = dup(0);
    close(probe);
    long r = syscall(SYS_pipe2, (int *)0x10, 0);
    printf("pipe2(bad array): %ld %s\n", r, r < 0 ? strerror(errno) : "");
    int fresh = dup(0);
    printf("pipe2(bad array) left descriptors: %s\n", fresh == probe ? "no" : "yes");
    close(fresh);
}

int main(void) {
    pipe_into_bad_array();
    bad_sigreturn();
    pipe_reads();
    directory_reads();
    pipe_writes();
    printf("transfers done\n");
    return 0;
}
