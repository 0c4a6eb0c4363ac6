/* What an unprivileged user must not be able to do to root's processes, files and terminal,
 * and getrandom's flags and unpredictability. Init (root) sets the scene: procfs and a tmpfs
 * on /tmp with root's files in it, a root session that owns the console, a root process to
 * look at; then a child drops to uid/gid 65534 and prints what each attempt returns. Every
 * line must be the same on Debian's Linux (which has fs.protected_hardlinks=1). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef GRND_INSECURE
#define GRND_INSECURE 0x0004
#endif

static const char *errname(int e) {
    switch (e) {
    case 0: return "0";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EFAULT: return "EFAULT";
    case EACCES: return "EACCES";
    case EINVAL: return "EINVAL";
    case ENOTTY: return "ENOTTY";
    case EAGAIN: return "EAGAIN";
    default: return "other";
    }
}

/* "0" or the errno's name for a call that returns -1 on failure. */
static const char *outcome(long r) { return r < 0 ? errname(errno) : "0"; }

static void say(const char *what, long r) { printf("%s: %s\n", what, outcome(r)); }

static int open_result(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd >= 0)
        close(fd);
    return fd;
}

static void wait_byte(int fd) {
    char c;
    while (read(fd, &c, 1) < 0 && errno == EINTR) {
    }
}

static void post_byte(int fd) {
    char c = 'x';
    (void)write(fd, &c, 1);
}

static void reap(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
}

/* Field `n` (1-based) of a /proc/<pid>/stat line. */
static unsigned long long stat_field(const char *path, int n) {
    char buf[1024] = {0};
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return ~0ull;
    ssize_t len = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (len <= 0)
        return ~0ull;
    char *p = strrchr(buf, ')'); /* after the command name, field 3 starts */
    if (!p)
        return ~0ull;
    p += 2;
    for (int field = 3; field < n; field++) {
        p = strchr(p, ' ');
        if (!p)
            return ~0ull;
        p++;
    }
    return strtoull(p, 0, 10);
}

static int ioctl_int(int request, int value) { return ioctl(0, request, &value); }

/* The old getrandom: xorshift seeded with the TSC (ORed with 1) at the time of the call. */
static void xorshift_bytes(unsigned long long state, unsigned char *out, int n) {
    for (int i = 0; i < n; i++) {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out[i] = (unsigned char)((state * 0x2545f4914f6cdd1dull) >> 56);
    }
}

static unsigned long long rdtsc(void) {
    unsigned lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((unsigned long long)hi << 32) | lo;
}

/* Whether a user who reads the TSC around a getrandom call can reproduce its bytes by trying
 * every TSC value in between: true for a TSC-seeded generator, never for ChaCha20. */
static int getrandom_is_predictable(void) {
    for (int attempt = 0; attempt < 8; attempt++) {
        unsigned char got[8], guess[8];
        unsigned long long before = rdtsc();
        if (getrandom(got, sizeof got, 0) != sizeof got)
            return -1;
        unsigned long long after = rdtsc();
        if (after - before > (1ull << 24))
            continue; /* too wide to search quickly; try again */
        for (unsigned long long seed = before; seed <= after; seed++) {
            xorshift_bytes(seed | 1, guess, 1);
            if (guess[0] != got[0])
                continue;
            xorshift_bytes(seed | 1, guess, sizeof guess);
            if (memcmp(guess, got, sizeof got) == 0)
                return 1;
        }
    }
    return 0;
}

static void getrandom_flags(void) {
    unsigned char buf[64];
    printf("getrandom flags 0: %ld\n", (long)getrandom(buf, 16, 0));
    printf("getrandom GRND_NONBLOCK: %ld\n", (long)getrandom(buf, 16, GRND_NONBLOCK));
    printf("getrandom GRND_RANDOM: %ld\n", (long)getrandom(buf, 16, GRND_RANDOM));
    printf("getrandom GRND_RANDOM|GRND_NONBLOCK: %ld\n",
           (long)getrandom(buf, 16, GRND_RANDOM | GRND_NONBLOCK));
    printf("getrandom GRND_INSECURE: %ld\n", (long)getrandom(buf, 16, GRND_INSECURE));
    say("getrandom GRND_INSECURE|GRND_RANDOM", getrandom(buf, 16, GRND_INSECURE | GRND_RANDOM));
    say("getrandom unknown flag 0x8", getrandom(buf, 16, 0x8));
    printf("getrandom length 0: %ld\n", (long)getrandom(buf, 0, 0));
    say("getrandom to NULL", getrandom(0, 16, 0));
    /* Up to an unmapped page: the bytes before it. */
    unsigned char *pages = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(pages + 4096, 4096);
    printf("getrandom across the end of a mapping: %ld\n",
           (long)getrandom(pages + 4096 - 128, 256, 0));
    munmap(pages, 4096);
    unsigned char a[32] = {0}, b[32] = {0}, zero[32] = {0};
    getrandom(a, sizeof a, 0);
    getrandom(b, sizeof b, 0);
    printf("getrandom twice differs and is not zero: %d\n",
           memcmp(a, b, sizeof a) != 0 && memcmp(a, zero, sizeof a) != 0);
    printf("getrandom predictable from the TSC: %d\n", getrandom_is_predictable());
}

/* The unprivileged user: everything it tries against root's things. `root_pid` is a root
 * process that is not init, `owner` the leader of the session that owns the console. */
static void as_user(pid_t root_pid) {
    char path[64];
    if (setgid(65534) || setuid(65534)) {
        printf("cannot drop to 65534\n");
        return;
    }
    printf("user: uid=%d gid=%d dumpable=%d\n", getuid(), getgid(), prctl(PR_GET_DUMPABLE));

    /* procfs: another user's process, through every file Linux guards. */
    say("open /proc/1/maps", open_result("/proc/1/maps"));
    snprintf(path, sizeof path, "/proc/%d/maps", root_pid);
    say("open /proc/<root>/maps", open_result(path));
    snprintf(path, sizeof path, "/proc/%d/environ", root_pid);
    say("open /proc/<root>/environ", open_result(path));
    char target[256];
    say("readlink /proc/1/cwd", readlink("/proc/1/cwd", target, sizeof target));
    say("readlink /proc/1/root", readlink("/proc/1/root", target, sizeof target));
    say("open /proc/1/cwd/.", open_result("/proc/1/cwd/."));
    say("open /proc/1/root/.", open_result("/proc/1/root/."));
    say("readlink /proc/1/fd/0", readlink("/proc/1/fd/0", target, sizeof target));
    say("open /proc/1/fd", open_result("/proc/1/fd"));
    say("open /proc/1/cmdline (not guarded)", open_result("/proc/1/cmdline"));
    say("open /proc/1/status (not guarded)", open_result("/proc/1/status"));
    snprintf(path, sizeof path, "/proc/%d/stat", root_pid);
    printf("root's stat as a user: startcode=%llu endcode=%llu startstack=%llu "
           "start_brk=%llu arg_start=%llu env_end=%llu exit_code=%llu\n",
           stat_field(path, 26), stat_field(path, 27), stat_field(path, 28),
           stat_field(path, 47), stat_field(path, 48), stat_field(path, 51),
           stat_field(path, 52));
    printf("own stat: arg_start set=%d env_end set=%d\n", stat_field("/proc/self/stat", 48) != 0,
           stat_field("/proc/self/stat", 51) != 0);
    say("open /proc/self/maps", open_result("/proc/self/maps"));
    say("readlink /proc/self/cwd", readlink("/proc/self/cwd", target, sizeof target));

    /* A process of the same user: not while it is undumpable (it changed ids, as this one
     * did), yes once it says it is. */
    int ready[2], go[2];
    pipe(ready);
    pipe(go);
    fflush(stdout);
    pid_t sibling = fork();
    if (sibling == 0) {
        post_byte(ready[1]);
        wait_byte(go[0]);
        prctl(PR_SET_DUMPABLE, 1);
        post_byte(ready[1]);
        pause();
        _exit(0);
    }
    wait_byte(ready[0]);
    snprintf(path, sizeof path, "/proc/%d/maps", sibling);
    say("open same user's maps, undumpable", open_result(path));
    post_byte(go[1]);
    wait_byte(ready[0]);
    say("open same user's maps, dumpable", open_result(path));
    snprintf(path, sizeof path, "/proc/%d/cwd", sibling);
    say("readlink same user's cwd, dumpable", readlink(path, target, sizeof target));
    kill(sibling, SIGKILL);
    reap(sibling);

    /* Hard links (fs.protected_hardlinks). */
    say("link root's 0600 file", link("/tmp/secret", "/tmp/l-secret"));
    say("link root's 0644 file", link("/tmp/readonly", "/tmp/l-readonly"));
    say("link root's 0666 file", link("/tmp/shared", "/tmp/l-shared"));
    say("link root's 04777 file", link("/tmp/setuid", "/tmp/l-setuid"));
    say("link root's 02777 file", link("/tmp/setgid-exec", "/tmp/l-setgid-exec"));
    say("link root's 02666 file", link("/tmp/setgid-noexec", "/tmp/l-setgid-noexec"));
    say("link root's 0666 fifo", link("/tmp/fifo", "/tmp/l-fifo"));
    int own = open("/tmp/own", O_CREAT | O_WRONLY, 04700);
    close(own);
    say("link own 04700 file", link("/tmp/own", "/tmp/l-own"));
    say("linkat root's 0600 file, following", linkat(AT_FDCWD, "/tmp/secret", AT_FDCWD,
                                                     "/tmp/l-secret2", AT_SYMLINK_FOLLOW));

    /* The terminal, owned by root's session, from a session of its own. */
    setsid();
    say("TIOCSPGRP own group", ioctl_int(TIOCSPGRP, getpgrp()));
    int group;
    say("TIOCGPGRP", ioctl(0, TIOCGPGRP, &group));
    say("TIOCGSID", ioctl(0, TIOCGSID, &group));
    say("TIOCSCTTY", ioctl(0, TIOCSCTTY, 0));
    say("TIOCSCTTY steal", ioctl(0, TIOCSCTTY, 1));
    char c = 'x';
    say("TIOCSTI", ioctl(0, TIOCSTI, &c));
    say("TIOCNOTTY", ioctl(0, TIOCNOTTY));

    /* Power. */
    say("reboot with bad magic", syscall(SYS_reboot, 0, 0, 0x4321fedc, 0));
    say("reboot POWER_OFF", syscall(SYS_reboot, 0xfee1dead, 672274793, 0x4321fedc, 0));
    say("reboot CAD_OFF", syscall(SYS_reboot, 0xfee1dead, 672274793, 0, 0));
}

/* The root session that owns the console: what its own members may and may not do. */
static void console_owner(int ready, int go) {
    setsid();
    say("leader TIOCSCTTY", ioctl(0, TIOCSCTTY, 0));
    say("leader TIOCSCTTY again", ioctl(0, TIOCSCTTY, 0));
    pid_t sid = 0;
    ioctl(0, TIOCGSID, &sid);
    printf("TIOCGSID is the leader's session: %d\n", sid == getsid(0));
    say("TIOCSPGRP own group", ioctl_int(TIOCSPGRP, getpgrp()));
    say("TIOCSPGRP init's (another session's)", ioctl_int(TIOCSPGRP, 1));
    say("TIOCSPGRP no such group", ioctl_int(TIOCSPGRP, 99999));
    say("TIOCSPGRP negative", ioctl_int(TIOCSPGRP, -1));
    fflush(stdout);
    pid_t member = fork();
    if (member == 0) {
        say("member TIOCSCTTY (not a leader)", ioctl(0, TIOCSCTTY, 0));
        int group;
        say("member TIOCGPGRP", ioctl(0, TIOCGPGRP, &group));
        say("member TIOCNOTTY", ioctl(0, TIOCNOTTY));
        say("member TIOCGPGRP after TIOCNOTTY", ioctl(0, TIOCGPGRP, &group));
        say("member TIOCNOTTY again", ioctl(0, TIOCNOTTY));
        _exit(0);
    }
    reap(member);
    post_byte(ready);
    wait_byte(go); /* the user has tried; now root steals it */
    int group;
    say("leader TIOCGPGRP before the theft", ioctl(0, TIOCGPGRP, &group));
    post_byte(ready);
    wait_byte(go);
    say("leader TIOCGPGRP after the theft", ioctl(0, TIOCGPGRP, &group));
    post_byte(ready);
    pause();
}

static void setup_files(void) {
    mkdir("/proc", 0555);
    mkdir("/tmp", 01777);
    say("mount proc", mount("proc", "/proc", "proc", 0, 0));
    say("mount tmpfs", mount("tmpfs", "/tmp", "tmpfs", 0, "mode=1777"));
    struct {
        const char *name;
        mode_t mode;
    } files[] = {
        {"/tmp/secret", 0600},        {"/tmp/readonly", 0644},     {"/tmp/shared", 0666},
        {"/tmp/setuid", 04777},       {"/tmp/setgid-exec", 02777}, {"/tmp/setgid-noexec", 02666},
    };
    for (unsigned i = 0; i < sizeof files / sizeof files[0]; i++) {
        int fd = open(files[i].name, O_CREAT | O_WRONLY, 0600);
        close(fd);
        chmod(files[i].name, files[i].mode);
    }
    mkfifo("/tmp/fifo", 0666);
    chmod("/tmp/fifo", 0666);
}

int main(void) {
    setvbuf(stdout, 0, _IOLBF, 0);
    setup_files();
    getrandom_flags();

    /* As root: bad magic is EINVAL, Ctrl-Alt-Del settings are accepted. */
    say("root reboot with bad magic", syscall(SYS_reboot, 0, 0, 0x4321fedc, 0));
    say("root reboot unknown command", syscall(SYS_reboot, 0xfee1dead, 672274793, 0x1234, 0));
    say("root reboot CAD_OFF", syscall(SYS_reboot, 0xfee1dead, 672274793, 0, 0));

    int ready[2], go[2];
    pipe(ready);
    pipe(go);
    fflush(stdout);
    pid_t owner = fork();
    if (owner == 0) {
        console_owner(ready[1], go[0]);
        _exit(0);
    }
    wait_byte(ready[0]);

    fflush(stdout);
    pid_t user = fork();
    if (user == 0) {
        as_user(owner);
        _exit(0);
    }
    reap(user);

    post_byte(go[1]);
    wait_byte(ready[0]);
    fflush(stdout);
    pid_t thief = fork();
    if (thief == 0) {
        setsid();
        say("root leader TIOCSCTTY without stealing", ioctl(0, TIOCSCTTY, 0));
        say("root leader TIOCSCTTY stealing", ioctl(0, TIOCSCTTY, 1));
        /* Given back before exiting: a session leader that exits with a controlling terminal
         * hangs it up on Linux. Giving it up sends SIGHUP to the foreground group: its own. */
        signal(SIGHUP, SIG_IGN);
        say("root leader TIOCNOTTY", ioctl(0, TIOCNOTTY));
        _exit(0);
    }
    reap(thief);
    post_byte(go[1]);
    wait_byte(ready[0]);
    kill(owner, SIGKILL);
    reap(owner);
    printf("security checks done\n");
    return 0;
}
