/* N pipe+close cycles (N = argv[1]): the leak check for anonymous pipes. Regression (found by
 * sysfuzz, seed 7): each pipe left an entry holding its memory in the kernel's FIFO table. */
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int cycles = argc > 1 ? atoi(argv[1]) : 0;
    for (int i = 0; i < cycles; i++) {
        int p[2];
        if (pipe(p) != 0)
            return 1;
        close(p[0]);
        close(p[1]);
    }
    return 0;
}
