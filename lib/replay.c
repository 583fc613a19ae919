#include "replay.h"
#include "buf.h"
#include "env.h"
#include "err.h"
#include "github.h"
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

size_t
kwh_replay_start(const char *chain, const char *stage)
{
	size_t seg = 0, i = 0;
	char q = 0;

	for (;;) {
		/* At the start of a segment: compare its first word with stage. */
		size_t w = seg, base, end;
		while (chain[w] == ' ' || chain[w] == '\t' || chain[w] == '\n')
			w++;
		for (end = w; chain[end] && !strchr(" \t\n|;&()", chain[end]); end++)
			;
		for (base = end; base > w && chain[base - 1] != '/'; base--)
			;
		if (end - base == strlen(stage) && !strncmp(chain + base, stage, end - base))
			return w;
		/* Find the next '|' outside quotes. */
		for (i = seg; chain[i]; i++) {
			if (q == '\'') {
				if (chain[i] == '\'')
					q = 0;
			} else if (q == '"') {
				if (chain[i] == '\\' && chain[i + 1])
					i++;
				else if (chain[i] == '"')
					q = 0;
			} else if (chain[i] == '\\' && chain[i + 1]) {
				i++;
			} else if (chain[i] == '\'' || chain[i] == '"') {
				q = chain[i];
			} else if (chain[i] == '|') {
				if (chain[i + 1] == '|' || (i > 0 && chain[i - 1] == '|')) {
					i += chain[i + 1] == '|';
					continue;
				}
				break;
			}
		}
		if (!chain[i])
			return 0;
		seg = i + 1;
	}
}

/* What one run of the chain gave. */
struct outcome {
	int ok;		/* remove the file */
	int status;	/* the result's status (0: none set) */
	struct kwh_buf msg;
	jv result;	/* the first envelope written, or invalid */
};

/* 1 when some entry of env.results has the action "created". */
static int
created(jv env)
{
	jv res = jv_object_get(jv_copy(env), jv_string("results"));
	int n = 0;

	if (jv_get_kind(res) == JV_KIND_ARRAY)
		jv_array_foreach(res, i, e) {
			jv a = jv_get_kind(e) == JV_KIND_OBJECT ? jv_object_get(e, jv_string("action")) : (jv_free(e), jv_null());
			n += jv_get_kind(a) == JV_KIND_STRING && !strcmp(jv_string_value(a), "created");
			jv_free(a);
			(void)i;
		}
	jv_free(res);
	return n > 0;
}

/*
 * Runs "sh -c cmd" with in (consumed) on stdin; fills o.  Returns 0, or -1
 * when the chain could not be started (o says why).
 *
 * The chain runs in a process group of its own and inherits a copy of
 * lockfd, the spool file's flock(2): the lock is held until the last
 * process of the chain has ended, even when kwh-replay itself is killed
 * (SIGKILL included) while the chain runs, so that no other kwh-replay can
 * send the same delivery meanwhile.  A signal sent to kwh-replay's process
 * group (Ctrl-C) does not reach the chain, which finishes its delivery.
 */
static int
run_chain(const char *cmd, jv in, const char *stage, int attempt, int lockfd, struct outcome *o)
{
	struct kwh_buf out;
	FILE *tf = tmpfile();
	int pfd[2] = { -1, -1 }, ws, rc = -1;
	char attempts[32];
	pid_t pid;
	jv text;

	kwh_buf_init(&out, KWH_REPLAY_MAX_OUTPUT);
	text = jv_dump_string(in, 0);
	if (!tf || fputs(jv_string_value(text), tf) == EOF || fputc('\n', tf) == EOF ||
	    fflush(tf) == EOF || fseek(tf, 0, SEEK_SET) < 0) {
		kwh_buf_printf(&o->msg, "cannot write a temporary file: %s", strerror(errno));
		goto out;
	}
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		kwh_buf_printf(&o->msg, "cannot make a pipe: %s", strerror(errno));
		goto out;
	}
	snprintf(attempts, sizeof attempts, "%d", attempt);
	fflush(NULL);
	if ((pid = fork()) < 0) {
		kwh_buf_printf(&o->msg, "cannot start the chain: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		setpgid(0, 0);
		/* F_DUPFD: a copy without close-on-exec, above the standard three */
		if (dup2(fileno(tf), 0) < 0 || dup2(pfd[1], 1) < 0 ||
		    (lockfd >= 0 && fcntl(lockfd, F_DUPFD, 3) < 0))
			_exit(KWH_EXIT_SYSTEM);
		setenv("KWH_REPLAY_STAGE", stage, 1);
		setenv("KWH_REPLAY_ATTEMPT", attempts, 1);
		signal(SIGPIPE, SIG_DFL);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid);	/* as the child does: whichever runs first */
	close(pfd[1]);
	pfd[1] = -1;
	if (kwh_buf_read_fd(&out, pfd[0]) < 0)
		kwh_buf_printf(&o->msg, "%s", errno == EFBIG ?
		    "the chain wrote more than 64 MiB" : "cannot read the chain's output");
	close(pfd[0]);
	pfd[0] = -1;
	while (waitpid(pid, &ws, 0) < 0)
		if (errno != EINTR) {
			ws = 0;
			break;
		}
	if (o->msg.len == 0) {
		jv_parser *p = jv_parser_new(0);
		jv v;

		jv_parser_set_buf(p, out.data ? out.data : "", (int)out.len, 0);
		v = jv_parser_next(p);
		jv_parser_free(p);
		if (jv_get_kind(v) == JV_KIND_OBJECT)
			o->result = v;
		else {
			jv_free(v);
			kwh_buf_printf(&o->msg, "the chain wrote %s", out.len ? "no envelope" : "nothing");
		}
	}
	if (jv_is_valid(o->result)) {
		jv r = jv_object_get(jv_copy(o->result), jv_string("response"));
		jv m = jv_get_kind(r) == JV_KIND_OBJECT ? jv_object_get(jv_copy(r), jv_string("message")) : jv_invalid();
		o->status = kwh_env_status(o->result);
		if (jv_get_kind(r) != JV_KIND_INVALID && jv_get_kind(r) != JV_KIND_NULL && !o->status)
			o->status = 500;
		if (jv_get_kind(m) == JV_KIND_STRING)
			kwh_buf_adds(&o->msg, jv_string_value(m));
		else if (!o->status)
			kwh_buf_adds(&o->msg, created(o->result) ? "created" : "done");
		jv_free(m);
		jv_free(r);
	} else
		o->status = 500;
	if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0)
		o->ok = o->status == 0 || (o->status >= 200 && o->status <= 299);
	else if (o->status == 0 || o->status < 400) {
		/* A result that looks right from a chain that failed is not trusted. */
		kwh_buf_reset(&o->msg);
		if (WIFEXITED(ws))
			kwh_buf_printf(&o->msg, "the chain exited %d", WEXITSTATUS(ws));
		else
			kwh_buf_printf(&o->msg, "the chain was killed by signal %d", WTERMSIG(ws));
		o->status = 500;
	}
	rc = 0;
out:
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	if (tf)
		fclose(tf);
	jv_free(text);
	kwh_buf_release(&out);
	return rc;
}

/* A number at env.spool.key, or 0. */
static int
spool_int(jv env, const char *key)
{
	jv s = jv_object_get(jv_copy(env), jv_string("spool"));
	jv v = jv_get_kind(s) == JV_KIND_OBJECT ? jv_object_get(jv_copy(s), jv_string(key)) : jv_invalid();
	int n = jv_get_kind(v) == JV_KIND_NUMBER && jv_number_value(v) >= 0 &&
	    jv_number_value(v) < 1e9 ? (int)jv_number_value(v) : 0;

	jv_free(v);
	jv_free(s);
	return n;
}

/* The stage saved in env.spool.stage, else inferred from the keys. */
static const char *
spool_stage(jv env, char *out, size_t n)
{
	jv s = jv_object_get(jv_copy(env), jv_string("spool"));
	jv v = jv_get_kind(s) == JV_KIND_OBJECT ? jv_object_get(jv_copy(s), jv_string("stage")) : jv_invalid();

	if (jv_get_kind(v) == JV_KIND_STRING && jv_string_length_bytes(jv_copy(v)) > 0)
		snprintf(out, n, "%s", jv_string_value(v));
	else {
		jv e = jv_object_delete(jv_copy(env), jv_string("response"));
		kwh_spool_stage(e, out, n);
		jv_free(e);
	}
	jv_free(v);
	jv_free(s);
	return out;
}

/* Handles one locked file.  Returns 0 removed, 1 kept, -1 system failure. */
static int
replay_one(const struct kwh_replay *r, const char *name, int fd, const struct timespec *mtime)
{
	struct outcome o = { 0, 0, KWH_BUF_INIT, jv_invalid() };
	struct kwh_buf data;
	char stage[64], delivery[256], err[512];
	const char *cmd;
	int attempt, rc = 1;
	jv env, in;

	kwh_buf_init(&data, KWH_REPLAY_MAX_OUTPUT);
	if (kwh_buf_read_fd(&data, fd) < 0) {
		kwh_log(KWH_LOG_ERROR, NULL, 0, "cannot read '%s/%s': %s", r->spool, name, strerror(errno));
		kwh_buf_release(&data);
		return 1;
	}
	env = jv_parse_sized(data.data ? data.data : "", (int)data.len);
	kwh_buf_release(&data);
	if (jv_get_kind(env) != JV_KIND_OBJECT) {
		kwh_log(KWH_LOG_ERROR, NULL, 0, "'%s/%s' is not an envelope: left alone", r->spool, name);
		jv_free(env);
		return 1;
	}
	kwh_env_str(env, "delivery", delivery, sizeof delivery);
	spool_stage(env, stage, sizeof stage);
	attempt = spool_int(env, "attempts") + 1;
	in = jv_object_delete(jv_object_delete(jv_copy(env), jv_string("response")), jv_string("spool"));
	in = jv_object_set(in, jv_string("deadline"), jv_number((double)kwh_now_ms() + (double)r->budget_ms));
	if (r->dry_run) {
		if (r->chain)
			kwh_log(KWH_LOG_INFO, delivery, 0, "would replay from %s: %s", stage,
			    r->chain + kwh_replay_start(r->chain, stage));
		jv_free(env);
		return kwh_env_write(in) < 0 ? -1 : 1;
	}
	cmd = r->chain + kwh_replay_start(r->chain, stage);
	if (run_chain(cmd, in, stage, attempt, fd, &o) < 0) {
		kwh_log(KWH_LOG_ERROR, delivery, 0, "%s", o.msg.data ? o.msg.data : "");
		kwh_buf_release(&o.msg);
		jv_free(env);
		return -1;
	}
	if (jv_is_valid(o.result)) {
		char rd[256];
		kwh_env_str(o.result, "delivery", rd, sizeof rd);
		if (strcmp(rd, delivery)) {
			o.ok = 0;
			o.status = 500;
			kwh_buf_reset(&o.msg);
			kwh_buf_printf(&o.msg, "the chain answered for delivery '%s'", rd);
		}
		if (kwh_env_write(jv_copy(o.result)) < 0)
			rc = -1;
	}
	if (o.ok) {
		if (kwh_spool_remove(r->spool, name, fd) < 0) {
			kwh_log(KWH_LOG_ERROR, delivery, o.status, "replayed, but cannot remove '%s/%s': %s",
			    r->spool, name, strerror(errno));
			rc = -1;
		} else {
			kwh_log(KWH_LOG_INFO, delivery, o.status ? o.status : created(o.result) ? 201 : 200,
			    "replayed from %s (attempt %d): %s", stage, attempt, o.msg.data ? o.msg.data : "");
			if (rc > 0)
				rc = 0;
		}
	} else {
		jv sp = jv_object_get(jv_copy(env), jv_string("spool"));
		jv last = jv_object_set(jv_object(), jv_string("status"), jv_number(o.status));
		last = jv_object_set(last, jv_string("message"), jv_string(o.msg.data ? o.msg.data : ""));
		last = jv_object_set(last, jv_string("time"), jv_number((double)kwh_now_ms()));
		if (jv_get_kind(sp) != JV_KIND_OBJECT) {
			jv_free(sp);
			sp = jv_object();
		}
		sp = jv_object_set(sp, jv_string("attempts"), jv_number(attempt));
		sp = jv_object_set(sp, jv_string("last"), last);
		env = jv_object_set(env, jv_string("spool"), sp);
		kwh_log(o.status >= 500 ? KWH_LOG_ERROR : KWH_LOG_WARN, delivery, o.status,
		    "replay from %s failed (attempt %d), kept: %s", stage, attempt, o.msg.data ? o.msg.data : "");
		if (kwh_spool_write(r->spool, name, env, mtime, err, sizeof err) < 0) {
			kwh_log(KWH_LOG_ERROR, delivery, 0, "cannot update the spool: %s", err);
			rc = -1;
		}
		env = jv_invalid();
	}
	jv_free(env);
	jv_free(o.result);
	kwh_buf_release(&o.msg);
	return rc;
}

int
kwh_replay_run(const struct kwh_replay *r)
{
	struct kwh_spool_entry *e;
	size_t n;
	int code = KWH_EXIT_OK;

	if (kwh_spool_list(r->spool, &e, &n) < 0) {
		kwh_log(KWH_LOG_ERROR, NULL, 0, "cannot read the spool '%s': %s", r->spool, strerror(errno));
		return KWH_EXIT_SYSTEM;
	}
	for (size_t i = 0; i < n; i++) {
		int fd, got = kwh_spool_lock(r->spool, e[i].name, &fd), rc;

		if (got < 0) {
			kwh_log(KWH_LOG_ERROR, NULL, 0, "cannot lock '%s/%s': %s", r->spool, e[i].name, strerror(errno));
			code = KWH_EXIT_SYSTEM;
			continue;
		}
		if (got == 0)
			continue;	/* another replay has it, or it is gone */
		rc = replay_one(r, e[i].name, fd, &e[i].mtime);
		close(fd);
		if (rc < 0)
			code = KWH_EXIT_SYSTEM;
		else if (rc > 0 && code == KWH_EXIT_OK && !r->dry_run)
			code = KWH_EXIT_REFUSED;
	}
	kwh_spool_list_free(e, n);
	return code;
}

/* ---- kwh-replay --from-github ------------------------------------------- */

int
kwh_replay_since(const char *s, long long now_ms, long long *ms)
{
	struct tm tm = { 0 };
	const char *p;
	char *end;
	long long off = 0, v;

	if (!s || !*s)
		return -1;
	if ((p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) ||
	    (p = strptime(s, "%Y-%m-%d %H:%M:%S", &tm))) {
		if (*p == '.')
			for (p++; *p >= '0' && *p <= '9'; p++)
				;
		if ((*p == 'Z' || *p == 'z') && !p[1])
			off = 0;
		else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':' &&
		    strspn(p + 1, "0123456789") == 2 && strspn(p + 4, "0123456789") == 2)
			off = (*p == '-' ? -1 : 1) *
			    ((p[1] - '0') * 600 + (p[2] - '0') * 60 + (p[4] - '0') * 10 + (p[5] - '0')) * 60LL;
		else
			return -1;
		/* local time = UTC + offset */
		*ms = ((long long)timegm(&tm) - off) * 1000;
		return 0;
	}
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || v < 0)
		return -1;
	switch (*end) {
	case '\0': case 's': break;
	case 'm': v *= 60; break;
	case 'h': v *= 3600; break;
	case 'd': v *= 86400; break;
	default: return -1;
	}
	if (*end && end[1])
		return -1;
	if (v > 400LL * 86400)
		return -1;
	*ms = now_ms - v * 1000;
	return 0;
}

int
kwh_replay_transient(long code)
{
	return code == 0 || code == 408 || code == 429 || code >= 500;
}

/* The bound on pages read, whatever --since says: 100 pages of 100. */
#define MAX_PAGES 100

int
kwh_replay_github(const struct kwh_replay_github *r)
{
	struct kwh_github *g = r->g;
	struct kwh_buf path = KWH_BUF_INIT, ans = KWH_BUF_INIT;
	long long deadline = kwh_now_ms() + r->budget_ms;
	jv seen = jv_object(), chosen = jv_array();
	char err[512];
	long status;
	int pages = 0, older = 0, code = 0, asked = 0, ok = 0, todo = 0;

	kwh_buf_printf(&path, "/repos/%s/hooks/%ld/deliveries?per_page=100", r->repo, r->hook_id);
	while (path.len && !older) {
		jv list;

		if (++pages > MAX_PAGES) {
			kwh_log(KWH_LOG_WARN, NULL, 0, "stopped after %d pages of deliveries; give a later --since",
			    MAX_PAGES);
			break;
		}
		if (kwh_github_request(g, "GET", path.data, NULL, 0, deadline, &ans, &status,
		    err, sizeof err) < 0) {
			kwh_log(KWH_LOG_ERROR, NULL, 0, "cannot list the deliveries of hook %ld of %s: %s",
			    r->hook_id, r->repo, err);
			code = KWH_EXIT_SYSTEM;
			goto out;
		}
		/* g->next is reset by the next request (even a token's): copy it */
		kwh_buf_reset(&path);
		if (g->next.len)
			kwh_buf_add(&path, g->next.data, g->next.len);
		list = jv_parse_sized(ans.data ? ans.data : "", (int)ans.len);
		if (jv_get_kind(list) != JV_KIND_ARRAY) {
			jv_free(list);
			kwh_log(KWH_LOG_ERROR, NULL, 0, "GitHub's list of deliveries of hook %ld of %s "
			    "is not a JSON array", r->hook_id, r->repo);
			code = KWH_EXIT_SYSTEM;
			goto out;
		}
		jv_array_foreach(list, i, d) {
			const char *guid = kwh_jv_str(d, "guid"), *at = kwh_jv_str(d, "delivered_at");
			jv sc = jv_get_kind(d) == JV_KIND_OBJECT ?
			    jv_object_get(jv_copy(d), jv_string("status_code")) : jv_invalid();
			long c = jv_get_kind(sc) == JV_KIND_NUMBER ? (long)jv_number_value(sc) : -1;
			long long t;
			jv prev;

			jv_free(sc);
			(void)i;
			if (!guid || !at || c < 0 || kwh_replay_since(at, 0, &t) < 0 ||
			    !strchr(at, 'T')) {
				jv_free(d);
				continue;	/* not a delivery as documented: nothing to act on */
			}
			if (t < r->since_ms) {
				older = 1;	/* newest first: the rest are older still */
				jv_free(d);
				continue;
			}
			prev = jv_object_get(jv_copy(seen), jv_string(guid));
			if (jv_get_kind(prev) == JV_KIND_INVALID) {
				/* the newest attempt of this guid decides, unless an older one succeeded */
				const char *what = c >= 200 && c < 300 ? "ok" :
				    kwh_replay_transient(c) ? "retry" : "final";
				seen = jv_object_set(seen, jv_string(guid), jv_string(what));
				if (!strcmp(what, "retry"))
					chosen = jv_array_append(chosen, jv_copy(d));
			} else if (c >= 200 && c < 300)
				seen = jv_object_set(seen, jv_string(guid), jv_string("ok"));
			jv_free(prev);
			jv_free(d);
		}
		jv_free(list);
	}
	/* oldest first: the events reach kwh in the order they happened */
	for (int i = jv_array_length(jv_copy(chosen)) - 1; i >= 0; i--) {
		jv d = jv_array_get(jv_copy(chosen), i), w, line;
		const char *guid = kwh_jv_str(d, "guid"), *ev = kwh_jv_str(d, "event");
		jv idv = jv_object_get(jv_copy(d), jv_string("id"));
		jv scv = jv_object_get(jv_copy(d), jv_string("status_code"));
		long long id = jv_get_kind(idv) == JV_KIND_NUMBER ? (long long)jv_number_value(idv) : 0;
		long c = (long)jv_number_value(scv);
		const char *result;

		jv_free(idv);
		jv_free(scv);
		w = jv_object_get(jv_copy(seen), jv_string(guid));
		if (strcmp(jv_string_value(w), "retry") || id <= 0) {
			jv_free(w);
			jv_free(d);
			continue;	/* an older attempt of it was delivered */
		}
		jv_free(w);
		todo++;
		if (r->dry_run) {
			result = "would-redeliver";
			kwh_log(KWH_LOG_INFO, guid, 0, "would redeliver %s delivery %lld of %s (GitHub got %ld at %s)",
			    ev ? ev : "?", id, r->repo, c, kwh_jv_str(d, "delivered_at"));
		} else if (asked >= r->max) {
			result = "not-asked";
			if (asked == r->max)
				kwh_log(KWH_LOG_WARN, NULL, 0, "--max %ld redeliveries reached; the rest wait for the next run",
				    r->max);
			asked++;
			code = 1;
		} else {
			kwh_buf_reset(&path);
			kwh_buf_printf(&path, "/repos/%s/hooks/%ld/deliveries/%lld/attempts", r->repo, r->hook_id, id);
			asked++;
			g->delivery = guid;
			if (kwh_github_request(g, "POST", path.data, NULL, 0, deadline, &ans, &status,
			    err, sizeof err) < 0) {
				result = "refused";
				code = 1;
				kwh_log(KWH_LOG_ERROR, guid, 0, "cannot redeliver %s delivery %lld of %s: %s",
				    ev ? ev : "?", id, r->repo, err);
			} else {
				result = "redelivered";
				ok++;
				kwh_log(KWH_LOG_INFO, guid, 0, "redelivery of %s delivery %lld of %s asked for "
				    "(GitHub got %ld at %s)", ev ? ev : "?", id, r->repo, c, kwh_jv_str(d, "delivered_at"));
			}
			g->delivery = NULL;
		}
		line = jv_object_set(jv_object(), jv_string("guid"), jv_string(guid));
		line = jv_object_set(line, jv_string("id"), jv_number((double)id));
		line = jv_object_set(line, jv_string("event"), ev ? jv_string(ev) : jv_null());
		line = jv_object_set(line, jv_string("status_code"), jv_number((double)c));
		line = jv_object_set(line, jv_string("delivered_at"), jv_string(kwh_jv_str(d, "delivered_at")));
		line = jv_object_set(line, jv_string("result"), jv_string(result));
		line = jv_dump_string(line, 0);
		if (printf("%s\n", jv_string_value(line)) < 0 || fflush(stdout) == EOF)
			code = KWH_EXIT_SYSTEM;
		jv_free(line);
		jv_free(d);
	}
	kwh_log(KWH_LOG_INFO, NULL, 0, "hook %ld of %s: %d redelivered of %d to redeliver%s", r->hook_id,
	    r->repo, ok, todo, r->dry_run ? " (dry run)" : "");
out:
	jv_free(seen);
	jv_free(chosen);
	kwh_buf_release(&path);
	kwh_buf_release(&ans);
	return code;
}
