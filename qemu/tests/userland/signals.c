/* Signals: handlers with siginfo, masks and pending sets, catching a segfault, SIGCHLD,
 * killing a child, and FPU state surviving a handler. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t usr1_seen, usr1_from_pid, usr2_seen, chld_seen;
static sigjmp_buf recover;
static volatile void *fault_address;

static void on_usr1(int sig, siginfo_t *info, void *context) {
    (void)context;
    usr1_seen = sig;
    usr1_from_pid = info->si_pid;
    volatile double scratch = 1.25; /* clobbers SSE registers inside the handler */
    scratch = scratch * scratch;
}
static void on_usr2(int sig) { usr2_seen = sig; }
static void on_chld(int sig) { chld_seen += sig == SIGCHLD; }
static volatile sig_atomic_t term_seen;
static void on_term(int sig) { term_seen = sig; }
static void on_segv(int sig, siginfo_t *info, void *context) {
    (void)sig;
    (void)context;
    fault_address = info->si_addr;
    siglongjmp(recover, 1);
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, 0);
    volatile double before = 3.5;
    kill(getpid(), SIGUSR1);
    printf("SIGUSR1 handled: sig=%d from self=%d fpu intact=%d\n", usr1_seen, usr1_from_pid == getpid(),
           before * 2 == 7.0);

    signal(SIGUSR2, on_usr2);
    sigset_t block, pending;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    sigprocmask(SIG_BLOCK, &block, 0);
    raise(SIGUSR2);
    sigpending(&pending);
    printf("blocked SIGUSR2: delivered=%d pending=%d\n", usr2_seen, sigismember(&pending, SIGUSR2));
    sigprocmask(SIG_UNBLOCK, &block, 0);
    printf("unblocked SIGUSR2: delivered=%d\n", usr2_seen);

    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, 0);
    if (sigsetjmp(recover, 1) == 0) {
        *(volatile int *)24 = 1;
        printf("no fault?\n");
    } else {
        printf("caught SIGSEGV at %p\n", (void *)fault_address);
    }

    signal(SIGCHLD, on_chld);
    pid_t child = fork();
    if (child == 0)
        _exit(5);
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    printf("SIGCHLD seen=%d child status=%d\n", chld_seen, WEXITSTATUS(status));

    child = fork();
    if (child == 0) {
        for (;;) {
            struct timespec pause = {1, 0};
            nanosleep(&pause, 0);
        }
    }
    kill(child, SIGTERM);
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    printf("killed child: signaled=%d termsig=%d\n", WIFSIGNALED(status), WTERMSIG(status));

    errno = 0;
    int missing = kill(4242, SIGTERM);
    int missing_errno = errno;
    errno = 0;
    int bad = kill(getpid(), 99);
    printf("kill(nonexistent) = %d errno=%d; kill(bad signal) = %d errno=%d\n", missing, missing_errno, bad,
           errno);
    fflush(stdout);
    /* Init is immune to signals it has no handler for, even SIGKILL (Linux's
     * SIGNAL_UNKILLABLE): these do nothing. */
    signal(SIGTERM, SIG_DFL);
    raise(SIGTERM);
    kill(getpid(), SIGKILL);
    printf("init survives SIGTERM and SIGKILL without handlers\n");
    fflush(stdout);
    /* ...but a blocked signal is still queued for it, and a handler still runs. */
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_BLOCK, &term, 0);
    raise(SIGTERM);
    sigset_t queued;
    sigpending(&queued);
    printf("blocked SIGTERM to init: pending=%d\n", sigismember(&queued, SIGTERM));
    signal(SIGTERM, on_term);
    sigprocmask(SIG_UNBLOCK, &term, 0);
    printf("handler ran: %d\n", term_seen);
    return 0;
}
