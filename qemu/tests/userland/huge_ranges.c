/* Huge, mostly empty address ranges: the kernel must walk its page tables, not every page of the
 * range, and must free the page tables a munmap empties. Each step finishes promptly on Linux;
 * a kernel that visits a huge range page by page (with interrupts off) freezes the machine and
 * the boot times out. Prints the same lines on Linux (the parity test). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>

#define GiB (1024UL * 1024 * 1024)
#define TiB (1024 * GiB)

static void report(const char *what, pid_t child) {
    int status;
    waitpid(child, &status, 0);
    if (WIFSIGNALED(status))
        printf("%s: killed by signal %d\n", what, WTERMSIG(status));
    else
        printf("%s: exited %d\n", what, WEXITSTATUS(status));
}

static unsigned long free_bytes(void) {
    struct sysinfo info;
    sysinfo(&info);
    return info.freeram * info.mem_unit;
}

/* A static ELF executable whose only segment is its own bytes plus `mem_size` of bss; its code
 * exits with status 42. */
static void write_elf(const char *path, uint64_t mem_size) {
    unsigned char image[256] = {0};
    static const unsigned char code[] = {
        0xbf, 42, 0, 0, 0, /* mov edi, 42 */
        0xb8, 60, 0, 0, 0, /* mov eax, 60 (exit) */
        0x0f, 0x05,        /* syscall */
    };
    uint64_t base = 0x400000, entry = base + 64 + 56, file_size = 64 + 56 + sizeof code;
    memcpy(image, "\x7f" "ELF\x02\x01\x01", 7);
    *(uint16_t *)(image + 16) = 2;  /* ET_EXEC */
    *(uint16_t *)(image + 18) = 62; /* EM_X86_64 */
    *(uint32_t *)(image + 20) = 1;
    *(uint64_t *)(image + 24) = entry;
    *(uint64_t *)(image + 32) = 64; /* program headers */
    *(uint16_t *)(image + 52) = 64;
    *(uint16_t *)(image + 54) = 56;
    *(uint16_t *)(image + 56) = 1;
    unsigned char *ph = image + 64;
    *(uint32_t *)(ph + 0) = 1; /* PT_LOAD */
    *(uint32_t *)(ph + 4) = 7; /* RWX */
    *(uint64_t *)(ph + 16) = base;
    *(uint64_t *)(ph + 24) = base;
    *(uint64_t *)(ph + 32) = file_size;
    *(uint64_t *)(ph + 40) = mem_size;
    *(uint64_t *)(ph + 48) = 4096;
    memcpy(image + 64 + 56, code, sizeof code);
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0755);
    write(fd, image, file_size);
    close(fd);
}

int main(void) {
    /* munmap of a huge range with nothing in it. */
    int unmapped = munmap((void *)(4 * GiB), 0x7e0000000000UL - 4 * GiB);
    printf("munmap of 126 TiB of nothing: %d\n", unmapped);

    /* The same from 64 KiB to near the top: the child's own code goes too. */
    pid_t child = fork();
    if (child == 0) {
        munmap((void *)0x10000, 0x7fff00000000UL - 0x10000);
        _exit(1);
    }
    report("munmap of everything below the stack", child);

    /* 1 TiB of read-only anonymous memory: not accounted, so Linux's overcommit allows it. */
    unsigned char *huge = mmap(0, TiB, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mmap of 1 TiB PROT_READ: %s\n", huge == MAP_FAILED ? strerror(errno) : "ok");
    if (huge != MAP_FAILED) {
        unsigned sum = huge[0] + huge[TiB / 2] + huge[TiB - 1];
        printf("three pages read as zero: %d\n", sum == 0);
        printf("mprotect of it to PROT_NONE: %d\n", mprotect(huge, TiB, PROT_NONE));
        printf("and back to PROT_READ: %d\n", mprotect(huge, TiB, PROT_READ));
        printf("a page reads as zero again: %d\n", huge[TiB / 4] == 0);
        printf("munmap of it: %d\n", munmap(huge, TiB));
    }
    /* mprotect over a hole: ENOMEM, nothing changed. */
    void *small = mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    errno = 0;
    int protected = mprotect(small, TiB, PROT_READ | PROT_WRITE);
    printf("mprotect of 1 TiB that is mostly a hole: %d %s\n", protected, strerror(errno));

    /* 10,000 fresh ranges, 1 GiB apart: each needs its own page tables, which must go with the
     * munmap. Without that, 2 page-table pages per round (80 MiB) stay behind. */
    unsigned long before = free_bytes();
    int failures = 0;
    for (unsigned long i = 0; i < 10000; i++) {
        char *at = (char *)(0x100000000000UL + i * GiB);
        char *page = mmap(at, 4096, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (page != at) {
            failures++;
            continue;
        }
        page[0] = 1;
        failures += munmap(page, 4096) != 0;
    }
    unsigned long after = free_bytes();
    printf("10000 map/touch/unmap rounds: %d failures, page tables freed: %s\n", failures,
           after + 16 * 1024 * 1024 > before ? "yes" : "no");

    /* An executable with 64 GiB of bss: more than the machine's memory. */
    write_elf("/bigbss", 64 * GiB);
    child = fork();
    if (child == 0) {
        char *argv[] = {"/bigbss", 0};
        execve("/bigbss", argv, 0);
        _exit(2); /* refused */
    }
    int status;
    waitpid(child, &status, 0);
    printf("exec with 64 GiB of bss ran: %s\n",
           WIFEXITED(status) && WEXITSTATUS(status) == 42 ? "yes" : "no");
    /* and with 16 MiB of bss, which fits */
    write_elf("/smallbss", 16 * 1024 * 1024);
    child = fork();
    if (child == 0) {
        char *argv[] = {"/smallbss", 0};
        execve("/smallbss", argv, 0);
        _exit(2);
    }
    report("exec with 16 MiB of bss", child);
    return 0;
}
