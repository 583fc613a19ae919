/* cli.h — what every tool's main shares: help, version, log, numbers. */
#ifndef KWH_CLI_H
#define KWH_CLI_H
#include <stddef.h>
#include "buf.h"
#include "sig.h"

/* getopt_long codes of the options every stage shares. */
#define KWH_CLI_LOG_FORMAT 0x1000	/* --log-format */
#define KWH_CLI_STATSD 0x1001		/* --statsd */

/* Prints usage (the man page SYNOPSIS) to stdout and exits 0. */
void kwh_cli_help(const char *usage) __attribute__((noreturn));
/* Prints "PROG (kwh) VERSION" and exits 0. */
void kwh_cli_version(void) __attribute__((noreturn));
/* Opens the log at spec (see kwh_log_open) or dies with 100. */
void kwh_cli_log(const char *spec);
/* Checks a --liveness-path (an absolute URL path) or dies with 100. */
const char *kwh_cli_liveness_path(const char *arg);
/* Sets the log's least level (--log-level) or dies with 100. */
void kwh_cli_log_level(const char *name);
/*
 * The token in environment variable var (GITHUB_TOKEN), if set and not
 * empty, into t (reset first; one trailing LF or CRLF dropped): 0 when
 * there is one.  The variable is wiped and removed from the environment
 * either way, so that no child process and no later getenv sees it.
 */
int kwh_cli_token_env(struct kwh_buf *t, const char *var);
/* Sets the log's format (logfmt or json, see kwh_log_format) or dies with 100. */
void kwh_cli_log_format(const char *name);
/* Parses a non-negative number (with optional k, M, G suffix when size) for option opt, or dies with 100. */
size_t kwh_cli_size(const char *opt, const char *arg);
/* Parses seconds (decimals allowed) into milliseconds, or dies with 100. */
long kwh_cli_seconds_ms(const char *opt, const char *arg);
/*
 * Adds the secret in environment variable var, if set and not empty, then
 * wipes it from the environment so that no child sees it.  0 when added.
 */
int kwh_cli_secret_env(struct kwh_secrets *s, const char *var);
/*
 * The default cache directory (kwh-fetch's git cache, kwh-apply's discovery
 * cache): $XDG_CACHE_HOME/kwh, else /var/cache/kwh when writable, else
 * ~/.cache/kwh; appended to b.  Dies with 111 when there is none.
 */
void kwh_cli_default_cache(struct kwh_buf *b);
/* Dies with 111, naming what and path, unless path is readable. */
void kwh_cli_readable(const char *what, const char *path);
/* Reads a --token-file into t (reset first), less one trailing LF or CRLF:
 * 0, or -1 with why in err (naming the file, never the token). */
int kwh_cli_token_read(const char *path, struct kwh_buf *t, char *err, size_t errlen);
/*
 * Appends arg to list[*n] (at most max entries) for --allow-kind or
 * --allow-namespace (opt), checking GROUP/KIND for --allow-kind; dies with
 * 100 on a bad value.
 */
void kwh_cli_policy(const char **list, size_t *n, size_t max, const char *opt, const char *arg);
/* Adds the secret file or dies with 111 naming the file. */
void kwh_cli_secret_file(struct kwh_secrets *s, const char *path);

/* --max-background-fetches N (0 to 1024), or a usage error. */
size_t kwh_cli_max_background(const char *arg);

/* Puts /dev/null in place of fd (a standard output answered early). */
void kwh_cli_devnull(int fd);

/*
 * One of max slots, a limit that holds across processes: takes an
 * exclusive flock(2) on the first free DIR/NAME-N.slot (N below max,
 * created 0600 as needed) and returns its descriptor (close it to free
 * the slot; the kernel frees it when the process dies), N in *which; or
 * -1 when every one is taken (or DIR cannot be written).
 */
int kwh_cli_slot(const char *dir, const char *name, unsigned max, unsigned *which);

#endif
