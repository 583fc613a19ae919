#include "annotate.h"
#include "buf.h"
#include "env.h"

#include <ctype.h>
#include <jq.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One compiled jq expression. */
struct prog {
	const char *arg;	/* the option's argument, borrowed from the opts */
	const char *text;	/* the expression in it */
	char *key;		/* --set: the annotation key (owned), else NULL */
	jq_state *jq;
};

/*
 * The bound on one --ignore-ref match (PCRE2's match limit, its count of
 * backtracking steps): refs come from the network, and a pattern that
 * backtracks badly on some ref must cost a bounded time, not hang the
 * delivery.  Far above what a real pattern on a real ref needs.
 */
#define IGNORE_MATCH_LIMIT 1000000

struct kwh_annotate_priv {
	pcre2_code *ignore;		/* NULL without --ignore-ref */
	pcre2_match_data *md;
	pcre2_match_context *mctx;
	struct prog *progs;	/* filters first, then sets */
	size_t nprogs, nfilters;
	int compiled;		/* jq_compile calls made */
};

/* The events kwh maps itself; anything else is "not handled". */
static const char *const known[] = {
	"check_run", "check_suite", "create", "delete", "pull_request", "push",
	"release", "workflow_dispatch",
};

/* The events handled without --events: the original k8s-webhook-handler's. */
static const char default_events[] = KWH_ANNOTATE_DEFAULT_EVENTS;
/* The pull_request actions handled without --pull-request-actions. */
static const char default_pr_actions[] = KWH_ANNOTATE_DEFAULT_PR_ACTIONS;

int
kwh_annotate_known_event(const char *event)
{
	for (size_t i = 0; i < sizeof known / sizeof *known; i++)
		if (!strcmp(event, known[i]))
			return 1;
	return 0;
}

/* --- reading the payload ------------------------------------------------ */

static const char *
kind_an(jv_kind k)
{
	switch (k) {
	case JV_KIND_OBJECT: return "an object";
	case JV_KIND_ARRAY: return "an array";
	case JV_KIND_NUMBER: return "a number";
	case JV_KIND_STRING: return "a string";
	case JV_KIND_TRUE: case JV_KIND_FALSE: return "a boolean";
	case JV_KIND_NULL: return "null";
	default: return "invalid";
	}
}

static jv
bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static jv
bad(const char *fmt, ...)
{
	struct kwh_buf b = KWH_BUF_INIT;
	va_list ap;
	jv msg;

	va_start(ap, fmt);
	kwh_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	msg = jv_string(b.data ? b.data : "bad payload");
	kwh_buf_release(&b);
	return jv_invalid_with_msg(msg);
}

/*
 * The value at the dotted path under payload (borrowed), e.g.
 * "check_run.check_suite.head_branch": jv_null() when it or a parent is
 * null or missing; invalid naming the field when a parent is not an object.
 */
static jv
at(jv payload, const char *path)
{
	jv v = jv_copy(payload);
	const char *p = path, *dot;
	char name[64];

	if (jv_get_kind(v) != JV_KIND_OBJECT) {
		jv_free(v);
		return jv_null();
	}
	for (;;) {
		size_t n;

		dot = strchr(p, '.');
		n = dot ? (size_t)(dot - p) : strlen(p);
		if (n >= sizeof name)
			n = sizeof name - 1;
		memcpy(name, p, n);
		name[n] = '\0';
		v = jv_object_get(v, jv_string(name));
		if (!jv_is_valid(v)) {
			jv_free(v);
			return jv_null();
		}
		if (!dot || jv_get_kind(v) == JV_KIND_NULL)
			return v;
		if (jv_get_kind(v) != JV_KIND_OBJECT) {
			jv r = bad("payload.%.*s is %s, not an object",
			    (int)(dot - path), path, kind_an(jv_get_kind(v)));
			jv_free(v);
			return r;
		}
		p = dot + 1;
	}
}

/*
 * The string at path, or "" for null or missing (as a jv string); invalid
 * naming the field when it has another type.
 */
static jv
str_at(jv payload, const char *path)
{
	jv v = at(payload, path);

	switch (jv_get_kind(v)) {
	case JV_KIND_STRING:
	case JV_KIND_INVALID:
		return v;
	case JV_KIND_NULL:
		jv_free(v);
		return jv_string("");
	default: {
		jv r = bad("payload.%s is %s, not a string", path, kind_an(jv_get_kind(v)));
		jv_free(v);
		return r;
	}
	}
}

/* "" stays "", anything else gets prefix in front. */
static jv
prefixed(const char *prefix, jv s)
{
	if (!jv_is_valid(s) || jv_string_length_bytes(jv_copy(s)) == 0)
		return s;
	return jv_string_concat(jv_string(prefix), s);
}

/* delete and create: refs/heads/X or refs/tags/X from ref_type and ref. */
static jv
typed_ref(jv payload)
{
	jv ref = str_at(payload, "ref"), type;
	const char *t;

	if (!jv_is_valid(ref) || jv_string_length_bytes(jv_copy(ref)) == 0)
		return ref;
	type = str_at(payload, "ref_type");
	if (!jv_is_valid(type)) {
		jv_free(ref);
		return type;
	}
	t = jv_string_value(type);
	if (!strcmp(t, "branch") || !strcmp(t, "tag")) {
		jv r = jv_string_concat(jv_string(*t == 'b' ? "refs/heads/" : "refs/tags/"), ref);
		jv_free(type);
		return r;
	}
	jv r = *t ? bad("payload.ref_type is '%.64s', not 'branch' or 'tag'", t)
	    : bad("payload.ref_type is missing, needed with payload.ref");
	jv_free(type);
	jv_free(ref);
	return r;
}

/* pull_request: refs/pull/N/head, N from .number or .pull_request.number. */
static jv
pull_ref(jv payload)
{
	jv n = at(payload, "number");
	const char *field = "number";
	char buf[64];

	if (jv_get_kind(n) == JV_KIND_NULL) {
		jv_free(n);
		n = at(payload, "pull_request.number");
		field = "pull_request.number";
	}
	if (!jv_is_valid(n) || jv_get_kind(n) == JV_KIND_NULL)
		return jv_is_valid(n) ? (jv_free(n), jv_string("")) : n;
	if (jv_get_kind(n) != JV_KIND_NUMBER) {
		jv r = bad("payload.%s is %s, not a number", field, kind_an(jv_get_kind(n)));
		jv_free(n);
		return r;
	}
	double d = jv_number_value(n);
	jv_free(n);
	if (!(d >= 1 && d <= 1e15) || d != (double)(long long)d)
		return bad("payload.%s is not a pull request number", field);
	snprintf(buf, sizeof buf, "refs/pull/%lld/head", (long long)d);
	return jv_string(buf);
}

struct field {
	const char *key;	/* after the prefix */
	jv value;
};

jv
kwh_annotate_event(const char *event, jv payload, int generic)
{
	struct field f[] = {
		{ "ref", jv_invalid() }, { "revision", jv_invalid() },
		{ "before", jv_invalid() }, { "repo_name", jv_invalid() },
		{ "repo_url", jv_invalid() }, { "repo_ssh", jv_invalid() },
		{ "event_type", jv_invalid() }, { "event_action", jv_invalid() },
	};
	enum { REF, REV, BEFORE, NAME, URL, SSH, TYPE, ACTION, NF };
	jv repo, out = jv_invalid();
	int failed = 0;
	size_t i;

	if (jv_get_kind(payload) != JV_KIND_OBJECT)
		return bad("the payload is %s, not an object", kind_an(jv_get_kind(payload)));
	repo = at(payload, "repository");
	if (!jv_is_valid(repo))
		return repo;
	if (jv_get_kind(repo) == JV_KIND_NULL && !generic)
		return bad("payload.repository is missing");
	if (jv_get_kind(repo) != JV_KIND_NULL && jv_get_kind(repo) != JV_KIND_OBJECT) {
		jv r = bad("payload.repository is %s, not an object", kind_an(jv_get_kind(repo)));
		jv_free(repo);
		return r;
	}
	jv_free(repo);
	f[NAME].value = str_at(payload, "repository.full_name");
	f[URL].value = str_at(payload, "repository.git_url");
	f[SSH].value = str_at(payload, "repository.ssh_url");
	f[TYPE].value = jv_string(event);
	f[ACTION].value = str_at(payload, "action");

	if (generic) {
		f[REF].value = jv_string("");
		f[REV].value = jv_string("");
		f[BEFORE].value = jv_string("");
	} else if (!strcmp(event, "push")) {
		f[REF].value = str_at(payload, "ref");
		f[REV].value = str_at(payload, "after");
		f[BEFORE].value = str_at(payload, "before");
	} else if (!strcmp(event, "delete") || !strcmp(event, "create")) {
		f[REF].value = typed_ref(payload);
		f[REV].value = jv_string("");
		f[BEFORE].value = jv_string("");
	} else if (!strcmp(event, "check_run")) {
		f[REF].value = prefixed("refs/heads/", str_at(payload, "check_run.check_suite.head_branch"));
		f[REV].value = str_at(payload, "check_run.head_sha");
		f[BEFORE].value = jv_string("");
	} else if (!strcmp(event, "check_suite")) {
		f[REF].value = prefixed("refs/heads/", str_at(payload, "check_suite.head_branch"));
		f[REV].value = str_at(payload, "check_suite.after");
		f[BEFORE].value = str_at(payload, "check_suite.before");
	} else if (!strcmp(event, "pull_request")) {
		f[REF].value = pull_ref(payload);
		f[REV].value = str_at(payload, "pull_request.head.sha");
		f[BEFORE].value = str_at(payload, "before");
	} else if (!strcmp(event, "release")) {
		f[REF].value = prefixed("refs/tags/", str_at(payload, "release.tag_name"));
		f[REV].value = jv_string("");
		f[BEFORE].value = jv_string("");
	} else if (!strcmp(event, "workflow_dispatch")) {
		f[REF].value = str_at(payload, "ref");
		f[REV].value = jv_string("");
		f[BEFORE].value = jv_string("");
	} else {
		out = bad("event %s has no mapping", event);
		failed = 1;
	}

	for (i = 0; i < NF && !failed; i++)
		if (!jv_is_valid(f[i].value)) {
			out = jv_copy(f[i].value);
			failed = 1;
		}
	if (!failed) {
		out = jv_object();
		for (i = 0; i < NF; i++) {
			char key[64];
			snprintf(key, sizeof key, KWH_ANNOTATE_PREFIX "%s", f[i].key);
			out = jv_object_set(out, jv_string(key), f[i].value);
			f[i].value = jv_invalid();
		}
	}
	for (i = 0; i < NF; i++)
		jv_free(f[i].value);
	return out;
}

/* --- Kubernetes validation --------------------------------------------- */

static int
alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* A DNS-1123 subdomain, compared lower-cased as the API server does. */
static const char *
bad_prefix(const char *p, size_t n)
{
	size_t i, label = 0;

	if (n == 0)
		return "the prefix before '/' is empty";
	if (n > 253)
		return "the prefix is longer than 253 characters";
	for (i = 0; i < n; i++) {
		int c = tolower((unsigned char)p[i]);
		if (c == '.') {
			if (label == 0 || p[i - 1] == '-')
				return "the prefix is not a DNS subdomain (lower-case letters, digits, '-' and '.')";
			label = 0;
			continue;
		}
		if (!(alnum(c) || c == '-') || (c == '-' && label == 0))
			return "the prefix is not a DNS subdomain (lower-case letters, digits, '-' and '.')";
		label++;
	}
	if (label == 0 || p[n - 1] == '-')
		return "the prefix is not a DNS subdomain (lower-case letters, digits, '-' and '.')";
	return NULL;
}

static const char *
bad_name(const char *p, size_t n)
{
	if (n == 0)
		return "the name is empty";
	if (n > 63)
		return "the name is longer than 63 characters";
	if (!alnum((unsigned char)p[0]) || !alnum((unsigned char)p[n - 1]))
		return "the name must start and end with a letter or digit";
	for (size_t i = 0; i < n; i++)
		if (!alnum((unsigned char)p[i]) && p[i] != '-' && p[i] != '_' && p[i] != '.')
			return "the name may hold only letters, digits, '-', '_' and '.'";
	return NULL;
}

int
kwh_annotate_validate(jv ann, char *err, size_t errlen)
{
	size_t total = 0;
	int it, ok = 0;

	if (jv_get_kind(ann) != JV_KIND_OBJECT) {
		snprintf(err, errlen, "annotations is %s, not an object", kind_an(jv_get_kind(ann)));
		return -1;
	}
	for (it = jv_object_iter(ann); jv_object_iter_valid(ann, it) && ok == 0;
	    it = jv_object_iter_next(ann, it)) {
		jv k = jv_object_iter_key(ann, it);
		jv v = jv_object_iter_value(ann, it);
		const char *key = jv_string_value(k), *why, *slash;
		size_t klen = (size_t)jv_string_length_bytes(jv_copy(k));

		slash = memchr(key, '/', klen);
		if (strlen(key) != klen)
			why = "it holds a NUL byte";
		else if (slash && memchr(slash + 1, '/', klen - (size_t)(slash + 1 - key)))
			why = "it holds more than one '/'";
		else if (slash && (why = bad_prefix(key, (size_t)(slash - key))))
			;
		else
			why = slash ? bad_name(slash + 1, klen - (size_t)(slash + 1 - key)) : bad_name(key, klen);
		if (why) {
			snprintf(err, errlen, "annotation key '%.300s' is invalid: %s", key, why);
			ok = -1;
		} else if (jv_get_kind(v) != JV_KIND_STRING) {
			snprintf(err, errlen, "annotation '%s' is %s, not a string", key,
			    kind_an(jv_get_kind(v)));
			ok = -1;
		} else {
			total += klen + (size_t)jv_string_length_bytes(jv_copy(v));
			if (total > KWH_ANNOTATE_MAX_TOTAL) {
				snprintf(err, errlen, "annotations are larger than %d bytes "
				    "(Kubernetes' limit) at key '%s'", KWH_ANNOTATE_MAX_TOTAL, key);
				ok = -1;
			}
		}
		jv_free(k);
		jv_free(v);
	}
	return ok;
}

/* --- options, compiled once -------------------------------------------- */

static void
jq_err_cb(void *data, jv msg)
{
	struct kwh_buf *b = data;

	msg = jq_format_error(msg);
	if (jv_get_kind(msg) == JV_KIND_STRING) {
		if (b->len)
			kwh_buf_adds(b, "; ");
		kwh_buf_adds(b, jv_string_value(msg));
	}
	jv_free(msg);
}

static int
compile(struct kwh_annotate_priv *p, struct prog *g, const char *opt,
    char *err, size_t errlen)
{
	struct kwh_buf msg = KWH_BUF_INIT;
	int ok;

	if (!(g->jq = jq_init())) {
		snprintf(err, errlen, "%s '%s': out of memory", opt, g->arg);
		return -1;
	}
	jq_set_error_cb(g->jq, jq_err_cb, &msg);
	p->compiled++;
	ok = jq_compile(g->jq, g->text);
	jq_set_error_cb(g->jq, jq_err_cb, NULL);
	if (!ok)
		snprintf(err, errlen, "%s '%s': %s", opt, g->arg,
		    msg.data ? msg.data : "does not compile");
	kwh_buf_release(&msg);
	return ok ? 0 : -1;
}

/* A comma-separated list of names (opt's argument, what names them). */
static int
check_list(const char *opt, const char *what, const char *list, char *err, size_t errlen)
{
	const char *p = list;

	if (!*p) {
		snprintf(err, errlen, "%s: the list is empty", opt);
		return -1;
	}
	for (; *p; p++) {
		if (*p == ',' ? (p == list || p[1] == ',' || p[1] == '\0')
		    : !((*p >= 'a' && *p <= 'z') || *p == '_' || (*p >= '0' && *p <= '9'))) {
			snprintf(err, errlen, "%s: '%s' is not a comma-separated list of %s",
			    opt, list, what);
			return -1;
		}
	}
	return 0;
}

int
kwh_annotate_init(struct kwh_annotate_opts *o, char *err, size_t errlen)
{
	struct kwh_annotate_priv *p;
	size_t i;

	err[0] = '\0';
	o->priv = NULL;
	if (o->events && check_list("--events", "event names", o->events, err, errlen) < 0)
		return -1;
	if (o->pr_actions && strcmp(o->pr_actions, "all") &&
	    check_list("--pull-request-actions", "actions (or 'all')", o->pr_actions, err, errlen) < 0)
		return -1;
	if (!(p = calloc(1, sizeof *p))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	o->priv = p;
	if (o->ignore_ref) {
		int code;
		PCRE2_SIZE off;
		PCRE2_UCHAR e[256];

		/* RE2's syntax (the original's) is, but for a few corners, a
		 * subset of PCRE2's; UTF: RE2 matches UTF-8 characters too. */
		p->ignore = pcre2_compile((PCRE2_SPTR)o->ignore_ref, PCRE2_ZERO_TERMINATED,
		    PCRE2_UTF, &code, &off, NULL);
		if (!p->ignore) {
			pcre2_get_error_message(code, e, sizeof e);
			snprintf(err, errlen, "--ignore-ref '%s': at offset %zu: %s",
			    o->ignore_ref, (size_t)off, (const char *)e);
			goto fail;
		}
		if (!(p->md = pcre2_match_data_create(1, NULL)) ||
		    !(p->mctx = pcre2_match_context_create(NULL))) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		pcre2_set_match_limit(p->mctx, IGNORE_MATCH_LIMIT);
	}
	if (o->nfilters + o->nsets &&
	    !(p->progs = calloc(o->nfilters + o->nsets, sizeof *p->progs))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	p->nfilters = o->nfilters;
	for (i = 0; i < o->nsets; i++) {
		struct prog *g = &p->progs[o->nfilters + i];
		const char *eq = strchr(o->sets[i], '=');
		char why[160];

		if (!eq) {
			snprintf(err, errlen, "--set '%s': not KEY=EXPR", o->sets[i]);
			goto fail;
		}
		g->key = strndup(o->sets[i], (size_t)(eq - o->sets[i]));
		g->arg = o->sets[i];
		g->text = eq + 1;
		p->nprogs++;
		if (!g->key) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		/* Check the key now: a bad one could never be applied. */
		jv one = jv_object_set(jv_object(), jv_string(g->key), jv_string(""));
		int rc = kwh_annotate_validate(one, why, sizeof why);
		jv_free(one);
		if (rc < 0) {
			snprintf(err, errlen, "--set '%s': %s", o->sets[i], why);
			goto fail;
		}
		if (!*g->text) {
			snprintf(err, errlen, "--set '%s': the expression is empty", o->sets[i]);
			goto fail;
		}
	}
	for (i = 0; i < o->nfilters; i++) {
		struct prog *g = &p->progs[i];
		g->arg = g->text = o->filters[i];
		p->nprogs++;
		if (compile(p, g, "--filter", err, errlen) < 0)
			goto fail;
	}
	for (i = 0; i < o->nsets; i++)
		if (compile(p, &p->progs[o->nfilters + i], "--set", err, errlen) < 0)
			goto fail;
	return 0;
fail:
	kwh_annotate_release(o);
	return -1;
}

int
kwh_annotate_programs(const struct kwh_annotate_opts *o)
{
	return o->priv ? o->priv->compiled : 0;
}

void
kwh_annotate_release(struct kwh_annotate_opts *o)
{
	struct kwh_annotate_priv *p = o->priv;

	if (!p)
		return;
	pcre2_code_free(p->ignore);
	pcre2_match_data_free(p->md);
	pcre2_match_context_free(p->mctx);
	for (size_t i = 0; i < p->nprogs; i++) {
		if (p->progs[i].jq)
			jq_teardown(&p->progs[i].jq);
		free(p->progs[i].key);
	}
	free(p->progs);
	free(p);
	o->priv = NULL;
}

/* --- the stage ---------------------------------------------------------- */

static int
event_listed(const char *list, const char *event)
{
	size_t n = strlen(event);

	for (const char *p = list; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (!strncmp(p, event, n) && (p[n] == ',' || p[n] == '\0'))
			return 1;
	return 0;
}

/*
 * The first output of g on env (borrowed): 1 with *out set, 0 for no
 * output, -1 with *out the error message (a string) when it failed.
 */
static int
run(struct prog *g, jv env, jv *out)
{
	jv v;

	jq_start(g->jq, jv_copy(env), 0);
	v = jq_next(g->jq);
	if (jv_is_valid(v)) {
		*out = v;
		return 1;
	}
	if (jv_invalid_has_msg(jv_copy(v)) && !jq_halted(g->jq)) {
		jv m = jv_invalid_get_msg(v);
		*out = jv_get_kind(m) == JV_KIND_STRING ? m : jv_dump_string(m, 0);
		return -1;
	}
	jv_free(v);
	return 0;
}

static const char *
pong_id(jv payload, char *buf, size_t n)
{
	jv id = at(payload, "hook_id");

	buf[0] = '\0';
	if (jv_get_kind(id) == JV_KIND_NUMBER && jv_number_value(id) >= 0 &&
	    jv_number_value(id) < 1e18)
		snprintf(buf, n, " (hook %.0f)", jv_number_value(id));
	jv_free(id);
	return buf;
}

jv
kwh_annotate(void *ctx, jv env)
{
	struct kwh_annotate_opts *o = ctx;
	struct kwh_annotate_priv *p = o->priv;
	jv event = jv_object_get(jv_copy(env), jv_string("event"));
	jv payload, ann, have;
	const char *ev;
	char err[512];
	size_t i;

	if (jv_get_kind(event) != JV_KIND_STRING || !*jv_string_value(event)) {
		jv_free(event);
		return kwh_env_respond(env, 400, "the envelope has no event name");
	}
	ev = jv_string_value(event);
	payload = jv_object_get(jv_copy(env), jv_string("payload"));
	if (!strcmp(ev, "ping")) {
		env = kwh_env_respond(env, 200, "pong%s", pong_id(payload, err, sizeof err));
		goto out;
	}
	const char *events = o->events ? o->events : default_events;
	if (!event_listed(events, ev)) {
		env = kwh_env_respond(env, 202, "event %s is not handled", ev);
		goto out;
	}
	/* Only the actions that change the code, unless asked. */
	const char *actions = o->pr_actions ? o->pr_actions : default_pr_actions;
	if (!strcmp(ev, "pull_request") && strcmp(actions, "all")) {
		jv a = at(payload, "action");
		int pass = jv_get_kind(a) == JV_KIND_STRING && event_listed(actions, jv_string_value(a));
		if (!pass)
			env = kwh_env_respond(env, 202, "pull_request action %s is not handled",
			    jv_get_kind(a) == JV_KIND_STRING ? jv_string_value(a) : "(none)");
		jv_free(a);
		if (!pass)
			goto out;
	}
	ann = kwh_annotate_event(ev, payload, !kwh_annotate_known_event(ev));
	if (!jv_is_valid(ann)) {
		jv m = jv_invalid_get_msg(ann);
		env = kwh_env_respond(env, 400, "%s", jv_string_value(m));
		jv_free(m);
		goto out;
	}
	if (p->ignore) {
		jv ref = jv_object_get(jv_copy(ann), jv_string(KWH_ANNOTATE_PREFIX "ref"));
		const char *r = jv_string_value(ref);
		int rc = pcre2_match(p->ignore, (PCRE2_SPTR)r,
		    (PCRE2_SIZE)jv_string_length_bytes(jv_copy(ref)), 0, 0, p->md, p->mctx);

		if (rc >= 0)
			env = kwh_env_respond(env, 202, "ref %s is ignored", r);
		else if (rc != PCRE2_ERROR_NOMATCH) {
			PCRE2_UCHAR e[256];
			pcre2_get_error_message(rc, e, sizeof e);
			env = kwh_env_respond(env, 422, "--ignore-ref '%s' on ref %s: %s",
			    o->ignore_ref, r, (const char *)e);
		}
		jv_free(ref);
		if (rc != PCRE2_ERROR_NOMATCH) {
			jv_free(ann);
			goto out;
		}
	}
	/* Theirs (a custom step's) stay for keys we do not set; ours win. */
	have = jv_object_get(jv_copy(env), jv_string("annotations"));
	if (jv_get_kind(have) == JV_KIND_OBJECT)
		ann = jv_object_merge(have, ann);
	else
		jv_free(have);
	env = jv_object_set(env, jv_string("annotations"), ann);

	for (i = 0; i < p->nprogs; i++) {
		struct prog *g = &p->progs[i];
		jv v;
		int rc = run(g, env, &v);

		if (rc < 0) {
			env = kwh_env_respond(env, 422, "%s '%s' failed: %s",
			    g->key ? "--set" : "--filter", g->arg, jv_string_value(v));
			jv_free(v);
			goto out;
		}
		if (!g->key) {
			int pass = rc > 0 && jv_get_kind(v) != JV_KIND_NULL &&
			    jv_get_kind(v) != JV_KIND_FALSE;
			if (rc > 0)
				jv_free(v);
			if (!pass) {
				env = kwh_env_respond(env, 202, "filtered out by %s", g->text);
				goto out;
			}
			continue;
		}
		if (rc == 0 || jv_get_kind(v) == JV_KIND_NULL) {
			if (rc > 0)
				jv_free(v);
			ann = jv_object_get(jv_copy(env), jv_string("annotations"));
			env = jv_object_delete(env, jv_string("annotations"));
			ann = jv_object_delete(ann, jv_string(g->key));
			env = jv_object_set(env, jv_string("annotations"), ann);
			continue;
		}
		if (jv_get_kind(v) == JV_KIND_OBJECT || jv_get_kind(v) == JV_KIND_ARRAY) {
			env = kwh_env_respond(env, 422, "--set '%s=%s' gave %s, not a string, "
			    "number or boolean", g->key, g->text, kind_an(jv_get_kind(v)));
			jv_free(v);
			goto out;
		}
		if (jv_get_kind(v) != JV_KIND_STRING)
			v = jv_dump_string(v, 0);
		ann = jv_object_get(jv_copy(env), jv_string("annotations"));
		env = jv_object_delete(env, jv_string("annotations"));
		ann = jv_object_set(ann, jv_string(g->key), v);
		env = jv_object_set(env, jv_string("annotations"), ann);
	}

	ann = jv_object_get(jv_copy(env), jv_string("annotations"));
	if (kwh_annotate_validate(ann, err, sizeof err) < 0)
		env = kwh_env_respond(env, 422, "%s", err);
	jv_free(ann);
out:
	jv_free(payload);
	jv_free(event);
	return env;
}
