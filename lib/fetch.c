/* fetch.c — the kwh-fetch stage (see fetch.h). */
#include "fetch.h"
#include "buf.h"
#include "env.h"
#include "err.h"
#include "yaml.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define ANN "k8s-webhook-handler.io/"

/* The string at obj.k1.k2 (k2 may be NULL) into out, "" when not a string. */
static const char *
get_str(jv obj, const char *k1, const char *k2, char *out, size_t n)
{
	jv v = jv_copy(obj);

	out[0] = '\0';
	if (jv_get_kind(v) == JV_KIND_OBJECT)
		v = jv_object_get(v, jv_string(k1));
	if (k2 && jv_get_kind(v) == JV_KIND_OBJECT)
		v = jv_object_get(v, jv_string(k2));
	if (jv_get_kind(v) == JV_KIND_STRING)
		snprintf(out, n, "%s", jv_string_value(v));
	jv_free(v);
	return out;
}

static int
safe_name_part(const char *s, size_t n)
{
	size_t i;

	if (!n || s[0] == '.')
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return 0;
	return 1;
}

/* Expands the --remote template; -1 when full_name is not "owner/name". */
static int
expand_remote(struct kwh_buf *out, const char *tpl, const char *full)
{
	const char *slash = strchr(full, '/'), *p;

	if (!slash || !safe_name_part(full, (size_t)(slash - full)) ||
	    !safe_name_part(slash + 1, strlen(slash + 1)))
		return -1;
	for (p = tpl; *p; ) {
		if (!strncmp(p, "{full_name}", 11)) {
			kwh_buf_adds(out, full);
			p += 11;
		} else if (!strncmp(p, "{owner}", 7)) {
			kwh_buf_add(out, full, (size_t)(slash - full));
			p += 7;
		} else if (!strncmp(p, "{name}", 6)) {
			kwh_buf_adds(out, slash + 1);
			p += 6;
		} else {
			kwh_buf_addc(out, *p++);
		}
	}
	return out->data ? 0 : -1;
}

struct collect {
	jv objs;
	const char *hex;
	int status;
	char msg[768];
	size_t bytes, max_bytes;	/* over all the files */
	struct kwh_yaml_budget budget;	/* nodes, objects, deadline */
};

static int
on_file(void *arg, const char *name, const char *data, size_t len)
{
	struct collect *c = arg;
	char e[512];
	jv objs;
	int r;

	c->bytes += len;
	if (c->max_bytes && c->bytes > c->max_bytes) {
		c->status = 422;
		snprintf(c->msg, sizeof c->msg, "refused %s at %s: the manifests are more than "
		    "%zu bytes in all (--max-manifest-bytes)", name, c->hex, c->max_bytes);
		return 1;
	}
	r = kwh_yaml_manifests_budget(&objs, data, len, NULL, &c->budget, e, sizeof e);
	if (r == KWH_YAML_ENOMEM) {
		c->status = 500;
		snprintf(c->msg, sizeof c->msg, "out of memory reading %s at %s", name, c->hex);
		return 1;
	}
	if (r == KWH_YAML_EDEADLINE) {
		c->status = 504;
		snprintf(c->msg, sizeof c->msg, "deadline passed while reading %s at %s (%s)",
		    name, c->hex, e);
		return 1;
	}
	if (r == KWH_YAML_ETOTAL) {
		c->status = 422;
		snprintf(c->msg, sizeof c->msg, "refused %s at %s: %s (%s)", name, c->hex, e,
		    strstr(e, "objects") ? "--max-objects" : "--max-yaml-nodes");
		return 1;
	}
	if (r < 0) {
		c->status = 422;
		snprintf(c->msg, sizeof c->msg, "%s %s at %s: %s",
		    r == KWH_YAML_ELIMIT ? "refused" : r == KWH_YAML_ENOTOBJ ?
		    "not a Kubernetes object in" : "invalid YAML in", name, c->hex, e);
		return 1;
	}
	if (jv_array_length(jv_copy(objs)) == 0) {
		jv_free(objs);
		c->status = 422;
		snprintf(c->msg, sizeof c->msg, "no objects in %s at %s", name, c->hex);
		return 1;
	}
	c->objs = jv_array_concat(c->objs, objs);
	return 0;
}

static int
git_status(int r)
{
	switch (r) {
	case KWH_GIT_ENOTFOUND: return 404;
	case KWH_GIT_EREMOTE: return 502;
	case KWH_GIT_EDEADLINE: return 504;
	case KWH_GIT_EREFUSED: return 422;
	case KWH_GIT_EBADREV: return 422;
	default: return 500;
	}
}

/*
 * The response for a git failure.  A missing revision or path, or a bad
 * revision, is the sender's business and told as is; anything else (a
 * refused, unreachable or silent remote, the local cache) is detailed in
 * the log only: the sender picks the URL, and the details would tell it
 * about our host and its network.
 */
static jv
git_fail(jv env, int r, const char *err)
{
	char d[128];
	int status = git_status(r);

	if (r == KWH_GIT_EBACKGROUND) {
		jv resp;

		kwh_env_str(env, "delivery", d, sizeof d);
		kwh_log(KWH_LOG_WARN, d, 503, "%s: answered 503, retry after %d s", err,
		    KWH_FETCH_RETRY_AFTER);
		env = kwh_env_respond(env, 503, "the repository is still being fetched, in the "
		    "background: redeliver after %d seconds (see the log for delivery %s)",
		    KWH_FETCH_RETRY_AFTER, *d ? d : "-");
		resp = jv_object_get(jv_copy(env), jv_string("response"));
		resp = jv_object_set(resp, jv_string("retry_after"), jv_number(KWH_FETCH_RETRY_AFTER));
		return jv_object_set(env, jv_string("response"), resp);
	}
	if (r == KWH_GIT_ENOTFOUND || r == KWH_GIT_EBADREV)
		return kwh_env_respond(env, status, "%s", err);
	kwh_env_str(env, "delivery", d, sizeof d);
	kwh_log(status >= 500 ? KWH_LOG_ERROR : KWH_LOG_WARN, d, status, "%s", err);
	return kwh_env_respond(env, status, "fetching the repository failed; see the log for delivery %s",
	    *d ? d : "-");
}

jv
kwh_fetch(void *ctx, jv env)
{
	const struct kwh_fetch_opts *o = ctx;
	char rev[128], ref[512], full[512], fallback[256], url[2048], shown[2048];
	char hex[41], err[1024];
	const char *key, *revp;
	struct kwh_buf b = KWH_BUF_INIT, apptok = KWH_BUF_INIT;
	struct kwh_git *g = NULL;
	struct kwh_git_opts gopts = o->git;
	struct collect c;
	jv ann, repo, d, src;
	long long deadline;
	long inst = 0;
	int r;

	ann = jv_object_get(jv_copy(env), jv_string("annotations"));
	get_str(ann, ANN "revision", NULL, rev, sizeof rev);
	get_str(ann, ANN "ref", NULL, ref, sizeof ref);
	jv_free(ann);
	repo = jv_object_get(jv_copy(env), jv_string("payload"));
	if (jv_get_kind(repo) == JV_KIND_OBJECT) {
		/* a GitHub App's hook says which installation sent it */
		jv in = jv_object_get(jv_copy(repo), jv_string("installation"));
		jv id = jv_get_kind(in) == JV_KIND_OBJECT ? jv_object_get(in, jv_string("id")) :
		    (jv_free(in), jv_invalid());

		if (jv_get_kind(id) == JV_KIND_NUMBER && jv_number_value(id) > 0 &&
		    jv_number_value(id) < 1e15)
			inst = (long)jv_number_value(id);
		jv_free(id);
		repo = jv_object_get(repo, jv_string("repository"));
	}
	if (jv_get_kind(repo) != JV_KIND_OBJECT) {
		jv_free(repo);
		return kwh_env_respond(env, 400, "the payload has no repository object");
	}
	get_str(repo, "default_branch", NULL, fallback, sizeof fallback);
	get_str(repo, "full_name", NULL, full, sizeof full);
	if (o->remote) {
		if (expand_remote(&b, o->remote, full) < 0) {
			jv_free(repo);
			kwh_buf_release(&b);
			return kwh_env_respond(env, 400,
			    "repository.full_name '%s' is not OWNER/NAME", full);
		}
		snprintf(url, sizeof url, "%s", b.data);
		kwh_buf_release(&b);
	} else {
		key = o->git.ssh_key ? "ssh_url" : o->use_git_url ? "git_url" : "clone_url";
		if (!*get_str(repo, key, NULL, url, sizeof url)) {
			jv_free(repo);
			return kwh_env_respond(env, 400, "the payload has no repository.%s", key);
		}
	}
	jv_free(repo);
	kwh_git_redact_url(url, shown, sizeof shown);

	revp = rev;
	if (!*rev || strspn(rev, "0") == strlen(rev))
		revp = NULL;	/* a delete: the default branch */
	d = jv_object_get(jv_copy(env), jv_string("deadline"));
	deadline = jv_get_kind(d) == JV_KIND_NUMBER ? (long long)jv_number_value(d) :
	    kwh_now_ms() + o->timeout_ms;
	jv_free(d);
	/* git work stops a margin before the deadline: the answer must be
	 * written, and reach the sender, before it */
	deadline -= KWH_GIT_MARGIN_MS;
	if (kwh_now_ms() >= deadline)
		return kwh_env_respond(env, 504, "deadline passed before fetching from %s", shown);

	if (o->app && (!strncmp(url, "https://", 8) || !strncmp(url, "http://", 7))) {
		/* the App's installation token is the password, as --token-file's would be */
		if (!o->app->installation_id && inst <= 0)
			return kwh_env_respond(env, 400, "the payload has no installation.id: the hook "
			    "is not a GitHub App's (give --installation-id, or --token-file)");
		if (kwh_github_installation_token(o->app, inst, deadline, &apptok, err, sizeof err) < 0) {
			char did[128];

			kwh_buf_wipe(&apptok);
			kwh_log(KWH_LOG_ERROR, kwh_env_str(env, "delivery", did, sizeof did), 502,
			    "cannot fetch from %s: %s", shown, err);
			return kwh_env_respond(env, 502, "GitHub gave no installation token to fetch "
			    "from %s (see the log)", shown);
		}
		gopts.token = apptok.data;
	}
	if ((r = kwh_git_open(&g, &gopts, url, deadline, err, sizeof err)) == 0)
		kwh_git_set_delivery(g, kwh_env_str(env, "delivery", full, sizeof full));
	if (r < 0 || (r = kwh_git_resolve(g, revp, ref, fallback, hex, err, sizeof err)) < 0) {
		kwh_git_close(g);
		kwh_buf_wipe(&apptok);
		return git_fail(env, r, err);
	}
	c.objs = jv_array();
	c.hex = hex;
	c.status = 0;
	c.msg[0] = '\0';
	c.bytes = 0;
	c.max_bytes = o->max_bytes;
	memset(&c.budget, 0, sizeof c.budget);
	c.budget.deadline = deadline;
	c.budget.max_nodes = o->max_nodes;
	c.budget.max_objects = o->max_objects;
	r = kwh_git_read(g, hex, o->path, on_file, &c, err, sizeof err);
	kwh_git_close(g);
	kwh_buf_wipe(&apptok);
	if (r != 0) {
		jv_free(c.objs);
		if (r > 0)
			return kwh_env_respond(env, c.status, "%s", c.msg);
		return git_fail(env, r, err);
	}
	kwh_log(KWH_LOG_INFO, kwh_env_str(env, "delivery", full, sizeof full), 0,
	    "%d objects from %s at %s:%s", jv_array_length(jv_copy(c.objs)), shown, hex, o->path);
	src = jv_object_set(jv_object(), jv_string("url"), jv_string(shown));
	src = jv_object_set(src, jv_string("revision"), jv_string(hex));
	src = jv_object_set(src, jv_string("path"), jv_string(o->path));
	env = jv_object_set(env, jv_string("manifests"), c.objs);
	return jv_object_set(env, jv_string("source"), src);
}
