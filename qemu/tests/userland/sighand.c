/* Signal actions belong to the process: a handler one thread installs is the one every thread
 * runs (CLONE_SIGHAND), while a forked child has a copy of its own. Prints the same lines on
 * Linux (the parity test). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t caught, caught_in_main;
static pthread_t main_thread;

static void on_usr2(int sig) {
    caught = sig;
    caught_in_main = pthread_equal(pthread_self(), main_thread);
}

static void *install(void *unused) {
    (void)unused;
    struct sigaction sa = {0};
    sa.sa_handler = on_usr2;
    sigaction(SIGUSR2, &sa, 0);
    return 0;
}

int main(void) {
    main_thread = pthread_self();
    pthread_t thread;
    pthread_create(&thread, 0, install, 0);
    pthread_join(thread, 0);
    raise(SIGUSR2);
    printf("handler installed by another thread ran: %d, in the main thread: %d\n", caught,
           caught_in_main);

    pid_t child = fork();
    if (child == 0) {
        signal(SIGUSR2, SIG_IGN);
        return 0;
    }
    int status;
    waitpid(child, &status, 0);
    struct sigaction now;
    sigaction(SIGUSR2, 0, &now);
    printf("a forked child's change stays its own: %d\n", now.sa_handler == on_usr2);
    return 0;
}
