/* status.c — a delivery's outcome as a commit status or a check run, through lib/github.c. */
#include "status.h"
#include "env.h"
#include "err.h"

#include <jv.h>
#include <stdio.h>
#include <string.h>

/* Appends tmpl to out with each {key} replaced by vals[key] (a jv object). */
static void
expand(struct kwh_buf *out, const char *tmpl, jv vals)
{
	for (const char *p = tmpl; *p; p++) {
		const char *e = *p == '{' ? strchr(p, '}') : NULL;
		jv v;

		if (!e) {
			kwh_buf_addc(out, *p);
			continue;
		}
		v = jv_object_get(jv_copy(vals), jv_string_sized(p + 1, (int)(e - p - 1)));
		if (jv_get_kind(v) == JV_KIND_STRING)
			kwh_buf_adds(out, jv_string_value(v));
		else
			kwh_buf_add(out, p, (size_t)(e - p + 1));
		jv_free(v);
		p = e;
	}
}

int
kwh_status_report(struct kwh_github *g, const struct kwh_status *r,
    const char *repo, const char *sha, const char *state, const char *description,
    const char *target_url, long installation, long long deadline_ms)
{
	struct kwh_buf path = KWH_BUF_INIT, ans = KWH_BUF_INIT;
	char err[512], desc[141];
	const char *ctx = r->context ? r->context : "kwh";
	jv body = jv_object();
	long status;
	int rc;

	/* GitHub takes at most 140 characters of description */
	snprintf(desc, sizeof desc, "%s", description ? description : "");
	if (!r->check_run) {
		body = jv_object_set(body, jv_string("state"), jv_string(state));
		body = jv_object_set(body, jv_string("context"), jv_string(ctx));
		body = jv_object_set(body, jv_string("description"), jv_string(desc));
		if (target_url && *target_url)
			body = jv_object_set(body, jv_string("target_url"), jv_string(target_url));
		kwh_buf_printf(&path, "/repos/%s/statuses/%s", repo, sha);
	} else {
		jv out = jv_object_set(jv_object(), jv_string("title"), jv_string(desc));

		out = jv_object_set(out, jv_string("summary"), jv_string(description ? description : ""));
		body = jv_object_set(body, jv_string("name"), jv_string(ctx));
		body = jv_object_set(body, jv_string("head_sha"), jv_string(sha));
		if (!strcmp(state, "pending"))
			body = jv_object_set(body, jv_string("status"), jv_string("in_progress"));
		else {
			body = jv_object_set(body, jv_string("status"), jv_string("completed"));
			body = jv_object_set(body, jv_string("conclusion"),
			    jv_string(!strcmp(state, "error") ? "failure" : state));
		}
		body = jv_object_set(body, jv_string("output"), out);
		if (target_url && *target_url)
			body = jv_object_set(body, jv_string("details_url"), jv_string(target_url));
		kwh_buf_printf(&path, "/repos/%s/check-runs", repo);
	}
	body = jv_dump_string(body, 0);
	rc = kwh_github_request(g, "POST", path.data, jv_string_value(body), installation,
	    deadline_ms, &ans, &status, err, sizeof err);
	if (rc < 0)
		kwh_log(KWH_LOG_WARN, g->delivery, 0, "cannot report %s on %s@%.12s: %s", state, repo, sha, err);
	else
		kwh_log(KWH_LOG_INFO, g->delivery, 0, "reported %s on %s@%.12s as %s '%s'", state, repo, sha,
		    r->check_run ? "check run" : "commit status", ctx);
	jv_free(body);
	kwh_buf_release(&path);
	kwh_buf_release(&ans);
	return rc;
}

int
kwh_status_report_env(struct kwh_github *g, const struct kwh_status *r, jv env)
{
	jv payload = jv_object_get(jv_copy(env), jv_string("payload"));
	jv ann = jv_object_get(jv_copy(env), jv_string("annotations"));
	jv resp = jv_object_get(jv_copy(env), jv_string("response"));
	jv results = jv_object_get(jv_copy(env), jv_string("results"));
	jv vals = jv_object(), d;
	const char *repo = NULL, *sha = NULL, *state = NULL;
	struct kwh_buf desc = KWH_BUF_INIT, url = KWH_BUF_INIT;
	long installation = 0;
	long long deadline;
	int status = kwh_env_status(env), rc = 0, created = 0;

	if (jv_get_kind(payload) == JV_KIND_OBJECT) {
		jv repoo = jv_object_get(jv_copy(payload), jv_string("repository"));
		jv inst = jv_object_get(jv_copy(payload), jv_string("installation"));

		if (jv_get_kind(repoo) == JV_KIND_OBJECT) {
			jv fn = jv_object_get(jv_copy(repoo), jv_string("full_name"));
			if (jv_get_kind(fn) == JV_KIND_STRING)
				vals = jv_object_set(vals, jv_string("repo"), jv_copy(fn));
			jv_free(fn);
		}
		if (jv_get_kind(inst) == JV_KIND_OBJECT) {
			jv id = jv_object_get(jv_copy(inst), jv_string("id"));
			if (jv_get_kind(id) == JV_KIND_NUMBER)
				installation = (long)jv_number_value(id);
			jv_free(id);
		}
		jv_free(repoo);
		jv_free(inst);
	}
	{
		/* the revision kwh-annotate found (push: after; check_run: head_sha) */
		jv rev = jv_get_kind(ann) == JV_KIND_OBJECT ?
		    jv_object_get(jv_copy(ann), jv_string("k8s-webhook-handler.io/revision")) : jv_invalid();
		if (jv_get_kind(rev) != JV_KIND_STRING && jv_get_kind(payload) == JV_KIND_OBJECT) {
			jv_free(rev);
			rev = jv_object_get(jv_copy(payload), jv_string("after"));
		}
		if (jv_get_kind(rev) == JV_KIND_STRING && jv_string_length_bytes(jv_copy(rev)) == 40 &&
		    strspn(jv_string_value(rev), "0123456789abcdef") == 40)
			vals = jv_object_set(vals, jv_string("sha"), jv_copy(rev));
		jv_free(rev);
	}
	d = jv_object_get(jv_copy(env), jv_string("delivery"));
	if (jv_get_kind(d) == JV_KIND_STRING)
		vals = jv_object_set(vals, jv_string("delivery"), d);
	else
		jv_free(d);
	repo = kwh_jv_str(vals, "repo");
	sha = kwh_jv_str(vals, "sha");
	if (!repo || !sha || !strchr(repo, '/'))
		goto out;	/* nothing to report on: ping, delete, no commit */
	{
		jv msg = jv_get_kind(resp) == JV_KIND_OBJECT ?
		    jv_object_get(jv_copy(resp), jv_string("message")) : jv_invalid();
		const char *m = jv_get_kind(msg) == JV_KIND_STRING ? jv_string_value(msg) : "";
		jv queued = jv_get_kind(resp) == JV_KIND_OBJECT ?
		    jv_object_get(jv_copy(resp), jv_string("queued")) : jv_invalid();

		if (status >= 500) {
			state = "error";
			kwh_buf_printf(&desc, "kwh failed (%d): %s", status, m);
		} else if (status >= 400) {
			state = "failure";
			kwh_buf_printf(&desc, "kwh refused (%d): %s", status, m);
		} else if (status == 202 && jv_get_kind(queued) == JV_KIND_TRUE) {
			/* kwh-handle answered before its work was done: the final
			 * state follows once the queued delivery is completed */
			state = "pending";
			kwh_buf_printf(&desc, "kwh queued it: %s", m);
		} else if (status == 202) {
			if (r->report_skipped) {
				state = "success";
				kwh_buf_printf(&desc, "kwh skipped it: %s", m);
			}
		} else if (jv_get_kind(results) == JV_KIND_ARRAY) {
			/* the first object created; its name and namespace go into the link */
			jv_array_foreach(results, i, e) {
				if (!state && jv_get_kind(e) == JV_KIND_OBJECT) {
					const char *n = kwh_jv_str(e, "name"), *ns = kwh_jv_str(e, "namespace"),
					    *k = kwh_jv_str(e, "kind");
					state = "pending";
					created = 1;
					kwh_buf_printf(&desc, "%s %s created", k ? k : "object", n ? n : "?");
					if (n) vals = jv_object_set(vals, jv_string("name"), jv_string(n));
					if (ns) vals = jv_object_set(vals, jv_string("namespace"), jv_string(ns));
					if (k) vals = jv_object_set(vals, jv_string("kind"), jv_string(k));
				}
				jv_free(e);
				(void)i;
			}
		}
		jv_free(queued);
		jv_free(msg);
	}
	if (!state)
		goto out;
	if (r->target_url && created)	/* a link to what was created, not to a queued delivery */
		expand(&url, r->target_url, vals);
	deadline = kwh_now_ms() + (r->timeout_ms > 0 ? r->timeout_ms : KWH_STATUS_TIMEOUT_MS);
	if (!r->after_answer) {
		jv dl = jv_object_get(jv_copy(env), jv_string("deadline"));
		/* the answer must not wait for the report beyond the chain's deadline */
		if (jv_get_kind(dl) == JV_KIND_NUMBER && (long long)jv_number_value(dl) - 500 < deadline)
			deadline = (long long)jv_number_value(dl) - 500;
		jv_free(dl);
	}
	rc = kwh_status_report(g, r, repo, sha, state, desc.data, url.data, installation, deadline);
out:
	kwh_buf_release(&desc);
	kwh_buf_release(&url);
	jv_free(vals);
	jv_free(payload);
	jv_free(ann);
	jv_free(resp);
	jv_free(results);
	return rc;
}
