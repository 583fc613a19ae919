/* serve.c — kwh-handle --listen: the listening socket, the pre-forked
 * workers and the parent that supervises them (see handle.h and
 * kwh-handle(1)).
 *
 * The parent has parsed the options and loaded everything (secrets, jq
 * programs, cluster configuration, discovery cache) before it forks, so a
 * worker starts ready.  The parent is also the acceptor: one epoll loop
 * accepts the connections and reads their requests, all at once and
 * without blocking, under --header-timeout for the head and --timeout
 * for the whole request and the size limits (kwh_http_scan finds where a
 * request ends, or where the worker's reading will refuse it).  Only a
 * request that is complete (or refused, or timed out) is handed to a free
 * worker, so a slow or idle client holds no worker: its bytes go into a
 * memfd, passed with the connection over the worker's channel (a
 * SOCK_SEQPACKET socketpair, SCM_RIGHTS).  The worker handles it with
 * kwh_handle_run() as in the one-shot mode (the file as input, the
 * connection as output; each connection carries one request,
 * Connection: close), half-closes the connection and passes it back: the
 * parent reads what the client still sends for a short while before
 * closing it (so that closing does not reset the connection and lose the
 * response on its way), and the worker waits for the next request.  The
 * Kubernetes client, and with it its TLS connection to the API server,
 * lives as long as the worker.
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
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "buf.h"
#include "err.h"
#include "git.h"
#include "http.h"
#include "handle.h"
#include "kube.h"
#include "metrics.h"

#define LINGER_MS 1000		/* how long a finished connection may still send */
#define LINGER_BYTES (1 << 20)
#define BACKOFF_MIN_MS 100	/* first delay before replacing a crashed worker */
#define BACKOFF_MAX_MS 5000
#define HEALTHY_MS 10000	/* a worker that lived this long resets the backoff */
#define STOP_SLACK_MS 2000	/* beyond a request's own limits, when stopping */
#define FD_RESERVE 32		/* descriptors kept beside the connections */
#define ACCEPT_PAUSE_MS 100	/* out of descriptors: accept again after this */
#define WARN_EVERY_MS 10000	/* at most one --max-pending warning so often */

/* What an epoll event is about: the first member of what it points to. */
enum kind { K_LISTEN, K_WORKER, K_CONN };

struct slot {
	enum kind kind;		/* K_WORKER */
	pid_t pid;		/* 0: none running */
	long long started;	/* when it was forked */
	long long due;		/* when to start the next one */
	unsigned crashes;	/* abnormal exits in a row */
	int ch;			/* the parent's end of its channel, -1: none */
	int ready;		/* it waits for a request */
};

/* A connection the parent holds: its request being read (C_HEAD, C_BODY),
 * read and waiting for a worker (C_QUEUED), or answered (C_LINGER). */
enum cstate { C_HEAD, C_BODY, C_QUEUED, C_LINGER };
struct conn {
	enum kind kind;		/* K_CONN */
	int fd;
	enum cstate state;
	long long accepted;	/* monotonic ms */
	long long due;		/* its deadline in this state */
	struct kwh_http_given given;
	struct kwh_http_scan scan;
	struct kwh_buf data;	/* the bytes read */
	size_t lingered;	/* bytes read after the answer */
	int continued;		/* "100 Continue" was sent */
	struct conn *prev, *next;	/* all of them, oldest first */
	struct conn *qnext;		/* C_QUEUED, in order */
};

/* What the parent sends a worker with a connection and a memfd. */
struct handoff {
	struct kwh_http_given given;
};
/* What a worker sends back: READY, or a connection to linger on (LINGER)
 * after which it is ready, or the last one (LAST) before it exits. */
enum { MSG_READY = 'R', MSG_LINGER = 'L', MSG_LAST = 'X' };

static volatile sig_atomic_t stopping, child_exited, hangup;
static struct slot *slots;		/* the parent's; a worker frees its copy */
static size_t nslots;

/* The parent's acceptor */
static struct {
	int ep, lfd;
	const struct kwh_http_limits *lim;
	long header_ms;			/* --header-timeout */
	size_t max_pending;		/* --max-pending */
	struct conn *first, *last;	/* every connection held */
	struct conn *dead;		/* freed once the events in hand are done */
	size_t nconns;
	struct conn *qfirst, *qlast;	/* complete requests, oldest first */
	long long next_due;		/* the earliest deadline (-1: none) */
	long long accept_paused;	/* until then (0: accepting) */
	long long warned;		/* when --max-pending was last logged */
	size_t evicted;			/* connections closed since */
	size_t refused;			/* connections answered 503 since */
} A = { .ep = -1, .lfd = -1, .next_due = -1 };

static void
on_stop(int sig)
{
	stopping = 1;
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

/* ---- configuration changes: re-executing with the socket ---- */

/*
 * With --config FILE the parent stats FILE every second (a ConfigMap
 * volume swaps a symlink: stat follows it) and takes SIGHUP as the same
 * news.  It then checks the new configuration in a child (the options
 * parsed and everything loaded, as at start-up): a bad one is logged and
 * the running configuration kept.  A good one: the parent stops accepting
 * (the listening socket stays open, so the kernel queues new connections
 * in the backlog), lets the requests it holds be read and answered, and
 * executes itself again with the socket as fd 3 and LISTEN_PID and
 * LISTEN_FDS set, as systemd passes one (kwh_handle_listen takes it
 * whatever --listen says).  Same process id, so a container's PID 1
 * stays, and no connection is refused or reset.
 */
static void
on_hangup(int sig)
{
	hangup = 1;
}

/* Re-executed by a parent that passed its socket (reexec below). */
static int
inherited(void)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");

	return pid && fds && strtol(pid, NULL, 10) == (long)getpid() && !strcmp(fds, "1");
}

/* Has --config FILE changed since it was read?  1 once per change. */
static int
config_changed(struct kwh_handle *h)
{
	struct stat st;

	if (stat(h->config, &st) < 0)
		memset(&st, 0, sizeof st);
	if (st.st_dev == h->config_stat.st_dev && st.st_ino == h->config_stat.st_ino &&
	    st.st_size == h->config_stat.st_size &&
	    st.st_mtim.tv_sec == h->config_stat.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == h->config_stat.st_mtim.tv_nsec)
		return 0;
	h->config_stat = st;
	return 1;
}

/* The configuration as a re-executed parent would load it: 0 if it loads. */
static int
config_loads(struct kwh_handle *h)
{
	static struct kwh_handle t;
	char **argv = h->argv;
	int argc = 0, st;
	pid_t pid;

	while (argv[argc])
		argc++;
	if ((pid = fork()) < 0)
		return -1;
	if (pid == 0) {
		signal(SIGCHLD, SIG_DFL);
		alarm(10);	/* a load that hangs counts as failed */
		optind = 0;	/* getopt_long starts again (glibc: 0 resets it all) */
		kwh_handle_options(&t, argc, argv);
		kwh_handle_init(&t);
		_exit(0);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* Becomes the new configuration's server, keeping the socket; returns
 * only when that failed. */
static void
reexec(struct kwh_handle *h, int lfd, const sigset_t *mask)
{
	char pid[32];

	/* logged first: the log may be fd 3, which the socket takes */
	kwh_log(KWH_LOG_INFO, NULL, 0, "executing %s again with the new configuration", h->argv[0]);
	if (lfd == 3 ? fcntl(3, F_SETFD, 0) < 0 : dup2(lfd, 3) < 0) {
		kwh_log(KWH_LOG_ERROR, NULL, 0, "cannot pass the listening socket on: %s", strerror(errno));
		return;
	}
	snprintf(pid, sizeof pid, "%ld", (long)getpid());
	setenv("LISTEN_FDS", "1", 1);
	setenv("LISTEN_PID", pid, 1);
	sigprocmask(SIG_SETMASK, mask, NULL);
	execv("/proc/self/exe", h->argv);
	execvp(h->argv[0], h->argv);
	kwh_die(KWH_EXIT_SYSTEM, "cannot execute %s again: %s", h->argv[0], strerror(errno));
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
	const char *spec = h->listen, *port, *colon, *hosts[2] = { NULL, NULL };
	struct addrinfo hints, *res = NULL, *ai;
	char host[256], *end;
	int fd = -1, rc, e = 0;
	long pn;

	if (!strcmp(spec, "systemd") || inherited())
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
	/* ":PORT" is every interface, as Go's net.Listen takes it (the
	 * original's -l :8080): IPv6's any address, which takes IPv4 too
	 * (V6ONLY off below), else IPv4's when the host has no IPv6.  A bare
	 * PORT stays on the loopback: nothing is exposed unless asked. */
	if (!host[0] && port != spec) {
		hosts[0] = "::";
		hosts[1] = "0.0.0.0";
	} else
		hosts[0] = host[0] ? host : "127.0.0.1";
	errno = 0;
	pn = strtol(port, &end, 10);
	if (!*port || *end || errno || pn < 0 || pn > 65535 || *port == '-' || *port == '+')
		kwh_usage_error("--listen: port '%s' is not a number from 0 to 65535", port);
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	for (int i = 0; i < 2 && hosts[i] && fd < 0; i++) {
		if ((rc = getaddrinfo(hosts[i], port, &hints, &res))) {
			if (i == 0 && hosts[1])
				continue;	/* no IPv6 here: IPv4's any address */
			kwh_die(KWH_EXIT_SYSTEM, "--listen %s: %s", spec, gai_strerror(rc));
		}
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
			if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, (int)h->backlog) == 0)
				break;
			e = errno;
			close(fd);
			fd = -1;
		}
		freeaddrinfo(res);
	}
	if (fd < 0)
		kwh_die(KWH_EXIT_SYSTEM, "--listen %s: cannot listen: %s", spec, strerror(e ? e : EADDRNOTAVAIL));
	return fd;
}


/* ---- the worker ---- */

/* Receives a request: fills m, *conn and *file.  1, 0 at the end of the
 * channel (the parent stops the worker, or is gone), -1 otherwise. */
static int
receive(int ch, struct handoff *m, int *conn, int *file)
{
	union { struct cmsghdr h; char buf[CMSG_SPACE(2 * sizeof(int))]; } u;
	struct iovec iov = { m, sizeof *m };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
	    .msg_controllen = sizeof u.buf };
	struct cmsghdr *c;
	ssize_t n;

	*conn = *file = -1;
	if ((n = recvmsg(ch, &mh, MSG_CMSG_CLOEXEC)) <= 0)
		return n == 0 ? 0 : (errno == EINTR || errno == EAGAIN) ? -1 : 0;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		int fds[2];

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
		    c->cmsg_len != CMSG_LEN(2 * sizeof(int)))
			continue;
		memcpy(fds, CMSG_DATA(c), sizeof fds);
		*conn = fds[0];
		*file = fds[1];
	}
	if ((size_t)n != sizeof *m || *conn < 0 || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		if (*conn >= 0)
			close(*conn);
		if (*file >= 0)
			close(*file);
		return -1;
	}
	return 1;
}

/* Sends one byte, and fd when not -1.  0 or -1. */
static int
send_msg(int ch, char what, int fd)
{
	union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
	struct iovec iov = { &what, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (fd >= 0) {
		memset(&u, 0, sizeof u);
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof u.buf;
		CMSG_FIRSTHDR(&mh)->cmsg_level = SOL_SOCKET;
		CMSG_FIRSTHDR(&mh)->cmsg_type = SCM_RIGHTS;
		CMSG_FIRSTHDR(&mh)->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(CMSG_FIRSTHDR(&mh)), &fd, sizeof fd);
	}
	while ((n = sendmsg(ch, &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	return n == 1 ? 0 : -1;
}

/*
 * Ends a connection whose response has been written: half-closes it and
 * gives it back to the parent, which reads what the client still sends (a
 * body larger than the limit, say) for a short while, so that closing does
 * not reset the connection and lose the response on its way.  The worker
 * is then free (what is READY or LAST).
 */
static void
finish(int ch, int fd, char what)
{
	shutdown(fd, SHUT_WR);
	if (send_msg(ch, what == MSG_LAST ? MSG_LAST : MSG_LINGER, fd) < 0 && what == MSG_READY)
		send_msg(ch, MSG_READY, -1);
	close(fd);
}

static void free_conn(struct conn *c);
static void bury(void);

/* In a new worker: lets go of the parent's descriptors and connections. */
static void
forget_parent(int own)
{
	/* the epoll set is the parent's too: not one epoll_ctl on it */
	if (A.ep >= 0)
		close(A.ep);
	A.ep = -1;
	while (A.first)
		free_conn(A.first);
	bury();
	for (size_t i = 0; i < nslots; i++)
		if (slots[i].ch >= 0 && slots[i].ch != own)
			close(slots[i].ch);
	if (A.lfd >= 0)
		close(A.lfd);
	A.lfd = -1;
	free(slots);
	slots = NULL;
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

/* One worker: handles what the parent hands it until the parent closes
 * its channel, or --max-requests. */
static void __attribute__((noreturn))
worker(struct kwh_handle *h, int ch, pid_t parent, const sigset_t *mask)
{
	size_t served = 0;
	const char *why = "stopping";

#ifdef __linux__
	/* a parent killed with SIGKILL must not leave its workers behind */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		exit(0);
#endif
	forget_parent(-1);
	stopping = 0;
	/* SIGTERM (systemd signals every process of the service) does not
	 * stop a worker by itself: the parent, which may still hold requests
	 * for it, closes the channel once they are answered */
	handle_signal(SIGTERM, on_stop, SA_RESTART);
	handle_signal(SIGINT, on_stop, SA_RESTART);
	handle_signal(SIGCHLD, SIG_DFL, 0);
	sigprocmask(SIG_SETMASK, mask, NULL);
	srandom((unsigned)getpid() ^ (unsigned)kwh_now_ms());
	kwh_git_hold(1);	/* libgit2 set up once per worker, not per request */
	kwh_log(KWH_LOG_INFO, NULL, 0, "worker %ld started", (long)getpid());
	if (send_msg(ch, MSG_READY, -1) < 0)
		kwh_log(KWH_LOG_WARN, NULL, 0, "cannot reach the parent: %s", strerror(errno));
	for (;;) {
		struct handoff m;
		int fd, file, r;

		if ((r = receive(ch, &m, &fd, &file)) == 0)
			break;
		if (r < 0)
			continue;
		h->verify.given = &m.given;
		kwh_handle_run(h, file, fd, NULL);
		h->verify.given = NULL;
		close(file);
		served++;
		if (h->max_requests && served >= h->max_requests) {
			finish(ch, fd, MSG_LAST);
			why = "--max-requests";
			break;
		}
		finish(ch, fd, MSG_READY);
		after_request();
	}
	kwh_log(KWH_LOG_INFO, NULL, 0, "worker %ld exits after %zu request%s (%s)",
	    (long)getpid(), served, served == 1 ? "" : "s", why);
	kwh_handle_release(h);
	kwh_git_hold(0);
	close(ch);
	exit(0);
}

static void
spawn(struct kwh_handle *h, struct slot *s, const sigset_t *mask)
{
	pid_t parent = getpid(), pid;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		kwh_log(KWH_LOG_ERROR, NULL, 0, "cannot start a worker: socketpair: %s; trying again in %d ms",
		    strerror(errno), BACKOFF_MAX_MS);
		s->due = kwh_now_ms() + BACKOFF_MAX_MS;
		return;
	}
	if ((pid = fork()) < 0) {
		kwh_log(KWH_LOG_ERROR, NULL, 0, "cannot start a worker: %s; trying again in %d ms",
		    strerror(errno), BACKOFF_MAX_MS);
		s->due = kwh_now_ms() + BACKOFF_MAX_MS;
		close(sv[0]);
		close(sv[1]);
		return;
	}
	if (pid == 0) {
		close(sv[0]);
		worker(h, sv[1], parent, mask);
	}
	close(sv[1]);
	fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
	s->kind = K_WORKER;
	s->pid = pid;
	s->started = kwh_now_ms();
	s->ch = sv[0];
	s->ready = 0;
	{
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = s };
		epoll_ctl(A.ep, EPOLL_CTL_ADD, s->ch, &ev);
	}
}

/* A worker's channel is no more (it exited, or is killed). */
static void
drop_channel(struct slot *s)
{
	if (s->ch >= 0) {
		epoll_ctl(A.ep, EPOLL_CTL_DEL, s->ch, NULL);
		close(s->ch);
	}
	s->ch = -1;
	s->ready = 0;
}

/* ---- the parent's connections ---- */

static long long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
free_conn(struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		A.first = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		A.last = c->prev;
	A.nconns--;
	if (c->fd >= 0) {
		/* closing is not enough while a new worker still has a copy */
		if (A.ep >= 0 && c->state != C_QUEUED)
			epoll_ctl(A.ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	kwh_buf_release(&c->data);
	/* an event about it may still be in hand */
	c->next = A.dead;
	A.dead = c;
}

static void
bury(void)
{
	while (A.dead) {
		struct conn *c = A.dead;

		A.dead = c->next;
		free(c);
	}
}

static void
set_due(struct conn *c, long long due)
{
	c->due = due;
	if (A.next_due < 0 || due < A.next_due)
		A.next_due = due;
}

static struct conn *
add_conn(int fd, enum cstate state)
{
	struct conn *c = calloc(1, sizeof *c);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };

	if (!c) {
		kwh_log(KWH_LOG_WARN, NULL, 0, "out of memory for a connection: closed");
		close(fd);
		return NULL;
	}
	c->kind = K_CONN;
	c->fd = fd;
	c->state = state;
	c->accepted = mono_ms();
	kwh_buf_init(&c->data, 0);
	kwh_http_scan_init(&c->scan, A.lim);
	c->prev = A.last;
	if (A.last)
		A.last->next = c;
	else
		A.first = c;
	A.last = c;
	A.nconns++;
	ev.data.ptr = c;
	if (epoll_ctl(A.ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		kwh_log(KWH_LOG_WARN, NULL, 0, "epoll: %s", strerror(errno));
		free_conn(c);
		return NULL;
	}
	return c;
}

/* The request of c is read (or refused, or timed out): to a worker. */
static void
enqueue(struct conn *c)
{
	epoll_ctl(A.ep, EPOLL_CTL_DEL, c->fd, NULL);
	c->state = C_QUEUED;
	c->qnext = NULL;
	if (A.qlast)
		A.qlast->qnext = c;
	else
		A.qfirst = c;
	A.qlast = c;
}

/* Logs the connections closed unfinished (make_room) or refused
 * (refuse_busy) since the last such line: at most one line every
 * WARN_EVERY_MS, what comes meanwhile counted and logged by expire() when
 * that time is up (or now, with force), so that none goes unsaid. */
static void
log_drops(int force)
{
	long long now = kwh_now_ms(), due;

	if (!A.evicted && !A.refused)
		return;
	if (!force && now - A.warned < WARN_EVERY_MS) {
		due = mono_ms() + A.warned + WARN_EVERY_MS - now;
		if (A.next_due < 0 || due < A.next_due)
			A.next_due = due;
		return;
	}
	if (A.evicted)
		kwh_log(KWH_LOG_WARN, NULL, 0, "closed %zu unfinished connection%s, the oldest, "
		    "to stay within --max-pending %zu", A.evicted, A.evicted == 1 ? "" : "s",
		    A.max_pending);
	if (A.refused)
		kwh_log(KWH_LOG_WARN, NULL, 0, "503 to %zu new connection%s: --max-pending %zu "
		    "requests wait for a worker", A.refused, A.refused == 1 ? "" : "s", A.max_pending);
	A.warned = now;
	A.evicted = A.refused = 0;
}

/* Makes room for one more connection under --max-pending: closes the
 * oldest one that is not waiting for a worker.  0, or -1 when every one
 * is (then the new one is refused). */
static int
make_room(void)
{
	struct conn *c;

	if (A.nconns < A.max_pending)
		return 0;
	for (c = A.first; c && c->state == C_QUEUED; c = c->next)
		;
	if (!c)
		return -1;
	if (c->state != C_LINGER)
		A.evicted++;
	free_conn(c);
	log_drops(0);
	return 0;
}

static void
refuse_busy(int fd)
{
	static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
	    "Content-Type: application/json\r\nContent-Length: 96\r\nConnection: close\r\n\r\n"
	    "{\"status\":503,\"message\":\"too many requests waiting for a worker\",\"delivery\":\"\",\"results\":[]}\n";

	(void)!write(fd, busy, sizeof busy - 1);
	close(fd);
	A.refused++;
	log_drops(0);
}

static void
accept_all(void)
{
	for (int i = 0; i < 64; i++) {
		struct conn *c;
		int fd = accept4(A.lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
			    errno == ECONNABORTED)
				return;
			/* out of descriptors or memory: wait rather than spin */
			kwh_log(KWH_LOG_WARN, NULL, 0, "accept: %s", strerror(errno));
			epoll_ctl(A.ep, EPOLL_CTL_DEL, A.lfd, NULL);
			A.accept_paused = mono_ms() + ACCEPT_PAUSE_MS;
			if (A.next_due < 0 || A.accept_paused < A.next_due)
				A.next_due = A.accept_paused;
			return;
		}
		if (make_room() < 0) {
			refuse_busy(fd);
			continue;
		}
		if (!(c = add_conn(fd, C_HEAD)))
			continue;
		c->given.received_ms = kwh_now_ms();
		set_due(c, c->accepted + (A.header_ms < A.lim->timeout_ms ? A.header_ms : A.lim->timeout_ms));
	}
}

/* Reads what arrived on c. */
static void
on_conn(struct conn *c)
{
	char tmp[65536];
	ssize_t n;
	int r;

	if ((n = read(c->fd, tmp, sizeof tmp)) < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (c->state == C_LINGER) {
		if (n <= 0 || (c->lingered += (size_t)n) >= LINGER_BYTES)
			free_conn(c);
		return;
	}
	if (n <= 0) {	/* the end: the worker's reading says what is missing */
		enqueue(c);
		return;
	}
	if (kwh_buf_add(&c->data, tmp, (size_t)n) < 0) {
		kwh_log(KWH_LOG_WARN, NULL, 0, "out of memory for a request");
		free_conn(c);
		return;
	}
	r = kwh_http_scan_feed(&c->scan, tmp, (size_t)n);
	if (c->scan.head_done && c->state == C_HEAD) {
		c->state = C_BODY;
		set_due(c, c->accepted + A.lim->timeout_ms);
		if (c->scan.expect_continue > 0 && !c->scan.status && !c->continued) {
			static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
			(void)!write(c->fd, cont, sizeof cont - 1);
			c->continued = 1;
		}
	}
	if (r)
		enqueue(c);
}

/* Connections past their deadline: a request not read in time goes to a
 * worker (which answers 408), a lingering connection is closed. */
static void
expire(long long now)
{
	struct conn *c, *next;

	if (A.next_due < 0 || now < A.next_due)
		return;
	A.next_due = -1;
	log_drops(0);
	if (A.accept_paused && now >= A.accept_paused && A.lfd >= 0) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &A.lfd };

		A.accept_paused = 0;
		epoll_ctl(A.ep, EPOLL_CTL_ADD, A.lfd, &ev);
	} else if (A.accept_paused) {
		A.next_due = A.accept_paused;
	}
	for (c = A.first; c; c = next) {
		next = c->next;
		if (c->state == C_QUEUED)
			continue;
		if (c->due > now) {
			set_due(c, c->due);
			continue;
		}
		if (c->state == C_LINGER) {
			free_conn(c);
			continue;
		}
		if (c->state == C_HEAD && A.header_ms < A.lim->timeout_ms) {
			c->given.timed_out_ms = A.header_ms;
			c->given.head_timed_out = 1;
		} else {
			c->given.timed_out_ms = A.lim->timeout_ms;
		}
		enqueue(c);
	}
}

/* A connection a worker answered, to linger on. */
static void
linger_on(int fd)
{
	struct conn *c;

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	if (make_room() < 0 || !(c = add_conn(fd, C_LINGER))) {
		close(fd);
		return;
	}
	set_due(c, c->accepted + LINGER_MS);
}

/* What a worker says. */
static void
on_worker(struct slot *s)
{
	for (;;) {
		union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
		char what;
		struct iovec iov = { &what, 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
		    .msg_controllen = sizeof u.buf };
		struct cmsghdr *c;
		ssize_t n = recvmsg(s->ch, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		int fd = -1;

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			drop_channel(s);
			return;
		}
		for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
			    c->cmsg_len == CMSG_LEN(sizeof(int)))
				memcpy(&fd, CMSG_DATA(c), sizeof fd);
		s->ready = what != MSG_LAST;
		if (fd >= 0)
			linger_on(fd);
	}
}

/* Hands the queued requests to the free workers. */
static void
dispatch(void)
{
	static size_t next;

	while (A.qfirst) {
		struct conn *c = A.qfirst;
		struct slot *s = NULL;
		struct handoff m;
		union { struct cmsghdr h; char buf[CMSG_SPACE(2 * sizeof(int))]; } u;
		struct iovec iov = { &m, sizeof m };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
		    .msg_controllen = sizeof u.buf };
		int fds[2], file;

		for (size_t i = 0; i < nslots && !s; i++) {
			struct slot *t = &slots[(next + i) % nslots];

			if (t->pid && t->ch >= 0 && t->ready)
				s = t;
		}
		if (!s)
			return;
		next = (size_t)(s - slots) + 1;
		if ((file = memfd_create("kwh-request", MFD_CLOEXEC)) < 0 ||
		    kwh_write_all(file, c->data.data ? c->data.data : "", c->data.len) < 0 ||
		    lseek(file, 0, SEEK_SET) != 0) {
			kwh_log(KWH_LOG_ERROR, NULL, 0, "cannot hand a request over: memfd: %s",
			    strerror(errno));
			if (file >= 0)
				close(file);
			A.qfirst = c->qnext;
			if (!A.qfirst)
				A.qlast = NULL;
			free_conn(c);
			continue;
		}
		memset(&m, 0, sizeof m);
		m.given = c->given;
		memset(&u, 0, sizeof u);
		fds[0] = c->fd;
		fds[1] = file;
		CMSG_FIRSTHDR(&mh)->cmsg_level = SOL_SOCKET;
		CMSG_FIRSTHDR(&mh)->cmsg_type = SCM_RIGHTS;
		CMSG_FIRSTHDR(&mh)->cmsg_len = CMSG_LEN(sizeof fds);
		memcpy(CMSG_DATA(CMSG_FIRSTHDR(&mh)), fds, sizeof fds);
		if (sendmsg(s->ch, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof m) {
			/* the worker is gone, or will be: another one takes it */
			kwh_log(KWH_LOG_WARN, NULL, 0, "cannot hand a request to worker %ld: %s",
			    (long)s->pid, strerror(errno));
			close(file);
			drop_channel(s);
			continue;
		}
		close(file);
		s->ready = 0;
		A.qfirst = c->qnext;
		if (!A.qfirst)
			A.qlast = NULL;
		free_conn(c);
	}
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
		drop_channel(s);
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

/* Workers that are handling a request (or starting). */
static size_t
busy(void)
{
	size_t r = 0;

	for (size_t i = 0; i < nslots; i++)
		r += slots[i].pid && slots[i].ch >= 0 && !slots[i].ready;
	return r;
}

/* Requests read and waiting for a worker. */
static size_t
queued(void)
{
	size_t r = 0;

	for (struct conn *c = A.qfirst; c; c = c->qnext)
		r++;
	return r;
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

	if (!child_exited)
		ppoll(NULL, 0, ms < 0 ? NULL : &ts, mask);
}

static size_t
default_workers(void)
{
	/* a worker mostly waits, on the git remote and on the API server:
	 * a burst of new branches needs many of them in flight to be answered
	 * in time (bench/burst.sh: 500 within 2 s on 2 CPUs took 16) */
	long n = sysconf(_SC_NPROCESSORS_ONLN) * 4;

	if (n < 16)
		n = 16;
	if (n > KWH_HANDLE_MAX_WORKERS)
		n = KWH_HANDLE_MAX_WORKERS;
	return (size_t)n;
}

/* Raises the soft limit on descriptors to the hard one, and keeps
 * --max-pending within it. */
static void
fit_descriptors(struct kwh_handle *h, size_t n)
{
	struct rlimit rl;
	rlim_t need;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < rl.rlim_max) {
		struct rlimit want = rl;

		want.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (1 << 20) ?
		    (1 << 20) : rl.rlim_max;
		if (want.rlim_cur > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &want) == 0)
			rl = want;
	}
	need = (rlim_t)A.max_pending + 2 * n + FD_RESERVE;
	if (rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur) {
		size_t fit = rl.rlim_cur > 2 * n + FD_RESERVE + 1 ?
		    (size_t)(rl.rlim_cur - 2 * n - FD_RESERVE) : 1;

		kwh_log(KWH_LOG_WARN, NULL, 0, "--max-pending %zu does not fit in %llu descriptors "
		    "(ulimit -n): %zu instead", A.max_pending, (unsigned long long)rl.rlim_cur, fit);
		A.max_pending = fit;
	}
	(void)h;
}

/* A reload is wanted (SIGHUP, or --config changed) and the new
 * configuration loads: 1; else 0, with a log line saying why. */
static int
want_reload(struct kwh_handle *h)
{
	int asked = hangup;

	hangup = 0;
	if (!asked && !(h->config && config_changed(h)))
		return 0;
	if (config_loads(h) < 0) {
		kwh_log(KWH_LOG_ERROR, NULL, 0, "%s: the new configuration does not load "
		    "(its error is logged above or on standard error); still serving with the one in use",
		    asked ? "SIGHUP" : h->config);
		return 0;
	}
	kwh_log(KWH_LOG_INFO, NULL, 0, "%s: reloading: no new connection is accepted until the "
	    "%zu held are answered, then the server executes itself again, keeping its socket",
	    asked ? "SIGHUP" : h->config, A.nconns);
	return 1;
}

int
kwh_handle_serve(struct kwh_handle *h, int lfd)
{
	size_t n = h->workers ? h->workers : default_workers();
	struct slot *w = slots = calloc(n, sizeof *w);
	sigset_t block, mask;
	long long grace, until = 0;
	char where[NI_MAXHOST + NI_MAXSERV + 8];
	struct epoll_event lev = { .events = EPOLLIN, .data.ptr = &A.lfd };
	int stop_begun = 0, reload = 0;
	size_t silent = 0, cut = 0;
	long long checked = 0;

	if (!w)
		kwh_die(KWH_EXIT_SYSTEM, "out of memory");
	nslots = n;
	for (size_t i = 0; i < n; i++) {
		w[i].kind = K_WORKER;
		w[i].ch = -1;
	}
	h->resident = 1;
	h->workers = n;		/* the workers' default --max-queued is half */
	A.lfd = lfd;
	A.lim = &h->verify.limits;
	A.header_ms = h->header_timeout_ms;
	A.max_pending = h->max_pending;
	fit_descriptors(h, n);
	/* before the first fork: the workers share one table of counts */
	if (kwh_metrics_share() < 0)
		kwh_log(KWH_LOG_WARN, NULL, 0, "metrics: each worker counts alone: mmap: %s", strerror(errno));
	kwh_metrics_endpoint(h->metrics_path ? h->metrics_path : "/metrics", h->spool, h->fetch.git.cache_dir);
	fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK);
	if ((A.ep = epoll_create1(EPOLL_CLOEXEC)) < 0 || epoll_ctl(A.ep, EPOLL_CTL_ADD, lfd, &lev) < 0)
		kwh_die(KWH_EXIT_SYSTEM, "epoll: %s", strerror(errno));
	/* the signals are only taken inside epoll_pwait: no request is cut short */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGCHLD);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &mask);
	handle_signal(SIGTERM, on_stop, 0);
	handle_signal(SIGHUP, on_hangup, 0);
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
	grace = h->verify.limits.timeout_ms > h->verify.budget_ms ?
	    h->verify.limits.timeout_ms : h->verify.budget_ms;
	for (;;) {
		struct epoll_event ev[64];
		long long now = kwh_now_ms(), next = -1, mnow;
		int k;

		if (!stop_begun && !stopping && (hangup || (h->config && now - checked >= 1000))) {
			checked = now;
			reload = want_reload(h);
		}
		if ((stopping || reload) && !stop_begun) {
			struct conn *c, *cn;

			/* stop: no new connection; the requests begun are read,
			 * handed over and answered (each bounded by the read
			 * timeout and the budget), then the workers exit */
			stop_begun = 1;
			epoll_ctl(A.ep, EPOLL_CTL_DEL, lfd, NULL);
			A.lfd = -1;
			/* a reload keeps the socket (queueing) and every connection */
			for (c = A.first; c && !reload; c = cn) {
				cn = c->next;
				if (c->state == C_HEAD && !c->data.len) {
					free_conn(c);	/* it never said a word */
					silent++;
				}
			}
			if (silent)
				kwh_log(KWH_LOG_INFO, NULL, 0, "stopping: closed %zu connection%s "
				    "that had sent nothing", silent, silent == 1 ? "" : "s");
			until = now + grace + STOP_SLACK_MS;
			kwh_log(KWH_LOG_INFO, NULL, 0, "stopping: waiting for %zu busy worker%s and "
			    "%zu connection%s", busy(), busy() == 1 ? "" : "s", A.nconns,
			    A.nconns == 1 ? "" : "s");
		}
		/* stopping, even during a reload: no connection is queued */
		if (stopping && lfd >= 0) {
			close(lfd);
			lfd = -1;
		}
		if (stop_begun && ((!A.nconns && !busy()) || now >= until))
			break;
		for (size_t i = 0; i < n; i++) {
			if (w[i].pid || (stop_begun && !A.qfirst))
				continue;
			if (w[i].due <= now)
				spawn(h, &w[i], &mask);
			if (!w[i].pid && (next < 0 || w[i].due - now < next))
				next = w[i].due - now > 0 ? w[i].due - now : 0;
		}
		dispatch();
		kwh_metrics_server(busy(), queued(), running(w, n));
		mnow = mono_ms();
		if (A.next_due >= 0 && (next < 0 || A.next_due - mnow < next))
			next = A.next_due - mnow > 0 ? A.next_due - mnow : 0;
		if (stop_begun && (next < 0 || until - now < next))
			next = until - now > 0 ? until - now : 0;
		if (child_exited || (stopping && !stop_begun) || (hangup && !stop_begun))
			next = 0;
		if (h->config && !stop_begun && (next < 0 || next > 1000))
			next = 1000;
		k = epoll_pwait(A.ep, ev, 64, next < 0 ? -1 : next > INT32_MAX ? INT32_MAX : (int)next, &mask);
		for (int i = 0; i < k; i++) {
			enum kind *kind = ev[i].data.ptr;

			if (kind == (enum kind *)&A.lfd) {
				if (A.lfd >= 0)
					accept_all();
			} else if (*kind == K_WORKER) {
				on_worker((struct slot *)kind);
			} else {
				struct conn *c = (struct conn *)kind;

				/* not one freed by an earlier event (make_room) */
				if (c->fd >= 0 && c->state != C_QUEUED)
					on_conn(c);
			}
		}
		bury();
		child_exited = 0;
		reap(w, n);
		expire(mono_ms());
	}
	/* the workers end with their channels */
	for (struct conn *c = A.first; c; c = c->next)
		cut += c->state != C_LINGER;
	if (cut)
		kwh_log(KWH_LOG_ERROR, NULL, 0, "stopped with %zu request%s not answered in "
		    "%lld ms: their connections are closed", cut, cut == 1 ? "" : "s",
		    grace + STOP_SLACK_MS);
	log_drops(1);
	while (A.first)
		free_conn(A.first);
	bury();
	A.qfirst = A.qlast = NULL;
	for (size_t i = 0; i < n; i++)
		drop_channel(&w[i]);
	until = kwh_now_ms() + STOP_SLACK_MS;
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
	close(A.ep);
	A.ep = -1;
	free(w);
	slots = NULL;
	if (reload && lfd >= 0)
		reexec(h, lfd, &mask);
	if (lfd >= 0)
		close(lfd);
	sigprocmask(SIG_SETMASK, &mask, NULL);
	kwh_log(KWH_LOG_INFO, NULL, 0, "stopped");
	return KWH_EXIT_OK;
}
