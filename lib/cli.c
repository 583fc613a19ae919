#include "cli.h"
#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

void
kwh_cli_help(const char *usage)
{
	fputs(usage, stdout);
	exit(fflush(stdout) ? KWH_EXIT_SYSTEM : KWH_EXIT_OK);
}

void
kwh_cli_version(void)
{
	printf("%s (kwh) %s\n", kwh_progname, KWH_VERSION);
	exit(fflush(stdout) ? KWH_EXIT_SYSTEM : KWH_EXIT_OK);
}

void
kwh_cli_log(const char *spec)
{
	if (kwh_log_open(spec) < 0)
		kwh_usage_error("cannot open log '%s': %s", spec, strerror(errno));
}

const char *
kwh_cli_liveness_path(const char *arg)
{
	if (arg[0] != '/' || strpbrk(arg, "?# \t\r\n"))
		kwh_usage_error("--liveness-path: '%s' is not a path starting with '/' "
		    "(without '?', '#' or blanks)", arg);
	return arg;
}

void
kwh_cli_log_level(const char *name)
{
	if (kwh_log_set_level(name) < 0)
		kwh_usage_error("--log-level: '%s' is not debug, info, warn or error", name);
}

int
kwh_cli_token_env(struct kwh_buf *t, const char *var)
{
	char *v = getenv(var);
	int r = -1;

	if (v && *v) {
		kwh_buf_reset(t);
		kwh_buf_adds(t, v);
		/* as a token file is read: one trailing LF or CRLF is not part of it */
		if (t->len && t->data[t->len - 1] == '\n')
			t->data[--t->len] = '\0';
		if (t->len && t->data[t->len - 1] == '\r')
			t->data[--t->len] = '\0';
		r = t->len ? 0 : -1;
	}
	if (v)
		explicit_bzero(v, strlen(v));
	unsetenv(var);
	return r;
}

void
kwh_cli_log_format(const char *name)
{
	if (kwh_log_format(name) < 0)
		kwh_usage_error("--log-format: '%s' is neither logfmt nor json", name);
}

size_t
kwh_cli_size(const char *opt, const char *arg)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno || end == arg || *arg == '-')
		kwh_usage_error("%s: '%s' is not a number", opt, arg);
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'M': v <<= 20; end++; break;
	case 'G': v <<= 30; end++; break;
	}
	if (*end)
		kwh_usage_error("%s: '%s' is not a number (suffixes: k, M, G)", opt, arg);
	return (size_t)v;
}

long
kwh_cli_seconds_ms(const char *opt, const char *arg)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(arg, &end);
	if (errno || end == arg || *end || !(d > 0) || d > 86400 || isnan(d))
		kwh_usage_error("%s: '%s' is not a number of seconds (0 < s <= 86400)", opt, arg);
	return (long)(d * 1000 + 0.5);
}

void
kwh_cli_default_cache(struct kwh_buf *b)
{
	const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");

	if (x && *x == '/')
		kwh_buf_printf(b, "%s/kwh", x);
	else if (access("/var/cache/kwh", W_OK) == 0)
		kwh_buf_adds(b, "/var/cache/kwh");
	else if (home && *home == '/')
		kwh_buf_printf(b, "%s/.cache/kwh", home);
	else
		kwh_die(KWH_EXIT_SYSTEM, "no cache directory: set --cache, XDG_CACHE_HOME or HOME");
}

void
kwh_cli_readable(const char *what, const char *path)
{
	if (access(path, R_OK) < 0)
		kwh_die(KWH_EXIT_SYSTEM, "cannot read %s '%s': %s", what, path, strerror(errno));
}

void
kwh_cli_policy(const char **list, size_t *n, size_t max, const char *opt, const char *arg)
{
	if (*n >= max)
		kwh_usage_error("%s: at most %zu", opt, max);
	if (!strcmp(opt, "--allow-kind") && (!strchr(arg, '/') || !strchr(arg, '/')[1]))
		kwh_usage_error("--allow-kind '%s': want GROUP/KIND (core kinds as /KIND)", arg);
	if (!strcmp(opt, "--allow-kind") && !strncmp(arg, "*/", 2) && strcmp(arg, "*/*"))
		kwh_usage_error("--allow-kind '%s': the group may be '*' only in '*/*'", arg);
	list[(*n)++] = arg;
}

int
kwh_cli_token_read(const char *path, struct kwh_buf *t, char *err, size_t errlen)
{
	kwh_buf_reset(t);
	if (kwh_buf_read_file(t, path) < 0) {
		snprintf(err, errlen, "cannot read token file '%s': %s", path, strerror(errno));
		return -1;
	}
	if (t->len && t->data[t->len - 1] == '\n')
		t->data[--t->len] = '\0';
	if (t->len && t->data[t->len - 1] == '\r')
		t->data[--t->len] = '\0';
	if (!t->len) {
		snprintf(err, errlen, "token file '%s' is empty", path);
		return -1;
	}
	return 0;
}

int
kwh_cli_secret_env(struct kwh_secrets *s, const char *var)
{
	char *v = getenv(var);
	int r = -1;

	if (v && *v) {
		if (kwh_secrets_add(s, v, strlen(v)) < 0)
			kwh_die(KWH_EXIT_SYSTEM, "out of memory");
		explicit_bzero(v, strlen(v));
		r = 0;
	}
	unsetenv(var);
	return r;
}

void
kwh_cli_secret_file(struct kwh_secrets *s, const char *path)
{
	char err[512];
	struct stat st;

	if (kwh_secrets_add_file(s, path, err, sizeof err) < 0)
		kwh_die(KWH_EXIT_SYSTEM, "%s", err);
	/* not refused: a container's mounted Secret is often 0644 */
	if (stat(path, &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)))
		kwh_warn("secret file '%s' is readable by %s (mode %04o): make it 0600",
		    path, st.st_mode & S_IROTH ? "every user" : "its group",
		    (unsigned)(st.st_mode & 07777));
}

size_t
kwh_cli_max_background(const char *arg)
{
	size_t n = kwh_cli_size("--max-background-fetches", arg);

	if (n > 1024)
		kwh_usage_error("--max-background-fetches: '%s' is more than 1024", arg);
	return n;
}

void
kwh_cli_devnull(int fd)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (null >= 0 && null != fd) {
		dup2(null, fd);
		close(null);
	}
}

int
kwh_cli_slot(const char *dir, const char *name, unsigned max, unsigned *which)
{
	struct kwh_buf p = KWH_BUF_INIT;
	unsigned i;
	int fd = -1;

	for (i = 0; i < max && fd < 0; i++) {
		kwh_buf_reset(&p);
		if (kwh_buf_printf(&p, "%s/%s-%u.slot", dir, name, i) < 0 ||
		    (fd = open(p.data, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
			break;
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			close(fd);
			fd = -1;
		} else {
			*which = i;
		}
	}
	kwh_buf_release(&p);
	return fd;
}
