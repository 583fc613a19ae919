#include "spool.h"
#include "buf.h"
#include "env.h"
#include "err.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

int
kwh_spool_wanted(jv env)
{
	int st = kwh_env_status(env), ok = 0;
	jv v;

	if (st < 500 || st > 599)
		return 0;
	v = jv_object_get(jv_copy(env), jv_string("verified"));
	ok = jv_get_kind(v) == JV_KIND_STRING && jv_string_length_bytes(jv_copy(v)) > 0;
	jv_free(v);
	return ok;
}

static int
has_key(jv env, const char *key)
{
	jv v = jv_object_get(jv_copy(env), jv_string(key));
	int has = jv_get_kind(v) != JV_KIND_INVALID && jv_get_kind(v) != JV_KIND_NULL;

	jv_free(v);
	return has;
}

const char *
kwh_spool_stage(jv env, char *out, size_t n)
{
	jv r = jv_object_get(jv_copy(env), jv_string("response"));
	jv s = jv_get_kind(r) == JV_KIND_OBJECT ?
	    jv_object_get(jv_copy(r), jv_string("stage")) : jv_invalid();

	if (jv_get_kind(s) == JV_KIND_STRING && jv_string_length_bytes(jv_copy(s)) > 0)
		snprintf(out, n, "%s", jv_string_value(s));
	else if (!has_key(env, "annotations"))
		snprintf(out, n, "kwh-annotate");
	else if (!has_key(env, "manifests"))
		snprintf(out, n, "kwh-fetch");
	else
		snprintf(out, n, "kwh-apply");
	jv_free(s);
	jv_free(r);
	return out;
}

int
kwh_spool_name_ok(const char *d)
{
	size_t i;

	for (i = 0; d[i]; i++)
		if (!((d[i] >= 'a' && d[i] <= 'z') || (d[i] >= 'A' && d[i] <= 'Z') ||
		    (d[i] >= '0' && d[i] <= '9') || d[i] == '-' || d[i] == '_'))
			return 0;
	return i > 0 && i <= 200;
}

void
kwh_spool_name(struct kwh_buf *out, jv env)
{
	char delivery[256], digest[80];
	size_t n;

	kwh_env_str(env, "delivery", delivery, sizeof delivery);
	kwh_env_str(env, "digest", digest, sizeof digest);
	for (n = 0; n < 16 && ((digest[n] >= '0' && digest[n] <= '9') ||
	    (digest[n] >= 'a' && digest[n] <= 'f')); n++)
		;
	if (n == 16)
		kwh_buf_printf(out, "%s-%.16s.json", delivery, digest);
	else
		kwh_buf_printf(out, "%s.json", delivery);
}

int
kwh_spool_write(const char *dir, const char *name, jv v,
    const struct timespec *mtime, char *err, size_t errlen)
{
	struct kwh_buf tmp = KWH_BUF_INIT, dst = KWH_BUF_INIT;
	const char *what = "write";
	int fd = -1, dfd = -1, rc = -1, e;
	jv text = jv_dump_string(v, 0);

	if (kwh_buf_printf(&tmp, "%s/.%s.XXXXXX", dir, name) < 0 ||
	    kwh_buf_printf(&dst, "%s/%s", dir, name) < 0) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if ((fd = mkostemp(tmp.data, O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "cannot create a file in '%s': %s", dir, strerror(errno));
		goto out;
	}
	if (kwh_write_all(fd, jv_string_value(text), (size_t)jv_string_length_bytes(jv_copy(text))) < 0 ||
	    kwh_write_all(fd, "\n", 1) < 0)
		goto fail;
	what = "sync";
	if (fsync(fd) < 0)
		goto fail;
	what = "lock";
	if (flock(fd, LOCK_EX) < 0)
		goto fail;
	what = "set the time of";
	if (mtime && futimens(fd, (struct timespec[2]){ *mtime, *mtime }) < 0)
		goto fail;
	if (rename(tmp.data, dst.data) < 0) {
		snprintf(err, errlen, "cannot rename '%s' to '%s': %s", tmp.data, dst.data, strerror(errno));
		unlink(tmp.data);
		goto out;
	}
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fsync(dfd) < 0) {
		snprintf(err, errlen, "cannot sync the directory '%s': %s", dir, strerror(errno));
		goto out;
	}
	rc = 0;
	goto out;
fail:
	e = errno;
	snprintf(err, errlen, "cannot %s '%s': %s", what, tmp.data, strerror(e));
	unlink(tmp.data);
out:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	jv_free(text);
	kwh_buf_release(&tmp);
	kwh_buf_release(&dst);
	return rc;
}

int
kwh_spool_envelope(const char *dir, jv env, char *err, size_t errlen)
{
	char delivery[256], stage[64];
	struct kwh_buf name = KWH_BUF_INIT;
	jv resp, sp;
	int rc;

	kwh_env_str(env, "delivery", delivery, sizeof delivery);
	if (!kwh_spool_name_ok(delivery)) {
		snprintf(err, errlen, "the delivery id is not usable as a file name");
		jv_free(env);
		return -1;
	}
	kwh_spool_stage(env, stage, sizeof stage);
	resp = jv_object_get(jv_copy(env), jv_string("response"));
	sp = jv_object_set(jv_object(), jv_string("stage"), jv_string(stage));
	sp = jv_object_set(sp, jv_string("status"), jv_number(kwh_env_status(env)));
	{
		jv m = jv_get_kind(resp) == JV_KIND_OBJECT ?
		    jv_object_get(jv_copy(resp), jv_string("message")) : jv_invalid();
		sp = jv_object_set(sp, jv_string("message"),
		    jv_get_kind(m) == JV_KIND_STRING ? m : (jv_free(m), jv_string("")));
	}
	sp = jv_object_set(sp, jv_string("time"), jv_number((double)kwh_now_ms()));
	sp = jv_object_set(sp, jv_string("attempts"), jv_number(0));
	jv_free(resp);
	env = jv_object_delete(env, jv_string("response"));
	env = jv_object_set(env, jv_string("spool"), sp);
	kwh_spool_name(&name, env);
	rc = kwh_spool_write(dir, name.data, env, NULL, err, errlen);
	kwh_buf_release(&name);
	return rc;
}

jv
kwh_spool_respond(const char *dir, jv env, int *failed)
{
	char err[512], delivery[256];
	jv resp, msg;
	int ok, st;

	if (!kwh_spool_wanted(env))
		return env;
	kwh_env_str(env, "delivery", delivery, sizeof delivery);
	st = kwh_env_status(env);
	ok = kwh_spool_envelope(dir, jv_copy(env), err, sizeof err) == 0;
	if (ok)
		kwh_log(KWH_LOG_INFO, delivery, st, "delivery spooled for replay in '%s'", dir);
	else {
		kwh_log(KWH_LOG_ERROR, delivery, st, "delivery NOT spooled: %s", err);
		*failed = 1;
	}
	resp = jv_object_get(jv_copy(env), jv_string("response"));
	msg = jv_object_get(jv_copy(resp), jv_string("message"));
	if (jv_get_kind(msg) != JV_KIND_STRING) {
		jv_free(msg);
		msg = jv_string("");
	}
	msg = ok ? jv_string_append_str(msg, KWH_SPOOL_NOTE) :
	    jv_string_append_str(jv_string_append_str(msg, "; delivery NOT spooled: "), err);
	resp = jv_object_set(resp, jv_string("message"), msg);
	resp = jv_object_set(resp, jv_string("spooled"), ok ? jv_true() : jv_false());
	return jv_object_set(env, jv_string("response"), resp);
}

static int
entry_cmp(const void *a, const void *b)
{
	const struct kwh_spool_entry *x = a, *y = b;

	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
	if (x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
	return strcmp(x->name, y->name);
}

void
kwh_spool_list_free(struct kwh_spool_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(e[i].name);
	free(e);
}

int
kwh_spool_list(const char *dir, struct kwh_spool_entry **out, size_t *n)
{
	struct kwh_spool_entry *v = NULL, *nv;
	size_t len = 0, cap = 0, l;
	struct dirent *d;
	struct stat st;
	DIR *dp;
	int e;

	*out = NULL;
	*n = 0;
	if (!(dp = opendir(dir)))
		return -1;
	while ((errno = 0, d = readdir(dp))) {
		l = strlen(d->d_name);
		if (d->d_name[0] == '.' || l <= 5 || strcmp(d->d_name + l - 5, ".json"))
			continue;
		if (fstatat(dirfd(dp), d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (len == cap) {
			cap = cap ? 2 * cap : 16;
			if (!(nv = realloc(v, cap * sizeof *v)))
				goto fail;
			v = nv;
		}
		if (!(v[len].name = strdup(d->d_name)))
			goto fail;
		v[len++].mtime = st.st_mtim;
	}
	if (errno)
		goto fail;
	closedir(dp);
	if (len)
		qsort(v, len, sizeof *v, entry_cmp);
	*out = v;
	*n = len;
	return 0;
fail:
	e = errno;
	closedir(dp);
	kwh_spool_list_free(v, len);
	errno = e;
	return -1;
}

int
kwh_spool_lock(const char *dir, const char *name, int *fd)
{
	struct kwh_buf p = KWH_BUF_INIT;
	struct stat a, b;
	int f, e;

	*fd = -1;
	if (kwh_buf_printf(&p, "%s/%s", dir, name) < 0)
		return -1;
	if ((f = open(p.data, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		e = errno;
		kwh_buf_release(&p);
		errno = e;
		return e == ENOENT ? 0 : -1;
	}
	if (flock(f, LOCK_EX | LOCK_NB) < 0) {
		e = errno;
		close(f);
		kwh_buf_release(&p);
		errno = e;
		return e == EWOULDBLOCK ? 0 : -1;
	}
	/* The file may have been replaced or removed between open and lock. */
	if (fstat(f, &a) < 0 || stat(p.data, &b) < 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
		close(f);
		kwh_buf_release(&p);
		return 0;
	}
	kwh_buf_release(&p);
	*fd = f;
	return 1;
}

int
kwh_spool_remove(const char *dir, const char *name, int fd)
{
	struct kwh_buf p = KWH_BUF_INIT;
	struct stat a, b;
	int rc = 0, e = 0;

	if (kwh_buf_printf(&p, "%s/%s", dir, name) < 0)
		return -1;
	if (fstat(fd, &a) == 0 && stat(p.data, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
		if (unlink(p.data) < 0) {
			e = errno;
			rc = -1;
		} else {
			int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (dfd >= 0) {
				fsync(dfd);
				close(dfd);
			}
		}
	}
	kwh_buf_release(&p);
	errno = e;
	return rc;
}
