#include "err.h"
#include "buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

const char *kwh_progname = "kwh";

static enum { LOG_TO_STDERR, LOG_TO_FD, LOG_TO_SYSLOG, LOG_TO_NONE } log_kind;
static int log_fd = 2;
static int log_json;	/* --log-format json */
static int log_facility = LOG_DAEMON;

long long
kwh_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
kwh_err_init(const char *argv0)
{
	const char *s;

	if (argv0 && *argv0)
		kwh_progname = (s = strrchr(argv0, '/')) ? s + 1 : argv0;
}

static void
vmsg(const char *level, const char *fmt, va_list ap)
{
	struct kwh_buf b = KWH_BUF_INIT;

	kwh_buf_printf(&b, "%s: %s%s", kwh_progname, level, *level ? ": " : "");
	kwh_buf_vprintf(&b, fmt, ap);
	kwh_buf_addc(&b, '\n');
	if (b.data)
		kwh_write_all(2, b.data, b.len);
	kwh_buf_release(&b);
}

void
kwh_die(int code, const char *fmt, ...)
{
	va_list ap;
	char msg[1024];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (log_kind != LOG_TO_STDERR && log_kind != LOG_TO_NONE)
		kwh_log(KWH_LOG_ERROR, NULL, 0, "fatal: %s", msg);
	fprintf(stderr, "%s: fatal: %s\n", kwh_progname, msg);
	exit(code);
}

void
kwh_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg("warning", fmt, ap);
	va_end(ap);
}

void
kwh_usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg("", fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try '%s --help'.\n", kwh_progname);
	exit(KWH_EXIT_USAGE);
}

static int
facility(const char *name)
{
	static const struct { const char *n; int f; } t[] = {
		{ "daemon", LOG_DAEMON }, { "user", LOG_USER },
		{ "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 },
		{ "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 },
		{ "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
		{ "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (!strcmp(t[i].n, name))
			return t[i].f;
	return -1;
}

int
kwh_log_open(const char *spec)
{
	int fd, fac = LOG_DAEMON;

	if (!spec || !strcmp(spec, "stderr")) {
		log_kind = LOG_TO_STDERR;
		log_fd = 2;
		return 0;
	}
	if (!strcmp(spec, "none")) {
		log_kind = LOG_TO_NONE;
		return 0;
	}
	if (!strncmp(spec, "syslog", 6) && (spec[6] == '\0' || spec[6] == ':')) {
		if (spec[6] == ':' && (fac = facility(spec + 7)) < 0) {
			errno = EINVAL;
			return -1;
		}
		openlog(kwh_progname, LOG_PID, fac);
		log_facility = fac;
		log_kind = LOG_TO_SYSLOG;
		return 0;
	}
	if ((fd = open(spec, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640)) < 0)
		return -1;
	log_kind = LOG_TO_FD;
	log_fd = fd;
	return 0;
}

/* Appends a logfmt value: bare when it needs no quoting. */
static void
logfmt_value(struct kwh_buf *b, const char *s)
{
	size_t n = strlen(s);
	int bare = n > 0;

	for (size_t i = 0; i < n && bare; i++)
		if (s[i] <= ' ' || s[i] == '"' || s[i] == '=' || s[i] == '\\' || (unsigned char)s[i] >= 0x7f)
			bare = 0;
	if (bare)
		kwh_buf_add(b, s, n);
	else
		kwh_buf_add_json_string(b, s, n);
}

/* Lines below this level are not written (kwh_log_set_level). */
static int log_min = KWH_LOG_INFO;

int
kwh_log_set_level(const char *name)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };

	for (int i = 0; i < 4; i++)
		if (!strcmp(name, names[i])) {
			log_min = i - 1;
			return 0;
		}
	return -1;
}

int
kwh_log_format(const char *name)
{
	if (!strcmp(name, "logfmt"))
		log_json = 0;
	else if (!strcmp(name, "json"))
		log_json = 1;
	else
		return -1;
	return 0;
}

/* The same fields as a JSON object: strings escaped by the envelope's own
 * writer (control characters as \u00XX, invalid UTF-8 as U+FFFD), so that
 * any delivery id or message makes one parsable line. */
static void
json_line(struct kwh_buf *b, const struct timeval *tv, const char *level,
    const char *delivery, int status, const char *msg)
{
	struct tm tm;

	kwh_buf_addc(b, '{');
	if (tv) {
		gmtime_r(&tv->tv_sec, &tm);
		kwh_buf_printf(b, "\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, (long)tv->tv_usec / 1000);
	}
	kwh_buf_adds(b, "\"prog\":");
	kwh_buf_add_json_string(b, kwh_progname, strlen(kwh_progname));
	kwh_buf_printf(b, ",\"level\":\"%s\",\"delivery\":", level);
	kwh_buf_add_json_string(b, delivery, strlen(delivery));
	if (status)
		kwh_buf_printf(b, ",\"status\":%d", status);
	kwh_buf_adds(b, ",\"msg\":");
	kwh_buf_add_json_string(b, msg, strlen(msg));
	kwh_buf_addc(b, '}');
}

void
kwh_log(int level, const char *delivery, int status, const char *fmt, ...)
{
	static const char *names[] = { "debug", "info", "warn", "error" };
	struct kwh_buf b = KWH_BUF_INIT, msg = KWH_BUF_INIT;
	struct timeval tv;
	struct tm tm;
	va_list ap;
	int e = errno;

	if (log_kind == LOG_TO_NONE || level < log_min)
		return;
	va_start(ap, fmt);
	kwh_buf_vprintf(&msg, fmt, ap);
	va_end(ap);
	if (log_json) {
		if (log_kind != LOG_TO_SYSLOG)
			gettimeofday(&tv, NULL);
		json_line(&b, log_kind != LOG_TO_SYSLOG ? &tv : NULL, names[level + 1],
		    delivery && *delivery ? delivery : "-", status, msg.data ? msg.data : "");
	} else if (log_kind != LOG_TO_SYSLOG) {
		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		kwh_buf_printf(&b, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, (long)tv.tv_usec / 1000);
	}
	if (!log_json) {
		kwh_buf_printf(&b, "prog=%s level=%s delivery=", kwh_progname, names[level + 1]);
		logfmt_value(&b, delivery && *delivery ? delivery : "-");
		if (status)
			kwh_buf_printf(&b, " status=%d", status);
		kwh_buf_adds(&b, " msg=");
		logfmt_value(&b, msg.data ? msg.data : "");
	}
	if (b.data) {
		if (log_kind == LOG_TO_SYSLOG) {
			syslog(level == KWH_LOG_ERROR ? LOG_ERR : level == KWH_LOG_WARN ? LOG_WARNING :
			    level == KWH_LOG_DEBUG ? LOG_DEBUG : LOG_INFO,
			    "%s", b.data);
		} else {
			kwh_buf_addc(&b, '\n');
			kwh_write_all(log_fd, b.data, b.len);
		}
	}
	kwh_buf_release(&b);
	kwh_buf_release(&msg);
	errno = e;
}

void
kwh_pledge(const char *promises)
{
#ifdef __OpenBSD__
	if (pledge(promises, NULL) < 0)
		kwh_die(KWH_EXIT_SYSTEM, "pledge: %s", strerror(errno));
#else
	(void)promises;
#endif
}

int
kwh_log_detach(void)
{
	if (log_kind == LOG_TO_SYSLOG)
		closelog();
	return log_kind == LOG_TO_STDERR || log_kind == LOG_TO_FD ? log_fd : -1;
}

void
kwh_log_attach(void)
{
	if (log_kind == LOG_TO_SYSLOG)
		openlog(kwh_progname, LOG_PID, log_facility);
}
