#include "env.h"
#include "metrics.h"
#include "buf.h"
#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

jv
kwh_env_new(void)
{
	return jv_object_set(jv_object(), jv_string("kwh"), jv_number(KWH_ENV_VERSION));
}

int
kwh_env_has_response(jv env)
{
	int has = jv_get_kind(env) == JV_KIND_OBJECT &&
	    jv_object_has(jv_copy(env), jv_string("response"));
	return has;
}

int
kwh_env_status(jv env)
{
	jv r, s;
	int st = 0;

	if (jv_get_kind(env) != JV_KIND_OBJECT)
		return 0;
	r = jv_object_get(jv_copy(env), jv_string("response"));
	if (jv_get_kind(r) == JV_KIND_OBJECT) {
		s = jv_object_get(jv_copy(r), jv_string("status"));
		if (jv_get_kind(s) == JV_KIND_NUMBER) {
			double d = jv_number_value(s);
			if (d >= 100 && d <= 599)
				st = (int)d;
		}
		jv_free(s);
	}
	jv_free(r);
	return st;
}

const char *
kwh_jv_str(jv o, const char *key)
{
	const char *s = NULL;
	jv v;

	if (jv_get_kind(o) != JV_KIND_OBJECT)
		return NULL;
	v = jv_object_get(jv_copy(o), jv_string(key));
	if (jv_get_kind(v) == JV_KIND_STRING)
		s = jv_string_value(v);
	jv_free(v); /* o still holds a reference: the pointer stays valid */
	return s;
}

const char *
kwh_env_str(jv env, const char *key, char *out, size_t n)
{
	const char *s = kwh_jv_str(env, key);

	snprintf(out, n, "%s", s ? s : "");
	return out;
}

jv
kwh_env_respond(jv env, int status, const char *fmt, ...)
{
	struct kwh_buf msg = KWH_BUF_INIT;
	char delivery[128];
	va_list ap;
	jv r;

	va_start(ap, fmt);
	kwh_buf_vprintf(&msg, fmt, ap);
	va_end(ap);
	if (jv_get_kind(env) != JV_KIND_OBJECT) {
		jv_free(env);
		env = kwh_env_new();
	}
	kwh_env_str(env, "delivery", delivery, sizeof delivery);
	kwh_log(status >= 500 ? KWH_LOG_ERROR : status >= 400 ? KWH_LOG_WARN : KWH_LOG_INFO,
	    delivery, status, "%s", msg.data ? msg.data : "");
	r = jv_object_set(jv_object(), jv_string("status"), jv_number(status));
	r = jv_object_set(r, jv_string("message"), jv_string(msg.data ? msg.data : ""));
	/* Which stage ended processing: kwh-respond --spool records it for kwh-replay. */
	r = jv_object_set(r, jv_string("stage"), jv_string(kwh_progname));
	kwh_buf_release(&msg);
	return jv_object_set(env, jv_string("response"), r);
}

struct kwh_env_reader {
	int fd;
	int eof;
	jv_parser *parser;
	char buf[65536];
};

struct kwh_env_reader *
kwh_env_reader_new(int fd)
{
	/* not calloc: zeroing buf would touch 16 pages that a small
	 * envelope never uses (each a page fault, at every start) */
	struct kwh_env_reader *r = malloc(sizeof *r);

	if (!r)
		return NULL;
	r->fd = fd;
	r->eof = 0;
	r->parser = jv_parser_new(0);
	return r;
}

void
kwh_env_reader_free(struct kwh_env_reader *r)
{
	if (!r)
		return;
	jv_parser_free(r->parser);
	free(r);
}

int
kwh_env_next(struct kwh_env_reader *r, jv *out)
{
	for (;;) {
		jv v = jv_parser_next(r->parser);

		if (jv_is_valid(v)) {
			if (jv_get_kind(v) != JV_KIND_OBJECT) {
				const char *k = jv_kind_name(jv_get_kind(v));
				jv_free(v);
				r->eof = 1;
				*out = kwh_env_respond(kwh_env_new(), 500,
				    "an earlier stage produced a JSON %s, not an envelope object", k);
				return -1;
			}
			*out = v;
			return 1;
		}
		if (jv_invalid_has_msg(jv_copy(v))) {
			jv msg = jv_invalid_get_msg(v);
			*out = kwh_env_respond(kwh_env_new(), 500,
			    "an earlier stage produced output that is not JSON: %s",
			    jv_get_kind(msg) == JV_KIND_STRING ? jv_string_value(msg) : "parse error");
			jv_free(msg);
			r->eof = 1;
			return -1;
		}
		jv_free(v);
		if (jv_parser_remaining(r->parser) > 0)
			continue;	/* an RS byte: jq stopped early */
		if (r->eof)
			return 0;
		ssize_t n;
		do
			n = read(r->fd, r->buf, sizeof r->buf);
		while (n < 0 && errno == EINTR);
		if (n <= 0) {
			if (n < 0)
				kwh_log(KWH_LOG_ERROR, NULL, 0, "cannot read stdin: %s", strerror(errno));
			r->eof = 1;
			jv_parser_set_buf(r->parser, "", 0, 0);
		} else {
			jv_parser_set_buf(r->parser, r->buf, (int)n, 1);
		}
	}
}

int
kwh_env_write(jv env)
{
	jv_dumpf(env, stdout, 0);
	putchar('\n');
	if (fflush(stdout) == EOF || ferror(stdout))
		return -1;
	return 0;
}

int
kwh_env_loop(kwh_stage_fn fn, void *ctx)
{
	struct kwh_env_reader *r = kwh_env_reader_new(0);
	int code = KWH_EXIT_OK, got = 0, rc;
	jv env;

	if (!r)
		kwh_die(KWH_EXIT_SYSTEM, "out of memory");
	while ((rc = kwh_env_next(r, &env)) != 0) {
		got = 1;
		if (rc < 0) {
			code = KWH_EXIT_REFUSED;
		} else if (!kwh_env_has_response(env)) {
			long long t0 = kwh_metrics_clock();

			env = fn(ctx, env);
			kwh_metrics_stage(kwh_metrics_stage_of(kwh_progname), t0);
			if (kwh_env_status(env) >= 400)
				code = KWH_EXIT_REFUSED;
		}
		if (kwh_env_write(env) < 0) {
			kwh_env_reader_free(r);
			kwh_die(KWH_EXIT_SYSTEM, "cannot write to stdout: %s", strerror(errno));
		}
		if (rc < 0)
			break;
	}
	if (!got) {
		code = KWH_EXIT_REFUSED;
		env = kwh_env_respond(kwh_env_new(), 500,
		    "no envelope on stdin: an earlier stage produced nothing");
		if (kwh_env_write(env) < 0)
			code = KWH_EXIT_SYSTEM;
	}
	kwh_env_reader_free(r);
	return code;
}
