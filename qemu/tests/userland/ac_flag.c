/* Sets EFLAGS.AC (user code may: it is how it asks for alignment checks) and spins while timer
 * interrupts come in, then makes a few system calls with it set. An interrupt or exception from
 * user mode must not run its kernel handler with AC set — that would switch SMAP off in the
 * handler — and SYSCALL must clear it through IA32_FMASK; the kernel warns if it ever finds AC
 * set in a handler. */
#include <stdio.h>
#include <unistd.h>

#define AC (1UL << 18)

static void set_ac(int on) {
    unsigned long flags;
    __asm__ volatile("pushfq; pop %0" : "=r"(flags));
    flags = on ? flags | AC : flags & ~AC;
    __asm__ volatile("push %0; popfq" : : "r"(flags) : "cc");
}

static unsigned long read_flags(void) {
    unsigned long flags;
    __asm__ volatile("pushfq; pop %0" : "=r"(flags));
    return flags;
}

int main(void) {
    set_ac(1);
    unsigned long kept = read_flags() & AC;
    for (volatile unsigned long i = 0; i < 100000000UL; i++) {
    }
    for (int i = 0; i < 100; i++)
        getppid();
    unsigned long after = read_flags() & AC;
    set_ac(0);
    printf("AC set in user mode: %d, still set after interrupts and system calls: %d\n",
           kept != 0, after != 0);
    return 0;
}
