/* File timestamps from userspace: utimensat (explicit times, UTIME_NOW, UTIME_OMIT, a null
 * path as futimens, AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH), the older utime/utimes/futimesat,
 * and the permission rules (touching to "now" needs ownership or write permission, explicit
 * times need ownership, root may do both; EROFS on a read-only mount). Prints no absolute
 * times except the ones it set, so every line is the same on Linux (the parity test boots it
 * on Debian's kernel too). The old calls go through syscall(): musl implements utimes and
 * futimesat with utimensat. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *err(long r) {
    if (r >= 0)
        return "ok";
    switch (errno) {
    case EINVAL:
        return "EINVAL";
    case EPERM:
        return "EPERM";
    case EACCES:
        return "EACCES";
    case EROFS:
        return "EROFS";
    case ENOENT:
        return "ENOENT";
    case EBADF:
        return "EBADF";
    case EFAULT:
        return "EFAULT";
    case ENOTDIR:
        return "ENOTDIR";
    default:
        return "other";
    }
}

static long set(int dirfd, const char *path, long asec, long ansec, long msec, long mnsec,
                int flags) {
    struct timespec times[2] = {{asec, ansec}, {msec, mnsec}};
    return syscall(SYS_utimensat, dirfd, path, times, flags);
}

/* Whether `t` is within 5 seconds of the wall clock now. */
static int is_now(struct timespec t) {
    long d = (long)t.tv_sec - (long)time(NULL);
    return d > -5 && d < 5;
}

static struct stat look(const char *path) {
    struct stat st = {0};
    lstat(path, &st);
    return st;
}

/* The file's two times, as numbers where they were set, as "now" where they are the clock. */
static void show(const char *what, long r, const char *path) {
    struct stat st = look(path);
    printf("%s: %s atime=", what, err(r));
    if (is_now(st.st_atim))
        printf("now");
    else
        printf("%ld.%09ld", (long)st.st_atim.tv_sec, st.st_atim.tv_nsec);
    printf(" mtime=");
    if (is_now(st.st_mtim))
        printf("now");
    else
        printf("%ld.%09ld", (long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    printf(" ctime now=%d\n", is_now(st.st_ctim));
}

static void make(const char *path, mode_t mode) {
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, mode);
    write(fd, "data\n", 5);
    close(fd);
    chmod(path, mode);
}

static void as_user(void) {
    /* /ft/r: root's 0644; /ft/w: root's 0666; /ft/o: the user's own 0444. */
    printf("setuid(1000): %s\n", err(setuid(1000)));
    printf("touch root's 0644 file: %s\n", err(set(AT_FDCWD, "/ft/r", 0, UTIME_NOW, 0, UTIME_NOW, 0)));
    printf("touch it with a null times: %s\n",
           err(syscall(SYS_utimensat, AT_FDCWD, "/ft/r", NULL, 0)));
    printf("explicit times on it: %s\n", err(set(AT_FDCWD, "/ft/r", 1, 0, 2, 0, 0)));
    printf("touch root's 0666 file: %s\n",
           err(syscall(SYS_utimensat, AT_FDCWD, "/ft/w", NULL, 0)));
    printf("both UTIME_NOW on it: %s\n", err(set(AT_FDCWD, "/ft/w", 0, UTIME_NOW, 0, UTIME_NOW, 0)));
    printf("UTIME_NOW and UTIME_OMIT on it: %s\n",
           err(set(AT_FDCWD, "/ft/w", 0, UTIME_NOW, 0, UTIME_OMIT, 0)));
    printf("explicit times on it: %s\n", err(set(AT_FDCWD, "/ft/w", 1, 0, 2, 0, 0)));
    printf("both UTIME_OMIT on it: %s\n", err(set(AT_FDCWD, "/ft/w", 0, UTIME_OMIT, 0, UTIME_OMIT, 0)));
    printf("utimes on it: %s\n", err(syscall(SYS_utimes, "/ft/w", NULL)));
    struct timeval tv[2] = {{1, 0}, {2, 0}};
    printf("utimes with times on it: %s\n", err(syscall(SYS_utimes, "/ft/w", tv)));
    long r = set(AT_FDCWD, "/ft/o", 11, 0, 12, 0, 0);
    show("explicit times on my own 0444 file", r, "/ft/o");
    r = syscall(SYS_utimensat, AT_FDCWD, "/ft/o", NULL, 0);
    show("touch my own 0444 file", r, "/ft/o");
}

int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    mkdir("/ft", 0755);
    chmod("/ft", 0755);
    make("/ft/f", 0644);
    long r;

    r = set(AT_FDCWD, "/ft/f", 1000, 500, 2000, 600, 0);
    show("explicit", r, "/ft/f");
    r = set(AT_FDCWD, "/ft/f", 0, UTIME_OMIT, 3000, 0, 0);
    show("omit atime", r, "/ft/f");
    r = set(AT_FDCWD, "/ft/f", 4000, 0, 0, UTIME_OMIT, 0);
    show("omit mtime", r, "/ft/f");
    r = set(AT_FDCWD, "/ft/f", 0, UTIME_OMIT, 0, UTIME_NOW, 0);
    show("mtime now", r, "/ft/f");
    r = set(AT_FDCWD, "/ft/f", 0, UTIME_NOW, -100, 999999999, 0);
    show("atime now, mtime before 1970", r, "/ft/f");
    r = syscall(SYS_utimensat, AT_FDCWD, "/ft/f", NULL, 0);
    show("null times", r, "/ft/f");

    /* Both UTIME_OMIT: nothing to do, and not even the path is looked at. */
    printf("both omitted, missing file: %s\n",
           err(set(AT_FDCWD, "/ft/missing", 0, UTIME_OMIT, 0, UTIME_OMIT, 0)));
    printf("both omitted, null path: %s\n",
           err(set(AT_FDCWD, NULL, 0, UTIME_OMIT, 0, UTIME_OMIT, 0)));
    printf("missing file: %s\n", err(set(AT_FDCWD, "/ft/missing", 1, 0, 2, 0, 0)));
    printf("through a file: %s\n", err(set(AT_FDCWD, "/ft/f/x", 1, 0, 2, 0, 0)));
    printf("null path at AT_FDCWD: %s\n", err(set(AT_FDCWD, NULL, 1, 0, 2, 0, 0)));
    printf("bad times pointer: %s\n",
           err(syscall(SYS_utimensat, AT_FDCWD, "/ft/f", (void *)8, 0)));
    printf("nsec 1000000000: %s\n", err(set(AT_FDCWD, "/ft/f", 1, 1000000000, 2, 0, 0)));
    printf("nsec -1: %s\n", err(set(AT_FDCWD, "/ft/f", 1, 0, 2, -1, 0)));
    printf("unknown flag: %s\n", err(set(AT_FDCWD, "/ft/f", 1, 0, 2, 0, 0x2)));
    printf("AT_REMOVEDIR: %s\n", err(set(AT_FDCWD, "/ft/f", 1, 0, 2, 0, AT_REMOVEDIR)));
    printf("empty path: %s\n", err(set(AT_FDCWD, "", 1, 0, 2, 0, 0)));
    show("after the errors", 0, "/ft/f");

    /* A null path with a descriptor is futimens. */
    int fd = open("/ft/f", O_RDONLY);
    r = set(fd, NULL, 5, 1, 6, 2, 0);
    show("null path on a read-only descriptor", r, "/ft/f");
    struct timespec ts[2] = {{7, 0}, {8, 0}};
    r = futimens(fd, ts);
    show("futimens", r, "/ft/f");
    printf("null path with AT_SYMLINK_NOFOLLOW: %s\n",
           err(set(fd, NULL, 1, 0, 2, 0, AT_SYMLINK_NOFOLLOW)));
    printf("null path on a closed descriptor: %s\n", err(set(99, NULL, 1, 0, 2, 0, 0)));
    close(fd);
    int dir = open("/ft", O_RDONLY | O_DIRECTORY);
    r = set(dir, "f", 9, 0, 10, 0, 0);
    show("relative to a directory descriptor", r, "/ft/f");
    printf("relative to a file descriptor: %s\n", err(set(open("/ft/f", O_RDONLY), "f", 1, 0, 2, 0, 0)));
    int path_fd = open("/ft/f", O_PATH);
    printf("null path on an O_PATH descriptor: %s\n", err(set(path_fd, NULL, 1, 0, 2, 0, 0)));
    r = set(path_fd, "", 11, 0, 12, 0, AT_EMPTY_PATH);
    show("AT_EMPTY_PATH on an O_PATH descriptor", r, "/ft/f");
    printf("empty path without AT_EMPTY_PATH: %s\n", err(set(path_fd, "", 1, 0, 2, 0, 0)));

    /* Symbolic links: followed unless AT_SYMLINK_NOFOLLOW. */
    symlink("f", "/ft/l");
    symlink("missing", "/ft/dangling");
    r = set(AT_FDCWD, "/ft/l", 13, 0, 14, 0, AT_SYMLINK_NOFOLLOW);
    show("link with AT_SYMLINK_NOFOLLOW", r, "/ft/l");
    show("its target", 0, "/ft/f");
    r = set(AT_FDCWD, "/ft/l", 15, 0, 16, 0, 0);
    show("link followed: the target", r, "/ft/f");
    /* (only its mtime: following a link reads it, and Linux's relatime then sets its atime) */
    printf("the link itself: mtime=%ld\n", (long)look("/ft/l").st_mtim.tv_sec);
    printf("dangling link followed: %s\n", err(set(AT_FDCWD, "/ft/dangling", 1, 0, 2, 0, 0)));
    r = set(AT_FDCWD, "/ft/dangling", 17, 0, 18, 0, AT_SYMLINK_NOFOLLOW);
    show("dangling link itself", r, "/ft/dangling");

    /* The older calls: utimbuf (seconds) and timeval (microseconds) pairs. */
    struct { long actime, modtime; } buf = {19, 20};
    r = syscall(SYS_utime, "/ft/f", &buf);
    show("utime", r, "/ft/f");
    r = syscall(SYS_utime, "/ft/f", NULL);
    show("utime null", r, "/ft/f");
    struct timeval tv[2] = {{21, 5}, {22, 999999}};
    r = syscall(SYS_utimes, "/ft/f", tv);
    show("utimes", r, "/ft/f");
    struct timeval bad[2] = {{21, 1000000}, {22, 0}};
    printf("utimes usec 1000000: %s\n", err(syscall(SYS_utimes, "/ft/f", bad)));
    bad[0].tv_usec = -1;
    printf("utimes usec -1: %s\n", err(syscall(SYS_utimes, "/ft/f", bad)));
    r = syscall(SYS_utimes, "/ft/f", NULL);
    show("utimes null", r, "/ft/f");
    struct timeval tv2[2] = {{23, 1}, {24, 2}};
    r = syscall(SYS_futimesat, dir, "f", tv2);
    show("futimesat", r, "/ft/f");
    fd = open("/ft/f", O_WRONLY);
    struct timeval tv3[2] = {{25, 3}, {26, 4}};
    r = syscall(SYS_futimesat, fd, NULL, tv3);
    show("futimesat null path", r, "/ft/f");
    close(fd);
    close(dir);

    /* Who may: in a child that gives up root. */
    make("/ft/r", 0644);
    make("/ft/w", 0666);
    make("/ft/o", 0444);
    chown("/ft/o", 1000, 1000);
    set(AT_FDCWD, "/ft/r", 1, 0, 2, 0, 0);
    pid_t child = fork();
    if (child == 0) {
        as_user();
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    printf("child exited %d\n", WEXITSTATUS(status));
    show("root's 0644 file after the child", 0, "/ft/r");
    make("/ft/z", 0);
    chown("/ft/z", 1000, 1000);
    r = set(AT_FDCWD, "/ft/z", 27, 0, 28, 0, 0);
    show("root sets times on someone's 0000 file", r, "/ft/z");
    r = syscall(SYS_utimensat, AT_FDCWD, "/ft/z", NULL, 0);
    show("root touches it", r, "/ft/z");

    /* A read-only mount. */
    mkdir("/ro", 0755);
    printf("mount read-only tmpfs: %s\n", err(mount("none", "/ro", "tmpfs", MS_RDONLY, 0)));
    printf("touch on a read-only mount: %s\n",
           err(syscall(SYS_utimensat, AT_FDCWD, "/ro", NULL, 0)));
    printf("explicit times on a read-only mount: %s\n", err(set(AT_FDCWD, "/ro", 1, 0, 2, 0, 0)));
    printf("both omitted on a read-only mount: %s\n",
           err(set(AT_FDCWD, "/ro", 0, UTIME_OMIT, 0, UTIME_OMIT, 0)));
    umount("/ro");
    printf("file times tests done\n");
    return 0;
}
