/* git.c — the libgit2 cache (see git.h).
 *
 * Layout of the cache directory: for each remote URL, NAME.git (a bare
 * repository) and NAME.lock (the flock(2) file; never removed).  NAME is
 * the first 16 hex digits of SHA-256 of the URL, a dash and the URL's last
 * two path components made readable.  A file "kwh-incomplete" inside
 * NAME.git exists while a fetch is running: found by a later process (which
 * can only happen after the fetching process died), it makes the entry be
 * rebuilt from scratch.
 *
 * Network operations run in a child process so that a remote that accepts
 * a connection and then says nothing can be cut off at the deadline
 * (libgit2 1.5 has no connect or read timeout).  The child is the fetch
 * helper, kwh-fetch-net (see "The fetch helper" below); it reports through
 * a pipe: one status byte, then a message or the default branch name.
 */
#include "git.h"
#include "buf.h"
#include "err.h"
#include "sig.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <git2.h>
#include <mbedtls/base64.h>
#include <mbedtls/md.h>

#define INCOMPLETE "kwh-incomplete"

struct kwh_git {
	const struct kwh_git_opts *o;
	char *url;
	char shown[1024];	/* url without any password, for messages */
	char *dir;		/* cache/NAME.git */
	int lockfd;
	int locked;		/* LOCK_SH or LOCK_EX */
	int inited;		/* git_libgit2_init() done */
	long long deadline;
	git_repository *repo;
};

/*
 * TLS set-up and the CA bundle, done only when a fetch needs them.
 *
 * Debian's libgit2 (1.5, built with mbedTLS) sets up TLS inside
 * git_libgit2_init(): it seeds mbedTLS's random generator, which runs the
 * HAVEGE entropy collector (a million instructions), and parses the whole
 * system CA bundle (56 million).  That was most of a kwh-fetch that reads a
 * cached revision and needs no network at all.  libgit2 offers no switch
 * for it, so the Makefile links libgit2 with --wrap for its TLS set-up
 * (git_mbedtls_stream_global_init) and for the two mbedTLS functions that
 * parse certificates, which sends those calls here.  The set-up is only
 * noted; kwh_git_load_cas(), called by the fetch child before it opens any
 * connection, runs it with the real function, then parses --ca-file or the
 * bundles libgit2 asked for into the chain libgit2 keeps in its TLS
 * configuration, before the first handshake.  A libgit2 built with
 * OpenSSL never calls these, and loses nothing.
 */
static struct {
	int loaded;		/* load now, not later */
	void *chain;		/* the chain libgit2 is filling */
	char *file, *dir;	/* what to load into it */
	int tls;		/* libgit2's TLS set-up was deferred */
} ca;

/* weak: a build that links libgit2 without the --wrap options loads the
 * bundle at initialisation as libgit2 does, and never calls these */
int __real_mbedtls_x509_crt_parse_file(void *chain, const char *path) __attribute__((weak));
int __real_mbedtls_x509_crt_parse_path(void *chain, const char *path) __attribute__((weak));
int __real_git_mbedtls_stream_global_init(void) __attribute__((weak));

static int
ca_note(void *chain, const char *path, int dir)
{
	char *copy = strdup(path);

	if (!copy)
		return -1;
	if (ca.chain != chain) {
		free(ca.file);
		free(ca.dir);
		ca.file = ca.dir = NULL;
		ca.chain = chain;
	}
	if (dir) {
		free(ca.dir);
		ca.dir = copy;
	} else {
		free(ca.file);
		ca.file = copy;
	}
	return 0;
}

int __wrap_mbedtls_x509_crt_parse_file(void *chain, const char *path);
int __wrap_mbedtls_x509_crt_parse_path(void *chain, const char *path);
int __wrap_git_mbedtls_stream_global_init(void);

int
__wrap_git_mbedtls_stream_global_init(void)
{
	if (ca.loaded)
		return __real_git_mbedtls_stream_global_init ?
		    __real_git_mbedtls_stream_global_init() : -1;
	ca.tls = 1;
	return 0;
}

int
__wrap_mbedtls_x509_crt_parse_file(void *chain, const char *path)
{
	if (ca.loaded)
		return __real_mbedtls_x509_crt_parse_file ?
		    __real_mbedtls_x509_crt_parse_file(chain, path) : -1;
	return ca_note(chain, path, 0);
}

int
__wrap_mbedtls_x509_crt_parse_path(void *chain, const char *path)
{
	if (ca.loaded)
		return __real_mbedtls_x509_crt_parse_path ?
		    __real_mbedtls_x509_crt_parse_path(chain, path) : -1;
	return ca_note(chain, path, 1);
}

/* kwh-fetch links lib/ssh2-dl.c, which loads libssh2 when SSH needs it */
int kwh_ssh2_load(char *msg, size_t msglen) __attribute__((weak));

static const char *git_msg(void);

/*
 * Runs libgit2's TLS set-up if that was deferred, then trusts ca_file (PEM,
 * instead of the system's bundle) or parses what libgit2 asked for; later
 * requests are carried out at once.  For an SSH remote (ssh set), loads
 * libssh2 if it is loaded on demand.  Returns 0, or -1 with what failed in
 * msg.
 */
static int
kwh_git_load_cas(const char *ca_file, int ssh, char *msg, size_t msglen)
{
	int r = 0;

	if (ssh && kwh_ssh2_load && kwh_ssh2_load(msg, msglen) < 0)
		return -1;
	if (ca.loaded)
		return 0;
	/* still noting: the system bundle is parsed below, unless replaced */
	if (ca.tls && __real_git_mbedtls_stream_global_init &&
	    __real_git_mbedtls_stream_global_init() < 0) {
		snprintf(msg, msglen, "cannot set up TLS: %s", git_msg());
		r = -1;
	}
	ca.loaded = 1;
	if (!r && ca_file) {
		/* a new chain, which replaces the noted one */
		free(ca.file);
		free(ca.dir);
		ca.file = ca.dir = NULL;
		if (git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, ca_file, NULL) < 0) {
			snprintf(msg, msglen, "cannot load the certificate authorities in '%s'", ca_file);
			r = -1;
		}
	}
	if (!r && ca.chain && ca.file && __real_mbedtls_x509_crt_parse_file &&
	    __real_mbedtls_x509_crt_parse_file(ca.chain, ca.file) < 0) {
		snprintf(msg, msglen, "cannot load the certificate authorities in '%s'", ca.file);
		r = -1;
	}
	if (!r && ca.chain && ca.dir && __real_mbedtls_x509_crt_parse_path &&
	    __real_mbedtls_x509_crt_parse_path(ca.chain, ca.dir) < 0) {
		snprintf(msg, msglen, "cannot load the certificate authorities in '%s'", ca.dir);
		r = -1;
	}
	free(ca.file);
	free(ca.dir);
	ca.file = ca.dir = NULL;
	return r;
}

/*
 * No Kerberos.  libgit2's only use of GSSAPI is HTTP "Negotiate"
 * authentication, which needs default credentials that kwh's credential
 * callback never gives (kwh authenticates with a token or an SSH key).
 * Defining the scheme's constructor here keeps libgit2's own from being
 * linked, and with it the six Kerberos libraries a process would otherwise
 * load at every start (about a third of a cached read's time).  It does
 * what libgit2 built without GSSAPI does (git_http_auth_dummy).
 */
int git_http_auth_negotiate(void **out, const void *url);

int
git_http_auth_negotiate(void **out, const void *url)
{
	*out = NULL;
	return GIT_PASSTHROUGH;
}

static void
seterr(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;

	if (!n)
		return;
	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
}

static const char *
git_msg(void)
{
	static char one_line[512];
	const git_error *e = git_error_last();
	const char *m = e && e->message ? e->message : "unknown libgit2 error";
	size_t i, k = 0;

	/* mbedTLS explains a refused certificate on several lines ending
	 * with a newline: one line for responses and logs */
	for (i = 0; m[i] && k + 3 < sizeof one_line; i++) {
		if (m[i] != '\n')
			one_line[k++] = m[i];
		else if (m[i + 1]) {
			one_line[k++] = ';';
			one_line[k++] = ' ';
		}
	}
	one_line[k] = '\0';
	return one_line;
}

void
kwh_git_redact_url(const char *url, char *out, size_t n)
{
	const char *s = strstr(url, "://"), *at, *colon, *slash;

	snprintf(out, n, "%s", url);
	if (!s)
		return;
	s += 3;
	slash = strchr(s, '/');
	at = memchr(s, '@', slash ? (size_t)(slash - s) : strlen(s));
	if (!at)
		return;
	colon = memchr(s, ':', (size_t)(at - s));
	if (!colon)
		return;
	snprintf(out, n, "%.*s:***%s", (int)(colon - url), url, at);
}

void
kwh_git_cache_name(const char *url, char *out, size_t n)
{
	unsigned char md[32];
	char suffix[48], *p = suffix;
	const char *end = url + strlen(url), *start;
	int slashes = 0, i;

	kwh_sha256(url, strlen(url), md);
	while (end > url && end[-1] == '/')
		end--;
	if (end - url > 4 && !strncmp(end - 4, ".git", 4))
		end -= 4;
	for (start = end; start > url; start--) {
		if (start[-1] == '/' || start[-1] == ':')
			if (++slashes == 2)
				break;
	}
	for (; start < end && p < suffix + sizeof suffix - 1; start++)
		*p++ = isalnum((unsigned char)*start) || *start == '.' ||
		    *start == '_' || *start == '-' ? *start : '-';
	*p = '\0';
	p = out;
	for (i = 0; i < 8 && n > 2; i++, n -= 2, p += 2)
		snprintf(p, 3, "%02x", md[i]);
	snprintf(p, n, "-%s.git", suffix);
}

/* Takes the lock in mode (LOCK_SH, LOCK_EX), waiting until the deadline. */
static int
take_lock(struct kwh_git *g, int mode, char *err, size_t errlen)
{
	if (g->locked == mode)
		return 0;
	if (g->locked)
		flock(g->lockfd, LOCK_UN);
	g->locked = 0;
	for (;;) {
		if (flock(g->lockfd, mode | LOCK_NB) == 0) {
			g->locked = mode;
			return 0;
		}
		if (errno != EWOULDBLOCK && errno != EINTR) {
			seterr(err, errlen, "cannot lock the cache for %s: %s", g->shown, strerror(errno));
			return KWH_GIT_ECACHE;
		}
		if (kwh_now_ms() >= g->deadline) {
			seterr(err, errlen, "deadline passed waiting for the cache lock of %s", g->shown);
			return KWH_GIT_EDEADLINE;
		}
		usleep(10000);
	}
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

static int
exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static int
marker_path(struct kwh_buf *b, const struct kwh_git *g)
{
	kwh_buf_reset(b);
	return kwh_buf_printf(b, "%s/%s", g->dir, INCOMPLETE);
}

static int
set_marker(struct kwh_git *g, int on)
{
	struct kwh_buf m = KWH_BUF_INIT;
	int fd, r = 0;

	if (marker_path(&m, g) < 0)
		return -1;
	if (on) {
		if ((fd = open(m.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 ||
		    fsync(fd) < 0)
			r = -1;
		if (fd >= 0)
			close(fd);
	} else if (unlink(m.data) < 0 && errno != ENOENT) {
		r = -1;
	}
	kwh_buf_release(&m);
	return r;
}

/* Opens g->repo; 1 when the entry is missing, half-written or unusable. */
static int
open_repo(struct kwh_git *g)
{
	struct kwh_buf m = KWH_BUF_INIT;
	int bad;

	if (g->repo) {
		git_repository_free(g->repo);
		g->repo = NULL;
	}
	if (marker_path(&m, g) < 0)
		return 1;
	bad = !exists(g->dir) || exists(m.data) ||
	    git_repository_open_bare(&g->repo, g->dir) < 0;
	kwh_buf_release(&m);
	return bad;
}

/* Under the exclusive lock: removes the entry and creates an empty one. */
static int
rebuild(struct kwh_git *g, char *err, size_t errlen)
{
	if (g->repo) {
		git_repository_free(g->repo);
		g->repo = NULL;
	}
	if (exists(g->dir) && nftw(g->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0) {
		seterr(err, errlen, "cannot remove the broken cache '%s': %s", g->dir, strerror(errno));
		return KWH_GIT_ECACHE;
	}
	if (mkdir(g->dir, 0700) < 0 || set_marker(g, 1) < 0) {
		seterr(err, errlen, "cannot create '%s': %s", g->dir, strerror(errno));
		return KWH_GIT_ECACHE;
	}
	if (git_repository_init(&g->repo, g->dir, 1) < 0) {
		seterr(err, errlen, "cannot create a repository in '%s': %s", g->dir, git_msg());
		return KWH_GIT_ECACHE;
	}
	/* for people looking into the cache: which remote this is */
	{
		git_config *cfg;
		if (git_repository_config(&cfg, g->repo) == 0) {
			git_config_set_string(cfg, "kwh.url", g->shown);
			git_config_free(cfg);
		}
	}
	return 0;
}

/* mkdir -p, mode 0700 for what it creates. */
static int
mkdir_p(const char *path)
{
	char *p, *s;
	int r = 0;

	if (mkdir(path, 0700) == 0 || errno == EEXIST)
		return 0;
	if (errno != ENOENT || !(s = strdup(path)))
		return -1;
	for (p = s + 1; *p && r == 0; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(s, 0700) < 0 && errno != EEXIST)
			r = -1;
		*p = '/';
	}
	free(s);
	if (r == 0 && mkdir(path, 0700) < 0 && errno != EEXIST)
		r = -1;
	return r;
}

/* libgit2 for the cache: it must not depend on whoever's ~/.gitconfig */
static void
lib_init(void)
{
	git_libgit2_init();
	git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_SYSTEM, "");
	git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_XDG, "");
	git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_GLOBAL, "");
}

int
kwh_git_open(struct kwh_git **out, const struct kwh_git_opts *o,
    const char *url, long long deadline_ms, char *err, size_t errlen)
{
	struct kwh_git *g;
	struct kwh_buf b = KWH_BUF_INIT;
	char name[96];
	int r;

	*out = NULL;
	if (!(g = calloc(1, sizeof *g)) || !(g->url = strdup(url))) {
		free(g);
		seterr(err, errlen, "out of memory");
		return KWH_GIT_ECACHE;
	}
	g->o = o;
	kwh_git_redact_url(url, g->shown, sizeof g->shown);
	g->lockfd = -1;
	g->deadline = deadline_ms;
	lib_init();
	g->inited = 1;
	kwh_git_cache_name(url, name, sizeof name);
	if (mkdir_p(o->cache_dir) < 0) {
		seterr(err, errlen, "cannot create the cache '%s': %s", o->cache_dir, strerror(errno));
		r = KWH_GIT_ECACHE;
		goto fail;
	}
	if (kwh_buf_printf(&b, "%s/%s", o->cache_dir, name) < 0 ||
	    !(g->dir = strdup(b.data))) {
		seterr(err, errlen, "out of memory");
		r = KWH_GIT_ECACHE;
		goto fail;
	}
	b.data[b.len - 4] = '\0';
	b.len -= 4;
	kwh_buf_adds(&b, ".lock");
	if ((g->lockfd = open(b.data, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		seterr(err, errlen, "cannot open '%s': %s", b.data, strerror(errno));
		r = KWH_GIT_ECACHE;
		goto fail;
	}
	if ((r = take_lock(g, LOCK_SH, err, errlen)) < 0)
		goto fail;
	/* missing or half-written: kwh_git_resolve() rebuilds it under LOCK_EX */
	open_repo(g);
	kwh_buf_release(&b);
	*out = g;
	return 0;
fail:
	kwh_buf_release(&b);
	kwh_git_close(g);
	return r;
}

void
kwh_git_close(struct kwh_git *g)
{
	if (!g)
		return;
	if (g->repo)
		git_repository_free(g->repo);
	if (g->lockfd >= 0)
		close(g->lockfd);
	if (g->inited)
		git_libgit2_shutdown();
	free(g->url);
	free(g->dir);
	free(g);
}

void
kwh_git_hold(int hold)
{
	static int held;

	if (hold && !held)
		git_libgit2_init();
	else if (!hold && held)
		git_libgit2_shutdown();
	held = hold;
}

/* Looks rev up as a commit; 0 with hex filled, or -1. */
static int
lookup(struct kwh_git *g, const char *rev, char hex[41])
{
	git_oid oid;
	git_object *obj = NULL, *commit = NULL;
	size_t len = strlen(rev);
	int r = -1;

	if (!g->repo || git_oid_fromstrn(&oid, rev, len) < 0)
		return -1;
	if (git_object_lookup_prefix(&obj, g->repo, &oid, len, GIT_OBJECT_ANY) == 0 &&
	    git_object_peel(&commit, obj, GIT_OBJECT_COMMIT) == 0) {
		git_oid_tostr(hex, 41, git_object_id(commit));
		r = 0;
	}
	git_object_free(commit);
	git_object_free(obj);
	return r;
}

/* ---- the network side, run in a child process ---- */

struct net {
	struct kwh_git *g;
	char host_port[300];	/* "[host]:port" or "host" for known_hosts */
	int port;
	char msg[512];		/* why we refused (certificate, credentials) */
	int tried_key, tried_token, tried_user;
	int last_pct;
};

/* Does libgit2 take url to SSH?  ssh://, its two aliases, and scp-like
 * user@host:path (a colon before any slash), as libgit2 decides. */
static int
is_ssh(const char *url)
{
	const char *colon = strchr(url, ':'), *slash = strchr(url, '/');

	if (strstr(url, "://"))
		return !strncmp(url, "ssh://", 6) || !strncmp(url, "ssh+git://", 10) ||
		    !strncmp(url, "git+ssh://", 10);
	return colon && (!slash || colon < slash);
}

/* Sets the host and port known_hosts lines name for an SSH URL. */
static void
ssh_target(struct net *n, const char *url)
{
	const char *s = strstr(url, "://"), *h, *e, *at;
	char host[256];

	n->port = 22;
	if (s) {
		s += 3;
		e = s + strcspn(s, "/");
		at = memchr(s, '@', (size_t)(e - s));
		h = at ? at + 1 : s;
		if (*h == '[') {
			const char *rb = memchr(h, ']', (size_t)(e - h));
			if (!rb)
				rb = e;
			snprintf(host, sizeof host, "%.*s", (int)(rb - h - 1), h + 1);
			if (rb < e && rb[1] == ':')
				n->port = atoi(rb + 2);
		} else {
			const char *c = memchr(h, ':', (size_t)(e - h));
			snprintf(host, sizeof host, "%.*s", (int)((c ? c : e) - h), h);
			if (c)
				n->port = atoi(c + 1);
		}
	} else {
		/* scp-like user@host:path */
		at = strchr(url, '@');
		h = at ? at + 1 : url;
		snprintf(host, sizeof host, "%.*s", (int)strcspn(h, ":"), h);
	}
	if (n->port == 22)
		snprintf(n->host_port, sizeof n->host_port, "%s", host);
	else
		snprintf(n->host_port, sizeof n->host_port, "[%s]:%d", host, n->port);
}

static int
b64_decode(const char *in, unsigned char **out, size_t *outlen)
{
	size_t len = strlen(in);

	if (!len || len % 4)
		return -1;
	if (!(*out = malloc(len / 4 * 3 + 1)))
		return -1;
	if (mbedtls_base64_decode(*out, len / 4 * 3 + 1, outlen,
	    (const unsigned char *)in, len) != 0) {
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

/* OpenSSH's host patterns: '*' and '?' only, no case ('[' is literal). */
static int
wild_match(const char *p, const char *s)
{
	for (; *p; p++, s++) {
		if (*p == '*') {
			for (;; s++) {
				if (wild_match(p + 1, s))
					return 1;
				if (!*s)
					return 0;
			}
		}
		if (!*s || (*p != '?' && tolower((unsigned char)*p) != tolower((unsigned char)*s)))
			return 0;
	}
	return !*s;
}

/* Does one host pattern (plain, wildcard or |1|salt|hash) name target? */
static int
host_matches(const char *pat, const char *target)
{
	if (!strncmp(pat, "|1|", 3)) {
		char salt64[128], *bar;
		const mbedtls_md_info_t *sha1 = mbedtls_md_info_from_type(MBEDTLS_MD_SHA1);
		unsigned char *salt = NULL, *hash = NULL, md[20];
		size_t saltlen, hashlen;
		int ok = 0;

		snprintf(salt64, sizeof salt64, "%s", pat + 3);
		if (!(bar = strchr(salt64, '|')))
			return 0;
		*bar = '\0';
		if (b64_decode(salt64, &salt, &saltlen) == 0 &&
		    b64_decode(pat + 3 + strlen(salt64) + 1, &hash, &hashlen) == 0 &&
		    sha1 && mbedtls_md_get_size(sha1) == sizeof md && hashlen == sizeof md &&
		    mbedtls_md_hmac(sha1, salt, saltlen, (const unsigned char *)target,
			strlen(target), md) == 0 && !memcmp(md, hash, hashlen))
			ok = 1;
		free(salt);
		free(hash);
		return ok;
	}
	return wild_match(pat, target);
}

/*
 * Checks the raw host key against the known_hosts file: 0 when a line for
 * the host has this key, -1 (message set) when the key is unknown or
 * changed, or the file is unreadable.
 */
static int
check_known_hosts(struct net *n, const unsigned char *key, size_t keylen)
{
	const char *file = n->g->o->known_hosts;
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	int host_seen = 0, ok = 0, revoked = 0;

	if (!(f = fopen(file, "re"))) {
		snprintf(n->msg, sizeof n->msg, "cannot read known hosts file '%s': %s",
		    file, strerror(errno));
		return -1;
	}
	while (getline(&line, &cap, f) > 0) {
		char *save = NULL, *marker = NULL, *hosts, *type, *k64, *h, *hs;
		int match = 0, neg = 0;
		unsigned char *blob;
		size_t bloblen;

		hosts = strtok_r(line, " \t\r\n", &save);
		if (!hosts || *hosts == '#')
			continue;
		if (*hosts == '@') {
			marker = hosts;
			hosts = strtok_r(NULL, " \t\r\n", &save);
		}
		type = strtok_r(NULL, " \t\r\n", &save);
		k64 = strtok_r(NULL, " \t\r\n", &save);
		if (!hosts || !type || !k64 || (marker && strcmp(marker, "@revoked")))
			continue;
		for (h = strtok_r(hosts, ",", &hs); h; h = strtok_r(NULL, ",", &hs)) {
			if (*h == '!' && host_matches(h + 1, n->host_port))
				neg = 1;
			else if (*h != '!' && host_matches(h, n->host_port))
				match = 1;
		}
		if (!match || neg)
			continue;
		if (b64_decode(k64, &blob, &bloblen) < 0)
			continue;
		if (bloblen == keylen && !memcmp(blob, key, keylen)) {
			if (marker)
				revoked = 1;
			else
				ok = 1;
		}
		if (!marker)
			host_seen = 1;
		free(blob);
	}
	free(line);
	fclose(f);
	if (revoked) {
		snprintf(n->msg, sizeof n->msg, "the host key of %s is revoked in '%s'", n->host_port, file);
		return -1;
	}
	if (ok)
		return 0;
	if (host_seen)
		snprintf(n->msg, sizeof n->msg,
		    "the host key of %s has changed: it does not match '%s' (refused)",
		    n->host_port, file);
	else
		snprintf(n->msg, sizeof n->msg,
		    "unknown host key for %s: not in '%s' (refused)", n->host_port, file);
	return -1;
}

static int
cert_cb(git_cert *cert, int valid, const char *host, void *payload)
{
	struct net *n = payload;

	if (cert->cert_type != GIT_CERT_HOSTKEY_LIBSSH2)
		return valid ? 0 : GIT_PASSTHROUGH;
	if (n->g->o->skip_host_key_check)
		return 0;
	git_cert_hostkey *hk = (git_cert_hostkey *)cert;
	if (!(hk->type & GIT_CERT_SSH_RAW)) {
		snprintf(n->msg, sizeof n->msg, "no host key from %s to check (refused)", n->host_port);
		return GIT_ECERTIFICATE;
	}
	if (check_known_hosts(n, (const unsigned char *)hk->hostkey, hk->hostkey_len) < 0)
		return GIT_ECERTIFICATE;
	return 0;
}

static int
cred_cb(git_credential **out, const char *url, const char *user,
    unsigned int allowed, void *payload)
{
	struct net *n = payload;
	const struct kwh_git_opts *o = n->g->o;

	if ((allowed & GIT_CREDENTIAL_SSH_KEY) && o->ssh_key && !n->tried_key) {
		struct kwh_buf pub = KWH_BUF_INIT;
		int r;

		n->tried_key = 1;
		kwh_buf_printf(&pub, "%s.pub", o->ssh_key);
		r = git_credential_ssh_key_new(out, user && *user ? user : "git",
		    pub.data && access(pub.data, R_OK) == 0 ? pub.data : NULL, o->ssh_key, NULL);
		kwh_buf_release(&pub);
		return r;
	}
	if ((allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) && o->token && !n->tried_token) {
		n->tried_token = 1;
		return git_credential_userpass_plaintext_new(out, "x-access-token", o->token);
	}
	if ((allowed & GIT_CREDENTIAL_USERNAME) && !n->tried_user) {
		n->tried_user = 1;
		return git_credential_username_new(out, user && *user ? user : "git");
	}
	if (n->tried_key || n->tried_token)
		snprintf(n->msg, sizeof n->msg, "the remote refused our credentials");
	else
		snprintf(n->msg, sizeof n->msg, "the remote asks for credentials and none are configured%s",
		    allowed & GIT_CREDENTIAL_SSH_KEY ? " (--ssh-key)" :
		    allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT ? " (--token-file)" : "");
	return GIT_EAUTH;
}

static int
progress_cb(const git_indexer_progress *s, void *payload)
{
	struct net *n = payload;
	int pct;

	if (kwh_now_ms() >= n->g->deadline) {
		snprintf(n->msg, sizeof n->msg, "the deadline passed while fetching");
		return -1;
	}
	if (!n->g->o->progress || !s->total_objects)
		return 0;
	pct = (int)(100.0 * (s->received_objects + s->indexed_deltas) /
	    (s->total_objects + s->total_deltas));
	if (pct != n->last_pct) {
		n->last_pct = pct;
		fprintf(stderr, "\rkwh-fetch: receiving objects: %3d%% (%u/%u), %zu KiB%s", pct,
		    s->received_objects, s->total_objects, s->received_bytes / 1024,
		    pct == 100 ? "\n" : "");
	}
	return 0;
}

/* In the child: connect, perhaps ask for HEAD, fetch.  Writes the report. */
static void
net_child(struct kwh_git *g, int fd, const char *ref, int want_head, const char *fallback)
{
	git_remote_callbacks cb;
	git_fetch_options fo;
	git_remote_create_options ro;
	git_remote *remote = NULL;
	git_repository *repo = NULL;
	git_buf head = GIT_BUF_INIT;
	struct kwh_buf spec = KWH_BUF_INIT, out = KWH_BUF_INIT;
	struct net n;
	char *specs[2];
	git_strarray refspecs = { specs, 0 };
	char status = 'E';
	const char *branch = NULL;

	git_remote_init_callbacks(&cb, GIT_REMOTE_CALLBACKS_VERSION);
	git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
	memset(&n, 0, sizeof n);
	n.g = g;
	n.last_pct = -1;
	ssh_target(&n, g->url);
	if (kwh_git_load_cas(g->o->ca_file, is_ssh(g->url), n.msg, sizeof n.msg) < 0)
		goto fail;
	cb.certificate_check = cert_cb;
	cb.credentials = cred_cb;
	cb.transfer_progress = progress_cb;
	cb.payload = &n;
	git_remote_create_options_init(&ro, GIT_REMOTE_CREATE_OPTIONS_VERSION);
	ro.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
	if (git_repository_open_bare(&repo, g->dir) < 0)
		goto fail;
	ro.repository = repo;
	if (git_remote_create_with_opts(&remote, g->url, &ro) < 0)
		goto fail;
	if (want_head) {
		if (git_remote_connect(remote, GIT_DIRECTION_FETCH, &cb, NULL, NULL) < 0)
			goto fail;
		if (git_remote_default_branch(&head, remote) == 0 &&
		    !strncmp(head.ptr, "refs/heads/", 11))
			branch = head.ptr + 11;
		else if (fallback && *fallback)
			branch = fallback;
		if (!branch) {
			status = 'N';
			kwh_buf_printf(&out, "%s has no default branch", g->shown);
			goto report;
		}
		git_remote_disconnect(remote);
		kwh_buf_printf(&spec, "+refs/heads/%s:refs/heads/%s", branch, branch);
		specs[refspecs.count++] = spec.data;
	} else if (ref && !strncmp(ref, "refs/", 5)) {
		kwh_buf_printf(&spec, "+%s:%s", ref, ref);
		specs[refspecs.count++] = spec.data;
	} else {
		specs[refspecs.count++] = "+refs/heads/*:refs/heads/*";
		specs[refspecs.count++] = "+refs/tags/*:refs/tags/*";
	}
	fo.callbacks = cb;
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	if (git_remote_fetch(remote, &refspecs, &fo, NULL) < 0)
		goto fail;
	status = '0';
	if (branch)
		kwh_buf_adds(&out, branch);
	goto report;
fail:
	if (n.msg[0])
		kwh_buf_printf(&out, "%s: %s", g->shown, n.msg);
	else
		kwh_buf_printf(&out, "%s: %s", g->shown, git_msg());
report:
	kwh_write_all(fd, &status, 1);
	if (out.data)
		kwh_write_all(fd, out.data, out.len);
	/* tidy up, so that memory checkers following the fork see no leak */
	git_remote_free(remote);
	git_repository_free(repo);
	git_buf_dispose(&head);
	kwh_buf_release(&spec);
	kwh_buf_release(&out);
	_exit(0);
}

/*
 * The fetch helper.
 *
 * kwh-fetch is linked statically: with no dynamic loader at start, a
 * cached read costs a millisecond less (bench/README.md).  A static
 * program must not load shared libraries, and the network side does:
 * libssh2 (lib/ssh2-dl.c) and the resolver's modules.  So the fetch child
 * runs kwh-fetch-net (libexec/kwh-fetch-net.c, dynamically linked, the same
 * net_child), found in $KWH_LIBEXEC or else in ../libexec/kwh from the
 * running program's directory.  The parameters go through a pipe on its
 * fd 3, NUL-terminated strings in the order below ("" for none, "1" for
 * yes), so that the token is never in argv or the environment; the report
 * goes to its fd 4.
 */
enum {
	P_URL, P_DIR, P_REF, P_WANT_HEAD, P_FALLBACK, P_DEADLINE, P_SSH_KEY,
	P_KNOWN_HOSTS, P_SKIP_HOST_KEY_CHECK, P_TOKEN, P_CA_FILE, P_PROGRESS,
	PARAMS
};
#define HELPER "kwh-fetch-net"

static int
helper_path(struct kwh_buf *b)
{
	const char *dir = getenv("KWH_LIBEXEC");
	char exe[PATH_MAX], *s;
	ssize_t k;

	if (dir && *dir)
		return kwh_buf_printf(b, "%s/" HELPER, dir);
	if ((k = readlink("/proc/self/exe", exe, sizeof exe - 1)) <= 0)
		return -1;
	exe[k] = '\0';
	if ((s = strrchr(exe, '/')))
		*s = '\0';
	return kwh_buf_printf(b, "%s/../libexec/kwh/" HELPER, exe);
}

/* In the child: hands the fetch to the helper, or reports why it cannot. */
static void
net_exec(struct kwh_git *g, int fd, const char *ref, int want_head, const char *fallback)
{
	const struct kwh_git_opts *o = g->o;
	struct kwh_buf b = KWH_BUF_INIT, path = KWH_BUF_INIT;
	char num[32], *argv[] = { HELPER, NULL };
	const char *v[PARAMS];
	int q[2], a, c, e, i;

	snprintf(num, sizeof num, "%lld", g->deadline);
	v[P_URL] = g->url;
	v[P_DIR] = g->dir;
	v[P_REF] = ref;
	v[P_WANT_HEAD] = want_head ? "1" : "";
	v[P_FALLBACK] = fallback;
	v[P_DEADLINE] = num;
	v[P_SSH_KEY] = o->ssh_key;
	v[P_KNOWN_HOSTS] = o->known_hosts;
	v[P_SKIP_HOST_KEY_CHECK] = o->skip_host_key_check ? "1" : "";
	v[P_TOKEN] = o->token;
	v[P_CA_FILE] = o->ca_file;
	v[P_PROGRESS] = o->progress ? "1" : "";
	for (i = 0; i < PARAMS; i++)
		kwh_buf_add(&b, v[i] ? v[i] : "", strlen(v[i] ? v[i] : "") + 1);
	/* all of it fits in the pipe, so it is written before the helper runs */
	errno = E2BIG;
	if (helper_path(&path) < 0 || !b.data || b.len > 60000 || pipe(q) < 0 ||
	    kwh_write_all(q[1], b.data, b.len) < 0) {
		e = errno;
		kwh_buf_wipe(&b);
		kwh_buf_printf(&b, "Lcannot start the fetch helper: %s", strerror(e));
		kwh_write_all(fd, b.data, b.len);
		_exit(0);
	}
	kwh_buf_wipe(&b);
	close(q[1]);
	/* copies above 4 first: either end may itself be fd 3 or 4 */
	a = fcntl(q[0], F_DUPFD, 10);
	c = fcntl(fd, F_DUPFD, 10);
	if (a < 0 || c < 0 || dup2(a, 3) < 0 || dup2(c, 4) < 0) {
		e = errno;
	} else {
		execv(path.data, argv);
		e = errno;
	}
	kwh_buf_printf(&b, "Lcannot run the fetch helper '%s': %s (set KWH_LIBEXEC to the "
	    "directory that holds " HELPER ")", path.data, strerror(e));
	kwh_write_all(c >= 0 ? c : fd, b.data, b.len);
	_exit(0);
}

int
kwh_git_net_main(int in, int out)
{
	static struct kwh_git_opts o;
	struct kwh_git g;
	struct kwh_buf b;
	const char *f[PARAMS], *p, *end;
	int n = 0, i;

	kwh_buf_init(&b, 1 << 16);
	if (kwh_buf_read_fd(&b, in) == 0 && b.data)
		for (p = b.data, end = b.data + b.len; p < end && n < PARAMS; p += strlen(p) + 1)
			f[n++] = p;
	close(in);
	for (i = 0; i < n; i++)
		if (!*f[i])
			f[i] = NULL;	/* "" was none */
	if (n != PARAMS || !f[P_URL] || !f[P_DIR] || !f[P_DEADLINE]) {
		kwh_write_all(out, "Lthe fetch helper got no parameters", 35);
		kwh_buf_wipe(&b);
		return KWH_EXIT_USAGE;
	}
	o.ssh_key = f[P_SSH_KEY];
	o.known_hosts = f[P_KNOWN_HOSTS];
	o.skip_host_key_check = f[P_SKIP_HOST_KEY_CHECK] != NULL;
	o.token = f[P_TOKEN];
	o.ca_file = f[P_CA_FILE];
	o.progress = f[P_PROGRESS] != NULL;
	memset(&g, 0, sizeof g);
	g.o = &o;
	g.url = (char *)f[P_URL];
	g.dir = (char *)f[P_DIR];
	kwh_git_redact_url(g.url, g.shown, sizeof g.shown);
	g.lockfd = -1;
	g.deadline = atoll(f[P_DEADLINE]);
	lib_init();
	net_child(&g, out, f[P_REF], f[P_WANT_HEAD] != NULL, f[P_FALLBACK]);	/* does not return */
	return 0;
}

/*
 * Runs the fetch helper in a child process under the exclusive lock and
 * waits for it until the deadline.  0 (branch, when asked for, in *branch), or
 * EREMOTE / ENOTFOUND / ECACHE with err set.
 */
static int
net_run(struct kwh_git *g, const char *ref, int want_head, const char *fallback,
    struct kwh_buf *branch, char *err, size_t errlen)
{
	struct kwh_buf rep = KWH_BUF_INIT;
	int p[2], st, r, timed_out = 0;
	pid_t pid, parent;
	char tmp[4096];

	if (g->repo) {
		git_repository_free(g->repo);
		g->repo = NULL;
	}
	if (set_marker(g, 1) < 0) {
		seterr(err, errlen, "cannot write in '%s': %s", g->dir, strerror(errno));
		return KWH_GIT_ECACHE;
	}
	parent = getpid();
	if (pipe2(p, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
		seterr(err, errlen, "cannot start the fetch: %s", strerror(errno));
		return KWH_GIT_ECACHE;
	}
	if (pid == 0) {
		close(p[0]);
#ifdef __linux__
		/* a killed kwh-fetch must not leave its fetch holding the lock */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
#endif
		net_exec(g, p[1], ref, want_head, fallback);
	}
	close(p[1]);
	for (;;) {
		struct pollfd pfd = { p[0], POLLIN, 0 };
		long long left = g->deadline - kwh_now_ms();
		ssize_t k;

		if (left <= 0) {
			timed_out = 1;
			kill(pid, SIGKILL);
			break;
		}
		r = poll(&pfd, 1, left > 1000 ? 1000 : (int)left);
		if (r < 0 && errno != EINTR)
			break;
		if (r <= 0)
			continue;
		k = read(p[0], tmp, sizeof tmp);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		if (kwh_buf_add(&rep, tmp, (size_t)k) < 0)
			break;
	}
	close(p[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (timed_out) {
		/* the marker stays: the next run rebuilds whatever is left */
		seterr(err, errlen, "%s did not answer before the deadline", g->shown);
		r = KWH_GIT_EREMOTE;
	} else if (!rep.len || !WIFEXITED(st)) {
		seterr(err, errlen, "the fetch from %s died", g->shown);
		r = KWH_GIT_ECACHE;
	} else if (rep.data[0] == '0') {
		if (set_marker(g, 0) < 0) {
			seterr(err, errlen, "cannot write in '%s': %s", g->dir, strerror(errno));
			r = KWH_GIT_ECACHE;
		} else {
			r = 0;
			if (branch)
				kwh_buf_add(branch, rep.data + 1, rep.len - 1);
		}
	} else {
		seterr(err, errlen, "%.*s", (int)(rep.len - 1), rep.data + 1);
		r = rep.data[0] == 'N' ? KWH_GIT_ENOTFOUND :
		    rep.data[0] == 'L' ? KWH_GIT_ECACHE : KWH_GIT_EREMOTE;
		if (rep.data[0] == 'L')
			set_marker(g, 0);	/* the helper never ran: nothing changed */
	}
	kwh_buf_release(&rep);
	if (r == 0 || r == KWH_GIT_ENOTFOUND || r == KWH_GIT_EREMOTE) {
		/* a failed fetch leaves the repository as it was: clear the marker */
		if (!timed_out && r != 0)
			set_marker(g, 0);
		if (!timed_out && open_repo(g) && r == 0) {
			seterr(err, errlen, "the cache '%s' is unusable after a fetch", g->dir);
			r = KWH_GIT_ECACHE;
		}
	}
	return r;
}

static int
is_hex(const char *s)
{
	size_t n = strlen(s);

	if (n < 4 || n > 40)
		return 0;
	for (; *s; s++)
		if (!isxdigit((unsigned char)*s))
			return 0;
	return 1;
}

int
kwh_git_resolve(struct kwh_git *g, const char *rev, const char *ref,
    const char *fallback_branch, char hex[41], char *err, size_t errlen)
{
	int r;

	if (rev && !is_hex(rev)) {
		seterr(err, errlen, "revision '%s' is not a commit id", rev);
		return KWH_GIT_ENOTFOUND;
	}
	if (rev && lookup(g, rev, hex) == 0)
		return 0;
	if ((r = take_lock(g, LOCK_EX, err, errlen)) < 0)
		return r;
	if (open_repo(g) && (r = rebuild(g, err, errlen)) < 0)
		return r;
	if (!rev) {
		struct kwh_buf branch = KWH_BUF_INIT, full = KWH_BUF_INIT;
		git_oid oid;

		r = net_run(g, NULL, 1, fallback_branch, &branch, err, errlen);
		if (r == 0) {
			kwh_buf_printf(&full, "refs/heads/%s", branch.data ? branch.data : "");
			if (git_reference_name_to_id(&oid, g->repo, full.data) == 0) {
				git_oid_tostr(hex, 41, &oid);
			} else {
				seterr(err, errlen, "no branch '%s' in %s", branch.data ? branch.data : "", g->shown);
				r = KWH_GIT_ENOTFOUND;
			}
		}
		kwh_buf_release(&branch);
		kwh_buf_release(&full);
		return r;
	}
	if (lookup(g, rev, hex) == 0)	/* fetched by another process meanwhile */
		return 0;
	if ((r = net_run(g, ref, 0, NULL, NULL, err, errlen)) < 0)
		return r;
	if (lookup(g, rev, hex) == 0)
		return 0;
	if (ref && *ref) {
		if ((r = net_run(g, NULL, 0, NULL, NULL, err, errlen)) < 0)
			return r;
		if (lookup(g, rev, hex) == 0)
			return 0;
	}
	seterr(err, errlen, "revision %s not found in %s", rev, g->shown);
	return KWH_GIT_ENOTFOUND;
}

static int
yaml_name(const char *name)
{
	size_t n = strlen(name);

	return (n > 5 && !strcmp(name + n - 5, ".yaml")) ||
	    (n > 4 && !strcmp(name + n - 4, ".yml"));
}

static int
give_blob(struct kwh_git *g, const git_oid *id, const char *name,
    kwh_git_file_fn fn, void *arg, char *err, size_t errlen)
{
	git_blob *blob;
	int r;

	if (git_blob_lookup(&blob, g->repo, id) < 0) {
		seterr(err, errlen, "cannot read '%s': %s", name, git_msg());
		return KWH_GIT_ECACHE;
	}
	r = fn(arg, name, git_blob_rawcontent(blob), (size_t)git_blob_rawsize(blob));
	git_blob_free(blob);
	return r;
}

int
kwh_git_read(struct kwh_git *g, const char *hex, const char *path,
    kwh_git_file_fn fn, void *arg, char *err, size_t errlen)
{
	git_oid oid;
	git_commit *commit = NULL;
	git_tree *root = NULL, *dir = NULL;
	git_tree_entry *entry = NULL;
	struct kwh_buf p = KWH_BUF_INIT, name = KWH_BUF_INIT;
	int r = KWH_GIT_ENOTFOUND, found = 0;
	size_t i;

	while (!strncmp(path, "./", 2) || *path == '/')
		path += *path == '/' ? 1 : 2;
	kwh_buf_adds(&p, path);
	while (p.len && p.data[p.len - 1] == '/')
		p.data[--p.len] = '\0';
	if (!g->repo || git_oid_fromstr(&oid, hex) < 0 ||
	    git_commit_lookup(&commit, g->repo, &oid) < 0 ||
	    git_commit_tree(&root, commit) < 0) {
		seterr(err, errlen, "cannot read commit %s: %s", hex, git_msg());
		r = KWH_GIT_ECACHE;
		goto out;
	}
	if (!p.len || !strcmp(p.data, ".")) {
		dir = root;
		root = NULL;
	} else if (git_tree_entry_bypath(&entry, root, p.data) < 0) {
		goto notfound;
	} else if (git_tree_entry_filemode(entry) == GIT_FILEMODE_BLOB ||
	    git_tree_entry_filemode(entry) == GIT_FILEMODE_BLOB_EXECUTABLE) {
		r = give_blob(g, git_tree_entry_id(entry), p.data, fn, arg, err, errlen);
		goto out;
	} else if (git_tree_entry_type(entry) != GIT_OBJECT_TREE ||
	    git_tree_lookup(&dir, g->repo, git_tree_entry_id(entry)) < 0) {
		goto notfound;
	}
	r = 0;
	for (i = 0; i < git_tree_entrycount(dir) && r == 0; i++) {
		const git_tree_entry *e = git_tree_entry_byindex(dir, i);
		git_filemode_t m = git_tree_entry_filemode(e);

		if ((m != GIT_FILEMODE_BLOB && m != GIT_FILEMODE_BLOB_EXECUTABLE) ||
		    !yaml_name(git_tree_entry_name(e)))
			continue;
		found = 1;
		kwh_buf_reset(&name);
		if (p.len)
			kwh_buf_printf(&name, "%s/", p.data);
		kwh_buf_adds(&name, git_tree_entry_name(e));
		r = give_blob(g, git_tree_entry_id(e), name.data, fn, arg, err, errlen);
	}
	if (found || r)
		goto out;
	seterr(err, errlen, "no *.yaml or *.yml file in %s at %s", p.len ? p.data : "/", hex);
	r = KWH_GIT_ENOTFOUND;
	goto out;
notfound:
	seterr(err, errlen, "no %s at %s", p.data, hex);
	r = KWH_GIT_ENOTFOUND;
out:
	git_tree_entry_free(entry);
	git_tree_free(dir);
	git_tree_free(root);
	git_commit_free(commit);
	kwh_buf_release(&p);
	kwh_buf_release(&name);
	return r;
}
