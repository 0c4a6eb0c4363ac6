/* Threads (musl pthreads over clone + futex): shared memory, per-thread TLS and tids, mutexes
 * and condition variables, join, and exit_group ending every thread. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready = PTHREAD_COND_INITIALIZER;
static long counter;
static int started;
static __thread int tls_value;

static void *worker(void *arg) {
    long id = (long)arg;
    tls_value = (int)id * 100;
    pthread_mutex_lock(&lock);
    started++;
    pthread_cond_signal(&ready);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < 20000; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
    }
    int own_tid = syscall(SYS_gettid) != getpid();
    return (void *)(long)(tls_value == id * 100 && own_tid);
}

static void *sleeper(void *arg) {
    (void)arg;
    for (;;)
        pause();
    return 0;
}

int main(void) {
    pthread_t threads[4];
    for (long i = 0; i < 4; i++) {
        /* Under fault injection clone may fail: waiting for a thread that never started would
         * hang, so give up as any program would. */
        int error = pthread_create(&threads[i], 0, worker, (void *)(i + 1));
        if (error) {
            printf("threads: pthread_create: %s\n", strerror(error));
            return 1;
        }
    }
    pthread_mutex_lock(&lock);
    while (started < 4)
        pthread_cond_wait(&ready, &lock);
    pthread_mutex_unlock(&lock);
    int all_ok = 1;
    for (int i = 0; i < 4; i++) {
        void *ok;
        pthread_join(threads[i], &ok);
        all_ok &= ok != 0;
    }
    printf("threads: counter=%ld tls-and-tid-ok=%d main-tls=%d\n", counter, all_ok, tls_value);
    pthread_t blocked;
    pthread_create(&blocked, 0, sleeper, 0);
    fflush(stdout);
    return 0; /* exit_group: the sleeping thread must not keep the process alive */
}
