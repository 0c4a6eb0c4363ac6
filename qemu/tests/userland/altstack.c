/* Alternate signal stacks (sigaltstack, SA_ONSTACK, SS_AUTODISARM): where handlers run, what
 * the calls report and refuse, and the classic use, surviving a stack overflow. Prints the same
 * lines on Linux (the parity test). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static char alt[65536];
static volatile int on_alt, query_flags, change_errno;
static sigjmp_buf recover;

static int inside(const void *p) {
    return (const char *)p >= alt && (const char *)p < alt + sizeof alt;
}

static void on_usr1(int sig) {
    (void)sig;
    int local;
    on_alt = inside(&local);
    stack_t now;
    sigaltstack(0, &now);
    query_flags = now.ss_flags;
    stack_t other = {.ss_sp = alt, .ss_size = sizeof alt};
    change_errno = sigaltstack(&other, 0) < 0 ? errno : 0;
}

static void on_segv(int sig) {
    (void)sig;
    int local;
    on_alt = inside(&local);
    siglongjmp(recover, 1);
}

static int deeper(int n) {
    volatile char pad[4096];
    pad[0] = (char)n;
    return deeper(n + 1) + pad[0];
}

static void *thread_query(void *unused) {
    (void)unused;
    stack_t now;
    sigaltstack(0, &now);
    return (void *)(intptr_t)now.ss_flags;
}

static void handle(int sig, void (*handler)(int), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = flags;
    sigaction(sig, &sa, 0);
}

int main(void) {
    stack_t old;
    sigaltstack(0, &old);
    printf("initially: disabled %d\n", old.ss_flags == SS_DISABLE);
    stack_t small = {.ss_sp = alt, .ss_size = 1000};
    int result = sigaltstack(&small, 0);
    printf("too small: %d errno %d\n", result, errno);
    stack_t odd = {.ss_sp = alt, .ss_size = sizeof alt, .ss_flags = 4};
    result = sigaltstack(&odd, 0);
    printf("bad flags: %d errno %d\n", result, errno);
    stack_t set = {.ss_sp = alt, .ss_size = sizeof alt};
    printf("set: %d\n", sigaltstack(&set, 0));
    sigaltstack(0, &old);
    printf("reported: size %zu, ours %d, flags %d\n", old.ss_size, old.ss_sp == alt, old.ss_flags);

    handle(SIGUSR1, on_usr1, SA_ONSTACK);
    raise(SIGUSR1);
    printf("SA_ONSTACK handler: on the alternate stack %d, sees SS_ONSTACK %d, change refused %d\n",
           on_alt, query_flags == SS_ONSTACK, change_errno == EPERM);
    handle(SIGUSR1, on_usr1, 0);
    raise(SIGUSR1);
    printf("plain handler: on the alternate stack %d\n", on_alt);

    stack_t armed = {.ss_sp = alt, .ss_size = sizeof alt, .ss_flags = SS_AUTODISARM};
    printf("autodisarm: %d\n", sigaltstack(&armed, 0));
    handle(SIGUSR1, on_usr1, SA_ONSTACK);
    raise(SIGUSR1);
    sigaltstack(0, &old);
    printf("autodisarm: inside disabled %d, after %s\n", (query_flags & SS_DISABLE) != 0,
           old.ss_flags == SS_AUTODISARM ? "armed again" : "still disarmed");

    pthread_t thread;
    void *flags;
    pthread_create(&thread, 0, thread_query, 0);
    pthread_join(thread, &flags);
    printf("a new thread starts without one: %d\n", (int)(intptr_t)flags == SS_DISABLE);

    sigaltstack(&set, 0);
    handle(SIGSEGV, on_segv, SA_ONSTACK | SA_NODEFER);
    if (sigsetjmp(recover, 1) == 0) {
        deeper(0);
        printf("not reached\n");
    }
    printf("stack overflow survived on the alternate stack: %d\n", on_alt);
    return 0;
}
