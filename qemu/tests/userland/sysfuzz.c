/* sysfuzz: random system calls from several unprivileged processes, seeded and reproducible.
 *
 * Why: the kernel promises that nothing a user does can panic it, hang it or leak its memory.
 * Hand-written tests check the calls we thought of; this checks the ones we did not, the way
 * trinity does: random numbers, boundary and hostile arguments (null, kernel and non-canonical
 * pointers, buffers that end at an unmapped page, huge sizes, bad descriptors), from several
 * processes at once so the calls also race each other.
 *
 * Usage (as init, root): sysfuzz [-s SEED] [-w WORKERS] [-n CALLS_PER_WORKER] [-t STUCK_SECS]
 *                                [-x NR,NR,...] [-v 1] [-m 1] [-d 1]
 * As root it builds a playground (a tmpfs at /pg with files, directories, symlinks, a FIFO, a
 * root-only file; /proc and debugfs mounted), then forks WORKERS processes that drop to
 * uid/gid 65534 and each make CALLS_PER_WORKER system calls. Everything random comes from
 * SEED (printed first): worker w's generation g (a respawn after the worker died or stuck)
 * draws from splitmix64(SEED, w, g), so a run replays from its seed (the order in which the
 * workers' calls interleave is the scheduler's, not the seed's).
 *
 * Workers report progress through a pipe every PROGRESS_EVERY calls. A worker that made no
 * progress for STUCK_SECS seconds (blocked in a call that legitimately waits: a read of an
 * empty pipe, a FIFO open, a futex) is SIGKILLed and respawned, and counted as "stuck"; it is
 * a finding only if SIGKILL cannot end it ("unkillable"), which means the kernel is wedged.
 * Workers that die (a random rt_sigreturn, munmap of their own stack, a signal) are respawned
 * and counted as "died": the fuzzer's own memory is fair game, the kernel's is not.
 *
 * rt_sigreturn (15) is drawn a tenth as often as the others: with a random frame it almost
 * always kills the worker, and a respawn costs a fork.
 *
 * Skipped, because they would legitimately end or freeze the fuzzer itself rather than test
 * the kernel (trinity's "avoid" list): exit (60) and exit_group (231), vfork (58), pause (34),
 * rt_sigsuspend (130). Sanitised rather than skipped: execve/execveat get a playground path,
 * never the fuzzer (/init); kill/tkill/tgkill/rt_(tg)sigqueueinfo aimed at the caller itself,
 * its process group (0, negative pids) or every process (-1) carry only harmless signals
 * (0, SIGCHLD, SIGURG, SIGWINCH, SIGCONT); arch_prctl's FS base is restored after the call
 * (the worker's own TLS); a child created by fork/clone/clone3 exits at once (in assembly,
 * before it touches the stack it may share). `-x` removes more numbers (e.g. `-x 169` while
 * reboot(2) still powers off for anyone).
 *
 * `-m 1` keeps the lengths given to mmap, mprotect, munmap and mremap below 1 GiB: while the
 * kernel walks a range page by page, a huge one freezes the machine (a known finding being
 * fixed; the default leaves lengths alone).
 *
 * `-d 1` prints, at the end, the kernel objects allocated during the run that are still live
 * (the leak tracker's `mark` and `kmemleak_since_mark`, with their call sites): what to read
 * when the heap does not return to its baseline.
 *
 * `-v 1` makes every worker print each call to the console before making it (slow; for finding
 * the call that hangs the machine, which a log of completed calls cannot show).
 *
 * At the end the parent reaps everything (a process left over is reported as stuck), unmounts
 * the playground and prints `sysfuzz: done ...` and the free memory, so the test can compare
 * the kernel's shutdown report (heap, kmemleak) and free memory with a baseline run. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 16
#define PROGRESS_EVERY 32
#define PROGRESS_FD 900
#define LOG_FD 901
#define MAX_NR 464
#define UNPRIVILEGED 65534

/* ---- randomness ---------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rng;
static uint64_t rnd(void) { return splitmix64(&rng); }
static uint64_t below(uint64_t n) { return n ? rnd() % n : 0; }
static int chance(int percent) { return (int)below(100) < percent; }

static uint64_t worker_seed(uint64_t master, int worker, int generation) {
    uint64_t s = master ^ ((uint64_t)(worker + 1) << 40) ^ ((uint64_t)generation << 20);
    return splitmix64(&s);
}

/* ---- the raw call ---------------------------------------------------------------------- */

/* One system call. If it created a child (fork, vfork, clone, clone3 returning 0), the child
 * exits right here with exit(0), without touching memory: with CLONE_VM it shares the
 * caller's stack, with a random child stack it has none. */
static long raw_syscall(long n, long a, long b, long c, long d, long e, long f) {
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall\n\t"
                     "test %%rax, %%rax\n\t"
                     "jnz 1f\n\t"
                     "cmp $56, %[nr]\n\t"
                     "jb 1f\n\t"
                     "cmp $58, %[nr]\n\t"
                     "jbe 2f\n\t"
                     "cmp $435, %[nr]\n\t"
                     "jne 1f\n\t"
                     "2:\n\t"
                     "mov $60, %%eax\n\t"
                     "xor %%edi, %%edi\n\t"
                     "syscall\n\t"
                     "ud2\n\t"
                     "1:\n\t"
                     : "=a"(ret)
                     : "a"(n), [nr] "r"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory", "cc");
    return ret;
}

/* ---- the system call table ------------------------------------------------------------- */

/* Argument kinds: how to draw each argument of the calls we know. */
enum kind { ANY = 0, FD, PATH, BUF, LEN, FLAGS, PID, SIG, ADDR, MODE, DIRFD, SMALL, TIMEOUT };

struct call {
    int nr;
    unsigned char args[6];
};

/* The numbers the kernel implements (kernel/src/syscall/mod.rs), with their argument kinds;
 * three calls in four come from here, the rest from all numbers 0..MAX_NR. */
static const struct call known[] = {
    {0, {FD, BUF, LEN}},           {1, {FD, BUF, LEN}},
    {2, {PATH, FLAGS, MODE}},      {3, {FD}},
    {4, {PATH, BUF}},              {5, {FD, BUF}},
    {6, {PATH, BUF}},              {7, {BUF, SMALL, SMALL}},
    {8, {FD, ANY, SMALL}},         {9, {ADDR, LEN, FLAGS, FLAGS, FD, ANY}},
    {10, {ADDR, LEN, FLAGS}},      {11, {ADDR, LEN}},
    {12, {ADDR}},                  {13, {SIG, BUF, BUF, SMALL}},
    {14, {SMALL, BUF, BUF, SMALL}}, {15, {ANY}},
    {16, {FD, FLAGS, BUF}},        {17, {FD, BUF, LEN, ANY}},
    {18, {FD, BUF, LEN, ANY}},     {19, {FD, BUF, SMALL}},
    {20, {FD, BUF, SMALL}},        {21, {PATH, MODE}},
    {22, {BUF}},                   {23, {SMALL, BUF, BUF, BUF, TIMEOUT}},
    {24, {0}},                     {25, {ADDR, LEN, LEN, FLAGS, ADDR}},
    {32, {FD}},                    {33, {FD, FD}},
    {35, {TIMEOUT, BUF}},          {39, {0}},
    {40, {FD, FD, BUF, LEN}},      {56, {FLAGS, ADDR, BUF, BUF, ANY}},
    {57, {0}},                     {59, {PATH, BUF, BUF}},
    {61, {PID, BUF, FLAGS, BUF}},  {62, {PID, SIG}},
    {63, {BUF}},                   {72, {FD, SMALL, ANY}},
    {76, {PATH, LEN}},             {77, {FD, LEN}},
    {79, {BUF, LEN}},              {80, {PATH}},
    {81, {FD}},                    {82, {PATH, PATH}},
    {83, {PATH, MODE}},            {84, {PATH}},
    {85, {PATH, MODE}},            {86, {PATH, PATH}},
    {87, {PATH}},                  {88, {PATH, PATH}},
    {89, {PATH, BUF, LEN}},        {90, {PATH, MODE}},
    {91, {FD, MODE}},              {92, {PATH, PID, PID}},
    {93, {FD, PID, PID}},          {94, {PATH, PID, PID}},
    {95, {MODE}},                  {96, {BUF, BUF}},
    {97, {SMALL, BUF}},            {99, {BUF}},
    {102, {0}},                    {104, {0}},
    {105, {PID}},                  {106, {PID}},
    {107, {0}},                    {108, {0}},
    {109, {PID, PID}},             {110, {0}},
    {111, {0}},                    {112, {0}},
    {113, {PID, PID}},             {114, {PID, PID}},
    {115, {SMALL, BUF}},           {116, {SMALL, BUF}},
    {117, {PID, PID, PID}},        {118, {BUF, BUF, BUF}},
    {119, {PID, PID, PID}},        {120, {BUF, BUF, BUF}},
    {121, {PID}},                  {124, {PID}},
    {127, {BUF, SMALL}},           {128, {BUF, BUF, TIMEOUT, SMALL}},
    {131, {BUF, BUF}},             {132, {PATH, BUF}},
    {133, {PATH, MODE, ANY}},      {157, {SMALL, ANY, ANY, ANY, ANY}},
    {158, {SMALL, ADDR}},          {160, {SMALL, BUF}},
    {162, {0}},                    {164, {BUF, BUF}},
    {165, {PATH, PATH, PATH, FLAGS, BUF}}, {166, {PATH, FLAGS}},
    {169, {ANY, ANY, ANY, BUF}},   {186, {0}},
    {188, {PATH, PATH, BUF, LEN, FLAGS}}, {189, {PATH, PATH, BUF, LEN, FLAGS}},
    {190, {FD, PATH, BUF, LEN, FLAGS}}, {191, {PATH, PATH, BUF, LEN}},
    {192, {PATH, PATH, BUF, LEN}}, {193, {FD, PATH, BUF, LEN}},
    {194, {PATH, BUF, LEN}},       {195, {PATH, BUF, LEN}},
    {196, {FD, BUF, LEN}},         {197, {PATH, PATH}},
    {198, {PATH, PATH}},           {199, {FD, PATH}},
    {200, {PID, SIG}},             {201, {BUF}},
    {202, {BUF, SMALL, ANY, TIMEOUT, BUF, ANY}}, {204, {PID, LEN, BUF}},
    {217, {FD, BUF, LEN}},         {218, {BUF}},
    {221, {FD, ANY, LEN, SMALL}},  {227, {SMALL, BUF}},
    {228, {SMALL, BUF}},           {230, {SMALL, FLAGS, TIMEOUT, BUF}},
    {234, {PID, PID, SIG}},        {235, {PATH, BUF}},
    {247, {SMALL, PID, BUF, FLAGS, BUF}}, {257, {DIRFD, PATH, FLAGS, MODE}},
    {258, {DIRFD, PATH, MODE}},    {259, {DIRFD, PATH, MODE, ANY}},
    {260, {DIRFD, PATH, PID, PID, FLAGS}}, {261, {DIRFD, PATH, BUF}},
    {262, {DIRFD, PATH, BUF, FLAGS}}, {263, {DIRFD, PATH, FLAGS}},
    {264, {DIRFD, PATH, DIRFD, PATH}}, {265, {DIRFD, PATH, DIRFD, PATH, FLAGS}},
    {266, {PATH, DIRFD, PATH}},    {267, {DIRFD, PATH, BUF, LEN}},
    {268, {DIRFD, PATH, MODE}},    {269, {DIRFD, PATH, MODE, FLAGS}},
    {270, {SMALL, BUF, BUF, BUF, TIMEOUT, BUF}}, {271, {BUF, SMALL, TIMEOUT, BUF, SMALL}},
    {273, {BUF, LEN}},             {274, {PID, BUF, BUF}},
    {280, {DIRFD, PATH, BUF, FLAGS}}, {292, {FD, FD, FLAGS}},
    {293, {BUF, FLAGS}},           {302, {PID, SMALL, BUF, BUF}},
    {316, {DIRFD, PATH, DIRFD, PATH, FLAGS}}, {318, {BUF, LEN, FLAGS}},
    {332, {DIRFD, PATH, FLAGS, FLAGS, BUF}}, {439, {DIRFD, PATH, MODE, FLAGS}},
};
#define KNOWN (sizeof known / sizeof known[0])

static unsigned char avoided[MAX_NR + 1];

static void avoid_defaults(void) {
    /* They end or freeze the caller itself; see the header comment. */
    static const int list[] = {34, 58, 60, 130, 231};
    for (unsigned i = 0; i < sizeof list / sizeof list[0]; i++)
        avoided[list[i]] = 1;
}

/* ---- the worker's world ---------------------------------------------------------------- */

static const char *const paths[] = {
    "/pg/file", "/pg/dir", "/pg/dir/inner", "/pg/link", "/pg/dangling", "/pg/loop", "/pg/fifo",
    "/pg/w", "/pg/w/new", "/pg/w/dir", "/pg/w/link", "/pg/rootonly", "/pg/rootdir/f",
    "/pg/script", "/proc/self/maps", "/proc/1/environ", "/proc/1/cwd", "/proc/self/fd/0",
    "/proc/sysrq-trigger", "/proc/meminfo", "/sys/kernel/debug/kmemleak", "/dev/null",
    "/dev/zero", "/dev/full", "/dev/urandom", "/dev/tty", "/dev/console", "/", ".", "..", "",
    "w/rel", "file", "/init", "/nonexistent/x", "/pg/file/notadir",
};
#define PATHS (sizeof paths / sizeof paths[0])

static char *rw;      /* 16 writable pages (random contents) */
static char *ro;      /* 4 read-only pages: paths, timespecs, iovecs, pollfds... */
static char *edge;    /* a writable page followed by an unmapped one */
static long ro_paths[PATHS + 1];
static long ro_long_path, ro_ts_zero, ro_ts_short, ro_ts_bad, ro_iov, ro_pollfd, ro_sigset;
static long ro_argv;
static int fds[64];
static int nfds;
static pid_t self_pid, parent_pid;
static unsigned long fs_base;

static void add_fd(long fd) {
    if (fd < 0 || fd >= PROGRESS_FD)
        return;
    if (nfds < (int)(sizeof fds / sizeof fds[0]))
        fds[nfds++] = (int)fd;
    else
        fds[below(nfds)] = (int)fd;
}

static long pick_fd(void) {
    switch (below(10)) {
    case 0: {
        static const long bad[] = {-1, -100, 1023, 65535, 0x7fffffff, (long)0x80000000u, 99};
        return bad[below(sizeof bad / sizeof bad[0])];
    }
    case 1:
        return (long)below(8);
    default:
        return nfds ? fds[below(nfds)] : 0;
    }
}

static long pick_path(void) {
    if (chance(3))
        return ro_long_path;
    if (chance(5))
        return (long)(edge + 4096 - 3); /* "/pg" with no terminator before the hole */
    if (chance(4))
        return (long)rw + (long)below(16 * 4096); /* random bytes */
    return ro_paths[below(PATHS)];
}

static long pick_pointer(void) {
    switch (below(16)) {
    case 0:
        return 0;
    case 1:
        return (long)0xffff800000000000ull; /* the direct map */
    case 2:
        return (long)0xffffffff80000000ull; /* the kernel image */
    case 3:
        return (long)0xffffffff81000000ull + (long)below(0x100000);
    case 4: {
        static const unsigned long noncanonical[] = {0x0000800000000000ull,
                                                     0x8000000000000000ull,
                                                     0xdead000000000000ull,
                                                     0x00007ffffffff000ull + 0x1000};
        return (long)noncanonical[below(4)];
    }
    case 5:
        return (long)(0x10000 + below(16) * 4096); /* unmapped user memory */
    case 6:
        return (long)(edge + 4096 - below(64)); /* runs into the unmapped page */
    case 7:
        return (long)ro + (long)below(4 * 4096);
    case 8:
        return ro_iov;
    case 9:
        return ro_pollfd;
    case 10:
        return ro_sigset;
    case 11:
        return (long)0x00007ffffffff000ull - (long)below(16);
    default:
        return (long)rw + (long)(below(16 * 4096 / 8) * 8);
    }
}

static long pick_len(void) {
    static const long lens[] = {0,          1,          2,          7,
                                8,          16,         64,         511,
                                4095,       4096,       4097,       8192,
                                65536,      1 << 20,    1L << 31,   1L << 32,
                                0x7fffffff, -1,         -4096,      (long)0x7ffffffffffff000ull,
                                1L << 46,   1L << 47,   1L << 62,   (long)0x8000000000000000ull};
    if (chance(20))
        return (long)below(256);
    return lens[below(sizeof lens / sizeof lens[0])];
}

static long pick_flags(void) {
    switch (below(6)) {
    case 0:
        return 0;
    case 1:
        return (long)rnd();
    case 2:
        return (long)(1ull << below(64));
    case 3:
        return (long)((1ull << below(32)) | (1ull << below(32)) | (1ull << below(32)));
    default:
        return (long)(rnd() & below(0x100000));
    }
}

static long pick_pid(void) {
    static const long some[] = {0, -1, 1, 2, 3, 99999, -99999, 0x7fffffff, (long)0x80000000u,
                                UNPRIVILEGED, 1000};
    switch (below(4)) {
    case 0:
        return self_pid;
    case 1:
        return parent_pid;
    default:
        return some[below(sizeof some / sizeof some[0])];
    }
}

static long pick_any(void) {
    switch (below(10)) {
    case 0:
        return pick_fd();
    case 1:
        return pick_path();
    case 2:
    case 3:
        return pick_pointer();
    case 4:
        return pick_len();
    case 5:
        return pick_flags();
    case 6:
        return pick_pid();
    case 7:
        return (long)rnd();
    default: {
        static const long values[] = {0,   1,  2,         3,   -1,   -2, 4096, 0x7fffffff,
                                      (long)0x8000000000000000ull, 0x7fffffffffffffff,
                                      (long)0xffffffff, 255, 256, -100};
        if (chance(30))
            return (long)below(64);
        return values[below(sizeof values / sizeof values[0])];
    }
    }
}

static long pick(int kind) {
    if (chance(10))
        kind = ANY; /* sometimes the wrong kind entirely */
    switch (kind) {
    case FD:
        return pick_fd();
    case PATH:
        return pick_path();
    case BUF:
        return pick_pointer();
    case LEN:
        return pick_len();
    case FLAGS:
        return pick_flags();
    case PID:
        return pick_pid();
    case SIG:
        return chance(90) ? (long)below(66) : pick_any();
    case ADDR:
        switch (below(5)) {
        case 0:
            return (long)rw + (long)(below(16) * 4096);
        case 1:
            return (long)(below(1ull << 35) & ~4095ull);
        default:
            return pick_pointer();
        }
    case MODE:
        return chance(80) ? (long)below(010000) : (long)rnd();
    case DIRFD:
        return chance(50) ? -100 /* AT_FDCWD */ : pick_fd();
    case SMALL:
        return chance(90) ? (long)below(16) : pick_any();
    case TIMEOUT: {
        long t[] = {0, ro_ts_zero, ro_ts_short, ro_ts_bad, pick_pointer()};
        return t[below(5)];
    }
    default:
        return pick_any();
    }
}

/* Sets up the worker's buffers: random writable pages, read-only pages of well-formed
 * structures (so calls get past their first checks), and a page before a hole. */
static void make_buffers(void) {
    rw = mmap(0, 16 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ro = mmap(0, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    edge = mmap(0, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (rw == MAP_FAILED || ro == MAP_FAILED || edge == MAP_FAILED)
        _exit(4);
    munmap(edge + 4096, 4096);
    for (int i = 0; i < 16 * 4096 / 8; i++)
        ((uint64_t *)rw)[i] = rnd();
    memset(edge, 'a', 4096);
    memcpy(edge + 4096 - 3, "/pg", 3);

    char *at = ro;
    for (unsigned i = 0; i < PATHS; i++) {
        ro_paths[i] = (long)at;
        strcpy(at, paths[i]);
        at += strlen(paths[i]) + 1;
    }
    at = (char *)(((uintptr_t)at + 15) & ~(uintptr_t)15);
    struct timespec *ts = (struct timespec *)at;
    ts[0] = (struct timespec){0, 0};
    ts[1] = (struct timespec){0, 1000000};
    ts[2] = (struct timespec){-1, 2000000000};
    ro_ts_zero = (long)&ts[0];
    ro_ts_short = (long)&ts[1];
    ro_ts_bad = (long)&ts[2];
    at += 3 * sizeof *ts;
    struct iovec *iov = (struct iovec *)at;
    iov[0] = (struct iovec){rw, 100};
    iov[1] = (struct iovec){edge + 4000, 200};
    iov[2] = (struct iovec){(void *)0xffff800000000000ull, 16};
    iov[3] = (struct iovec){rw, (size_t)-1};
    ro_iov = (long)iov;
    at += 4 * sizeof *iov;
    struct pollfd *pfd = (struct pollfd *)at;
    for (int i = 0; i < 8; i++)
        pfd[i] = (struct pollfd){i < 4 ? i : -1, POLLIN | POLLOUT, 0};
    ro_pollfd = (long)pfd;
    at += 8 * sizeof *pfd;
    uint64_t *set = (uint64_t *)at;
    set[0] = ~0ull;
    set[1] = ~0ull;
    ro_sigset = (long)set;
    at += 16;
    long *argv = (long *)at;
    argv[0] = ro_paths[0];
    argv[1] = 0;
    ro_argv = (long)argv;
    at += 16;
    ro_long_path = (long)(ro + 2 * 4096);
    memset(ro + 2 * 4096, 'x', 2 * 4096 - 1); /* longer than PATH_MAX */
    mprotect(ro, 4 * 4096, PROT_READ);
}

static void open_fds(void) {
    int p[2];
    if (pipe(p) == 0) {
        add_fd(p[0]);
        add_fd(p[1]);
    }
    static const char *const names[] = {"/pg/file", "/pg/dir", "/dev/null", "/proc/self/maps",
                                        "/dev/zero", "/pg/w"};
    static const int flags[] = {O_RDWR, O_RDONLY | O_DIRECTORY, O_RDWR, O_RDONLY, O_RDONLY,
                                O_PATH};
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
        add_fd(open(names[i], flags[i]));
    add_fd(open("/pg/fifo", O_RDWR | O_NONBLOCK));
}

static int verbose, modest_lengths;

static long modest(long length) {
    return (unsigned long)length > (1ul << 30) ? length & ((1l << 30) - 1) : length;
}

static void log_call(int worker, int generation, long i, long nr, const long *a) {
    char line[256];
    int n = snprintf(line, sizeof line, "sysfuzz: w%d g%d #%ld: %ld(%#lx, %#lx, %#lx, %#lx, %#lx, %#lx)\n",
                     worker, generation, i, nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    if (n > 0)
        raw_syscall(1, LOG_FD, (long)line, n < (int)sizeof line ? n : (int)sizeof line - 1, 0, 0, 0);
}

static int is_harmless_signal(long sig) {
    return sig == 0 || sig == SIGCHLD || sig == SIGURG || sig == SIGWINCH || sig == SIGCONT;
}

/* Keeps the worker alive: see the header comment. Returns 0 to skip the call. */
static int sanitise(long nr, long *a) {
    static const long harmless[] = {0, SIGCHLD, SIGURG, SIGWINCH, SIGCONT};
    if (modest_lengths && (nr == 9 || nr == 10 || nr == 11 || nr == 25)) {
        a[1] = modest(a[1]);
        if (nr == 25)
            a[2] = modest(a[2]);
    }
    switch (nr) {
    case 59:  /* execve */
    case 322: /* execveat */
        if (nr == 59 ? a[0] == ro_paths[33] : a[1] == ro_paths[33])
            return 0;
        if (nr == 59 && chance(50))
            a[1] = ro_argv;
        return 1;
    case 62:  /* kill */
    case 129: /* rt_sigqueueinfo */
        if ((a[0] <= 0 || a[0] == self_pid) && !is_harmless_signal(a[1]))
            a[1] = harmless[below(5)];
        return 1;
    case 200: /* tkill */
        if (a[0] == self_pid && !is_harmless_signal(a[1]))
            a[1] = harmless[below(5)];
        return 1;
    case 234: /* tgkill */
    case 297: /* rt_tgsigqueueinfo */
        if ((a[0] <= 0 || a[0] == self_pid || a[1] == self_pid) && !is_harmless_signal(a[2]))
            a[2] = harmless[below(5)];
        return 1;
    case 3:   /* close */
    case 33:  /* dup2 */
    case 292: /* dup3 */
        /* the progress pipe is the worker's lifeline, the log its voice */
        return !(a[0] == PROGRESS_FD || a[1] == PROGRESS_FD || a[0] == LOG_FD ||
                 a[1] == LOG_FD);
    default:
        return 1;
    }
}

static void report(int worker, int generation, long calls) {
    long record[3] = {worker, generation, calls};
    if (write(PROGRESS_FD, record, sizeof record) != sizeof record)
        _exit(3); /* the lifeline is gone: the parent respawns us */
}

static void worker(uint64_t master, int worker, int generation, long calls, long done) {
    rng = worker_seed(master, worker, generation);
    self_pid = getpid();
    parent_pid = getppid();
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    if (null > 2)
        close(null);
    setsid();
    if (chdir("/pg/w") != 0 || setgroups(0, 0) != 0 || setgid(UNPRIVILEGED) != 0 ||
        setuid(UNPRIVILEGED) != 0)
        _exit(5);
    syscall(SYS_arch_prctl, 0x1003 /* ARCH_GET_FS */, &fs_base);
    make_buffers();
    open_fds();
    for (long i = done; i < calls; i++) {
        long nr;
        unsigned char kinds[6] = {0};
        do {
            if (chance(75)) {
                const struct call *c = &known[below(KNOWN)];
                nr = c->nr;
                memcpy(kinds, c->args, 6);
            } else {
                nr = (long)below(MAX_NR + 1);
                memset(kinds, 0, 6);
            }
        } while (avoided[nr] || (nr == 15 && chance(90)));
        long a[6];
        for (int k = 0; k < 6; k++)
            a[k] = pick(kinds[k]);
        if (sanitise(nr, a)) {
            if (verbose)
                log_call(worker, generation, i, nr, a);
            long ret = raw_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
            if (nr == 158) /* arch_prctl: the worker's own TLS comes back */
                raw_syscall(158, 0x1002 /* ARCH_SET_FS */, (long)fs_base, 0, 0, 0, 0);
            /* new descriptors join the pool */
            if (ret >= 0 && (nr == 2 || nr == 257 || nr == 85 || nr == 32 || nr == 33 ||
                             nr == 292 || (nr == 72 && (a[1] == 0 || a[1] == 1030))))
                add_fd(ret);
            if ((nr == 22 || nr == 293) && ret == 0 && a[0] >= (long)rw &&
                a[0] + 8 <= (long)rw + 16 * 4096) {
                add_fd(((int *)a[0])[0]);
                add_fd(((int *)a[0])[1]);
            }
        }
        if ((i + 1) % PROGRESS_EVERY == 0 || i + 1 == calls)
            report(worker, generation, i + 1);
    }
    _exit(0);
}

/* ---- the parent --------------------------------------------------------------------------- */

static void setup_playground(void) {
    mkdir("/pg", 0755);
    mkdir("/proc", 0555);
    mkdir("/sys", 0755);
    mkdir("/sys/kernel", 0755);
    mkdir("/sys/kernel/debug", 0700);
    if (mount("tmpfs", "/pg", "tmpfs", 0, "size=16m,mode=755") != 0)
        printf("sysfuzz: mount tmpfs: errno %d\n", errno);
    if (mount("proc", "/proc", "proc", 0, 0) != 0)
        printf("sysfuzz: mount proc: errno %d\n", errno);
    if (mount("debugfs", "/sys/kernel/debug", "debugfs", 0, 0) != 0)
        printf("sysfuzz: mount debugfs: errno %d\n", errno);
    int fd = open("/pg/file", O_CREAT | O_RDWR, 0666);
    if (fd >= 0) {
        write(fd, "some contents\n", 14);
        fchown(fd, UNPRIVILEGED, UNPRIVILEGED);
        close(fd);
    }
    fd = open("/pg/rootonly", O_CREAT | O_RDWR, 0600);
    if (fd >= 0) {
        write(fd, "secret\n", 7);
        close(fd);
    }
    fd = open("/pg/script", O_CREAT | O_RDWR, 0755);
    if (fd >= 0) {
        write(fd, "#!/nonexistent\n", 15);
        close(fd);
    }
    mkdir("/pg/dir", 0755);
    mkdir("/pg/dir/inner", 0777);
    mkdir("/pg/rootdir", 0700);
    mkdir("/pg/w", 01777);
    chmod("/pg/w", 01777);
    symlink("/pg/file", "/pg/link");
    symlink("/pg/nothing", "/pg/dangling");
    symlink("/pg/loop", "/pg/loop");
    mknod("/pg/fifo", S_IFIFO | 0666, 0);
}

static int diagnose;

static void kmemleak(const char *command) {
    int fd = open("/sys/kernel/debug/kmemleak", O_WRONLY);
    if (fd >= 0) {
        write(fd, command, strlen(command));
        close(fd);
    }
}

static void teardown_playground(void) {
    if (umount2("/pg", 0) != 0)
        printf("sysfuzz: umount /pg: errno %d\n", errno);
    if (diagnose) {
        int fd = open("/sys/kernel/debug/kmemleak_since_mark", O_RDONLY);
        char buffer[4096];
        long n;
        while (fd >= 0 && (n = read(fd, buffer, sizeof buffer)) > 0)
            write(1, buffer, (size_t)n);
        if (fd >= 0)
            close(fd);
    }
    if (umount2("/sys/kernel/debug", 0) != 0)
        printf("sysfuzz: umount debugfs: errno %d\n", errno);
}

static long mem_free_kib(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[128];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemFree: %ld", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

struct slot {
    pid_t pid;
    int generation;
    long done;
    double last_progress;
    int finished;
};

static struct slot slots[MAX_WORKERS];
static uint64_t master;
static int workers = 4;
static long calls = 10000;

static void spawn(int w, int progress_write) {
    struct slot *s = &slots[w];
    pid_t pid = fork();
    if (pid == 0) {
        dup2(progress_write, PROGRESS_FD);
        if (verbose)
            dup2(1, LOG_FD);
        worker(master, w, s->generation, calls, s->done);
    }
    s->pid = pid;
    s->last_progress = now();
    if (pid < 0) {
        printf("sysfuzz: fork for worker %d: errno %d\n", w, errno);
        s->finished = 1;
    }
}

int main(int argc, char **argv) {
    master = (uint64_t)time(0) * 2654435761u ^ (uint64_t)getpid();
    int stuck_secs = 5;
    avoid_defaults();
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-s") == 0)
            master = strtoull(argv[i + 1], 0, 0);
        else if (strcmp(argv[i], "-w") == 0)
            workers = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "-n") == 0)
            calls = atol(argv[i + 1]);
        else if (strcmp(argv[i], "-d") == 0)
            diagnose = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "-m") == 0)
            modest_lengths = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "-v") == 0)
            verbose = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "-t") == 0)
            stuck_secs = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "-x") == 0) {
            for (char *p = argv[i + 1]; *p;) {
                long nr = strtol(p, &p, 0);
                if (nr >= 0 && nr <= MAX_NR)
                    avoided[nr] = 1;
                if (*p == ',')
                    p++;
                else if (*p)
                    break;
            }
        }
    }
    if (workers < 1 || workers > MAX_WORKERS)
        workers = 4;
    setvbuf(stdout, 0, _IOLBF, 0);
    printf("sysfuzz: seed %llu workers %d calls %ld\n", (unsigned long long)master, workers,
           calls);
    printf("sysfuzz: avoiding%s", modest_lengths ? " huge memory lengths," : "");
    for (int nr = 0; nr <= MAX_NR; nr++)
        if (avoided[nr])
            printf(" %d", nr);
    printf("\n");
    setup_playground();
    long free_before = mem_free_kib();
    if (diagnose)
        kmemleak("mark");

    int progress[2];
    if (pipe2(progress, O_CLOEXEC) != 0)
        return 2;
    for (int w = 0; w < workers; w++)
        spawn(w, progress[1]);

    int stuck = 0, died = 0, unkillable = 0, running = workers;
    double started = now(), last_line = started;
    while (running > 0) {
        struct pollfd p = {progress[0], POLLIN, 0};
        if (poll(&p, 1, 200) > 0) {
            long record[3];
            while (1) {
                struct pollfd q = {progress[0], POLLIN, 0};
                if (poll(&q, 1, 0) <= 0 || read(progress[0], record, sizeof record) != sizeof record)
                    break;
                int w = (int)record[0];
                if (w >= 0 && w < workers && record[1] == slots[w].generation) {
                    slots[w].done = record[2];
                    slots[w].last_progress = now();
                }
            }
        }
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            for (int w = 0; w < workers; w++) {
                struct slot *s = &slots[w];
                if (s->finished || s->pid != pid)
                    continue;
                s->pid = 0;
                if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
                    s->done = calls;
                    s->finished = 1;
                    running--;
                } else {
                    died++;
                    s->generation++;
                    spawn(w, progress[1]);
                }
            }
        }
        double t = now();
        for (int w = 0; w < workers; w++) {
            struct slot *s = &slots[w];
            if (s->finished || s->pid <= 0 || t - s->last_progress < stuck_secs)
                continue;
            printf("sysfuzz: stuck worker %d (generation %d, pid %d) at call %ld: SIGKILL\n", w,
                   s->generation, s->pid, s->done);
            kill(s->pid, SIGKILL);
            double deadline = now() + 20;
            while (now() < deadline && waitpid(s->pid, &status, WNOHANG) != s->pid) {
                struct timespec ms = {0, 10000000};
                nanosleep(&ms, 0);
            }
            if (now() >= deadline) {
                printf("sysfuzz: FINDING: unkillable worker %d pid %d\n", w, s->pid);
                unkillable++;
                s->finished = 1;
                running--;
                continue;
            }
            stuck++;
            s->generation++;
            spawn(w, progress[1]);
        }
        if (t - last_line >= 10) {
            long total = 0;
            for (int w = 0; w < workers; w++)
                total += slots[w].done;
            printf("sysfuzz: %ld calls after %.0f s\n", total, t - started);
            last_line = t;
        }
    }

    /* Whatever the workers' children left: everything must end. */
    double deadline = now() + 20;
    int status, leftovers = 0;
    while (now() < deadline) {
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid < 0)
            break;
        if (pid == 0) {
            kill(-1, SIGKILL);
            struct timespec ms = {0, 10000000};
            nanosleep(&ms, 0);
        } else {
            leftovers++;
        }
    }
    if (waitpid(-1, &status, WNOHANG) >= 0)
        printf("sysfuzz: FINDING: processes that cannot be reaped\n");

    long total = 0;
    printf("sysfuzz: per worker:");
    for (int w = 0; w < workers; w++) {
        printf(" %ld", slots[w].done);
        total += slots[w].done;
    }
    printf("\n");
    printf("sysfuzz: done: %ld calls in %.0f s, seed %llu; respawned %d died, %d stuck; "
           "%d unkillable; %d leftover processes reaped\n",
           total, now() - started, (unsigned long long)master, died, stuck, unkillable,
           leftovers);
    close(progress[0]);
    close(progress[1]);
    long free_after = mem_free_kib();
    teardown_playground();
    long free_empty = mem_free_kib();
    printf("sysfuzz: free memory: %ld KiB before, %ld KiB after (%ld KiB with the playground "
           "unmounted)\n",
           free_before, free_after, free_empty);
    umount2("/proc", 0);
    return unkillable ? 1 : 0;
}
