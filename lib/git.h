/* git.h — the git cache behind kwh-fetch: one bare repository per remote
 * URL, read straight from the object database, fetched with libgit2. */
#ifndef KWH_GIT_H
#define KWH_GIT_H
#include <stddef.h>

/*
 * Where and how to reach remotes.  Every pointer is borrowed and must stay
 * valid while a cache handle is open.  token is a secret: it is handed to
 * libgit2 as the password of HTTP basic authentication (user
 * "x-access-token", as GitHub takes it) and never written anywhere else.
 */
struct kwh_git_opts {
	const char *cache_dir;		/* holds NAME.git and NAME.lock */
	const char *ssh_key;		/* private key file, or NULL */
	const char *known_hosts;	/* OpenSSH known_hosts file, or NULL */
	int skip_host_key_check;	/* accept any SSH host key */
	const char *token;		/* HTTPS token, or NULL */
	const char *ca_file;		/* PEM CAs trusted for https:// instead
					   of the system bundle, or NULL */
	int progress;			/* transfer progress on stderr */
	/*
	 * Which remotes may be fetched (see kwh_git_allowed()): n_allow
	 * entries of --allow-remote-host ("HOST", "SCHEME://HOST" or
	 * "file://"); none means the default, "github.com".  pin, when not
	 * NULL, is the --remote template: its own scheme and host are allowed.
	 */
	const char *const *allow;
	size_t n_allow;
	const char *pin;
	/*
	 * The cache's size bound in bytes (0: none).  After a fetch, the
	 * least recently used entries not in use are removed while the
	 * cache holds more.
	 */
	unsigned long long max_bytes;
	/*
	 * A fetch still running at the deadline goes on in the background
	 * (see kwh_git_resolve()) for at most background_ms from its start
	 * (--fetch-budget; 0: it is killed at the deadline), when fewer than
	 * max_background such fetches run (--max-background-fetches).
	 */
	long long background_ms;
	unsigned max_background;
};

/* --fetch-budget and --max-background-fetches by default. */
#define KWH_GIT_BACKGROUND_MS_DEFAULT 300000LL
#define KWH_GIT_MAX_BACKGROUND_DEFAULT 4

/* --cache-max-bytes by default: 2 GiB. */
#define KWH_GIT_MAX_BYTES_DEFAULT (2ULL << 30)

/* Return values: 0, or one of these. */
enum {
	KWH_GIT_OK = 0,
	KWH_GIT_ENOTFOUND = -1,	/* revision, branch or path not there */
	KWH_GIT_EREMOTE = -2,	/* remote unreachable, silent or refusing */
	KWH_GIT_EDEADLINE = -3,	/* the deadline passed before we could try */
	KWH_GIT_ECACHE = -4,	/* the local cache could not be used */
	KWH_GIT_EREFUSED = -5,	/* the remote is not allowed (kwh_git_allowed) */
	KWH_GIT_EBADREV = -6,	/* the revision is not a full 40-digit object id */
	KWH_GIT_EBACKGROUND = -7, /* the deadline came; the fetch goes on in the background */
};

/*
 * The remote policy.  A URL is allowed when its scheme and host are
 * allowed by o->pin (same scheme and host as the --remote template; any
 * path for file://) or by an entry of o->allow (the default "github.com"
 * when there is none):
 *   HOST           https:// and ssh:// (and scp-like user@HOST:path) to HOST,
 *                  on any port;
 *   SCHEME://HOST  that scheme (https, http, ssh or git) to HOST;
 *   file://        local repositories (file:// URLs and plain paths).
 * Host names compare case-insensitively; an IPv6 address is written with
 * or without brackets.  Returns 1 when allowed, with *explicit set when
 * the operator named the host (pin or an --allow-remote-host entry, not
 * the default); 0 (message in err) when refused.
 */
int kwh_git_allowed(const struct kwh_git_opts *o, const char *url, int *explicit,
    char *err, size_t errlen);

/* 0 when s is a well-formed --allow-remote-host entry, else -1. */
int kwh_git_allow_entry_ok(const char *s);

/* Stop git work this long before the envelope's deadline, so that the
 * answer (504 when the deadline is what stopped it) is written in time. */
#define KWH_GIT_MARGIN_MS 500

/* After a fetch, an entry with more packs than this is rewritten as one
 * pack (every fetch writes a pack; reads search them all). */
#define KWH_GIT_PACKS_MAX 32

/*
 * An open cache entry for one remote URL, holding the entry's lock (shared
 * while reading, exclusive while fetching).  Opening creates the cache
 * directory (mode 0700); an entry left half-written by a process that died
 * while fetching is rebuilt by kwh_git_resolve().  Waits for the lock until deadline_ms
 * (Unix epoch milliseconds); when a fetch holds it, kwh_git_resolve()
 * (or kwh_git_read()) waits instead, so that what the delivery wants is
 * recorded first (see kwh_git_resolve()).  A URL kwh_git_allowed() refuses gives
 * EREFUSED before anything is created.  Returns 0 with *out set (free it
 * with kwh_git_close()), or a negative value with a message in err.
 */
struct kwh_git;
int kwh_git_open(struct kwh_git **out, const struct kwh_git_opts *o,
    const char *url, long long deadline_ms, char *err, size_t errlen);
/* The delivery id a background fetch names in its log lines (copied). */
void kwh_git_set_delivery(struct kwh_git *g, const char *delivery);
/*
 * Defers the upkeep after a fetch (pack consolidation, the cache's size
 * bound) that kwh_git_resolve() otherwise does before it returns: the
 * entries are noted, and kwh_git_upkeep() does it once the caller has
 * answered, under each entry's exclusive lock; with detach, in a detached
 * process holding that lock (the call returns at once).  The options
 * given to kwh_git_open() must stay valid until then.
 * kwh_git_upkeep_pending() says whether there is any.
 */
void kwh_git_defer_upkeep(int defer);
int kwh_git_upkeep_pending(void);
void kwh_git_upkeep(int detach);
/* Releases the lock and everything the handle holds.  NULL is fine. */
void kwh_git_close(struct kwh_git *g);

/*
 * For a process that serves many deliveries (kwh-handle --listen): keeps
 * libgit2 initialised between them (hold 1) instead of setting it up and
 * tearing it down for every kwh_git_open/kwh_git_close; hold 0 lets go.
 */
void kwh_git_hold(int hold);

/*
 * Finds the commit rev (a full object id: 40 hexadecimal digits, else
 * EBADREV) in the
 * cache without any network; when it is missing, takes the exclusive lock,
 * looks again (another process may just have fetched it), then fetches ref
 * (a full ref name such as refs/heads/main; NULL or "" for every branch
 * and tag), and when still missing every branch and tag.  Built with a
 * libgit2 that can (1.8 and later; see kwh_git_fetch_kind()), a remote
 * that is not local is fetched shallow: ref at depth 1, then rev by its
 * id, then ref at depth 50, 1000 and whole, before every branch and tag.
 * A delivery that must wait for another's fetch records its ref and rev
 * (NAME.wants beside the entry), and a fetch takes every ref so recorded
 * along with its own (past 32 of them, every branch).  With rev NULL,
 * asks the remote for its default branch (HEAD), falling back to
 * fallback_branch (a branch name, may be NULL), fetches it and takes its
 * tip.  The fetch runs in a child process killed at the deadline (then
 * EDEADLINE), unless o->background_ms lets it go on in the background:
 * then EBACKGROUND, the detached child keeping the entry's exclusive lock
 * until the fetch ends (so a later call waits for it and finds the
 * revision), and finishing the entry's upkeep itself.  Before connecting, the child resolves the host and refuses
 * (EREFUSED) loopback, link-local, private, unspecified, multicast and
 * reserved addresses unless the host was named explicitly.  An entry this
 * call created (or rebuilt) is removed again, lock file included, when
 * its first fetch fails; an entry that held a fetch is kept.
 * On success writes the full commit id (41 bytes with the NUL) to hex.
 * Errors: ENOTFOUND (revision still unknown, or no default branch),
 * EREMOTE, EDEADLINE, ECACHE, with a message in err that names the remote.
 */
int kwh_git_resolve(struct kwh_git *g, const char *rev, const char *ref,
    const char *fallback_branch, char hex[41], char *err, size_t errlen);

/*
 * Called for each file read: name is the path in the repository, data[0..len)
 * its content (borrowed, valid during the call).  A non-zero return stops
 * the walk and is returned by kwh_git_read().
 */
typedef int (*kwh_git_file_fn)(void *arg, const char *name, const char *data, size_t len);

/*
 * Reads path at commit hex straight from the object database: a file is
 * given to fn; a directory gives fn each *.yaml and *.yml file directly in
 * it, in name order.  Returns 0, ENOTFOUND when path is missing (or is a
 * directory with no such file), ECACHE, or what fn returned.
 */
int kwh_git_read(struct kwh_git *g, const char *hex, const char *path,
    kwh_git_file_fn fn, void *arg, char *err, size_t errlen);

/*
 * What fetches this build makes, for --help: "shallow fetches (libgit2
 * X.Y.Z)" when the libgit2 it was built with can fetch at a depth and
 * deepen (1.8 and later), else "whole-history fetches (libgit2 X.Y.Z)".
 */
const char *kwh_git_fetch_kind(void);

/* The cache entry's directory name for url ("HASH-suffix.git") into out. */
void kwh_git_cache_name(const char *url, char *out, size_t n);

/*
 * Copies url to out with any password in its user information replaced by
 * "***", for messages and the envelope.
 */
void kwh_git_redact_url(const char *url, char *out, size_t n);

#endif
