/* metrics.c — the counts behind GET /metrics and --statsd (metrics.h).
 *
 * One fixed-size table of 64-bit counters, every label combination given
 * its slot in advance: the event names come from a fixed list (the event
 * header is the sender's to choose, so an unknown one counts as "other"
 * and the number of series stays bounded), the statuses are the HTTP
 * ones.  kwh-handle --listen's parent maps the table MAP_SHARED before it
 * forks; the workers add to it with atomic operations, and the one that
 * gets a scrape reads it, so that the numbers are the server's, not one
 * worker's.
 */
#include <errno.h>
#include <stdarg.h>
#include <dirent.h>
#include <ftw.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "git.h"
#include "metrics.h"

/* GitHub's webhook events; anything else is "other", no header "none". */
static const char *const events[] = {
	"branch_protection_rule", "check_run", "check_suite", "code_scanning_alert",
	"commit_comment", "create", "delete", "deployment", "deployment_status",
	"discussion", "discussion_comment", "fork", "gollum", "installation",
	"installation_repositories", "issue_comment", "issues", "label", "member",
	"membership", "merge_group", "meta", "milestone", "organization", "package",
	"page_build", "ping", "project", "public", "pull_request",
	"pull_request_review", "pull_request_review_comment",
	"pull_request_review_thread", "push", "registry_package", "release",
	"repository", "repository_dispatch", "security_advisory", "star", "status",
	"team", "team_add", "watch", "workflow_dispatch", "workflow_job",
	"workflow_run", "other", "none",
};
#define NEVENTS (sizeof events / sizeof events[0])
#define EV_OTHER (NEVENTS - 2)
#define EV_NONE (NEVENTS - 1)

/* Slot 0: a status outside 100..599 ("other"), or no response ("none"). */
#define NSTATUS 501

static const char *const stages[KWH_STAGE_N] = {
	"verify", "annotate", "fetch", "apply", "respond",
};

/* Upper bounds in seconds: 1 ms (a refused signature) to 30 s (a slow
 * clone; the budget is 9 s by default). */
static const double bounds[] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
};
#define NBUCKETS (sizeof bounds / sizeof bounds[0])

static const char *const results[] = {
	"ok", "not_found", "remote_error", "deadline", "cache_error", "refused",
	"bad_revision", "background", "other",
};
#define NRESULTS (sizeof results / sizeof results[0])

struct table {
	uint64_t deliveries[NEVENTS][NSTATUS];
	uint64_t bucket[KWH_STAGE_N][NBUCKETS + 1];	/* not cumulative; last: +Inf */
	uint64_t sum_ns[KWH_STAGE_N];
	uint64_t fetches[NRESULTS];
	uint64_t fetch_bytes;
	uint64_t kube[NSTATUS];
	uint64_t kube_retries;
	uint64_t queued_deliveries[4];	/* kwh_metrics_queued() */
	uint64_t inflight, queued, workers;	/* gauges, set by the parent */
	int server;				/* the parent set them */
};

static struct table own, *T = &own;
static int statsd_fd = -1;
static const char *scrape_path = "/metrics", *spool_dir, *cache_dir;

static void
add(uint64_t *x, uint64_t n)
{
	__atomic_fetch_add(x, n, __ATOMIC_RELAXED);
}

static uint64_t
get(const uint64_t *x)
{
	return __atomic_load_n(x, __ATOMIC_RELAXED);
}

static void
set(uint64_t *x, uint64_t v)
{
	__atomic_store_n(x, v, __ATOMIC_RELAXED);
}

int
kwh_metrics_share(void)
{
	struct table *t = mmap(NULL, sizeof *t, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (t == MAP_FAILED)
		return -1;
	memcpy(t, T, sizeof *t);
	T = t;
	return 0;
}

/* Sends one statsd line; never waits, never fails. */
static void
statsd(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void
statsd(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	if (statsd_fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof line)
		(void)!send(statsd_fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
}

void
kwh_metrics_statsd(const char *spec)
{
	struct addrinfo hints, *res = NULL, *ai;
	const char *colon = strrchr(spec, ':');
	char host[256];
	int rc, fd = -1;

	if (!colon || colon == spec || !colon[1] || (size_t)(colon - spec) >= sizeof host)
		kwh_usage_error("--statsd: '%s' is not HOST:PORT", spec);
	if (spec[0] == '[' && colon[-1] == ']')
		snprintf(host, sizeof host, "%.*s", (int)(colon - spec - 2), spec + 1);
	else
		snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, colon + 1, &hints, &res)))
		kwh_usage_error("--statsd %s: %s", spec, gai_strerror(rc));
	for (ai = res; ai && fd < 0; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    ai->ai_protocol)) < 0)
			continue;
		/* connected: each count is one send(2) */
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0)
		kwh_usage_error("--statsd %s: cannot open a UDP socket: %s", spec, strerror(errno));
	if (statsd_fd >= 0)
		close(statsd_fd);
	statsd_fd = fd;
}

static size_t
event_index(jv env)
{
	jv e = jv_object_get(jv_copy(env), jv_string("event"));
	size_t i = EV_NONE;

	if (jv_get_kind(e) == JV_KIND_STRING) {
		const char *s = jv_string_value(e);

		for (i = 0; i < EV_OTHER && strcmp(events[i], s); i++)
			;
	}
	jv_free(e);
	return i;
}

static size_t
status_index(int status)
{
	return status >= 100 && status <= 599 ? (size_t)(status - 99) : 0;
}

void
kwh_metrics_delivery(jv env, int status)
{
	size_t e = event_index(env), s = status_index(status);

	jv_free(env);
	/* a liveness answer (GET /-/alive) is no delivery */
	if (e == EV_NONE && status == 200)
		return;
	add(&T->deliveries[e][s], 1);
	if (s)
		statsd("kwh.deliveries.%s.%d:1|c", events[e], status);
	else
		statsd("kwh.deliveries.%s.other:1|c", events[e]);
}

long long
kwh_metrics_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void
kwh_metrics_stage(enum kwh_metrics_stage s, long long start_ns)
{
	long long ns = kwh_metrics_clock() - start_ns;
	size_t b;

	if ((unsigned)s >= KWH_STAGE_N)
		return;
	if (ns < 0)
		ns = 0;
	for (b = 0; b < NBUCKETS && ns > (long long)(bounds[b] * 1e9); b++)
		;
	add(&T->bucket[s][b], 1);
	add(&T->sum_ns[s], (uint64_t)ns);
	statsd("kwh.stage.%s:%.3f|ms", stages[s], ns / 1e6);
}

int
kwh_metrics_stage_of(const char *progname)
{
	for (int i = 0; i < KWH_STAGE_N; i++)
		if (!strncmp(progname, "kwh-", 4) && !strcmp(progname + 4, stages[i]))
			return i;
	return -1;
}

void
kwh_metrics_fetch(int result, unsigned long long bytes)
{
	size_t r = result == 0 ? 0 : result < 0 && -result < (int)NRESULTS - 1 ?
	    (size_t)-result : NRESULTS - 1;

	add(&T->fetches[r], 1);
	add(&T->fetch_bytes, bytes);
	statsd("kwh.git.fetches.%s:1|c", results[r]);
	if (bytes)
		statsd("kwh.git.fetch_bytes:%llu|c", bytes);
}

void
kwh_metrics_kube(int code)
{
	size_t s = status_index(code);

	add(&T->kube[s], 1);
	if (s)
		statsd("kwh.kube.requests.%d:1|c", code);
	else
		statsd("kwh.kube.requests.none:1|c");
}

static const char *const queued_outcomes[] = { "accepted", "completed", "refused", "spooled" };

void
kwh_metrics_queued(int outcome)
{
	if (outcome < 0 || outcome > 3)
		return;
	add(&T->queued_deliveries[outcome], 1);
	statsd("kwh.queued.%s:1|c", queued_outcomes[outcome]);
}

void
kwh_metrics_kube_retry(void)
{
	add(&T->kube_retries, 1);
	statsd("kwh.kube.retries:1|c");
}

void
kwh_metrics_server(size_t inflight, size_t queued, size_t workers)
{
	set(&T->inflight, inflight);
	set(&T->queued, queued);
	set(&T->workers, workers);
	T->server = 1;
}

void
kwh_metrics_endpoint(const char *path, const char *spool, const char *cache)
{
	scrape_path = path && strcmp(path, "none") ? path : NULL;
	spool_dir = spool;
	cache_dir = cache;
}

/* ---- the scrape ---- */

static unsigned long long du_total;
static size_t du_files;
#define DU_MAX_FILES 200000	/* a scrape stops counting there */

static int
du_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	du_total += (unsigned long long)st->st_blocks * 512;
	return ++du_files >= DU_MAX_FILES;
}

/* Bytes on disk under dir (what du(1) says), or -1 when unreadable. */
static long long
dir_bytes(const char *dir)
{
	du_total = 0;
	du_files = 0;
	if (nftw(dir, du_one, 16, FTW_PHYS) < 0)
		return -1;
	return (long long)du_total;
}

/* Spool files (DELIVERY[-DIGEST].json) in dir, or -1. */
static long long
spool_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	long long n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);

		n += e->d_name[0] != '.' && l > 5 && !strcmp(e->d_name + l - 5, ".json");
	}
	closedir(d);
	return n;
}

static void
header(struct kwh_buf *b, const char *name, const char *type, const char *help)
{
	kwh_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void
kwh_metrics_render(struct kwh_buf *b)
{
	long long v;

	header(b, "kwh_deliveries_total", "counter",
	    "Deliveries answered, by event (X-GitHub-Event; other: not a GitHub event) and HTTP status.");
	for (size_t e = 0; e < NEVENTS; e++)
		for (size_t s = 0; s < NSTATUS; s++) {
			uint64_t n = get(&T->deliveries[e][s]);

			if (!n)
				continue;
			if (s)
				kwh_buf_printf(b, "kwh_deliveries_total{event=\"%s\",status=\"%zu\"} %llu\n",
				    events[e], s + 99, (unsigned long long)n);
			else
				kwh_buf_printf(b, "kwh_deliveries_total{event=\"%s\",status=\"other\"} %llu\n",
				    events[e], (unsigned long long)n);
		}
	header(b, "kwh_stage_duration_seconds", "histogram",
	    "Time each stage took for a delivery it handled.");
	for (size_t s = 0; s < KWH_STAGE_N; s++) {
		uint64_t cum = 0;

		for (size_t i = 0; i <= NBUCKETS; i++) {
			cum += get(&T->bucket[s][i]);
			if (i < NBUCKETS)
				kwh_buf_printf(b, "kwh_stage_duration_seconds_bucket{stage=\"%s\",le=\"%g\"} %llu\n",
				    stages[s], bounds[i], (unsigned long long)cum);
			else
				kwh_buf_printf(b, "kwh_stage_duration_seconds_bucket{stage=\"%s\",le=\"+Inf\"} %llu\n",
				    stages[s], (unsigned long long)cum);
		}
		kwh_buf_printf(b, "kwh_stage_duration_seconds_sum{stage=\"%s\"} %.9f\n",
		    stages[s], get(&T->sum_ns[s]) / 1e9);
		kwh_buf_printf(b, "kwh_stage_duration_seconds_count{stage=\"%s\"} %llu\n",
		    stages[s], (unsigned long long)cum);
	}
	header(b, "kwh_git_fetches_total", "counter",
	    "Fetches from git remotes, by result.");
	for (size_t r = 0; r < NRESULTS; r++)
		kwh_buf_printf(b, "kwh_git_fetches_total{result=\"%s\"} %llu\n", results[r],
		    (unsigned long long)get(&T->fetches[r]));
	header(b, "kwh_git_fetch_bytes_total", "counter",
	    "Bytes received from git remotes.");
	kwh_buf_printf(b, "kwh_git_fetch_bytes_total %llu\n", (unsigned long long)get(&T->fetch_bytes));
	header(b, "kwh_kube_requests_total", "counter",
	    "Kubernetes API requests sent, by HTTP status of the answer (none: no answer).");
	for (size_t s = 0; s < NSTATUS; s++) {
		uint64_t n = get(&T->kube[s]);

		if (!n)
			continue;
		if (s)
			kwh_buf_printf(b, "kwh_kube_requests_total{code=\"%zu\"} %llu\n", s + 99,
			    (unsigned long long)n);
		else
			kwh_buf_printf(b, "kwh_kube_requests_total{code=\"none\"} %llu\n",
			    (unsigned long long)n);
	}
	header(b, "kwh_kube_retries_total", "counter",
	    "Kubernetes API requests sent again after a failure.");
	kwh_buf_printf(b, "kwh_kube_retries_total %llu\n", (unsigned long long)get(&T->kube_retries));
	header(b, "kwh_queued_deliveries_total", "counter",
	    "Deliveries answered 202 accepted for processing (queued), and how those ended.");
	for (size_t i = 0; i < 4; i++)
		kwh_buf_printf(b, "kwh_queued_deliveries_total{outcome=\"%s\"} %llu\n",
		    queued_outcomes[i], (unsigned long long)get(&T->queued_deliveries[i]));
	if (T->server) {
		header(b, "kwh_inflight_requests", "gauge",
		    "Requests a worker is handling now.");
		kwh_buf_printf(b, "kwh_inflight_requests %llu\n", (unsigned long long)get(&T->inflight));
		header(b, "kwh_queued_requests", "gauge",
		    "Requests read and waiting for a free worker.");
		kwh_buf_printf(b, "kwh_queued_requests %llu\n", (unsigned long long)get(&T->queued));
		header(b, "kwh_workers", "gauge", "Worker processes running.");
		kwh_buf_printf(b, "kwh_workers %llu\n", (unsigned long long)get(&T->workers));
	}
	if (spool_dir && (v = spool_files(spool_dir)) >= 0) {
		header(b, "kwh_spool_files", "gauge", "Deliveries kept in the spool directory.");
		kwh_buf_printf(b, "kwh_spool_files %lld\n", v);
	}
	if (cache_dir && (v = dir_bytes(cache_dir)) >= 0) {
		header(b, "kwh_cache_bytes", "gauge",
		    "Bytes on disk in the cache directory (git cache and discovery cache).");
		kwh_buf_printf(b, "kwh_cache_bytes %lld\n", v);
	}
}

int
kwh_metrics_answer(int in, int out)
{
	struct kwh_buf body = KWH_BUF_INIT, resp = KWH_BUF_INIT;
	char line[1024];
	const char *path;
	size_t plen;
	ssize_t n;
	int head;

	if (!scrape_path || (n = pread(in, line, sizeof line - 1, 0)) <= 0)
		return 0;
	line[n] = '\0';
	head = !strncmp(line, "HEAD ", 5);
	if (strncmp(line, "GET ", 4) && !head)
		return 0;
	path = line + (head ? 5 : 4);
	plen = strlen(scrape_path);
	if (strncmp(path, scrape_path, plen) || (path[plen] != ' ' && path[plen] != '?'))
		return 0;
	kwh_metrics_render(&body);
	kwh_buf_printf(&resp, "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
	    "Content-Length: %zu\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n", body.len);
	if (!head && body.data)
		kwh_buf_add(&resp, body.data, body.len);
	if (!resp.data || kwh_write_all(out, resp.data, resp.len) < 0)
		kwh_log(KWH_LOG_WARN, NULL, 0, "cannot write the metrics: %s", strerror(errno));
	kwh_buf_release(&body);
	kwh_buf_release(&resp);
	return 1;
}
