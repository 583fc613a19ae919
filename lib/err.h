/* err.h — fatal errors, warnings, exit codes and the logfmt event log. */
#ifndef KWH_ERR_H
#define KWH_ERR_H

/*
 * Exit codes, the same for every tool (kwh(7), EXIT STATUS):
 * 0 the stage did its work and set no error response (2xx decisions such
 *   as ping or a skipped event included, and envelopes passed through);
 * 1 the stage set a response of 400 or more on some envelope;
 * 100 usage error (bad option or argument);
 * 111 the program could not run (unreadable configuration or secret,
 *   out of memory, write error).
 */
enum {
	KWH_EXIT_OK = 0,
	KWH_EXIT_REFUSED = 1,
	KWH_EXIT_USAGE = 100,
	KWH_EXIT_SYSTEM = 111,
};

/* Name used in messages and logs; set once by kwh_err_init(argv[0]). */
extern const char *kwh_progname;
void kwh_err_init(const char *argv0);

/* Milliseconds since the Unix epoch (deadlines travel in envelopes). */
long long kwh_now_ms(void);

/* "prog: fatal: MSG" on stderr (and in the log), then exit(code). */
void kwh_die(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));
/* "prog: warning: MSG" on stderr. */
void kwh_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "prog: MSG\nTry 'prog --help'." on stderr, exit 100. */
void kwh_usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

/*
 * The event log.  spec is "stderr" (the default), "syslog",
 * "syslog:FACILITY" (daemon, local0..local7, user), "none", or a file path
 * opened for appending.  Returns 0, or -1 with errno set.
 */
int kwh_log_open(const char *spec);
enum { KWH_LOG_DEBUG = -1, KWH_LOG_INFO, KWH_LOG_WARN, KWH_LOG_ERROR };
/*
 * The least level written (--log-level): "debug", "info" (the default),
 * "warn" or "error".  Returns 0, or -1 for another name.
 */
int kwh_log_set_level(const char *name);
/*
 * Writes one logfmt line: ts=… prog=… level=… delivery=… status=… msg="…"
 * (status left out when 0, delivery "-" when NULL).  Never writes secrets:
 * callers pass none.
 */
void kwh_log(int level, const char *delivery, int status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * --log-format: "logfmt" (the default) or "json", one object per line
 * with the same fields ({"ts":…,"prog":…,"level":…,"delivery":…,
 * "status":N,"msg":…}).  0, or -1 for another name.
 */
int kwh_log_format(const char *name);

/*
 * For a process that closes the descriptors it inherited (a fetch going
 * on in the background): kwh_log_detach() closes the syslog connection
 * and returns the descriptor the log is written to (-1: none to keep);
 * kwh_log_attach() reopens syslog afterwards.
 */
int kwh_log_detach(void);
void kwh_log_attach(void);

/* Does nothing off OpenBSD; a place for pledge(2)-like restriction. */
void kwh_pledge(const char *promises);

#endif
