/* fuzz.h — shared by the libFuzzer targets in tests/fuzz/ (not part of lib/).
 * Each target feeds the input to a function that reads an fd through a
 * memfd, so a request or envelope of any size is read the same way a
 * socket or pipe would give it, without blocking. */
#ifndef KWH_FUZZ_H
#define KWH_FUZZ_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* A memfd holding data[0..n), positioned at its start. */
static inline int
fuzz_memfd(int fd, const void *data, size_t n)
{
	if (fd < 0) {
		fd = memfd_create("kwh-fuzz", 0);
		if (fd < 0) {
			perror("memfd_create");
			abort();
		}
	}
	if (ftruncate(fd, 0) < 0 || (n && pwrite(fd, data, n, 0) != (ssize_t)n) ||
	    lseek(fd, 0, SEEK_SET) < 0) {
		perror("memfd");
		abort();
	}
	return fd;
}

/* An invariant the code under test broke: say which, then abort so that
 * libFuzzer saves the input. */
#define FUZZ_CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "fuzz: invariant broken at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

#endif
