/* spool.h — the dead-letter spool: deliveries kept for kwh-replay(1). */
#ifndef KWH_SPOOL_H
#define KWH_SPOOL_H
#include <stddef.h>
#include <time.h>
#include <jv.h>

/*
 * A spool is a directory holding one file per delivery and hook target,
 * DIR/<delivery>-<digest>.json (kwh_spool_name):
 * the envelope as it was when a stage gave up (without its response) plus a
 * "spool" key {stage, status, message, time, attempts} saying where and why
 * it stopped (time in Unix epoch milliseconds; attempts counts the replays
 * tried so far, 0 when first written; a failed replay adds "last":
 * {status, message, time}).  Names starting with '.' are temporary files.
 */

#define KWH_SPOOL_NOTE "; delivery spooled for replay"

/*
 * 1 when env must be spooled: it has "verified" (it passed the signature
 * check) and a response whose status is 500 to 599 (a cause that may
 * pass).  Borrows env.
 */
int kwh_spool_wanted(jv env);

/*
 * The stage that set env's response: response.stage when it is a string,
 * else inferred from the keys: no annotations, kwh-annotate; no
 * manifests, kwh-fetch; otherwise kwh-apply.  Borrows env; writes at most
 * n bytes to out and returns out.
 */
const char *kwh_spool_stage(jv env, char *out, size_t n);

/* 1 when name is a usable delivery id: 1 to 200 of [A-Za-z0-9_-]. */
int kwh_spool_name_ok(const char *delivery);

/*
 * Appends to out the file name env is spooled under: "DELIVERY-D.json",
 * D the first 16 hex digits of the envelope's digest (kwh.7), so that the
 * deliveries of one event to two hooks (a repository's and an
 * organisation's: one delivery id, two target types) are two files; or
 * "DELIVERY.json" for an envelope without a digest.  Borrows env.
 */
struct kwh_buf;
void kwh_spool_name(struct kwh_buf *out, jv env);

/*
 * Writes the JSON text of v (consumed) and a newline to DIR/NAME
 * atomically: a temporary file in DIR, write, fsync, rename, fsync of the
 * directory.  The new file is locked (flock) until it is in place, and
 * gets the modification time *mtime when mtime is not NULL.  Returns 0, or
 * -1 with a message in err (errlen bytes) and nothing left behind.
 */
int kwh_spool_write(const char *dir, const char *name, jv v,
    const struct timespec *mtime, char *err, size_t errlen);

/*
 * Spools env (consumed): writes it, minus its response and with the spool
 * key, to DIR/NAME (kwh_spool_name) with kwh_spool_write.  Returns 0, or -1 with
 * a message in err.  Does not check kwh_spool_wanted.
 */
int kwh_spool_envelope(const char *dir, jv env, char *err, size_t errlen);

/*
 * kwh-respond's step.  When env (consumed) is kwh_spool_wanted, spools it
 * and returns it with response.message ending in KWH_SPOOL_NOTE and
 * response.spooled true, or, when the spool write failed, with the message
 * ending in "; delivery NOT spooled: WHY", response.spooled false and
 * *failed set to 1; both are logged.  Otherwise returns env unchanged.
 */
jv kwh_spool_respond(const char *dir, jv env, int *failed);

/* One spooled file, as listed. */
struct kwh_spool_entry {
	char *name;			/* "<delivery>-<digest>.json", owned */
	struct timespec mtime;
};

/*
 * Lists the spooled files of dir (regular files named *.json, not starting
 * with '.'), oldest first (modification time, then name).  *out is an
 * array the caller frees with kwh_spool_list_free.  0, or -1 with errno.
 */
int kwh_spool_list(const char *dir, struct kwh_spool_entry **out, size_t *n);
void kwh_spool_list_free(struct kwh_spool_entry *e, size_t n);

/*
 * Opens DIR/NAME and takes an exclusive lock on it without waiting.
 * Returns 1 with *fd open and locked (close it to unlock), 0 when another
 * process holds it or it is gone or was replaced meanwhile (the lock is
 * checked to be on the file that is at DIR/NAME now), -1 with errno.
 */
int kwh_spool_lock(const char *dir, const char *name, int *fd);

/*
 * Removes DIR/NAME, locked through fd by kwh_spool_lock, unless it was
 * replaced meanwhile (then leaves the new file).  0, or -1 with errno.
 */
int kwh_spool_remove(const char *dir, const char *name, int fd);

#endif
