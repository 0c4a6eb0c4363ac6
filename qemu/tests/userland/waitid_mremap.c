/* waitid and mremap as Linux has them. waitid: every id type, WEXITED/WSTOPPED/WCONTINUED,
 * WNOWAIT (the event stays to be reported again), WNOHANG with nothing ready (0 and a zeroed
 * siginfo), and the errors — where Linux zeroes the siginfo too. mremap on anonymous private
 * memory: shrinking, growing in place, growing by moving (contents, untouched pages and
 * copy-on-write sharing with a forked child go along), MREMAP_FIXED, the errors, and musl's
 * realloc of a big block. Every line must print the same on Linux. With the argument "leaks" it
 * also prints how much free memory a batch of remapping children cost (Cadenza only: Linux's
 * free memory moves on its own). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>

#define P 4096L

static const char *err(long r) {
    if (r >= 0)
        return "ok";
    switch (errno) {
    case EINVAL:
        return "EINVAL";
    case ECHILD:
        return "ECHILD";
    case EFAULT:
        return "EFAULT";
    case ENOMEM:
        return "ENOMEM";
    case EPERM:
        return "EPERM";
    default:
        return "other";
    }
}

static const char *code_name(int code) {
    switch (code) {
    case CLD_EXITED:
        return "CLD_EXITED";
    case CLD_KILLED:
        return "CLD_KILLED";
    case CLD_DUMPED:
        return "CLD_DUMPED";
    case CLD_STOPPED:
        return "CLD_STOPPED";
    case CLD_CONTINUED:
        return "CLD_CONTINUED";
    default:
        return "none";
    }
}

/* waitid with a siginfo full of junk first, so that what the kernel wrote shows. */
static void show(const char *what, idtype_t type, id_t id, int options, pid_t child) {
    siginfo_t info;
    memset(&info, 0x55, sizeof info);
    errno = 0;
    int r = waitid(type, id, &info, options);
    printf("%s: ret=%d %s signo=%d code=%s pid=%s uid=%d status=%d\n", what, r, err(r),
           info.si_signo, code_name(info.si_code),
           info.si_pid == 0 ? "0" : info.si_pid == child ? "child" : "other", (int)info.si_uid,
           info.si_status);
}

static void pause_forever(void) {
    for (;;)
        pause();
}

static void test_waitid(void) {
    siginfo_t info;
    /* Errors: checked before looking for children. */
    show("no event asked", P_ALL, 0, 0, 0);
    show("unknown option bit", P_ALL, 0, WEXITED | 0x10, 0);
    show("unknown id type", (idtype_t)7, 0, WEXITED, 0);
    show("P_PID 0", P_PID, 0, WEXITED, 0);
    show("no children", P_ALL, 0, WEXITED, 0);
    show("no children WNOHANG", P_ALL, 0, WEXITED | WNOHANG, 0);

    /* An exit, peeked at with WNOWAIT, then reaped, then gone. */
    pid_t child = fork();
    if (child == 0)
        _exit(7);
    show("exit WNOWAIT", P_PID, child, WEXITED | WNOWAIT, child);
    show("exit again WNOWAIT", P_ALL, 0, WEXITED | WNOWAIT, child);
    /* A zombie is no child to wait for when exits are not asked for. */
    show("zombie WSTOPPED WNOHANG", P_PID, child, WSTOPPED | WNOHANG, child);
    show("exit reaped", P_PID, child, WEXITED, child);
    show("exit reaped twice", P_PID, child, WEXITED | WNOHANG, child);

    /* WNOHANG with a child that has nothing to report. */
    child = fork();
    if (child == 0)
        pause_forever();
    show("running WNOHANG", P_ALL, 0, WEXITED | WSTOPPED | WCONTINUED | WNOHANG, child);

    /* Stop and continue: each reported once, WNOWAIT leaves it. */
    kill(child, SIGSTOP);
    show("stop WNOWAIT", P_PID, child, WSTOPPED | WNOWAIT, child);
    show("stop", P_PID, child, WSTOPPED, child);
    show("stop reported", P_PID, child, WSTOPPED | WNOHANG, child);
    kill(child, SIGCONT);
    show("continue WNOWAIT", P_PID, child, WCONTINUED | WNOWAIT, child);
    show("continue", P_ALL, 0, WCONTINUED, child);
    show("continue reported", P_ALL, 0, WCONTINUED | WNOHANG, child);
    kill(child, SIGKILL);
    show("killed", P_PID, child, WEXITED, child);

    /* Process groups: the child's own, and the caller's (id 0). */
    int gate[2];
    pipe(gate);
    child = fork();
    if (child == 0) {
        char byte;
        setpgid(0, 0);
        read(gate[0], &byte, 1);
        _exit(3);
    }
    setpgid(child, child);
    show("other group WNOHANG", P_PGID, child, WEXITED | WNOHANG, child);
    show("my group WNOHANG", P_PGID, 0, WEXITED | WNOHANG, child);
    show("no such group", P_PGID, 99999, WEXITED, child);
    write(gate[1], "x", 1);
    show("child's group", P_PGID, child, WEXITED, child);
    child = fork();
    if (child == 0)
        _exit(4);
    show("my group", P_PGID, 0, WEXITED, child);

    /* The raw call with an rusage pointer (filled, but its contents differ by kernel). */
    child = fork();
    if (child == 0)
        _exit(5);
    char rusage[144];
    long r = syscall(SYS_waitid, P_PID, child, &info, WEXITED, rusage);
    printf("with rusage: ret=%ld status=%d\n", r, info.si_status);
}

static int mapped(void *p, long len) {
    return mprotect(p, len, PROT_READ | PROT_WRITE) == 0;
}

static char *map(long len) {
    return mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

static int all(const char *p, long len, char value) {
    for (long i = 0; i < len; i++)
        if (p[i] != value)
            return 0;
    return 1;
}

static void test_mremap(void) {
    /* Shrink: in place; the tail is gone. */
    char *p = map(4 * P);
    memset(p, 'a', 4 * P);
    char *q = mremap(p, 4 * P, P, 0);
    printf("shrink: same=%d kept=%d tail mapped=%d\n", q == p, all(q, P, 'a'),
           mapped(p + P, 3 * P));

    /* Grow in place into the free range after it. */
    p = map(4 * P);
    munmap(p + P, 3 * P);
    p[0] = 'x';
    q = mremap(p, P, 3 * P, 0);
    printf("grow in place: same=%d kept=%d new zero=%d\n", q == p, q[0] == 'x',
           all(q + P, 2 * P, 0));
    q[3 * P - 1] = 'y';

    /* Not in place when something follows, and not moved without MREMAP_MAYMOVE. */
    p = map(4 * P);
    mprotect(p + 3 * P, P, PROT_READ);
    memset(p, 'b', P);
    memset(p + 2 * P, 'c', P); /* page 1 stays untouched */
    errno = 0;
    q = mremap(p, 3 * P, 16 * P, 0);
    printf("blocked growth: %s\n", q == MAP_FAILED ? err(-1) : "grew");
    q = mremap(p, 3 * P, 16 * P, MREMAP_MAYMOVE);
    printf("grow by moving: moved=%d contents=%d untouched zero=%d new zero=%d\n",
           q != MAP_FAILED && q != p, all(q, P, 'b') && all(q + 2 * P, P, 'c'),
           all(q + P, P, 0), all(q + 3 * P, 13 * P, 0));
    printf("after the move: old mapped=%d neighbour mapped=%d\n", mapped(p, 3 * P),
           mprotect(p + 3 * P, P, PROT_READ) == 0);
    q[16 * P - 1] = 'z';
    munmap(q, 16 * P);

    /* MREMAP_FIXED: onto a range that was mapped, growing and shrinking. */
    p = map(2 * P);
    memset(p, 'd', 2 * P);
    char *target = map(8 * P);
    target[0] = 't';
    q = mremap(p, 2 * P, 3 * P, MREMAP_MAYMOVE | MREMAP_FIXED, target + P);
    printf("fixed: at target=%d contents=%d new zero=%d old mapped=%d before it=%d\n",
           q == target + P, all(q, 2 * P, 'd'), all(q + 2 * P, P, 0), mapped(p, 2 * P),
           target[0] == 't');
    char *shrunk = mremap(q, 3 * P, P, MREMAP_MAYMOVE | MREMAP_FIXED, target + 5 * P);
    printf("fixed and shrunk: at target=%d contents=%d rest mapped=%d\n",
           shrunk == target + 5 * P, all(shrunk, P, 'd'), mapped(target + P, 3 * P));

    /* Errors. */
    p = map(2 * P);
    errno = 0;
    printf("unaligned address: %s\n", err((long)mremap(p + 1, P, 2 * P, MREMAP_MAYMOVE)));
    errno = 0;
    printf("unknown flag: %s\n", err((long)mremap(p, P, 2 * P, MREMAP_MAYMOVE | 8)));
    errno = 0;
    printf("fixed without maymove: %s\n", err((long)mremap(p, P, P, MREMAP_FIXED, target)));
    errno = 0;
    printf("new length 0: %s\n", err((long)mremap(p, P, 0, MREMAP_MAYMOVE)));
    errno = 0;
    printf("overlapping target: %s\n",
           err((long)mremap(p, 2 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_FIXED, p + P)));
    errno = 0;
    printf("unaligned target: %s\n",
           err((long)mremap(p, P, P, MREMAP_MAYMOVE | MREMAP_FIXED, target + 1)));
    munmap(p + P, P);
    errno = 0;
    printf("old range past its mapping: %s\n",
           err((long)mremap(p, 2 * P, 3 * P, MREMAP_MAYMOVE)));
    errno = 0;
    printf("unmapped address: %s\n", err((long)mremap(p + P, P, 2 * P, MREMAP_MAYMOVE)));
    errno = 0;
    printf("old length 0: %s\n", err((long)mremap(p, 0, P, MREMAP_MAYMOVE)));

    /* Copy-on-write pages move too: the child's move and writes leave the parent's alone. */
    target = map(4 * P);
    p = map(2 * P);
    memset(p, 'P', 2 * P);
    pid_t child = fork();
    if (child == 0) {
        q = mremap(p, 2 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED, target);
        int ok = q == target && all(q, 2 * P, 'P') && all(q + 2 * P, 2 * P, 0);
        memset(q, 'C', P);
        _exit(ok && all(q, P, 'C') && all(q + P, P, 'P') ? 0 : 1);
    }
    int status;
    waitpid(child, &status, 0);
    printf("after fork: child moved and wrote=%d parent kept=%d\n",
           WIFEXITED(status) && WEXITSTATUS(status) == 0, all(p, 2 * P, 'P'));

    /* musl's realloc moves big blocks with mremap. */
    char *block = malloc(1 << 20);
    for (long i = 0; i < 1 << 20; i++)
        block[i] = (char)(i % 251);
    block = realloc(block, 8 << 20);
    int kept = block != 0;
    for (long i = 0; kept && i < 1 << 20; i++)
        kept = block[i] == (char)(i % 251);
    printf("realloc 1 MiB to 8 MiB: kept=%d\n", kept);
    free(block);
}

/* Children that move, grow, shrink and share memory, then exit: free memory afterwards. The
 * parent maps its memory once, so that its own page tables do not grow between the runs. */
static long free_after_remapping_children(void) {
    static char *p;
    if (!p)
        p = map(8 * P);
    for (int n = 0; n < 20; n++) {
        memset(p, 'm', 8 * P);
        pid_t child = fork();
        if (child == 0) {
            for (int i = 0; i < 50; i++) {
                mprotect(p + 7 * P, P, PROT_READ);
                char *q = mremap(p, 7 * P, 32 * P, MREMAP_MAYMOVE);
                q[20 * P] = 1;
                q[0] = 2;
                q = mremap(q, 32 * P, 3 * P, 0);
                p = mremap(q, 3 * P, 7 * P, MREMAP_MAYMOVE | MREMAP_FIXED, p);
                mprotect(p + 7 * P, P, PROT_READ | PROT_WRITE);
            }
            _exit(0);
        }
        waitpid(child, 0, 0);
    }
    struct sysinfo info;
    sysinfo(&info);
    return (long)info.freeram * info.mem_unit;
}

int main(int argc, char **argv) {
    setvbuf(stdout, 0, _IONBF, 0);
    setsid(); /* a group of its own, as init and under a shell alike */
    test_waitid();
    test_mremap();
    if (argc > 1 && strcmp(argv[1], "leaks") == 0) {
        long warm = free_after_remapping_children();
        long after = free_after_remapping_children();
        printf("free memory lost to remapping children: %ld bytes\n", warm - after);
    }
    printf("waitid and mremap tests done\n");
    return 0;
}
