/*
 * timeit — wall time of whole processes, several commands side by side.
 *
 *   timeit RUNS INPUT -- CMD [ARG...] [-- CMD [ARG...]]...
 *
 * Runs each command RUNS times, in turn (A B A B ...), so that a change in
 * the machine's load hits all of them alike.  Each run is one posix_spawn
 * (no shell), stdin from INPUT, stdout to /dev/null, stderr kept, timed
 * from spawn to the end of waitpid with CLOCK_MONOTONIC: what "one run"
 * costs the caller, as hyperfine -N measures it.  Prints one line per
 * command: median, 10th and 90th percentile in microseconds.  A run that
 * fails stops it, with exit status 1.  Compiled by the bench scripts.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static int
cmp(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

static long
now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000L + t.tv_nsec / 1000;
}

int
main(int argc, char **argv)
{
	char **cmd[64];
	long *t[64];
	int ncmd = 0, runs, i, c;
	const char *input;

	if (argc < 5 || strcmp(argv[3], "--") != 0 || (runs = atoi(argv[1])) < 1) {
		fprintf(stderr, "usage: timeit RUNS INPUT -- CMD [ARG...] [-- CMD [ARG...]]...\n");
		return 2;
	}
	input = argv[2];
	for (i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--") != 0)
			continue;
		argv[i] = NULL;
		if (i + 1 >= argc || ncmd == 64) {
			fprintf(stderr, "timeit: empty command, or more than 64\n");
			return 2;
		}
		cmd[ncmd++] = &argv[i + 1];
	}
	for (c = 0; c < ncmd; c++)
		if (!(t[c] = calloc((size_t)runs, sizeof **t)))
			return 1;
	for (i = 0; i < runs; i++) {
		for (c = 0; c < ncmd; c++) {
			posix_spawn_file_actions_t fa;
			pid_t pid;
			long t0;
			int st, e;

			posix_spawn_file_actions_init(&fa);
			posix_spawn_file_actions_addopen(&fa, 0, input, O_RDONLY, 0);
			posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
			t0 = now_us();
			if ((e = posix_spawnp(&pid, cmd[c][0], &fa, NULL, cmd[c], environ)) != 0) {
				fprintf(stderr, "timeit: %s: %s\n", cmd[c][0], strerror(e));
				return 1;
			}
			if (waitpid(pid, &st, 0) < 0) {
				perror("timeit: waitpid");
				return 1;
			}
			t[c][i] = now_us() - t0;
			posix_spawn_file_actions_destroy(&fa);
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
				fprintf(stderr, "timeit: %s failed (status %d)\n", cmd[c][0], st);
				return 1;
			}
		}
	}
	for (c = 0; c < ncmd; c++) {
		qsort(t[c], (size_t)runs, sizeof **t, cmp);
		printf("%ld %ld %ld\n", t[c][(runs - 1) / 2], t[c][runs / 10], t[c][runs * 9 / 10]);
	}
	return 0;
}
