/* apply.c — the kwh-apply stage (see apply.h and kwh-apply(1)). */
#include "apply.h"
#include "buf.h"
#include "sig.h"
#include "env.h"
#include "err.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GENERATED 58	/* 63 - 5, as the API server cuts generateName */

int
kwh_apply_init(struct kwh_apply *a, int *usage, char *err, size_t errlen)
{
	*usage = 0;
	for (size_t i = 0; i < a->n_allow_ns; i++) {
		char *re;
		int rc;

		if (asprintf(&re, "^(%s)$", a->allow_ns[i]) < 0)
			kwh_die(KWH_EXIT_SYSTEM, "out of memory");
		rc = regcomp(&a->ns_re[a->n_ns_re], re, REG_EXTENDED | REG_NOSUB);
		free(re);
		if (rc) {
			*usage = 1;
			snprintf(err, errlen, "--allow-namespace: '%s' is not an extended regular expression",
			    a->allow_ns[i]);
			return -1;
		}
		a->n_ns_re++;
	}
	if (kwh_kube_config_load(&a->cfg, &a->src, err, errlen) < 0) {
		kwh_kube_config_release(&a->cfg);
		if (a->dry_run == KWH_DRY_CLIENT)
			return 0;
		return -1;
	}
	a->have_cfg = 1;
	if (a->dry_run != KWH_DRY_CLIENT && !(a->kube = kwh_kube_new(&a->cfg, a->cache_dir)))
		kwh_die(KWH_EXIT_SYSTEM, "out of memory");
	return 0;
}

void
kwh_apply_release(struct kwh_apply *a)
{
	kwh_kube_free(a->kube);
	a->kube = NULL;
	if (a->have_cfg)
		kwh_kube_config_release(&a->cfg);
	a->have_cfg = 0;
	for (size_t i = 0; i < a->n_ns_re; i++)
		regfree(&a->ns_re[i]);
	a->n_ns_re = 0;
}

void
kwh_apply_dedupe_name(char *out, const char *gen, const char *key, size_t index)
{
	static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char md[SHA256_DIGEST_LENGTH];
	char in[512];
	size_t n = strlen(gen);
	int len;

	if (n > MAX_GENERATED)
		n = MAX_GENERATED;
	len = snprintf(in, sizeof in, "%s/%zu", key, index);
	kwh_sha256(in, (size_t)len < sizeof in ? (size_t)len : sizeof in - 1, md);
	memcpy(out, gen, n);
	for (int i = 0; i < 5; i++)
		out[n + i] = alnum[md[i] % 36];
	out[n + 5] = '\0';
}

/* ---- helpers ----------------------------------------------------------- */

/* apiVersion as Kubernetes spells it: [GROUP/]VERSION, DNS-like. */
static int
valid_api_version(const char *s)
{
	size_t n = strlen(s), slashes = 0;

	if (n == 0 || n > 253 || *s == '/' || s[n - 1] == '/')
		return 0;
	for (; *s; s++) {
		if (*s == '/')
			slashes++;
		else if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '.' || *s == '-'))
			return 0;
	}
	return slashes <= 1;
}

/* Appends s percent-encoded as one path segment. */
static void
add_segment(struct kwh_buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~' || c == ':')
			kwh_buf_addc(b, (char)c);
		else
			kwh_buf_printf(b, "%%%02X", c);
	}
}

/* One object as prepared for sending. */
struct item {
	jv obj;			/* borrowed from the prepared array */
	const char *api_version, *kind, *ns, *name, *gen;
	char group[256];
	char dedupe[64];
	struct kwh_kube_resource res;
};

static void
collection_path(struct kwh_buf *b, const struct item *it)
{
	kwh_buf_adds(b, strchr(it->api_version, '/') ? "/apis/" : "/api/");
	kwh_buf_adds(b, it->api_version);
	if (it->res.namespaced) {
		kwh_buf_adds(b, "/namespaces/");
		add_segment(b, it->ns);
	}
	kwh_buf_addc(b, '/');
	add_segment(b, it->res.plural);
}

/* The kinds allowed when no --allow-kind is given. */
static const char *const default_kinds[] = { KWH_APPLY_DEFAULT_KIND };

/*
 * Whether the policy allows the item's kind: one of the --allow-kind specs,
 * or without any, argoproj.io/Workflow only.  GROUP "*" is any group, KIND
 * "*" any namespaced kind; a cluster-scoped kind needs its exact name.
 */
static int
kind_allowed(const struct kwh_apply *a, const struct item *it)
{
	const char *const *list = a->n_allow_kind ? a->allow_kind : default_kinds;
	size_t n = a->n_allow_kind ? a->n_allow_kind : sizeof default_kinds / sizeof *default_kinds;

	for (size_t i = 0; i < n; i++) {
		const char *spec = list[i], *slash = strchr(spec, '/');
		size_t gl = (size_t)(slash - spec);
		int any_group = gl == 1 && spec[0] == '*';

		if (gl == 4 && !strncmp(spec, "core", 4))
			gl = 0;
		if (!any_group && (strlen(it->group) != gl || strncmp(spec, it->group, gl)))
			continue;
		if (!strcmp(slash + 1, "*")) {
			if (it->res.namespaced)
				return 1;
			continue;
		}
		if (!strcmp(slash + 1, it->kind))
			return 1;	/* a "*" group comes only with a "*" kind (kwh_cli_policy) */
	}
	return 0;
}

/*
 * Whether the policy allows namespace ns: one matching an --allow-namespace
 * expression, or without any, the target namespace only.
 */
static int
ns_allowed(const struct kwh_apply *a, const char *ns, const char *target)
{
	if (!a->n_ns_re)
		return !strcmp(ns, target);
	for (size_t i = 0; i < a->n_ns_re; i++)
		if (regexec(&a->ns_re[i], ns, 0, NULL, 0) == 0)
			return 1;
	return 0;
}

static jv
result_entry(const struct item *it, const char *name, const char *uid, const char *action)
{
	jv r = jv_object();

	r = jv_object_set(r, jv_string("apiVersion"), jv_string(it->api_version));
	r = jv_object_set(r, jv_string("kind"), jv_string(it->kind));
	r = jv_object_set(r, jv_string("namespace"), jv_string(it->res.namespaced ? it->ns : ""));
	r = jv_object_set(r, jv_string("name"), jv_string(name ? name : ""));
	r = jv_object_set(r, jv_string("uid"), jv_string(uid ? uid : ""));
	r = jv_object_set(r, jv_string("action"), jv_string(action));
	return r;
}

static const char *
meta_str(jv obj, const char *key)
{
	jv md = jv_get_kind(obj) == JV_KIND_OBJECT ?
	    jv_object_get(jv_copy(obj), jv_string("metadata")) : jv_null();
	const char *s = kwh_jv_str(md, key);

	jv_free(md); /* obj keeps it alive */
	return s;
}

/* "Kind ns/name" for messages. */
static void
describe(char *out, size_t n, const struct item *it)
{
	const char *nm = it->name ? it->name : it->gen ? it->gen : "";
	snprintf(out, n, "%s %s%s%s%s", it->kind, it->res.namespaced ? it->ns : "",
	    it->res.namespaced ? "/" : "", nm, !it->name && it->gen ? "*" : "");
}

/*
 * Sends one item.  Returns 0 with *entry set, or the envelope status with
 * msg filled.
 */
static int
send_item(struct kwh_apply *a, struct item *it, long long deadline, const char *delivery,
    jv *entry, char *msg, size_t msglen)
{
	struct kwh_buf path = KWH_BUF_INIT, q = KWH_BUF_INIT;
	struct kwh_kube_result r = { 0 };
	const char *dry = a->dry_run == KWH_DRY_SERVER ? "&dryRun=All" : "";
	char what[400], *body;
	int st = 0;

	describe(what, sizeof what, it);
	{
		jv s = jv_dump_string(jv_copy(it->obj), JV_PRINT_SORTED);
		body = strdup(jv_string_value(s));
		jv_free(s);
	}
	if (!body)
		kwh_die(KWH_EXIT_SYSTEM, "out of memory");
	collection_path(&path, it);
	r.body = jv_null();
	if (!it->name) {
		/* generateName (or nothing: the API server says what is missing) */
		kwh_buf_printf(&q, "%s?fieldManager=", path.data);
		add_segment(&q, a->field_manager);
		kwh_buf_adds(&q, dry);
		if (kwh_kube_call(a->kube, &r, "POST", q.data, "application/json", body, strlen(body),
		    0, deadline)) {
			st = r.status;
			snprintf(msg, msglen, "%s", r.msg);
			goto out;
		}
		{
			const char *nm = meta_str(r.body, "name"), *uid = meta_str(r.body, "uid");

			*entry = result_entry(it, nm, uid, a->dry_run ? "dry-run" : "created");
			kwh_log(KWH_LOG_INFO, delivery, 0, "%s %s %s%s%s uid=%s",
			    a->dry_run ? "dry-run" : "created", it->kind,
			    it->res.namespaced ? it->ns : "", it->res.namespaced ? "/" : "",
			    nm ? nm : "", uid ? uid : "");
		}
		goto out;
	}
	if (it->dedupe[0]) {
		kwh_buf_printf(&q, "%s?fieldManager=", path.data);
		add_segment(&q, a->field_manager);
		kwh_buf_adds(&q, dry);
		if (kwh_kube_call(a->kube, &r, "POST", q.data, "application/json", body, strlen(body),
		    KWH_KUBE_RETRY_SENT, deadline) == 0) {
			*entry = result_entry(it, it->name, meta_str(r.body, "uid"),
			    a->dry_run ? "dry-run" : "created");
			kwh_log(KWH_LOG_INFO, delivery, 0, "created %s uid=%s", what,
			    meta_str(r.body, "uid") ? meta_str(r.body, "uid") : "");
			goto out;
		}
		if (r.http != 409 || !(kwh_jv_str(r.body, "reason") && !strcmp(kwh_jv_str(r.body, "reason"), "AlreadyExists"))) {
			st = r.status;
			snprintf(msg, msglen, "%s", r.msg);
			goto out;
		}
		kwh_kube_result_release(&r);
		kwh_buf_reset(&q);
		kwh_buf_printf(&q, "%s/", path.data);
		add_segment(&q, it->name);
		if (kwh_kube_call(a->kube, &r, "GET", q.data, NULL, NULL, 0, 0, deadline)) {
			st = r.status;
			snprintf(msg, msglen, "%s", r.msg);
			goto out;
		}
		*entry = result_entry(it, it->name, meta_str(r.body, "uid"), "exists");
		kwh_log(KWH_LOG_INFO, delivery, 0, "exists %s (a redelivery)", what);
		goto out;
	}
	/* server-side apply, after a GET to tell created/configured/unchanged */
	{
		char *old_rv = NULL;
		const char *rv;

		kwh_buf_printf(&q, "%s/", path.data);
		add_segment(&q, it->name);
		if (kwh_kube_call(a->kube, &r, "GET", q.data, NULL, NULL, 0, 0, deadline) == 0) {
			rv = meta_str(r.body, "resourceVersion");
			old_rv = strdup(rv ? rv : "");
		} else if (r.http != 404) {
			st = r.status;
			snprintf(msg, msglen, "%s", r.msg);
			goto out;
		}
		kwh_kube_result_release(&r);
		kwh_buf_adds(&q, "?fieldManager=");
		add_segment(&q, a->field_manager);
		kwh_buf_adds(&q, dry);
		if (kwh_kube_call(a->kube, &r, "PATCH", q.data, "application/apply-patch+yaml", body,
		    strlen(body), 0, deadline)) {
			st = r.status;
			snprintf(msg, msglen, "%s", r.msg);
			free(old_rv);
			goto out;
		}
		rv = meta_str(r.body, "resourceVersion");
		const char *action = a->dry_run ? "dry-run" : !old_rv ? "created" :
		    (rv && !strcmp(rv, old_rv)) ? "unchanged" : "configured";
		*entry = result_entry(it, it->name, meta_str(r.body, "uid"), action);
		kwh_log(KWH_LOG_INFO, delivery, 0, "%s %s", action, what);
		free(old_rv);
	}
out:
	kwh_kube_result_release(&r);
	kwh_buf_release(&path);
	kwh_buf_release(&q);
	free(body);
	return st;
}

/* ---- the stage ------------------------------------------------------------ */

jv
kwh_apply(void *ctx, jv env)
{
	struct kwh_apply *a = ctx;
	jv manifests = jv_object_get(jv_copy(env), jv_string("manifests"));
	jv ann = jv_object_get(jv_copy(env), jv_string("annotations"));
	jv dl = jv_object_get(jv_copy(env), jv_string("deadline"));
	jv prepared = jv_array(), results = jv_array();
	struct item *items = NULL;
	char delivery[256], key[256], msg[1200];
	long long deadline = kwh_now_ms() + a->deadline_ms;
	int n = 0, status = 0;
	const char *def_ns = a->namespace ? a->namespace : a->have_cfg ? a->cfg.namespace : "default";

	kwh_env_str(env, "delivery", delivery, sizeof delivery);
	/* the key of deduplication: what kwh-verify took from the signed
	 * request, else (an envelope made otherwise) the delivery id */
	if (!*kwh_env_str(env, "digest", key, sizeof key))
		snprintf(key, sizeof key, "%s", delivery);
	if (jv_get_kind(dl) == JV_KIND_NUMBER && jv_number_value(dl) < (double)deadline)
		deadline = (long long)jv_number_value(dl);
	jv_free(dl);
	if (jv_get_kind(manifests) != JV_KIND_ARRAY) {
		int missing = jv_get_kind(manifests) == JV_KIND_INVALID || jv_get_kind(manifests) == JV_KIND_NULL;
		jv_free(manifests);
		jv_free(ann);
		jv_free(prepared);
		jv_free(results);
		if (missing)
			return kwh_env_respond(env, 500, "the envelope has no manifests "
			    "(kwh-fetch, or a step like it, must run before kwh-apply)");
		return kwh_env_respond(env, 422, "manifests is not an array of objects");
	}
	n = jv_array_length(jv_copy(manifests));
	if (n == 0) {
		status = 422;
		snprintf(msg, sizeof msg, "there are no objects to create");
		goto fail;
	}
	if (jv_get_kind(ann) != JV_KIND_OBJECT && jv_get_kind(ann) != JV_KIND_NULL &&
	    jv_get_kind(ann) != JV_KIND_INVALID) {
		status = 422;
		snprintf(msg, sizeof msg, "annotations is not an object");
		goto fail;
	}
	if (jv_get_kind(ann) == JV_KIND_OBJECT) {
		jv_object_foreach(ann, k, v) {
			int bad = jv_get_kind(v) != JV_KIND_STRING;
			if (bad && !status) {
				status = 422;
				snprintf(msg, sizeof msg, "annotation '%s' is not a string", jv_string_value(k));
			}
			jv_free(k);
			jv_free(v);
		}
		if (status)
			goto fail;
	}
	if (!(items = calloc((size_t)n, sizeof *items)))
		kwh_die(KWH_EXIT_SYSTEM, "out of memory");
	if (a->kube)
		kwh_kube_set_delivery(a->kube, delivery);

	/* 1. prepare every object and check the policy before sending any */
	for (int i = 0; i < n; i++) {
		jv o = jv_array_get(jv_copy(manifests), i), md;
		struct item *it = &items[i];
		const char *av, *kd, *slash;

		if (jv_get_kind(o) != JV_KIND_OBJECT) {
			jv_free(o);
			status = 422;
			snprintf(msg, sizeof msg, "object %d is not a JSON object", i + 1);
			goto fail;
		}
		md = jv_object_get(jv_copy(o), jv_string("metadata"));
		if (jv_get_kind(md) == JV_KIND_NULL || jv_get_kind(md) == JV_KIND_INVALID) {
			jv_free(md);
			md = jv_object();
		}
		if (jv_get_kind(md) != JV_KIND_OBJECT) {
			jv_free(md);
			jv_free(o);
			status = 422;
			snprintf(msg, sizeof msg, "object %d: metadata is not an object", i + 1);
			goto fail;
		}
		if (jv_get_kind(ann) == JV_KIND_OBJECT) {
			jv have = jv_object_get(jv_copy(md), jv_string("annotations"));
			if (jv_get_kind(have) != JV_KIND_OBJECT) {
				jv_free(have);
				have = jv_object();
			}
			md = jv_object_set(md, jv_string("annotations"), jv_object_merge(have, jv_copy(ann)));
		}
		o = jv_object_set(o, jv_string("metadata"), md);
		prepared = jv_array_append(prepared, o);
		o = jv_array_get(jv_copy(prepared), i);
		it->obj = o;
		jv_free(o); /* prepared holds it; reassigned below when it changes */
		av = kwh_jv_str(it->obj, "apiVersion");
		kd = kwh_jv_str(it->obj, "kind");
		if (!av || !*av || !kd || !*kd) {
			status = 422;
			snprintf(msg, sizeof msg, "object %d has no %s", i + 1, !av || !*av ? "apiVersion" : "kind");
			goto fail;
		}
		if (!valid_api_version(av) || strlen(kd) > 128) {
			status = 422;
			snprintf(msg, sizeof msg, "object %d: apiVersion '%.100s' or kind '%.100s' is not valid",
			    i + 1, av, kd);
			goto fail;
		}
		it->api_version = av;
		it->kind = kd;
		slash = strchr(av, '/');
		snprintf(it->group, sizeof it->group, "%.*s", slash ? (int)(slash - av) : 0, av);
		if (a->dry_run == KWH_DRY_CLIENT) {
			it->res.namespaced = kwh_kube_guess_namespaced(a->cache_dir,
			    a->have_cfg ? a->cfg.server : NULL, av, kd);
		} else {
			struct kwh_kube_result r = { 0 };
			int rc = kwh_kube_discover(a->kube, &r, &it->res, av, kd, deadline);

			kwh_kube_result_release(&r);
			if (rc) {
				status = rc == 1 ? 422 : rc;
				snprintf(msg, sizeof msg, "%s; nothing was created", r.msg);
				goto fail;
			}
		}
		/* namespace, name */
		{
			jv obj = jv_array_get(jv_copy(prepared), i);
			jv m = jv_object_get(jv_copy(obj), jv_string("metadata"));
			const char *own = kwh_jv_str(m, "namespace");

			if (it->res.namespaced) {
				if (!own || !*own)
					m = jv_object_set(m, jv_string("namespace"), jv_string(def_ns));
			} else if (jv_object_has(jv_copy(m), jv_string("namespace"))) {
				m = jv_object_delete(m, jv_string("namespace"));
			}
			it->name = kwh_jv_str(m, "name");
			it->gen = kwh_jv_str(m, "generateName");
			if (it->name && !*it->name)
				it->name = NULL;
			if (it->gen && !*it->gen)
				it->gen = NULL;
			if (!it->name && it->gen && !a->no_dedupe) {
				kwh_apply_dedupe_name(it->dedupe, it->gen, key, (size_t)i);
				m = jv_object_set(m, jv_string("name"), jv_string(it->dedupe));
			}
			obj = jv_object_set(obj, jv_string("metadata"), m);
			prepared = jv_array_set(prepared, i, jv_copy(obj));
			it->obj = obj;
			jv_free(obj); /* prepared keeps it */
			m = jv_object_get(jv_copy(it->obj), jv_string("metadata"));
			it->ns = kwh_jv_str(m, "namespace");
			it->name = kwh_jv_str(m, "name");
			if (it->name && !*it->name)
				it->name = NULL;
			it->gen = kwh_jv_str(m, "generateName");
			jv_free(m);
			it->api_version = kwh_jv_str(it->obj, "apiVersion");
			it->kind = kwh_jv_str(it->obj, "kind");
		}
		if (!kind_allowed(a, it)) {
			status = 422;
			snprintf(msg, sizeof msg, "policy: kind %s/%s%s is not allowed (--allow-kind %s/%s%s); "
			    "nothing was created", it->group, it->kind,
			    it->res.namespaced ? "" : " is cluster-scoped and", *it->group ? it->group : "",
			    it->kind, a->n_allow_kind ? "" : "; without it only " KWH_APPLY_DEFAULT_KIND);
			goto fail;
		}
		if (it->res.namespaced && !ns_allowed(a, it->ns, def_ns)) {
			status = 422;
			if (a->n_ns_re)
				snprintf(msg, sizeof msg, "policy: namespace '%s' of %s %s is not allowed "
				    "(--allow-namespace); nothing was created", it->ns, it->kind,
				    it->name ? it->name : it->gen ? it->gen : "");
			else
				snprintf(msg, sizeof msg, "policy: namespace '%s' of %s %s is not the target "
				    "namespace '%s' (--allow-namespace '%s' allows it); nothing was created",
				    it->ns, it->kind, it->name ? it->name : it->gen ? it->gen : "", def_ns,
				    it->ns);
			goto fail;
		}
	}
	/* 2. send them, stopping at the first failure */
	for (int i = 0; i < n; i++) {
		struct item *it = &items[i];
		jv entry = jv_null();

		if (a->dry_run == KWH_DRY_CLIENT) {
			entry = result_entry(it, it->name, "", "dry-run");
		} else {
			char m[1024];
			int st = send_item(a, it, deadline, delivery, &entry, m, sizeof m);
			if (st) {
				jv_free(entry);
				status = st;
				snprintf(msg, sizeof msg, "created %d of %d: %s", i, n, m);
				env = jv_object_set(env, jv_string("manifests"), jv_copy(prepared));
				env = jv_object_set(env, jv_string("results"), results);
				results = jv_invalid();
				goto fail;
			}
		}
		results = jv_array_append(results, entry);
	}
	env = jv_object_set(env, jv_string("manifests"), prepared);
	env = jv_object_set(env, jv_string("results"), results);
	jv_free(manifests);
	jv_free(ann);
	free(items);
	if (a->kube)
		kwh_kube_set_delivery(a->kube, NULL);
	return env;
fail:
	if (a->kube)
		kwh_kube_set_delivery(a->kube, NULL);
	jv_free(manifests);
	jv_free(ann);
	jv_free(prepared);
	jv_free(results);
	free(items);
	return kwh_env_respond(env, status, "%s", msg);
}
