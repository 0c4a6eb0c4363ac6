/* Private file mappings as Linux has them (what ld.so maps shared libraries with): contents
 * read from the file at the mapping's offset, zeroes after the end of the file in its last
 * page, writes that stay private (the file and a forked child's copy keep theirs), MAP_FIXED
 * over a PROT_NONE reservation, mprotect and partial munmap of a file mapping, the mapping
 * outliving its descriptor, MAP_FIXED_NOREPLACE, and the errors (EINVAL, EBADF, EACCES,
 * ENODEV, EEXIST). Every line must print the same on Linux. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define P 4096L
#define SIZE (3 * P + 100)

static const char *err(void *r) {
    if (r != MAP_FAILED)
        return "ok";
    switch (errno) {
    case EINVAL:
        return "EINVAL";
    case EBADF:
        return "EBADF";
    case EACCES:
        return "EACCES";
    case ENODEV:
        return "ENODEV";
    case EEXIST:
        return "EEXIST";
    case EOVERFLOW:
        return "EOVERFLOW";
    case ENOMEM:
        return "ENOMEM";
    default:
        return "other";
    }
}

static unsigned char pattern(long i) { return (unsigned char)(i * 7 + i / P); }

/* Whether `len` bytes at `p` are the file's bytes from `offset` on. */
static int matches(const unsigned char *p, long offset, long len) {
    for (long i = 0; i < len; i++)
        if (p[i] != pattern(offset + i))
            return 0;
    return 1;
}

int main(void) {
    static unsigned char data[SIZE];
    for (long i = 0; i < SIZE; i++)
        data[i] = pattern(i);
    int fd = open("/mapped", O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, data, SIZE) != SIZE) {
        printf("cannot write /mapped\n");
        return 1;
    }

    unsigned char *whole = mmap(0, SIZE, PROT_READ, MAP_PRIVATE, fd, 0);
    printf("read-only mapping: %s\n", err(whole));
    printf("contents match: %d\n", matches(whole, 0, SIZE));
    int zero = 1;
    for (long i = SIZE; i < 4 * P; i++)
        zero &= whole[i] == 0;
    printf("rest of the last page is zero: %d\n", zero);

    unsigned char *at = mmap(0, P, PROT_READ, MAP_PRIVATE, fd, 2 * P);
    printf("at offset 2 pages: %s, match %d\n", err(at), matches(at, 2 * P, P));

    /* Private writes: the mapping changes, the file and other mappings do not. */
    unsigned char *rw = mmap(0, 2 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, P);
    printf("writable private mapping: %s\n", err(rw));
    rw[0] = 0xaa;
    rw[P + 5] = 0xbb;
    unsigned char byte;
    pread(fd, &byte, 1, P);
    printf("after a private write: mapping %#x, file %d, other mapping %d\n", rw[0],
           byte == pattern(P), whole[P] == pattern(P));

    /* A forked child's writes stay its own, and so do the parent's. */
    pid_t child = fork();
    if (child == 0) {
        rw[1] = 0xcc;
        _exit(rw[0] == 0xaa && rw[1] == 0xcc ? 0 : 1);
    }
    int status;
    waitpid(child, &status, 0);
    printf("child saw its copy: %d, parent keeps its own: %d\n", WEXITSTATUS(status) == 0,
           rw[1] == pattern(P + 1));

    /* ld.so's way: reserve the whole span, then map segments over it with MAP_FIXED. */
    unsigned char *span = mmap(0, 4 * P, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *fixed =
        mmap(span + P, 2 * P, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_FIXED, fd, P);
    printf("MAP_FIXED over a reservation: %s, same address %d, match %d\n", err(fixed),
           fixed == span + P, matches(fixed, P, 2 * P));
    printf("mprotect to read-write: %d\n", mprotect(fixed, P, PROT_READ | PROT_WRITE));
    fixed[10] = 1;
    printf("written: %d, next page still the file's: %d\n", fixed[10],
           matches(fixed + P, 2 * P, P));
    printf("munmap of the first page: %d\n", munmap(fixed, P));
    printf("the second page stays: %d\n", matches(fixed + P, 2 * P, P));

    /* The mapping holds the file: closing the descriptor changes nothing. */
    int fd2 = open("/mapped", O_RDONLY);
    unsigned char *kept = mmap(0, P, PROT_READ, MAP_PRIVATE, fd2, 0);
    close(fd2);
    printf("after close: %d\n", matches(kept, 0, P));

    /* Flags Linux ignores (MAP_DENYWRITE, MAP_EXECUTABLE), and MAP_FIXED_NOREPLACE. */
    void *legacy = mmap(0, P, PROT_READ, MAP_PRIVATE | MAP_DENYWRITE | MAP_EXECUTABLE, fd, 0);
    printf("MAP_DENYWRITE|MAP_EXECUTABLE: %s\n", err(legacy));
    printf("MAP_FIXED_NOREPLACE over a mapping: %s\n",
           err(mmap(whole, P, PROT_READ, MAP_PRIVATE | MAP_FIXED_NOREPLACE, fd, 0)));
    munmap(span + 3 * P, P);
    void *free_page = mmap(span + 3 * P, P, PROT_READ, MAP_PRIVATE | MAP_FIXED_NOREPLACE, fd, 0);
    printf("MAP_FIXED_NOREPLACE where free: %s, there %d\n", err(free_page),
           free_page == span + 3 * P);

    /* Errors. */
    printf("unaligned offset: %s\n", err(mmap(0, P, PROT_READ, MAP_PRIVATE, fd, 100)));
    printf("bad descriptor: %s\n", err(mmap(0, P, PROT_READ, MAP_PRIVATE, -1, 0)));
    printf("closed descriptor: %s\n", err(mmap(0, P, PROT_READ, MAP_PRIVATE, 77, 0)));
    printf("zero length: %s\n", err(mmap(0, 0, PROT_READ, MAP_PRIVATE, fd, 0)));
    printf("no mapping type: %s\n", err(mmap(0, P, PROT_READ, 0, fd, 0)));
    printf("growing down: %s\n",
           err(mmap(0, P, PROT_READ, MAP_PRIVATE | MAP_GROWSDOWN, fd, 0)));
    int write_only = open("/mapped", O_WRONLY);
    printf("write-only descriptor: %s\n",
           err(mmap(0, P, PROT_READ, MAP_PRIVATE, write_only, 0)));
    int dir = open("/", O_RDONLY | O_DIRECTORY);
    printf("directory: %s\n", err(mmap(0, P, PROT_READ, MAP_PRIVATE, dir, 0)));
    int pipe_ends[2];
    pipe(pipe_ends);
    printf("pipe: %s\n", err(mmap(0, P, PROT_READ, MAP_PRIVATE, pipe_ends[0], 0)));
    int path_only = open("/mapped", O_PATH);
    printf("O_PATH descriptor: %s\n",
           err(mmap(0, P, PROT_READ, MAP_PRIVATE, path_only, 0)));
    printf("mmap_file done\n");
    return 0;
}
