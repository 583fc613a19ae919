/* serve.c — kwh-handle --listen: the listening socket, the pre-forked
 * workers and the parent that supervises them (see handle.h and
 * kwh-handle(1)).
 *
 * The parent has parsed the options and loaded everything (secrets, jq
 * programs, cluster configuration, discovery cache) before it forks, so a
 * worker starts ready.  Workers wait for a connection with poll(2) on the
 * listening socket (non-blocking, so that the one that loses the race for
 * a connection goes back to waiting) and on a pipe that their SIGTERM
 * handler writes to; each connection carries exactly one request
 * (Connection: close), handled by kwh_handle_run() as in the one-shot
 * mode.  The Kubernetes client, and with it its TLS connection to the API
 * server, lives as long as the worker.
 */
#include <errno.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "err.h"
#include "git.h"
#include "handle.h"
#include "kube.h"

#define BACKLOG 128
#define LINGER_MS 1000		/* how long a finished connection may still send */
#define LINGER_BYTES (1 << 20)
#define BACKOFF_MIN_MS 100	/* first delay before replacing a crashed worker */
#define BACKOFF_MAX_MS 5000
#define HEALTHY_MS 10000	/* a worker that lived this long resets the backoff */
#define STOP_SLACK_MS 2000	/* beyond a request's own limits, when stopping */

struct slot {
	pid_t pid;		/* 0: none running */
	long long started;	/* when it was forked */
	long long due;		/* when to start the next one */
	unsigned crashes;	/* abnormal exits in a row */
};

static volatile sig_atomic_t stopping, child_exited;
static int wake[2] = { -1, -1 };	/* a worker's self-pipe: SIGTERM wakes poll */
static struct slot *slots;		/* the parent's; a worker frees its copy */

static void
on_stop(int sig)
{
	int e = errno;

	stopping = 1;
	if (wake[1] >= 0)
		(void)!write(wake[1], "", 1);
	errno = e;
}

static void
on_child(int sig)
{
	child_exited = 1;
}

static void
handle_signal(int sig, void (*fn)(int), int flags)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = fn;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !stopping)
		;
}

/* "HOST:PORT" of a bound socket, numeric, IPv6 in brackets. */
static void
describe(int fd, char *out, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char host[NI_MAXHOST], port[NI_MAXSERV];

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
	    getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, port, sizeof port,
	    NI_NUMERICHOST | NI_NUMERICSERV)) {
		snprintf(out, n, "fd %d", fd);
		return;
	}
	snprintf(out, n, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}

/* The socket systemd passed (Accept=no): fd 3, LISTEN_FDS=1. */
static int
systemd_socket(void)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	int on = 0;
	socklen_t len = sizeof on;

	if (!pid || !fds || strtol(pid, NULL, 10) != (long)getpid() || strcmp(fds, "1"))
		kwh_die(KWH_EXIT_SYSTEM, "--listen systemd: systemd passed no socket "
		    "(LISTEN_PID is not this process or LISTEN_FDS is not 1)");
	if (getsockopt(3, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) < 0 || !on)
		kwh_die(KWH_EXIT_SYSTEM, "--listen systemd: fd 3 is not a listening socket "
		    "(the socket unit needs Accept=no)");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	fcntl(3, F_SETFD, FD_CLOEXEC);
	return 3;
}

int
kwh_handle_listen(const struct kwh_handle *h)
{
	const char *spec = h->listen, *port, *colon;
	struct addrinfo hints, *res = NULL, *ai;
	char host[256], *end;
	int fd = -1, rc, e = 0;
	long pn;

	if (!strcmp(spec, "systemd"))
		return systemd_socket();
	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');

		if (!close || close[1] != ':' || (size_t)(close - spec - 1) >= sizeof host)
			kwh_usage_error("--listen: '%s' is not [HOST:]PORT ('[ADDRESS]:PORT' for IPv6)", spec);
		snprintf(host, sizeof host, "%.*s", (int)(close - spec - 1), spec + 1);
		port = close + 2;
	} else if ((colon = strrchr(spec, ':'))) {
		if (memchr(spec, ':', (size_t)(colon - spec)) || (size_t)(colon - spec) >= sizeof host)
			kwh_usage_error("--listen: '%s' is not [HOST:]PORT ('[ADDRESS]:PORT' for IPv6)", spec);
		snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
		port = colon + 1;
	} else {
		host[0] = '\0';
		port = spec;
	}
	if (!host[0])
		snprintf(host, sizeof host, "127.0.0.1");
	errno = 0;
	pn = strtol(port, &end, 10);
	if (!*port || *end || errno || pn < 0 || pn > 65535 || *port == '-' || *port == '+')
		kwh_usage_error("--listen: port '%s' is not a number from 0 to 65535", port);
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &res)))
		kwh_die(KWH_EXIT_SYSTEM, "--listen %s: %s", spec, gai_strerror(rc));
	for (ai = res; ai; ai = ai->ai_next) {
		int on = 1, off = 0;

		if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol)) < 0) {
			e = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
		/* "[::]:PORT" takes IPv4 connections too, whatever the sysctl says */
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, BACKLOG) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		kwh_die(KWH_EXIT_SYSTEM, "--listen %s: cannot listen: %s", spec, strerror(e ? e : EADDRNOTAVAIL));
	return fd;
}

/*
 * Ends a connection whose response has been written: half-closes it and
 * reads what the client still sends (a body larger than the limit, say)
 * for a short while, so that closing does not reset the connection and
 * lose the response on its way.
 */
static void
finish(int fd)
{
	long long until = kwh_now_ms() + LINGER_MS;
	size_t total = 0;
	char tmp[4096];

	if (shutdown(fd, SHUT_WR) == 0) {
		while (total < LINGER_BYTES && !stopping) {
			struct pollfd p = { fd, POLLIN, 0 };
			long long left = until - kwh_now_ms();
			ssize_t n;
			int r;

			if (left <= 0)
				break;
			if ((r = poll(&p, 1, (int)left)) < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			if ((n = read(fd, tmp, sizeof tmp)) < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			total += (size_t)n;
		}
	}
	close(fd);
}

/*
 * Gives the memory of the request just answered back to the system.  A
 * large payload becomes millions of small jq values; once they are freed
 * glibc keeps the pages in its heap, so without this a worker would stay
 * at the size of the largest request it ever saw (see bench/README.md,
 * "Memory of a worker").  malloc_trim(0) returns every free page, not only
 * the top of the heap; it costs well under a millisecond on an idle heap.
 */
static void
after_request(void)
{
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

/* One worker: accepts and handles until stopped or --max-requests. */
static void __attribute__((noreturn))
worker(struct kwh_handle *h, int lfd, pid_t parent, const sigset_t *mask)
{
	size_t served = 0;
	const char *why = "stopping";

#ifdef __linux__
	/* a parent killed with SIGKILL must not leave its workers behind */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		exit(0);
#endif
	free(slots);
	slots = NULL;
	stopping = 0;
	if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) < 0)
		kwh_die(KWH_EXIT_SYSTEM, "cannot make a pipe: %s", strerror(errno));
	handle_signal(SIGTERM, on_stop, SA_RESTART);
	handle_signal(SIGINT, on_stop, SA_RESTART);
	handle_signal(SIGCHLD, SIG_DFL, 0);
	sigprocmask(SIG_SETMASK, mask, NULL);
	srandom((unsigned)getpid() ^ (unsigned)kwh_now_ms());
	kwh_git_hold(1);	/* libgit2 set up once per worker, not per request */
	kwh_log(KWH_LOG_INFO, NULL, 0, "worker %ld started", (long)getpid());
	while (!stopping) {
		struct pollfd p[2] = { { lfd, POLLIN, 0 }, { wake[0], POLLIN, 0 } };
		int fd;

		if (h->max_requests && served >= h->max_requests) {
			why = "--max-requests";
			break;
		}
		if (poll(p, 2, -1) < 0) {
			if (errno != EINTR) {
				kwh_log(KWH_LOG_WARN, NULL, 0, "poll: %s", strerror(errno));
				sleep_ms(100);
			}
			continue;
		}
		if (p[1].revents) {
			char tmp[64];
			while (read(wake[0], tmp, sizeof tmp) > 0)
				;
			continue;	/* stopping, or a signal to a fetch child */
		}
		if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
			    errno == ECONNABORTED)
				continue;
			/* out of descriptors or memory: wait rather than spin */
			kwh_log(KWH_LOG_WARN, NULL, 0, "accept: %s", strerror(errno));
			sleep_ms(100);
			continue;
		}
		kwh_handle_run(h, fd, fd, NULL);
		finish(fd);
		after_request();
		served++;
	}
	kwh_log(KWH_LOG_INFO, NULL, 0, "worker %ld exits after %zu request%s (%s)",
	    (long)getpid(), served, served == 1 ? "" : "s", why);
	kwh_handle_release(h);
	kwh_git_hold(0);
	close(lfd);
	close(wake[0]);
	close(wake[1]);
	exit(0);
}

static void
spawn(struct kwh_handle *h, struct slot *s, int lfd, const sigset_t *mask)
{
	pid_t parent = getpid(), pid = fork();

	if (pid < 0) {
		kwh_log(KWH_LOG_ERROR, NULL, 0, "cannot start a worker: %s; trying again in %d ms",
		    strerror(errno), BACKOFF_MAX_MS);
		s->due = kwh_now_ms() + BACKOFF_MAX_MS;
		return;
	}
	if (pid == 0)
		worker(h, lfd, parent, mask);
	s->pid = pid;
	s->started = kwh_now_ms();
}

/* Reaps exited workers; schedules their replacements. */
static void
reap(struct slot *w, size_t n)
{
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		long long now = kwh_now_ms();
		struct slot *s = NULL;
		long delay;

		for (size_t i = 0; i < n; i++)
			if (w[i].pid == pid)
				s = &w[i];
		if (!s)
			continue;
		s->pid = 0;
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
			s->crashes = 0;	/* it logged why it stopped */
			s->due = now;
			continue;
		}
		if (now - s->started >= HEALTHY_MS)
			s->crashes = 0;
		delay = (long)BACKOFF_MIN_MS << (s->crashes < 6 ? s->crashes : 6);
		if (delay > BACKOFF_MAX_MS)
			delay = BACKOFF_MAX_MS;
		s->crashes++;
		s->due = now + delay;
		if (WIFSIGNALED(st))
			kwh_log(KWH_LOG_ERROR, NULL, 0, "worker %ld killed by signal %d (%s) after %.1f s%s",
			    (long)pid, WTERMSIG(st), strsignal(WTERMSIG(st)), (now - s->started) / 1000.0,
			    stopping ? "" : "; replacing it");
		else
			kwh_log(KWH_LOG_ERROR, NULL, 0, "worker %ld exited with status %d after %.1f s%s",
			    (long)pid, WEXITSTATUS(st), (now - s->started) / 1000.0,
			    stopping ? "" : "; replacing it");
		if (!stopping)
			kwh_log(KWH_LOG_INFO, NULL, 0, "next worker in %ld ms", delay);
	}
}

static size_t
running(const struct slot *w, size_t n)
{
	size_t r = 0;

	for (size_t i = 0; i < n; i++)
		r += w[i].pid != 0;
	return r;
}

/* Waits for a signal, at most ms (-1: no limit). */
static void
pause_ms(long long ms, const sigset_t *mask)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	if (!child_exited && !stopping)
		ppoll(NULL, 0, ms < 0 ? NULL : &ts, mask);
}

static size_t
default_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 2)
		n = 2;
	if (n > KWH_HANDLE_MAX_WORKERS)
		n = KWH_HANDLE_MAX_WORKERS;
	return (size_t)n;
}

int
kwh_handle_serve(struct kwh_handle *h, int lfd)
{
	size_t n = h->workers ? h->workers : default_workers();
	struct slot *w = slots = calloc(n, sizeof *w);
	sigset_t block, mask;
	long long grace, until;
	char where[NI_MAXHOST + NI_MAXSERV + 8];

	if (!w)
		kwh_die(KWH_EXIT_SYSTEM, "out of memory");
	h->resident = 1;
	fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK);
	/* the signals are only taken inside ppoll: no request is cut short */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, &mask);
	handle_signal(SIGTERM, on_stop, 0);
	handle_signal(SIGINT, on_stop, 0);
	handle_signal(SIGCHLD, on_child, 0);
	/* a client that went away must cost an EPIPE, not the worker */
	signal(SIGPIPE, SIG_IGN);
	describe(lfd, where, sizeof where);
	if (h->max_requests)
		kwh_log(KWH_LOG_INFO, NULL, 0, "listening on %s with %zu worker%s, each replaced "
		    "after %zu requests", where, n, n == 1 ? "" : "s", h->max_requests);
	else
		kwh_log(KWH_LOG_INFO, NULL, 0, "listening on %s with %zu worker%s", where, n,
		    n == 1 ? "" : "s");
	while (!stopping) {
		long long now = kwh_now_ms(), next = -1;

		for (size_t i = 0; i < n && !stopping; i++) {
			if (w[i].pid)
				continue;
			if (w[i].due <= now)
				spawn(h, &w[i], lfd, &mask);
			if (!w[i].pid && (next < 0 || w[i].due - now < next))
				next = w[i].due - now > 0 ? w[i].due - now : 0;
		}
		pause_ms(next, &mask);
		child_exited = 0;
		reap(w, n);
	}
	/* stop: every worker ends its request (each bounded by the read
	 * timeout and the budget), then exits */
	close(lfd);
	kwh_log(KWH_LOG_INFO, NULL, 0, "stopping: waiting for %zu worker%s to answer "
	    "their requests", running(w, n), running(w, n) == 1 ? "" : "s");
	for (size_t i = 0; i < n; i++)
		if (w[i].pid)
			kill(w[i].pid, SIGTERM);
	grace = h->verify.limits.timeout_ms > h->verify.budget_ms ?
	    h->verify.limits.timeout_ms : h->verify.budget_ms;
	until = kwh_now_ms() + grace + STOP_SLACK_MS;
	for (;;) {
		long long left;

		child_exited = 0;
		reap(w, n);
		if (!running(w, n) || (left = until - kwh_now_ms()) <= 0)
			break;
		pause_ms(left, &mask);
	}
	for (size_t i = 0; i < n; i++) {
		if (!w[i].pid)
			continue;
		kwh_log(KWH_LOG_ERROR, NULL, 0, "worker %ld did not stop in %lld ms: killing it",
		    (long)w[i].pid, grace + STOP_SLACK_MS);
		kill(w[i].pid, SIGKILL);
		while (waitpid(w[i].pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	free(w);
	slots = NULL;
	sigprocmask(SIG_SETMASK, &mask, NULL);
	kwh_log(KWH_LOG_INFO, NULL, 0, "stopped");
	return KWH_EXIT_OK;
}
