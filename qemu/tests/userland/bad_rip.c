/* Returns to user mode at addresses the CPU cannot run: a non-canonical address must not make
 * `iretq`/`sysretq` fault in the kernel (with the user's GS base loaded); the task gets SIGSEGV,
 * as on Linux. Each case runs in a child; the parent prints how it ended. Prints the same lines
 * on Linux (the parity test). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

static void report(const char *what, pid_t child) {
    int status;
    waitpid(child, &status, 0);
    if (WIFSIGNALED(status))
        printf("%s: killed by signal %d\n", what, WTERMSIG(status));
    else
        printf("%s: exited %d\n", what, WEXITSTATUS(status));
}

static void handler_at(uintptr_t address, int also_segv) {
    struct sigaction sa = {0};
    sa.sa_handler = (void (*)(int))address;
    sigaction(SIGUSR1, &sa, 0);
    if (also_segv)
        sigaction(SIGSEGV, &sa, 0);
    raise(SIGUSR1);
    _exit(1);
}

static volatile uintptr_t return_to;

static void redirect(int sig, siginfo_t *info, void *context) {
    (void)sig;
    (void)info;
    ((ucontext_t *)context)->uc_mcontext.gregs[REG_RIP] = return_to;
}

static void sigreturn_to(uintptr_t address) {
    struct sigaction sa = {0};
    sa.sa_sigaction = redirect;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, 0);
    return_to = address;
    raise(SIGUSR1);
    _exit(1);
}

static volatile int segv_caught;
static void on_segv(int sig) {
    (void)sig;
    segv_caught++;
    _exit(segv_caught == 1 ? 7 : 8);
}

/* A static ELF executable that exits with status 42, started at `entry`. */
static void write_elf(const char *path, uint64_t entry) {
    unsigned char image[256] = {0};
    static const unsigned char code[] = {0xbf, 42, 0, 0, 0, 0xb8, 60, 0, 0, 0, 0x0f, 0x05};
    uint64_t base = 0x400000, file_size = 64 + 56 + sizeof code;
    memcpy(image, "\x7f" "ELF\x02\x01\x01", 7);
    *(uint16_t *)(image + 16) = 2;
    *(uint16_t *)(image + 18) = 62;
    *(uint32_t *)(image + 20) = 1;
    *(uint64_t *)(image + 24) = entry;
    *(uint64_t *)(image + 32) = 64;
    *(uint16_t *)(image + 52) = 64;
    *(uint16_t *)(image + 54) = 56;
    *(uint16_t *)(image + 56) = 1;
    unsigned char *ph = image + 64;
    *(uint32_t *)(ph + 0) = 1;
    *(uint32_t *)(ph + 4) = 5; /* R X */
    *(uint64_t *)(ph + 16) = base;
    *(uint64_t *)(ph + 24) = base;
    *(uint64_t *)(ph + 32) = file_size;
    *(uint64_t *)(ph + 40) = file_size;
    *(uint64_t *)(ph + 48) = 4096;
    memcpy(image + 64 + 56, code, sizeof code);
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0755);
    write(fd, image, file_size);
    close(fd);
}

static void exec_at(uint64_t entry) {
    write_elf("/entry", entry);
    char *argv[] = {"/entry", 0};
    execve("/entry", argv, 0);
    _exit(2);
}

int main(void) {
    static const uintptr_t addresses[] = {
        0x0000800000000000UL, /* just past the lower half: non-canonical */
        0x8000000000000000UL, /* non-canonical */
        0xffff800000001000UL, /* canonical, but the kernel's half */
    };
    static const char *names[] = {"0x0000800000000000", "0x8000000000000000",
                                  "0xffff800000001000"};
    char what[128];
    for (int i = 0; i < 3; i++) {
        pid_t child = fork();
        if (child == 0)
            handler_at(addresses[i], 0);
        snprintf(what, sizeof what, "signal handler at %s", names[i]);
        report(what, child);

        child = fork();
        if (child == 0)
            handler_at(addresses[i], 1);
        snprintf(what, sizeof what, "signal and SIGSEGV handlers at %s", names[i]);
        report(what, child);

        child = fork();
        if (child == 0)
            sigreturn_to(addresses[i]);
        snprintf(what, sizeof what, "rt_sigreturn to %s", names[i]);
        report(what, child);

        child = fork();
        if (child == 0) {
            signal(SIGSEGV, on_segv);
            sigreturn_to(addresses[i]);
        }
        snprintf(what, sizeof what, "rt_sigreturn to %s, SIGSEGV caught", names[i]);
        report(what, child);

        child = fork();
        if (child == 0)
            exec_at(addresses[i]);
        snprintf(what, sizeof what, "exec with entry %s", names[i]);
        report(what, child);
    }
    pid_t child = fork();
    if (child == 0)
        exec_at(0x400000 + 64 + 56);
    report("exec with a good entry", child);
    return 0;
}
