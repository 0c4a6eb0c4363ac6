/* A user program that faults: the kernel must kill it with SIGSEGV, not crash. */
#include <stdio.h>

int main(void) {
    printf("about to fault\n");
    fflush(stdout);
    *(volatile int *)16 = 1;
    return 0;
}
