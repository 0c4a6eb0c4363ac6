/* Memory: lazily allocated mappings (as big as most of the guest's RAM; bigger than all of it is
 * refused, as Linux's heuristic overcommit does), mprotect and munmap with the faults they must
 * cause (SEGV_ACCERR / SEGV_MAPERR), brk, and a deep stack. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static sigjmp_buf recover;
static volatile int fault_code;

static void on_segv(int sig, siginfo_t *info, void *context) {
    (void)sig;
    (void)context;
    fault_code = info->si_code;
    siglongjmp(recover, 1);
}

static int touch(volatile char *p) {
    fault_code = 0;
    if (sigsetjmp(recover, 1) == 0) {
        *p = 1;
        return 0;
    }
    return fault_code;
}

static int depth(int n) {
    volatile char pad[4096];
    pad[0] = (char)n;
    return n == 0 ? pad[0] : depth(n - 1) + pad[0] - pad[0];
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, 0);

    size_t too_big = (size_t)1 << 30; /* 1 GiB on a 256 MiB machine without swap */
    errno = 0;
    void *refused = mmap(0, too_big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("1 GiB mapping: %s errno=%d\n", refused == MAP_FAILED ? "refused" : "made", errno);

    size_t huge = (size_t)200 << 20; /* most of RAM: only the touched pages cost */
    char *p = mmap(0, huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    p[0] = 'a';
    p[huge / 2] = 'b';
    p[huge - 1] = 'c';
    printf("lazy 200 MiB mapping: %c%c%c\n", p[0], p[huge / 2], p[huge - 1]);

    mprotect(p, 4096, PROT_READ);
    printf("write to read-only page: si_code=%d\n", touch(p));
    munmap(p, huge);
    printf("touch after munmap: si_code=%d\n", touch(p + 8192));

    char *before = sbrk(0); /* musl's sbrk only reports the break: move it with brk(2) */
    syscall(SYS_brk, before + (1 << 20));
    before[(1 << 20) - 1] = 'x';
    printf("brk grew: %d\n", before[(1 << 20) - 1] == 'x');
    printf("deep stack: %d\n", depth(1000)); /* ~4 MiB of stack */
    printf("mprotect on unmapped = %d\n", mprotect(p, 4096, PROT_READ));
    return 0;
}
