/* Users and groups: the set*id rules, supplementary groups, and what a non-root process may
 * no longer do (files, directories, signals). Prints the same lines on Linux (the parity test
 * boots it on Debian's kernel too). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(const char *what) {
    uid_t r, e, s;
    gid_t gr, ge, gs;
    getresuid(&r, &e, &s);
    getresgid(&gr, &ge, &gs);
    printf("%s: uid %u/%u/%u gid %u/%u/%u\n", what, r, e, s, gr, ge, gs);
}

static int result(int value) { return value < 0 ? -errno : value; }

int main(void) {
    mkdir("/tmp", 01777);
    chmod("/tmp", 01777);
    mkdir("/locked", 0755);
    int fd = open("/secret", O_CREAT | O_WRONLY | O_TRUNC, 0600);
    write(fd, "root only\n", 10);
    close(fd);
    show("init");

    gid_t groups[] = {30, 20};
    printf("setgroups: %d\n", result(setgroups(2, groups)));
    gid_t back[4];
    int n = getgroups(0, 0);
    int got = getgroups(4, back);
    printf("getgroups: count %d, got %d, one small list %d\n", n, got, result(getgroups(1, back)));

    pid_t child = fork();
    if (child == 0) {
        printf("setresgid: %d\n", result(setresgid(100, 100, 100)));
        printf("setresuid(1000,1000,0): %d\n", result(setresuid(1000, 1000, 0)));
        show("unprivileged, saved root");
        printf("open root's 0600 file: %d\n", result(open("/secret", O_RDONLY)));
        printf("mkdir in a root-owned 0755 directory: %d\n", result(mkdir("/locked/mine", 0755)));
        printf("setgroups without root: %d\n", result(setgroups(0, 0)));
        printf("signal init: %d\n", result(kill(1, 0)));
        printf("setuid(4242): %d\n", result(setuid(4242)));
        printf("back to saved root (setreuid -1,0): %d\n", result(setreuid(-1, 0)));
        show("effective root again");
        printf("setuid(1000) as root: %d\n", result(setuid(1000)));
        show("dropped for good");
        printf("setreuid(-1,0) now: %d\n", result(setreuid(-1, 0)));
        int mine = open("/tmp/mine", O_CREAT | O_WRONLY, 0644);
        struct stat st;
        fstat(mine, &st);
        printf("a file in /tmp is owned by %u:%u\n", st.st_uid, st.st_gid);
        printf("signal itself: %d\n", result(kill(getpid(), 0)));
        return 0;
    }
    int status;
    waitpid(child, &status, 0);
    printf("child exited %d\n", WEXITSTATUS(status));
    printf("setuid(-1): %d\n", result(setuid(-1)));
    show("init unchanged");
    return 0;
}
