/* git.c — the libgit2 cache (see git.h).
 *
 * Layout of the cache directory: for each remote URL, NAME.git (a bare
 * repository) and NAME.lock (the flock(2) file; removed only with an entry
 * whose first fetch failed, and take_lock() then follows it).  NAME is
 * the first 16 hex digits of SHA-256 of the URL, a dash and the URL's last
 * two path components made readable.  A file "kwh-incomplete" inside
 * NAME.git exists while a fetch is running: found by a later process (after
 * a fetch killed at the deadline, or whose process died), it makes an
 * entry that never finished a fetch be rebuilt; a warm one is kept (see
 * open_repo()).
 * NAME.wants records what deliveries waiting for a fetch want (see
 * WANTS_MAX), and goes with the entry.
 *
 * Bounds (after each successful fetch, still under the exclusive lock): an
 * entry with many packs is rewritten as one (consolidate()); past
 * o->max_bytes, the least recently used entries not in use are removed
 * (evict()), the lock file's mtime recording an entry's last use.
 *
 * Network operations run in a forked child process so that a remote that
 * accepts a connection and then says nothing can be cut off at the
 * deadline (libgit2 1.5 has no connect or read timeout).  The child
 * reports through a pipe: one status byte, then a message or the default
 * branch name.
 */
#include "git.h"
#include "metrics.h"
#include "buf.h"
#include "cli.h"
#include "err.h"
#include "sig.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <git2.h>
#include <libssh2.h>

#define INCOMPLETE "kwh-incomplete"

/*
 * Shallow fetches: git_fetch_options.depth came with libgit2 1.7, and
 * deepening an entry that is already shallow (a later fetch with a larger
 * depth) with 1.8; before, every fetch brings the whole history of what it
 * fetches.  The local transport (file://) refuses a depth: local remotes
 * are always fetched whole.
 */
#if LIBGIT2_VER_MAJOR > 1 || (LIBGIT2_VER_MAJOR == 1 && LIBGIT2_VER_MINOR >= 8)
#define SHALLOW 1
#else
#define SHALLOW 0
#endif

/*
 * The wants file, NAME.wants beside the entry: a delivery that misses its
 * revision appends "DEADLINE_MS REV REF" (one write, O_APPEND) before it
 * waits for the exclusive lock, so that whoever fetches next fetches every
 * ref wanted meanwhile in the same fetch (see resolve_fetch()).  Bounded:
 * nothing is appended past WANTS_MAX bytes, lines whose deadline passed
 * are ignored and dropped, and above WANTS_REFS distinct refs the fetch
 * takes every branch instead.  Only ever an optimisation: a want lost or
 * ignored costs a fetch of its own, never a wrong answer.
 */
#define WANTS_MAX (64 * 1024)
#define WANTS_REFS 32
#define REF_MAX 255

struct kwh_git {
	const struct kwh_git_opts *o;
	char *url;
	char shown[1024];	/* url without any password, for messages */
	char *dir;		/* cache/NAME.git */
	char *lockpath;		/* cache/NAME.lock */
	char host[256];		/* the URL's host ("" for file://) */
	int check_addrs;	/* refuse private addresses (host not named explicitly) */
	int fetched;		/* a fetch succeeded through this handle */
	int lockfd;
	int locked;		/* LOCK_SH or LOCK_EX */
	int deferred;		/* kwh_git_open() found the lock taken: not yet locked */
	int inited;		/* git_libgit2_init() done */
	long long deadline;
	git_repository *repo;
	char delivery[128];	/* for the log lines of a background fetch */
	/* what kwh_git_resolve() looks for: a fetch gone on in the
	 * background, once it lands, goes on looking (finish_search()) */
	const char *want_rev, *want_ref;
	char *wantspath;	/* cache/NAME.wants */
	/* what net_child() fetches when nspecs > 0 (set by resolve_fetch()) */
	char **specs;
	size_t nspecs;
	int depth;		/* git_fetch_options.depth, 0 for the whole history */
};

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

/* ---- the remote policy ---- */

struct rurl {
	char scheme[8];		/* file, git, http, https, ssh, or "" (other) */
	char host[256];		/* lower case, no brackets, no trailing dot */
};

static int
host_char_ok(int c, int bracketed)
{
	return isalnum(c) || c == '.' || c == '-' || (bracketed && c == ':');
}

/* Copies the host in s[0..n) (brackets removed) into u->host; -1 when empty
 * or holding anything but letters, digits, dots, dashes (and colons in
 * brackets). */
static int
set_host(struct rurl *u, const char *s, size_t n)
{
	int br = n >= 2 && s[0] == '[' && s[n - 1] == ']';
	size_t i;

	if (br) {
		s++;
		n -= 2;
	}
	while (n > 1 && s[n - 1] == '.')
		n--;
	if (!n || n >= sizeof u->host)
		return -1;
	for (i = 0; i < n; i++) {
		if (!host_char_ok((unsigned char)s[i], br))
			return -1;
		u->host[i] = (char)tolower((unsigned char)s[i]);
	}
	u->host[n] = '\0';
	return 0;
}

/*
 * Splits url as libgit2 picks a transport: "SCHEME://[USER@]HOST[:PORT]/..."
 * (ssh+git and git+ssh are ssh), a local path (an existing directory, or
 * a name without a colon, or one starting with '/' or '.'), else scp-like
 * "[USER@]HOST:PATH" (ssh).  -1 when the host part is malformed (two '@',
 * a port that is not a number, an odd character).
 */
static int
parse_url(const char *url, struct rurl *u)
{
	const char *s = strstr(url, "://"), *a, *e, *at, *h, *c;
	struct stat st;
	size_t i;

	memset(u, 0, sizeof *u);
	if (!s) {
		c = strchr(url, ':');
		if (!c || url[0] == '/' || url[0] == '.' || memchr(url, '/', (size_t)(c - url)) ||
		    (stat(url, &st) == 0 && S_ISDIR(st.st_mode))) {
			strcpy(u->scheme, "file");
			return 0;
		}
		strcpy(u->scheme, "ssh");
		at = memchr(url, '@', (size_t)(c - url));
		h = at ? at + 1 : url;
		if (*h == '[' && (e = strchr(h, ']')))
			c = e + 1;
		if (at && memchr(at + 1, '@', (size_t)(c - at - 1)))
			return -1;	/* two '@' before the host's end */
		return set_host(u, h, (size_t)(c - h));
	}
	if ((size_t)(s - url) < sizeof u->scheme && s > url) {
		for (i = 0; url + i < s; i++)
			u->scheme[i] = (char)tolower((unsigned char)url[i]);
		if (!strcmp(u->scheme, "ssh+git") || !strcmp(u->scheme, "git+ssh"))
			strcpy(u->scheme, "ssh");
	}
	if (strcmp(u->scheme, "file") && strcmp(u->scheme, "git") && strcmp(u->scheme, "http") &&
	    strcmp(u->scheme, "https") && strcmp(u->scheme, "ssh"))
		u->scheme[0] = '\0';
	if (!strcmp(u->scheme, "file"))
		return 0;
	a = s + 3;
	e = a + strcspn(a, "/?#\\");
	if (*e == '\\')
		return -1;
	at = NULL;
	for (c = a; c < e; c++)
		if (*c == '@') {
			if (at)
				return -1;
			at = c;
		}
	h = at ? at + 1 : a;
	if (*h == '[') {
		c = memchr(h, ']', (size_t)(e - h));
		if (!c)
			return -1;
		c++;
	} else {
		c = memchr(h, ':', (size_t)(e - h));
		if (!c)
			c = e;
	}
	if (c < e && (*c != ':' || c + 1 == e || strspn(c + 1, "0123456789") != (size_t)(e - c - 1)))
		return -1;
	return set_host(u, h, (size_t)(c - h));
}

int
kwh_git_allow_entry_ok(const char *s)
{
	struct rurl u;

	if (!strcmp(s, "file://"))
		return 0;
	if (strstr(s, "://")) {
		const char *h = strstr(s, "://") + 3;
		if (parse_url(s, &u) < 0 || !u.scheme[0] || !strcmp(u.scheme, "file") ||
		    strpbrk(h, "/@?#"))
			return -1;
		return 0;
	}
	memset(&u, 0, sizeof u);
	return set_host(&u, s, strlen(s));
}

/* Does the entry allow (scheme, host)? */
static int
entry_allows(const char *entry, const struct rurl *u)
{
	struct rurl e;

	if (!strcmp(entry, "file://"))
		return !strcmp(u->scheme, "file");
	if (strstr(entry, "://")) {
		if (parse_url(entry, &e) < 0 || !e.scheme[0] || !strcmp(e.scheme, "file"))
			return 0;
		return !strcmp(e.scheme, u->scheme) && !strcmp(e.host, u->host);
	}
	memset(&e, 0, sizeof e);
	if (set_host(&e, entry, strlen(entry)) < 0)
		return 0;
	return (!strcmp(u->scheme, "https") || !strcmp(u->scheme, "ssh")) &&
	    !strcmp(e.host, u->host);
}

/* Is (scheme, host) allowed?  *explicit: named by the operator. */
static int
rurl_allowed(const struct kwh_git_opts *o, const struct rurl *u, int *explicit)
{
	static const char *const dflt[] = { "github.com" };
	const char *const *list = o->n_allow ? o->allow : dflt;
	size_t i, n = o->n_allow ? o->n_allow : 1;
	struct rurl p;

	*explicit = 0;
	if (!u->scheme[0])
		return 0;
	if (o->pin && parse_url(o->pin, &p) == 0 && p.scheme[0] &&
	    !strcmp(p.scheme, u->scheme) && (!strcmp(u->scheme, "file") || !strcmp(p.host, u->host))) {
		*explicit = 1;
		return 1;
	}
	for (i = 0; i < n; i++)
		if (entry_allows(list[i], u)) {
			*explicit = o->n_allow > 0;
			return 1;
		}
	return 0;
}

int
kwh_git_allowed(const struct kwh_git_opts *o, const char *url, int *explicit,
    char *err, size_t errlen)
{
	struct rurl u;
	char shown[1024];

	kwh_git_redact_url(url, shown, sizeof shown);
	if (parse_url(url, &u) < 0) {
		seterr(err, errlen, "%s: a malformed host part (refused)", shown);
		return 0;
	}
	if (!u.scheme[0]) {
		seterr(err, errlen, "%s: not an https://, ssh://, git://, http:// or file:// URL (refused)", shown);
		return 0;
	}
	if (rurl_allowed(o, &u, explicit))
		return 1;
	if (!strcmp(u.scheme, "file"))
		seterr(err, errlen, "%s: local repositories are not allowed "
		    "(--allow-remote-host file:// allows them)", shown);
	else
		seterr(err, errlen, "%s: %s://%s is not an allowed remote "
		    "(see --allow-remote-host and --remote)", shown, u.scheme, u.host);
	return 0;
}

/* Is this address one a webhook must not make us connect to? */
static int
private_addr(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);

		return (a >> 24) == 0 ||		/* 0/8 "this network" */
		    (a >> 24) == 10 ||			/* 10/8 */
		    (a >> 22) == (100u << 2 | 1) ||	/* 100.64/10 shared */
		    (a >> 24) == 127 ||			/* 127/8 loopback */
		    (a >> 16) == (169u << 8 | 254) ||	/* 169.254/16 link-local */
		    (a >> 20) == (172u << 4 | 1) ||	/* 172.16/12 */
		    (a >> 8) == (192u << 16 | 0 << 8 | 0) ||	/* 192.0.0/24 */
		    (a >> 16) == (192u << 8 | 168) ||	/* 192.168/16 */
		    (a >> 17) == (198u << 7 | 18 >> 1) ||	/* 198.18/15 benchmarking */
		    (a >> 28) >= 14;			/* 224/4 multicast, 240/4, broadcast */
	}
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		const unsigned char *b = a->s6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a) || IN6_IS_ADDR_V4COMPAT(a)) {
			struct sockaddr_in v4;

			memset(&v4, 0, sizeof v4);
			v4.sin_family = AF_INET;
			memcpy(&v4.sin_addr, b + 12, 4);
			return private_addr((const struct sockaddr *)&v4);
		}
		return IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_LOOPBACK(a) ||
		    IN6_IS_ADDR_LINKLOCAL(a) || IN6_IS_ADDR_SITELOCAL(a) ||
		    IN6_IS_ADDR_MULTICAST(a) ||
		    (b[0] & 0xfe) == 0xfc ||		/* fc00::/7 unique local */
		    (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8);	/* 2001:db8::/32 */
	}
	return 1;	/* not an IP address: refused */
}

/* In the child: 0 when every address of host is public, else -1 (msg). */
static int
check_addresses(const char *host, char *msg, size_t n)
{
	struct addrinfo hints, *res = NULL, *ai;
	char a[INET6_ADDRSTRLEN];
	int e, r = 0;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((e = getaddrinfo(host, NULL, &hints, &res)) != 0) {
		snprintf(msg, n, "cannot resolve %s: %s", host, gai_strerror(e));
		return -2;
	}
	for (ai = res; ai && r == 0; ai = ai->ai_next) {
		if (!private_addr(ai->ai_addr))
			continue;
		a[0] = '\0';
		getnameinfo(ai->ai_addr, ai->ai_addrlen, a, sizeof a, NULL, 0, NI_NUMERICHOST);
		snprintf(msg, n, "%.100s resolves to %s, a loopback, private, link-local or reserved "
		    "address (refused; --allow-remote-host %.100s allows it)", host, a, host);
		r = -1;
	}
	freeaddrinfo(res);
	return r;
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
			struct stat a, b;

			/* a process that removed a failed entry unlinked the lock
			 * file while we waited: lock the one now at the path */
			if (fstat(g->lockfd, &a) == 0 && stat(g->lockpath, &b) == 0 &&
			    a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
				g->locked = mode;
				return 0;
			}
			close(g->lockfd);
			if ((g->lockfd = open(g->lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
				seterr(err, errlen, "cannot open '%s': %s", g->lockpath, strerror(errno));
				return KWH_GIT_ECACHE;
			}
			continue;
		}
		if (errno != EWOULDBLOCK && errno != EINTR) {
			seterr(err, errlen, "cannot lock the cache for %s: %s", g->shown, strerror(errno));
			return KWH_GIT_ECACHE;
		}
		if (kwh_now_ms() >= g->deadline && g->o->background_ms) {
			/* a fetch (perhaps in the background) holds it: the
			 * revision may be there once it ends */
			seterr(err, errlen, "a fetch from %s for another delivery is still going on",
			    g->shown);
			return KWH_GIT_EBACKGROUND;
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

/* Does the repository hold at least one reference? */
static int
has_refs(git_repository *repo)
{
	git_reference_iterator *it;
	git_reference *ref;
	int n = 0;

	if (git_reference_iterator_new(&it, repo) < 0)
		return 0;
	if (git_reference_next(&ref, it) == 0) {
		git_reference_free(ref);
		n = 1;
	}
	git_reference_iterator_free(it);
	return n;
}

/*
 * Opens g->repo; 1 when the entry is missing, half-written or unusable.
 * A marker left by a fetch that did not finish (killed at the deadline, or
 * its process killed) does not make a warm entry unusable: libgit2 writes
 * a pack under a temporary name and renames it once whole, and each
 * reference through a lock file, so what earlier fetches brought is
 * intact.  Such an entry (it opens and holds a reference) is kept and the
 * marker removed; one that never finished its first fetch is rebuilt.
 * (No fetch runs meanwhile: fetches hold the lock exclusively.)
 */
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
	bad = !exists(g->dir) || git_repository_open_bare(&g->repo, g->dir) < 0;
	if (!bad && exists(m.data)) {
		if (has_refs(g->repo)) {
			kwh_log(KWH_LOG_INFO, NULL, 0, "a fetch into the cache '%s' did not finish: "
			    "the entry is kept, with what earlier fetches brought", g->dir);
			if (unlink(m.data) < 0 && errno != ENOENT)
				bad = 1;
		} else {
			bad = 1;
		}
		if (bad) {
			git_repository_free(g->repo);
			g->repo = NULL;
		}
	}
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
	if (!kwh_git_allowed(o, url, &r, err, errlen))
		return KWH_GIT_EREFUSED;
	if (!(g = calloc(1, sizeof *g)) || !(g->url = strdup(url))) {
		free(g);
		seterr(err, errlen, "out of memory");
		return KWH_GIT_ECACHE;
	}
	g->o = o;
	g->check_addrs = !r;
	{
		struct rurl u;

		if (parse_url(url, &u) == 0 && strcmp(u.scheme, "file"))
			snprintf(g->host, sizeof g->host, "%s", u.host);
	}
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
	if (!(g->lockpath = strdup(b.data)) ||
	    !(g->wantspath = malloc(b.len + 2))) {
		seterr(err, errlen, "out of memory");
		r = KWH_GIT_ECACHE;
		goto fail;
	}
	snprintf(g->wantspath, b.len + 2, "%.*s.wants", (int)(b.len - 5), b.data);
	if ((g->lockfd = open(b.data, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		seterr(err, errlen, "cannot open '%s': %s", b.data, strerror(errno));
		r = KWH_GIT_ECACHE;
		goto fail;
	}
	futimens(g->lockfd, NULL);	/* the entry's last use (see evict()) */
	/*
	 * One try: when a fetch holds the lock, kwh_git_resolve() first
	 * records what this delivery wants (coalescing: see WANTS_MAX), then
	 * waits for it.  Waiting here, not knowing the revision, would let
	 * each fetch take only the wants of those that got in between two.
	 */
	g->deadline = 0;
	r = take_lock(g, LOCK_SH, err, errlen);
	g->deadline = deadline_ms;
	if (r == KWH_GIT_EDEADLINE || r == KWH_GIT_EBACKGROUND) {
		g->deferred = 1;
		if (errlen)
			err[0] = '\0';
	} else if (r < 0) {
		goto fail;
	} else {
		/* missing or half-written: kwh_git_resolve() rebuilds it under LOCK_EX */
		open_repo(g);
	}
	kwh_buf_release(&b);
	*out = g;
	return 0;
fail:
	kwh_buf_release(&b);
	kwh_git_close(g);
	return r;
}

void
kwh_git_set_delivery(struct kwh_git *g, const char *delivery)
{
	snprintf(g->delivery, sizeof g->delivery, "%s", delivery ? delivery : "");
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
	free(g->lockpath);
	free(g->wantspath);
	free(g);
}

const char *
kwh_git_fetch_kind(void)
{
	return SHALLOW ? "shallow fetches (libgit2 " LIBGIT2_VERSION ")" :
	    "whole-history fetches (libgit2 " LIBGIT2_VERSION ")";
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
	int deadline;		/* progress_cb stopped at the deadline */
	size_t bytes;		/* received so far (the report carries it) */
};

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

/*
 * Known hosts, with libssh2's knownhost API.  libssh2 matches plain and
 * hashed (|1|salt|hash) names; what it does not know of OpenSSH's format
 * is handled here, line by line:
 *  - "@revoked" lines go to a collection of their own: a key found there
 *    is refused even when another line accepts it;
 *  - a "!pattern" in a line's host list keeps the whole line from naming
 *    a host that the pattern names;
 *  - a line libssh2 cannot parse (a malformed hash, say) is skipped, as
 *    OpenSSH skips it, instead of ending the file there.
 * Wildcards ('*', '?') and "@cert-authority" are not supported: such a line
 * names no host, so its host stays unknown and is refused.
 */
struct known {
	LIBSSH2_KNOWNHOSTS *ok, *revoked;
};

/* Does a line (hosts, then the key) name target, whatever its key? */
static int
names_host(LIBSSH2_SESSION *s, const char *hosts, const char *rest, const char *target,
    const char *key, size_t keylen)
{
	LIBSSH2_KNOWNHOSTS *one = libssh2_knownhost_init(s);
	struct kwh_buf line = KWH_BUF_INIT;
	int r = 0;

	if (one && kwh_buf_printf(&line, "%s %s", hosts, rest) == 0 &&
	    libssh2_knownhost_readline(one, line.data, line.len,
		LIBSSH2_KNOWNHOST_FILE_OPENSSH) == 0)
		r = libssh2_knownhost_checkp(one, target, -1, key, keylen,
		    LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW, NULL) !=
		    LIBSSH2_KNOWNHOST_CHECK_NOTFOUND;
	if (one)
		libssh2_knownhost_free(one);
	kwh_buf_release(&line);
	return r;
}

/* Adds one known_hosts line to k, as described above. */
static void
known_add(struct known *k, LIBSSH2_SESSION *s, char *line, const char *target,
    const char *key, size_t keylen)
{
	struct kwh_buf keep = KWH_BUF_INIT, neg = KWH_BUF_INIT;
	LIBSSH2_KNOWNHOSTS *into = k->ok;
	char *p = line + strspn(line, " \t"), *hosts, *rest, *h, *save = NULL;

	if (!*p || *p == '#' || *p == '\n' || *p == '\r')
		return;
	if (*p == '@') {
		if (strncmp(p, "@revoked", 8) || !strchr(" \t", p[8]))
			return;		/* @cert-authority: not supported */
		into = k->revoked;
		p += 8 + strspn(p + 8, " \t");
	}
	hosts = p;
	rest = p + strcspn(p, " \t");
	if (!*rest)
		return;
	*rest++ = '\0';
	rest += strspn(rest, " \t");
	for (h = strtok_r(hosts, ",", &save); h; h = strtok_r(NULL, ",", &save))
		kwh_buf_printf(*h == '!' ? &neg : &keep, "%s%s", (*h == '!' ? neg.len : keep.len) ? "," : "",
		    *h == '!' ? h + 1 : h);
	if (keep.len && !(neg.len && names_host(s, neg.data, rest, target, key, keylen))) {
		kwh_buf_printf(&keep, " %s", rest);
		libssh2_knownhost_readline(into, keep.data, keep.len, LIBSSH2_KNOWNHOST_FILE_OPENSSH);
	}
	kwh_buf_release(&keep);
	kwh_buf_release(&neg);
}

/*
 * Checks the raw host key against the known_hosts file: 0 when a line for
 * the host has this key, -1 (message set) when the key is unknown, changed
 * or revoked, or the file is unreadable.
 */
static int
check_known_hosts(struct net *n, const char *key, size_t keylen)
{
	const char *file = n->g->o->known_hosts;
	const int type = LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW;
	LIBSSH2_SESSION *s = NULL;
	struct known k = { NULL, NULL };
	char target[sizeof n->host_port], *line = NULL;
	size_t cap = 0, i;
	FILE *f;
	int r = -1, c;

	/* OpenSSH compares host names in lower case */
	for (i = 0; n->host_port[i] && i + 1 < sizeof target; i++)
		target[i] = (char)tolower((unsigned char)n->host_port[i]);
	target[i] = '\0';
	if (!(f = fopen(file, "re"))) {
		snprintf(n->msg, sizeof n->msg, "cannot read known hosts file '%s': %s",
		    file, strerror(errno));
		return -1;
	}
	if (libssh2_init(0) != 0 || !(s = libssh2_session_init()) ||
	    !(k.ok = libssh2_knownhost_init(s)) || !(k.revoked = libssh2_knownhost_init(s))) {
		snprintf(n->msg, sizeof n->msg, "cannot check the host key of %s: libssh2 failed",
		    n->host_port);
		goto out;
	}
	while (getline(&line, &cap, f) > 0)
		known_add(&k, s, line, target, key, keylen);
	if (libssh2_knownhost_checkp(k.revoked, target, -1, key, keylen, type, NULL) ==
	    LIBSSH2_KNOWNHOST_CHECK_MATCH) {
		snprintf(n->msg, sizeof n->msg, "the host key of %s is revoked in '%s'", n->host_port, file);
		goto out;
	}
	c = libssh2_knownhost_checkp(k.ok, target, -1, key, keylen, type, NULL);
	if (c == LIBSSH2_KNOWNHOST_CHECK_MATCH)
		r = 0;
	else if (c == LIBSSH2_KNOWNHOST_CHECK_MISMATCH)
		snprintf(n->msg, sizeof n->msg,
		    "the host key of %s has changed: it does not match '%s' (refused)",
		    n->host_port, file);
	else
		snprintf(n->msg, sizeof n->msg,
		    "unknown host key for %s: not in '%s' (refused)", n->host_port, file);
out:
	free(line);
	fclose(f);
	if (k.ok)
		libssh2_knownhost_free(k.ok);
	if (k.revoked)
		libssh2_knownhost_free(k.revoked);
	if (s)
		libssh2_session_free(s);
	return r;
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
	if (check_known_hosts(n, hk->hostkey, hk->hostkey_len) < 0)
		return GIT_ECERTIFICATE;
	return 0;
}

static int
cred_cb(git_credential **out, const char *url, const char *user,
    unsigned int allowed, void *payload)
{
	struct net *n = payload;
	const struct kwh_git_opts *o = n->g->o;
	struct rurl u;
	int expl;

	/* a redirect may have taken us elsewhere: credentials only go to the
	 * remote's own host or another allowed one */
	if ((o->ssh_key || o->token) && url &&
	    (parse_url(url, &u) < 0 || (strcmp(u.host, n->g->host) && !rurl_allowed(o, &u, &expl)))) {
		snprintf(n->msg, sizeof n->msg, "credentials withheld from %s: not an allowed remote host",
		    u.host[0] ? u.host : "an unknown host");
		return GIT_EAUTH;
	}
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

	n->bytes = s->received_bytes;
	if (kwh_now_ms() >= n->g->deadline) {
		n->deadline = 1;
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
	if (g->check_addrs && g->host[0]) {
		int a = check_addresses(g->host, n.msg, sizeof n.msg);

		if (a < 0) {
			status = a == -1 ? 'R' : 'E';
			goto fail;
		}
	}
	if (g->o->ca_file &&
	    git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, g->o->ca_file, NULL) < 0) {
		snprintf(n.msg, sizeof n.msg, "cannot load the certificate authorities in '%s'",
		    g->o->ca_file);
		goto fail;
	}
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
	} else if (g->nspecs) {
		refspecs.strings = g->specs;
		refspecs.count = g->nspecs;
	} else if (ref && !strncmp(ref, "refs/", 5)) {
		kwh_buf_printf(&spec, "+%s:%s", ref, ref);
		specs[refspecs.count++] = spec.data;
	} else {
		specs[refspecs.count++] = "+refs/heads/*:refs/heads/*";
		specs[refspecs.count++] = "+refs/tags/*:refs/tags/*";
	}
	fo.callbacks = cb;
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
#if SHALLOW
	fo.depth = g->depth;
#endif
	if (git_remote_fetch(remote, &refspecs, &fo, NULL) < 0)
		goto fail;
	status = '0';
	if (branch)
		kwh_buf_adds(&out, branch);
	goto report;
fail:
	if (n.deadline)
		status = 'D';
	if (n.msg[0])
		kwh_buf_printf(&out, "%s: %s", g->shown, n.msg);
	else
		kwh_buf_printf(&out, "%s: %s", g->shown, git_msg());
report:
	kwh_write_all(fd, &status, 1);
	dprintf(fd, "%zu ", n.bytes);	/* for the metrics (net_run, report_bytes) */
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
 * Pack consolidation.  Every fetch writes one pack: an entry fetched often
 * gathers hundreds, and every read then searches them all.  After a fetch,
 * under the exclusive lock (no reader, no other fetch), an entry with more
 * than KWH_GIT_PACKS_MAX packs is rewritten as one pack holding every
 * object the old ones held (reachable or not: a revision read before a
 * force-push stays readable), written before the old packs are removed, so
 * that the entry is whole at every moment.  Stopped (and left for a later
 * fetch) when the deadline comes near.
 */
struct packs {
	char **name;	/* base names, "pack-HEX" */
	size_t n, cap;
};

static void
packs_free(struct packs *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		free(p->name[i]);
	free(p->name);
	memset(p, 0, sizeof *p);
}

/* The packs in dir/objects/pack (names without ".pack"): 0, or -1. */
static int
packs_list(const char *dir, struct packs *p)
{
	struct kwh_buf b = KWH_BUF_INIT;
	struct dirent *e;
	DIR *d;
	int r = 0;

	memset(p, 0, sizeof *p);
	if (kwh_buf_printf(&b, "%s/objects/pack", dir) < 0 || !(d = opendir(b.data))) {
		kwh_buf_release(&b);
		return -1;
	}
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		char *s;

		if (n <= 5 || strcmp(e->d_name + n - 5, ".pack") || strncmp(e->d_name, "pack-", 5))
			continue;
		if (p->n == p->cap) {
			char **v = realloc(p->name, (p->cap ? p->cap * 2 : 16) * sizeof *v);
			if (!v) {
				r = -1;
				break;
			}
			p->name = v;
			p->cap = p->cap ? p->cap * 2 : 16;
		}
		if (!(s = strndup(e->d_name, n - 5))) {
			r = -1;
			break;
		}
		p->name[p->n++] = s;
	}
	closedir(d);
	kwh_buf_release(&b);
	if (r < 0)
		packs_free(p);
	return r;
}

struct consol {
	git_packbuilder *pb;
	long long stop;		/* epoch ms: give up at this time */
	int late;
};

static int
consol_add(const git_oid *id, void *payload)
{
	struct consol *c = payload;

	if (kwh_now_ms() >= c->stop) {
		c->late = 1;
		return 1;
	}
	return git_packbuilder_insert(c->pb, id, NULL);
}

static int
consol_pb_progress(int stage, uint32_t cur, uint32_t total, void *payload)
{
	struct consol *c = payload;

	if (kwh_now_ms() >= c->stop) {
		c->late = 1;
		return 1;
	}
	return 0;
}

static int
consol_ix_progress(const git_indexer_progress *s, void *payload)
{
	return consol_pb_progress(0, 0, 0, payload);
}

/* Time consolidation must leave before the deadline. */
#define CONSOL_MARGIN_MS 1000

static int
consolidate(struct kwh_git *g)
{
	struct consol c = { NULL, g->deadline - CONSOL_MARGIN_MS, 0 };
	struct kwh_buf b = KWH_BUF_INIT;
	struct packs old;
	git_odb *odb = NULL;
	const char *name;
	size_t i, removed = 0;
	long long t0 = kwh_now_ms();

	if (!g->repo || packs_list(g->dir, &old) < 0)
		return 0;
	if (old.n <= KWH_GIT_PACKS_MAX || t0 >= c.stop) {
		packs_free(&old);
		return 0;
	}
	if (git_repository_odb(&odb, g->repo) < 0 || git_packbuilder_new(&c.pb, g->repo) < 0)
		goto fail;
	git_packbuilder_set_callbacks(c.pb, consol_pb_progress, &c);
	if (git_odb_foreach(odb, consol_add, &c) != 0 || c.late)
		goto fail;
	if (kwh_buf_printf(&b, "%s/objects/pack", g->dir) < 0 ||
	    git_packbuilder_write(c.pb, b.data, 0, consol_ix_progress, &c) < 0 || c.late)
		goto fail;
	/* the new pack is written and indexed: the old ones can go */
	if (!(name = git_packbuilder_name(c.pb)))
		goto fail;
	for (i = 0; i < old.n; i++) {
		if (!strcmp(old.name[i] + 5, name))	/* the same objects, the same name */
			continue;
		kwh_buf_reset(&b);
		kwh_buf_printf(&b, "%s/objects/pack/%s.pack", g->dir, old.name[i]);
		if (unlink(b.data) < 0 && errno != ENOENT)
			continue;
		b.len -= 4;	/* the .idx beside it */
		b.data[b.len] = '\0';
		kwh_buf_adds(&b, "idx");
		unlink(b.data);
		removed++;
	}
	kwh_log(KWH_LOG_INFO, NULL, 0, "cache '%s': %zu packs consolidated into one (%lld ms, "
	    "process %ld)", g->dir, removed, kwh_now_ms() - t0, (long)getpid());
	goto done;
fail:
	if (c.late)
		kwh_log(KWH_LOG_INFO, NULL, 0, "cache '%s': %zu packs, consolidation left for "
		    "a later fetch (the deadline is near)", g->dir, old.n);
	else
		kwh_log(KWH_LOG_WARN, NULL, 0, "cache '%s': cannot consolidate its %zu packs: %s",
		    g->dir, old.n, git_msg());
done:
	git_packbuilder_free(c.pb);
	git_odb_free(odb);
	packs_free(&old);
	kwh_buf_release(&b);
	/* the odb may still know the removed packs: open the entry afresh */
	return open_repo(g) ? -1 : 0;
}

/*
 * The size bound (o->max_bytes, 0 for none).  An entry's last use is its
 * lock file's modification time, set by every kwh_git_open().  After a
 * fetch, while the entries (NAME.git, disk blocks as du(1) counts them)
 * take more than the bound, the least recently used are removed, each
 * with its lock file as drop_entry() does, but only one whose lock is
 * free (taken exclusively without waiting) and that was not used since
 * it was measured; never the entry in hand.
 */
static unsigned long long du_sum;

static int
du_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	du_sum += (unsigned long long)st->st_blocks * 512;
	return 0;
}

static unsigned long long
entry_bytes(const char *dir)
{
	du_sum = 0;
	nftw(dir, du_one, 16, FTW_PHYS);
	return du_sum;
}

struct lru {
	char *name;		/* NAME, without .git or .lock */
	struct timespec used;	/* the lock file's mtime */
	unsigned long long bytes;
};

static int
lru_cmp(const void *a, const void *b)
{
	const struct lru *x = a, *y = b;

	if (x->used.tv_sec != y->used.tv_sec)
		return x->used.tv_sec < y->used.tv_sec ? -1 : 1;
	if (x->used.tv_nsec != y->used.tv_nsec)
		return x->used.tv_nsec < y->used.tv_nsec ? -1 : 1;
	return strcmp(x->name, y->name);
}

/*
 * Removes a cache entry's directory, then its lock file (whoever waits on
 * the old lock notices in take_lock()).  0, or -1 logged ("cannot WHAT
 * cache entry ...") with the lock file left.
 */
static int
remove_entry(const char *dir, const char *lockpath, const char *what)
{
	if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT) {
		kwh_log(KWH_LOG_WARN, NULL, 0, "cannot %s cache entry '%s': %s", what, dir,
		    strerror(errno));
		return -1;
	}
	unlink(lockpath);
	{
		/* and its wants file (see WANTS_MAX) */
		size_t n = strlen(lockpath);
		char *w = malloc(n + 2);

		if (w && n > 5) {
			snprintf(w, n + 2, "%.*s.wants", (int)(n - 5), lockpath);
			unlink(w);
		}
		free(w);
	}
	return 0;
}

/* Removes entry name if its lock is free and its last use still when: 1
 * when removed. */
static int
evict_one(const char *cache, const struct lru *v)
{
	struct kwh_buf dir = KWH_BUF_INIT, lock = KWH_BUF_INIT;
	struct stat a, b;
	int fd, r = 0;

	if (kwh_buf_printf(&dir, "%s/%s.git", cache, v->name) < 0 ||
	    kwh_buf_printf(&lock, "%s/%s.lock", cache, v->name) < 0 ||
	    (fd = open(lock.data, O_RDWR | O_CLOEXEC)) < 0)
		goto out;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		kwh_log(KWH_LOG_INFO, NULL, 0, "cache entry '%s' not evicted: in use", dir.data);
	} else if (fstat(fd, &a) == 0 && stat(lock.data, &b) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino &&
	    a.st_mtim.tv_sec == v->used.tv_sec && a.st_mtim.tv_nsec == v->used.tv_nsec) {
		r = remove_entry(dir.data, lock.data, "evict the") == 0;
	}
	close(fd);
out:
	kwh_buf_release(&dir);
	kwh_buf_release(&lock);
	return r;
}

static void
evict(struct kwh_git *g)
{
	const char *cache = g->o->cache_dir;
	unsigned long long max = g->o->max_bytes, total = 0;
	struct kwh_buf p = KWH_BUF_INIT;
	struct lru *v = NULL;
	size_t n = 0, cap = 0, i;
	const char *own = strrchr(g->dir, '/') + 1;
	struct dirent *e;
	DIR *d;

	if (!max || !(d = opendir(cache)))
		return;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		struct stat st;

		if (len <= 4 || strcmp(e->d_name + len - 4, ".git"))
			continue;
		kwh_buf_reset(&p);
		if (kwh_buf_printf(&p, "%s/%s", cache, e->d_name) < 0 ||
		    lstat(p.data, &st) < 0 || !S_ISDIR(st.st_mode))
			continue;
		{
			unsigned long long bytes = entry_bytes(p.data);

			total += bytes;
			if (!strcmp(e->d_name, own))
				continue;
			kwh_buf_reset(&p);
			if (kwh_buf_printf(&p, "%s/%.*s.lock", cache, (int)(len - 4), e->d_name) < 0 ||
			    stat(p.data, &st) < 0)
				continue;	/* no lock file: not an entry of ours */
			if (n == cap) {
				struct lru *w = realloc(v, (cap ? cap * 2 : 16) * sizeof *w);
				if (!w)
					break;
				v = w;
				cap = cap ? cap * 2 : 16;
			}
			if (!(v[n].name = strndup(e->d_name, len - 4)))
				break;
			v[n].used = st.st_mtim;
			v[n].bytes = bytes;
			n++;
		}
	}
	closedir(d);
	qsort(v, n, sizeof *v, lru_cmp);
	for (i = 0; i < n && total > max && kwh_now_ms() < g->deadline; i++) {
		if (!evict_one(cache, &v[i]))
			continue;
		kwh_log(KWH_LOG_INFO, NULL, 0, "cache entry '%s/%s.git' evicted (%llu bytes, "
		    "the least recently used, by process %ld): the cache held %llu bytes, more "
		    "than %llu", cache, v[i].name, v[i].bytes, (long)getpid(), total, max);
		total -= v[i].bytes;
	}
	if (total > max)
		kwh_log(KWH_LOG_WARN, NULL, 0, "the cache '%s' still holds %llu bytes, more than %llu: "
		    "what is left is in use or was just fetched", cache, total, max);
	for (i = 0; i < n; i++)
		free(v[i].name);
	free(v);
	kwh_buf_release(&p);
}

/* Takes the byte count after the status of net_child's report (status,
 * decimal bytes, a space, the rest), leaving status and rest; returns it. */
static unsigned long long
report_bytes(struct kwh_buf *rep)
{
	unsigned long long n;
	size_t drop;
	char *end;

	if (rep->len < 2 || !isdigit((unsigned char)rep->data[1]))
		return 0;
	n = strtoull(rep->data + 1, &end, 10);
	if (*end != ' ')
		return 0;
	drop = (size_t)(end + 1 - rep->data) - 1;
	memmove(rep->data + 1, end + 1, rep->len - 1 - drop + 1);	/* with the NUL */
	rep->len -= drop;
	return n;
}

/*
 * Background fetches.  With o->background_ms, net_run() does not run
 * net_child() in its own child but in a grandchild: the keeper (keeper()),
 * detached from the delivery's process (its own session, no death signal,
 * /dev/null on standard input and output, every other inherited
 * descriptor closed but the entry's lock and the log), forks the fetch and
 * passes its report on.  When the delivery's process stops waiting (it
 * closes the control pipe at its deadline, or dies), the keeper takes a
 * background slot (a flock(2) on cache/kwh-background-N.slot, N below
 * o->max_background: the limit holds across processes) and says 'B', or,
 * with no slot free, kills the fetch and says 'K'.  In the background it
 * keeps the entry's exclusive lock (the lock file's open file description
 * is shared with the delivery's process, which closes its copy), waits
 * for the fetch until o->background_ms from its start (then kills it),
 * and does what net_run() does after a fetch: clears the marker,
 * consolidates the packs and bounds the cache, or removes an entry whose
 * first fetch failed.  Every step is logged with the delivery id.
 */
#define BG_HANDOFF_MS 300	/* the keeper's answer once told to go on alone */

static void drop_entry(struct kwh_git *);

/* A free background slot, locked: its descriptor, or -1. */
static int
take_slot(struct kwh_git *g, unsigned *which)
{
	return kwh_cli_slot(g->o->cache_dir, "kwh-background", g->o->max_background, which);
}

/* Closes every descriptor but keep[0..n) and the log's; /dev/null on 0,
 * 1 (and 2 unless the log goes there or it is a terminal). */
static void
detach_fds(const int *keep, size_t n)
{
	int logfd = kwh_log_detach(), null = open("/dev/null", O_RDWR | O_CLOEXEC);
	int fds[1024];
	size_t k = 0, i, j;
	struct dirent *e;
	DIR *d;

	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		/* a terminal is kept (the fetch's progress goes on showing
		 * there); nobody waits for its end as for a pipe's */
		if (logfd != 2 && !isatty(2))
			dup2(null, 2);
		close(null);
	}
	if ((d = opendir("/proc/self/fd"))) {
		while ((e = readdir(d)) && k < sizeof fds / sizeof *fds)
			if (isdigit((unsigned char)e->d_name[0]))
				fds[k++] = atoi(e->d_name);
		closedir(d);
	} else {
		for (i = 3; i < 1024; i++)
			fds[k++] = (int)i;
	}
	for (i = 0; i < k; i++) {
		int keepit = fds[i] <= 2 || fds[i] == logfd;

		for (j = 0; j < n && !keepit; j++)
			keepit = fds[i] == keep[j];
		if (!keepit)
			close(fds[i]);
	}
	kwh_log_attach();
}

static int resolve_fetch(struct kwh_git *, const char *, const char *, const char *,
    char [41], char *, size_t);

/*
 * In the keeper, after its fetch landed: the fetch was one step of
 * resolve_fetch()'s search (a shallow fetch of the ref's tip, say); when
 * the revision is still missing, the rest of the search runs here, within
 * the keeper's budget, so that a delivery answered while its fetch went on
 * finds its revision when it comes again.
 */
static void
finish_search(struct kwh_git *g, const char *d)
{
	struct kwh_git_opts o = *g->o;
	const struct kwh_git_opts *own = g->o;
	char hex[41], err[512];
	int r;

	if (!g->want_rev || lookup(g, g->want_rev, hex) == 0)
		return;
	o.background_ms = 0;	/* this process is the background */
	g->o = &o;
	r = resolve_fetch(g, g->want_rev, g->want_ref, NULL, hex, err, sizeof err);
	g->o = own;
	if (r == 0)
		kwh_log(KWH_LOG_INFO, d, 0, "revision %s found in %s by the background fetch's "
		    "further steps", g->want_rev, g->shown);
	else
		kwh_log(KWH_LOG_WARN, d, 0, "the background fetch from %s landed without revision "
		    "%s: %s", g->shown, g->want_rev, err);
}

static void __attribute__((noreturn))
keeper(struct kwh_git *g, int rep, int ctl, const char *ref, int want_head, const char *fallback)
{
	long long start = kwh_now_ms(), end = start + g->o->background_ms;
	const char *d = g->delivery[0] ? g->delivery : NULL;
	struct kwh_buf r = KWH_BUF_INIT;
	int fp[2], slot = -1, bg = 0, killed = 0, st = 0, keep[3] = { rep, ctl, g->lockfd };
	unsigned which = 0;
	pid_t pid, self;
	char tmp[4096];

	setsid();
	signal(SIGPIPE, SIG_IGN);
	detach_fds(keep, 3);
	g->deadline = end;	/* net_child() stops itself there too */
	self = getpid();
	if (pipe2(fp, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
		kwh_buf_printf(&r, "Ecannot start the fetch: %s", strerror(errno));
		kwh_write_all(rep, r.data, r.len);
		_exit(0);
	}
	if (pid == 0) {
		close(fp[0]);
		close(rep);
		close(ctl);
#ifdef __linux__
		/* a keeper that dies must not leave its fetch holding the lock */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != self)
			_exit(1);
#endif
		net_child(g, fp[1], ref, want_head, fallback);
	}
	close(fp[1]);
	for (;;) {
		struct pollfd pfd[2] = { { fp[0], POLLIN, 0 }, { ctl, POLLIN, 0 } };
		long long left = end - kwh_now_ms();
		ssize_t k;
		int n;

		if (left <= 0) {
			kill(pid, SIGKILL);
			killed = 1;
			break;
		}
		n = poll(pfd, ctl >= 0 ? 2 : 1, left > 1000 ? 1000 : (int)left);
		if (n < 0 && errno != EINTR) {
			kill(pid, SIGKILL);
			killed = 1;
			break;
		}
		if (n <= 0)
			continue;
		if (pfd[0].revents) {
			k = read(fp[0], tmp, sizeof tmp);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0 || kwh_buf_add(&r, tmp, (size_t)k) < 0)
				break;
			continue;
		}
		if (ctl >= 0 && pfd[1].revents) {
			/* the delivery's process stopped waiting, or is gone */
			close(ctl);
			ctl = -1;
			if ((slot = take_slot(g, &which)) < 0) {
				kill(pid, SIGKILL);
				killed = 1;
				kwh_log(KWH_LOG_WARN, d, 0, "the fetch from %s is stopped at the "
				    "deadline: %u background fetches run already (--max-background-fetches)",
				    g->shown, g->o->max_background);
				kwh_write_all(rep, "K", 1);
				break;
			}
			bg = 1;
			kwh_write_all(rep, "B", 1);
			close(rep);
			rep = -1;
			kwh_log(KWH_LOG_INFO, d, 0, "the fetch from %s goes on in the background "
			    "(slot %u, at most %lld s from its start, --fetch-budget)", g->shown,
			    which, g->o->background_ms / 1000);
		}
	}
	close(fp[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (bg)
		report_bytes(&r);	/* (counted by no one: this process reports nothing) */
	if (!bg) {
		/* the delivery's process still waits: it has the report and
		 * does the rest */
		if (!killed && r.len)
			kwh_write_all(rep, r.data, r.len);
		_exit(0);
	}
	if (!killed && r.len && r.data[0] == '0' && WIFEXITED(st) && set_marker(g, 0) == 0 &&
	    open_repo(g) == 0) {
		g->fetched = 1;
		kwh_log(KWH_LOG_INFO, d, 0, "the background fetch from %s landed (%lld ms)",
		    g->shown, kwh_now_ms() - start);
		finish_search(g, d);
		consolidate(g);
		evict(g);
	} else {
		if (killed)
			kwh_log(KWH_LOG_WARN, d, 0, "the background fetch from %s did not finish "
			    "within %lld s (--fetch-budget): stopped", g->shown, g->o->background_ms / 1000);
		else
			kwh_log(KWH_LOG_WARN, d, 0, "the background fetch from %s failed: %.*s",
			    g->shown, r.len > 1 ? (int)(r.len - 1) : 4, r.len > 1 ? r.data + 1 : "died");
		/* a warm entry is kept (open_repo() clears the marker); one that
		 * never finished a fetch goes */
		if (open_repo(g))
			drop_entry(g);
	}
	kwh_log(KWH_LOG_INFO, d, 0, "background slot %u free", which);
	close(slot);
	_exit(0);
}

/*
 * The entry's upkeep after a fetch (consolidate(), evict()) out of the
 * request's path.  With kwh_git_defer_upkeep(1), net_run() does not run
 * them after a fetch that landed within the deadline but notes the entry
 * (at most UPKEEP_MAX; beyond, it runs them at once, as before), and the
 * caller runs kwh_git_upkeep() once its answer is out: kwh-handle in its
 * own process, kwh-fetch in a detached grandchild (as keeper()), so that
 * the next stage and the sender wait for neither.  The upkeep takes the
 * entry's exclusive lock (readers take the shared one: none reads a half
 * consolidated entry) before it forks, so that the lock is held from
 * before the process that fetched exits until the upkeep is done; an
 * entry whose lock is not free within UPKEEP_LOCK_MS is left for the next
 * fetch.  It may take --fetch-budget (or the default) to consolidate.
 */
#define UPKEEP_MAX 16
#define UPKEEP_LOCK_MS 2000

static struct {
	char *url;
	struct kwh_git_opts o;	/* a copy: the caller's may be gone by then */
	char delivery[128];
} upkeep[UPKEEP_MAX];
static size_t n_upkeep;
static int defer_upkeep;

void
kwh_git_defer_upkeep(int defer)
{
	defer_upkeep = defer;
}

int
kwh_git_upkeep_pending(void)
{
	return n_upkeep > 0;
}

/* After a fetch that landed, under the exclusive lock, the entry open. */
static void
after_fetch(struct kwh_git *g)
{
	size_t i;

	if (!defer_upkeep) {
		evict(g);
		return;
	}
	for (i = 0; i < n_upkeep; i++)
		if (!strcmp(upkeep[i].o.cache_dir, g->o->cache_dir) && !strcmp(upkeep[i].url, g->url))
			return;
	if (n_upkeep == UPKEEP_MAX || !(upkeep[n_upkeep].url = strdup(g->url))) {
		consolidate(g);
		evict(g);
		return;
	}
	upkeep[n_upkeep].o = *g->o;
	upkeep[n_upkeep].o.token = NULL;	/* no network in the upkeep */
	snprintf(upkeep[n_upkeep].delivery, sizeof upkeep[n_upkeep].delivery, "%s", g->delivery);
	n_upkeep++;
}

/* One entry's upkeep, its lock taken (locked) or to be taken. */
static void
upkeep_entry(struct kwh_git *g, int locked)
{
	const char *d = g->delivery[0] ? g->delivery : NULL;
	char err[512];

	g->deadline = kwh_now_ms() + UPKEEP_LOCK_MS;
	if (!locked && take_lock(g, LOCK_EX, err, sizeof err) < 0) {
		kwh_log(KWH_LOG_INFO, d, 0, "cache upkeep left for the next fetch: %s", err);
		return;
	}
	g->deadline = kwh_now_ms() + (g->o->background_ms ? g->o->background_ms :
	    KWH_GIT_BACKGROUND_MS_DEFAULT);
	/* (its lines, when it does something, name the process) */
	if (open_repo(g) == 0) {
		consolidate(g);
		evict(g);
	}
}

void
kwh_git_upkeep(int detach)
{
	size_t i;

	for (i = 0; i < n_upkeep; i++) {
		const char *d = upkeep[i].delivery[0] ? upkeep[i].delivery : NULL;
		struct kwh_git *g = NULL;
		char err[512];
		pid_t pid = 0;
		int locked;

		/* no waiting here: a lock held exclusively is a fetch, which
		 * does the upkeep itself */
		if (kwh_git_open(&g, &upkeep[i].o, upkeep[i].url, kwh_now_ms(), err, sizeof err) < 0) {
			kwh_log(KWH_LOG_INFO, d, 0, "cache upkeep left for the next fetch: %s", err);
			free(upkeep[i].url);
			continue;
		}
		kwh_git_set_delivery(g, d);
		/* taken before the fork when free at once, so that it is held
		 * from before this process exits until the upkeep is done */
		locked = take_lock(g, LOCK_EX, err, sizeof err) == 0;
		if (detach && (pid = fork()) == 0) {
			/* twice removed: nobody waits for it; the lock (an open
			 * file description shared with this process, which
			 * closes its copy) is held until it ends */
			if (fork() != 0)
				_exit(0);
			setsid();
			signal(SIGPIPE, SIG_IGN);
			detach_fds(&g->lockfd, 1);
			upkeep_entry(g, locked);
			_exit(0);
		}
		if (pid > 0) {
			while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
				;
		} else {
			/* not detached, or fork() failed: here */
			upkeep_entry(g, locked);
		}
		kwh_git_close(g);
		free(upkeep[i].url);
	}
	n_upkeep = 0;
}

/*
 * Runs net_child() in a forked child under the exclusive lock and waits
 * for it until the deadline.  0 (branch, when asked for, in *branch), or
 * EREMOTE / ENOTFOUND / ECACHE / EDEADLINE with err set, or EBACKGROUND
 * when the fetch goes on in the background (see keeper()).
 */
static int
net_run(struct kwh_git *g, const char *ref, int want_head, const char *fallback,
    struct kwh_buf *branch, char *err, size_t errlen)
{
	struct kwh_buf rep = KWH_BUF_INIT;
	unsigned long long bytes;
	int p[2], c[2] = { -1, -1 }, st, r, timed_out = 0, bg = g->o->background_ms > 0;
	long long deadline = g->deadline;
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
	if (pipe2(p, O_CLOEXEC) < 0 || (bg && pipe2(c, O_CLOEXEC) < 0) || (pid = fork()) < 0) {
		seterr(err, errlen, "cannot start the fetch: %s", strerror(errno));
		return KWH_GIT_ECACHE;
	}
	if (pid == 0) {
		close(p[0]);
		if (bg) {
			/* twice removed: nobody has to wait for the keeper */
			close(c[1]);
			if ((pid = fork()) != 0)
				_exit(pid < 0);
			keeper(g, p[1], c[0], ref, want_head, fallback);
		}
#ifdef __linux__
		/* a killed kwh-fetch must not leave its fetch holding the lock */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
#endif
		net_child(g, p[1], ref, want_head, fallback);
	}
	close(p[1]);
	if (bg) {
		close(c[0]);
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
	}
	for (;;) {
		struct pollfd pfd = { p[0], POLLIN, 0 };
		long long left = deadline - kwh_now_ms();
		ssize_t k;

		if (left <= 0 && c[1] >= 0) {
			/* tell the keeper to go on alone; it answers at once */
			close(c[1]);
			c[1] = -1;
			deadline += BG_HANDOFF_MS;
			continue;
		}
		if (left <= 0) {
			timed_out = 1;
			if (!bg)
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
	if (c[1] >= 0)
		close(c[1]);
	if (!bg) {
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
	} else {
		st = 0;		/* the keeper's report says it all */
	}
	if (rep.len && rep.data[0] == 'B') {
		seterr(err, errlen, "the fetch from %s goes on in the background", g->shown);
		kwh_buf_release(&rep);
		kwh_metrics_fetch(KWH_GIT_EBACKGROUND, 0);
		return KWH_GIT_EBACKGROUND;
	}
	bytes = report_bytes(&rep);
	if (rep.len && rep.data[0] == 'K') {
		timed_out = 1;
		seterr(err, errlen, "%s did not answer before the deadline, and no background "
		    "slot was free (--max-background-fetches)", g->shown);
		r = KWH_GIT_EDEADLINE;
	} else if (timed_out) {
		/* the marker stays: the next open_repo() checks the entry */
		seterr(err, errlen, "%s did not answer before the deadline", g->shown);
		r = KWH_GIT_EDEADLINE;
	} else if (!rep.len || !WIFEXITED(st)) {
		seterr(err, errlen, "the fetch from %s died", g->shown);
		r = KWH_GIT_ECACHE;
	} else if (rep.data[0] == '0') {
		if (set_marker(g, 0) < 0) {
			seterr(err, errlen, "cannot write in '%s': %s", g->dir, strerror(errno));
			r = KWH_GIT_ECACHE;
		} else {
			r = 0;
			g->fetched = 1;
			if (branch)
				kwh_buf_add(branch, rep.data + 1, rep.len - 1);
		}
	} else {
		seterr(err, errlen, "%.*s", (int)(rep.len - 1), rep.data + 1);
		r = rep.data[0] == 'N' ? KWH_GIT_ENOTFOUND : rep.data[0] == 'R' ? KWH_GIT_EREFUSED :
		    rep.data[0] == 'D' ? KWH_GIT_EDEADLINE : KWH_GIT_EREMOTE;
	}
	kwh_buf_release(&rep);
	kwh_metrics_fetch(r, bytes);
	if (!timed_out && r != KWH_GIT_ECACHE) {
		/* a failed fetch leaves the repository as it was: clear the marker */
		if (!timed_out && r != 0)
			set_marker(g, 0);
		if (!timed_out && (open_repo(g) ||
		    (r == 0 && !defer_upkeep && consolidate(g) < 0)) && r == 0) {
			seterr(err, errlen, "the cache '%s' is unusable after a fetch", g->dir);
			r = KWH_GIT_ECACHE;
		}
		if (r == 0)
			after_fetch(g);
	}
	return r;
}

static int
is_hex(const char *s)
{
	if (strlen(s) != 40)
		return 0;
	for (; *s; s++)
		if (!isxdigit((unsigned char)*s))
			return 0;
	return 1;
}

/*
 * Under the exclusive lock: removes the entry and its lock file (a process
 * waiting on the old lock file notices in take_lock() and opens the new).
 * The handle keeps its (now unlinked) lock until closed.
 */
static void
drop_entry(struct kwh_git *g)
{
	if (g->repo) {
		git_repository_free(g->repo);
		g->repo = NULL;
	}
	remove_entry(g->dir, g->lockpath, "remove the failed");
}

/*
 * Under the exclusive lock (no fetch runs in the entry): removes the
 * temporary packs of fetches that were cut off (libgit2's indexer writes
 * objects/pack/pack_git2_* and renames it only once whole).  What they
 * hold cannot be used (libgit2 neither indexes a partial pack nor resumes
 * a fetch) and would otherwise stay for good.
 */
static void
drop_partial_packs(struct kwh_git *g)
{
	struct kwh_buf p = KWH_BUF_INIT;
	struct dirent *e;
	struct stat st;
	unsigned long long bytes = 0;
	size_t n = 0;
	DIR *d;

	if (kwh_buf_printf(&p, "%s/objects/pack", g->dir) < 0 || !(d = opendir(p.data))) {
		kwh_buf_release(&p);
		return;
	}
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "pack_git2_", 10))
			continue;
		kwh_buf_reset(&p);
		if (kwh_buf_printf(&p, "%s/objects/pack/%s", g->dir, e->d_name) < 0 ||
		    lstat(p.data, &st) < 0 || !S_ISREG(st.st_mode) || unlink(p.data) < 0)
			continue;
		bytes += (unsigned long long)st.st_size;
		n++;
	}
	closedir(d);
	kwh_buf_release(&p);
	if (n)
		kwh_log(KWH_LOG_INFO, NULL, 0, "cache '%s': %zu partial packs of fetches cut off "
		    "removed (%llu bytes)", g->dir, n, bytes);
}

static int resolve_fetch(struct kwh_git *, const char *, const char *, const char *,
    char [41], char *, size_t);
static void want_add(struct kwh_git *, const char *, const char *);
static void wants_prune(struct kwh_git *, const char *);

int
kwh_git_resolve(struct kwh_git *g, const char *rev, const char *ref,
    const char *fallback_branch, char hex[41], char *err, size_t errlen)
{
	int r;

	if (rev && !is_hex(rev)) {
		seterr(err, errlen, "revision '%.64s' is not a full commit id (40 hexadecimal digits)", rev);
		return KWH_GIT_EBADREV;
	}
	g->want_rev = rev;
	g->want_ref = ref;
	if (g->deferred) {
		/* a fetch is in flight: say what we want, then wait */
		if (rev)
			want_add(g, rev, ref);
		if ((r = take_lock(g, LOCK_SH, err, errlen)) < 0)
			return r;
		g->deferred = 0;
		open_repo(g);
		if (rev && lookup(g, rev, hex) == 0)
			return 0;
	} else {
		if (rev && lookup(g, rev, hex) == 0)
			return 0;
		if (rev)
			want_add(g, rev, ref);	/* for whoever fetches next (coalescing) */
	}
	if ((r = take_lock(g, LOCK_EX, err, errlen)) < 0)
		return r;
	if (open_repo(g)) {
		if ((r = rebuild(g, err, errlen)) < 0)
			return r;
		/* a new entry: removed again if its first fetch fails */
		r = resolve_fetch(g, rev, ref, fallback_branch, hex, err, errlen);
		/* (a fetch gone on in the background removes the entry itself
		 * if it fails) */
		if (r < 0 && r != KWH_GIT_EBACKGROUND && !g->fetched)
			drop_entry(g);
		else if (rev)
			wants_prune(g, rev);
		return r;
	}
	drop_partial_packs(g);
	r = resolve_fetch(g, rev, ref, fallback_branch, hex, err, errlen);
	if (rev)
		wants_prune(g, rev);	/* found or given up: wanted no more */
	return r;
}

/* ---- coalescing: the wants file (see WANTS_MAX) ---- */

/* Is ref a full ref name that may go into a refspec? */
static int
ref_ok(const char *ref)
{
	int valid = 0;

	return ref && !strncmp(ref, "refs/", 5) && strlen(ref) <= REF_MAX &&
	    !strpbrk(ref, " \t\r\n*:") &&
	    git_reference_name_is_valid(&valid, ref) == 0 && valid;
}

/*
 * Before waiting for the exclusive lock: records that this delivery wants
 * rev from ref, in one write (whole lines: O_APPEND).  Nothing past
 * WANTS_MAX; any failure only means that nobody fetches it for us.
 */
static void
want_add(struct kwh_git *g, const char *rev, const char *ref)
{
	char line[REF_MAX + 80];
	struct stat st;
	int fd, n;

	if (!ref_ok(ref) ||
	    (fd = open(g->wantspath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return;
	n = snprintf(line, sizeof line, "%lld %s %s\n", g->deadline, rev, ref);
	if (fstat(fd, &st) == 0 && st.st_size + n <= WANTS_MAX && write(fd, line, (size_t)n) < 0) {
		/* not recorded: this delivery fetches for itself */
	}
	close(fd);
}

/* The wants file's first WANTS_MAX bytes into b (empty when there is none). */
static void
wants_load(struct kwh_git *g, struct kwh_buf *b)
{
	char tmp[4096];
	ssize_t k;
	int fd;

	kwh_buf_reset(b);
	if ((fd = open(g->wantspath, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	while (b->len < WANTS_MAX && (k = read(fd, tmp, sizeof tmp)) > 0)
		if (kwh_buf_add(b, tmp, (size_t)k) < 0)
			break;
	close(fd);
}

/*
 * Splits one line of the wants file (modified in place): 0 with the
 * deadline, revision and ref when it is well-formed and its deadline has
 * not passed (a line left by a process killed while it waited dies with
 * its deadline), else -1.
 */
static int
want_parse(char *line, long long now, long long *deadline, const char **rev, const char **ref)
{
	char *end;

	*deadline = strtoll(line, &end, 10);
	if (end == line || *end != ' ' || *deadline < now)
		return -1;
	line = end + 1;
	if (strlen(line) < 42 || line[40] != ' ')
		return -1;
	line[40] = '\0';
	if (!is_hex(line) || !ref_ok(line + 41))
		return -1;
	*rev = line;
	*ref = line + 41;
	return 0;
}

/* The refspecs of one fetch (strings allocated). */
struct specs {
	char *v[WANTS_REFS + 4];
	size_t n;
};

static void
specs_free(struct specs *sp)
{
	while (sp->n)
		free(sp->v[--sp->n]);
}

static int
specs_has(const struct specs *sp, const char *s)
{
	size_t i;

	for (i = 0; i < sp->n; i++)
		if (!strcmp(sp->v[i], s))
			return 1;
	return 0;
}

/* Adds "+REF:REF" (or s as it is, for a pattern or an id), once. */
static int
specs_add(struct specs *sp, const char *ref, int as_is)
{
	char s[2 * REF_MAX + 4];

	if (as_is)
		snprintf(s, sizeof s, "%s", ref);
	else
		snprintf(s, sizeof s, "+%s:%s", ref, ref);
	if (specs_has(sp, s))
		return 0;
	if (sp->n == sizeof sp->v / sizeof sp->v[0] || !(sp->v[sp->n] = strdup(s)))
		return -1;
	sp->n++;
	return 0;
}

#define ALL_HEADS "+refs/heads/*:refs/heads/*"
#define ALL_TAGS "+refs/tags/*:refs/tags/*"

/*
 * The refspecs of the first fetch for rev: its own ref (every branch and
 * tag when it has none), then every ref wanted meanwhile (the wants file)
 * for a revision the entry lacks; past WANTS_REFS of them, every branch
 * (and every tag when a tag is wanted) instead of the wanted ones.
 */
static int
first_specs(struct kwh_git *g, const char *rev, const char *ref, struct specs *sp)
{
	struct kwh_buf b = KWH_BUF_INIT;
	char *line, *save = NULL, hex[41];
	const char *wrev, *wref;
	long long now = kwh_now_ms(), d;
	size_t own, wanted = 0;
	int heads = 0, tags = 0;

	if (ref_ok(ref)) {
		if (specs_add(sp, ref, 0) < 0)
			return -1;
	} else if (specs_add(sp, ALL_HEADS, 1) < 0 || specs_add(sp, ALL_TAGS, 1) < 0) {
		return -1;
	}
	own = sp->n;
	wants_load(g, &b);
	for (line = b.data ? strtok_r(b.data, "\n", &save) : NULL; line;
	    line = strtok_r(NULL, "\n", &save)) {
		if (want_parse(line, now, &d, &wrev, &wref) < 0 || !strcmp(wrev, rev) ||
		    lookup(g, wrev, hex) == 0)
			continue;
		wanted++;
		heads |= !strncmp(wref, "refs/heads/", 11);
		tags |= !strncmp(wref, "refs/tags/", 10);
		if (sp->n < WANTS_REFS + own && specs_add(sp, wref, 0) < 0)
			break;
		if (sp->n >= WANTS_REFS + own)
			heads = 2;	/* more than WANTS_REFS: every branch */
	}
	kwh_buf_release(&b);
	if (heads == 2) {
		while (sp->n > own)
			free(sp->v[--sp->n]);
		if (specs_add(sp, ALL_HEADS, 1) < 0 || (tags && specs_add(sp, ALL_TAGS, 1) < 0))
			return -1;
	}
	if (wanted)
		kwh_log(KWH_LOG_INFO, NULL, 0, "cache '%s': %zu revisions wanted meanwhile, "
		    "fetched together (%zu refspecs)", g->dir, wanted, sp->n);
	return 0;
}

/*
 * After a fetch, under the exclusive lock: drops from the wants file what
 * the entry now holds, what is dead (see want_parse()) and the want of
 * this delivery (drop: found, or given up), the file replaced whole (a
 * want appended meanwhile to the old one may be lost: its delivery
 * fetches for itself).
 */
static void
wants_prune(struct kwh_git *g, const char *drop)
{
	struct kwh_buf b = KWH_BUF_INIT, keep = KWH_BUF_INIT, tmp = KWH_BUF_INIT;
	char *line, *save = NULL, hex[41];
	const char *wrev, *wref;
	long long now = kwh_now_ms(), d;
	int fd;

	wants_load(g, &b);
	if (!b.len) {
		kwh_buf_release(&b);
		return;
	}
	for (line = strtok_r(b.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (want_parse(line, now, &d, &wrev, &wref) == 0 && strcmp(wrev, drop) &&
		    lookup(g, wrev, hex) < 0)
			kwh_buf_printf(&keep, "%lld %s %s\n", d, wrev, wref);
	if (!keep.len) {
		unlink(g->wantspath);
	} else if (kwh_buf_printf(&tmp, "%s.tmp", g->wantspath) == 0 &&
	    (fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) >= 0) {
		if (kwh_write_all(fd, keep.data, keep.len) < 0 || close(fd) < 0 ||
		    rename(tmp.data, g->wantspath) < 0)
			unlink(tmp.data);
	}
	kwh_buf_release(&b);
	kwh_buf_release(&keep);
	kwh_buf_release(&tmp);
}

/*
 * One fetch of n refspecs at depth: 1 when rev is then in the entry, 0
 * when not, or an error of net_run().
 */
static int
fetch_try(struct kwh_git *g, char **specs, size_t n, int depth, const char *rev, char hex[41],
    char *err, size_t errlen)
{
	int r;

	g->specs = specs;
	g->nspecs = n;
	g->depth = depth;
	r = net_run(g, NULL, 0, NULL, NULL, err, errlen);
	g->specs = NULL;
	g->nspecs = 0;
	g->depth = 0;
	if (r < 0)
		return r;
	return lookup(g, rev, hex) == 0;
}

/* kwh_git_resolve() under the exclusive lock, the entry open. */
static int
resolve_fetch(struct kwh_git *g, const char *rev, const char *ref,
    const char *fallback_branch, char hex[41], char *err, size_t errlen)
{
	struct specs sp = { { NULL }, 0 };
	int r, shallow = SHALLOW && g->host[0];

	if (!rev) {
		struct kwh_buf branch = KWH_BUF_INIT, full = KWH_BUF_INIT;
		git_oid oid;

		g->depth = shallow;
		r = net_run(g, NULL, 1, fallback_branch, &branch, err, errlen);
		g->depth = 0;
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
	/* its ref (at depth 1 where shallow), with every ref wanted meanwhile */
	if (first_specs(g, rev, ref, &sp) < 0) {
		specs_free(&sp);
		seterr(err, errlen, "out of memory");
		return KWH_GIT_ECACHE;
	}
	r = fetch_try(g, sp.v, sp.n, shallow, rev, hex, err, errlen);
	specs_free(&sp);
	if (r)
		return r < 0 ? r : 0;
#if SHALLOW
	if (shallow) {
		/* rev is not the tip of its ref (an older push delivered
		 * again, or the ref moved on): ask for it by id, which servers
		 * that allow it (GitHub; uploadpack.allowReachableSHA1InWant)
		 * answer with just that commit; others refuse */
		static const int deeper[] = { 50, 1000, GIT_FETCH_DEPTH_UNSHALLOW };
		size_t i;

		if (specs_add(&sp, rev, 1) < 0)
			goto oom;
		r = fetch_try(g, sp.v, sp.n, 1, rev, hex, err, errlen);
		specs_free(&sp);
		if (r > 0)
			return 0;
		if (r < 0 && r != KWH_GIT_EREMOTE)
			return r;
		if (r < 0)
			kwh_log(KWH_LOG_INFO, NULL, 0, "revision %s not fetched by id, its ref "
			    "deepened instead: %s", rev, err);
		/* then its ref (without one, every branch and tag) deeper,
		 * step by step, the last one whole: each step that lands is
		 * kept */
		for (i = 0; i < sizeof deeper / sizeof deeper[0]; i++) {
			/* a complete entry (the last step made it whole, or it
			 * never was shallow): only a fetch of other refs can help */
			if (!g->repo || git_repository_is_shallow(g->repo) != 1)
				break;
			if (ref_ok(ref) ? specs_add(&sp, ref, 0) < 0 :
			    specs_add(&sp, ALL_HEADS, 1) < 0 || specs_add(&sp, ALL_TAGS, 1) < 0)
				goto oom;
			r = fetch_try(g, sp.v, sp.n, deeper[i], rev, hex, err, errlen);
			specs_free(&sp);
			if (r)
				return r < 0 ? r : 0;
		}
		if (!ref_ok(ref))
			goto notfound;
	}
#endif
	/* not in its ref's history: every branch and tag, whole (a shallow
	 * entry unshallowed: a fetch at depth 0 would stop at its boundary;
	 * "unshallow" is for shallow entries only) */
	if ((ref && *ref) || shallow) {
		if (specs_add(&sp, ALL_HEADS, 1) < 0 || specs_add(&sp, ALL_TAGS, 1) < 0)
			goto oom;
#if SHALLOW
		r = fetch_try(g, sp.v, sp.n, g->repo && git_repository_is_shallow(g->repo) == 1 ?
		    GIT_FETCH_DEPTH_UNSHALLOW : 0, rev, hex, err, errlen);
#else
		r = fetch_try(g, sp.v, sp.n, 0, rev, hex, err, errlen);
#endif
		specs_free(&sp);
		if (r)
			return r < 0 ? r : 0;
	}
#if SHALLOW
notfound:
#endif
	seterr(err, errlen, "revision %s not found in %s", rev, g->shown);
	return KWH_GIT_ENOTFOUND;
oom:
	specs_free(&sp);
	seterr(err, errlen, "out of memory");
	return KWH_GIT_ECACHE;
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

	if (g->deferred) {
		/* read without kwh_git_resolve(): take the lock as it would */
		if ((r = take_lock(g, LOCK_SH, err, errlen)) < 0)
			return r;
		g->deferred = 0;
		open_repo(g);
	}
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
