/* handle.h — kwh-handle: the five stages in one process (kwh-handle(1)). */
#ifndef KWH_HANDLE_H
#define KWH_HANDLE_H
#include <jv.h>
#include <sys/stat.h>

#include "annotate.h"
#include "apply.h"
#include "buf.h"
#include "fetch.h"
#include "status.h"
#include "verify.h"

#define KWH_HANDLE_MAX_WORKERS 256
#define KWH_HANDLE_HEADER_TIMEOUT_MS 10000	/* --header-timeout */
#define KWH_HANDLE_BACKLOG 1024
#define KWH_HANDLE_MAX_PENDING 1024		/* --max-pending */
/* Under --listen, a request with less of its --budget left than this (or
 * than half the budget, if less) when a worker takes it is answered at
 * once: 202 queued under --spool, 503 with Retry-After without. */
#define KWH_HANDLE_EARLY_MS 1000
#define KWH_HANDLE_MAX_QUEUED 1024		/* --max-queued: at most */

/*
 * Every stage's options, as the separate tools take them, and what the
 * handler set up from them.  kwh_handle_options() fills it from argv
 * (strings are borrowed from argv); kwh_handle_init() compiles and loads;
 * kwh_handle_release() gives everything back.
 *
 * Options two tools share serve both: --log is the one log of every
 * stage, --cache the directory of kwh-fetch's git cache and of
 * kwh-apply's discovery cache (they use different names inside it), and
 * --timeout both kwh-verify's read timeout and kwh-fetch's budget when
 * an envelope has no deadline (it always has one here, set by --budget).
 */
struct kwh_handle {
	struct kwh_verify_opts verify;
	struct kwh_annotate_opts annotate;
	struct kwh_fetch_opts fetch;
	struct kwh_apply apply;
	const char *spool;		/* --spool DIR, or NULL */
	const char *token_file;		/* --token-file */
	const char *app_key_file;	/* --app-key-file */
	struct kwh_github app;		/* --app-id: installation tokens for git;
					 * --status: the client of the reports */
	int status_on;			/* --status given */
	struct kwh_status status;	/* --status, --status-* */
	const char *listen;		/* --listen [HOST:]PORT or "systemd", or NULL */
	size_t workers;			/* --workers N (0: the default) */
	size_t max_requests;		/* --max-requests N (0: no limit) */
	long header_timeout_ms;		/* --header-timeout: the head read within */
	size_t max_pending;		/* --max-pending N: connections held */
	size_t backlog;			/* --backlog N: the listen queue */
	const char *metrics_path;	/* --metrics-path PATH or "none", or NULL: /metrics */
	size_t max_queued;		/* --max-queued N (0: half of --workers) */
	const char *config;		/* --config FILE, or NULL */
	struct stat config_stat;	/* FILE when it was read */
	char **argv;			/* as given (--listen re-executes it) */

	/* state */
	const char **filters, **sets;	/* arrays of argc pointers */
	const char **allow_remote;	/* --allow-remote-host, argc pointers */
	const char **secret_files;	/* the --secret-file paths (argc of them) */
	struct stat *secret_stat;	/* each one when last read */
	size_t n_secret_files;
	int env_secret;			/* the last secret is WEBHOOK_SECRET's */
	struct stat token_stat;		/* --token-file when last read */
	struct kwh_buf cache, token, known_hosts;
	int annotate_ready, apply_ready;
	int resident;			/* serves many requests (kwh_handle_serve) */
	char apply_err[1024];		/* why kwh-apply cannot run, or "" */
	char fetch_err[1024];		/* why kwh-fetch cannot run (one-shot), or "" */
};

/*
 * Parses argv into h (which it zeroes first) with getopt_long: --help and
 * --version print and exit 0, usage errors exit 100 and unreadable files
 * 111, as the separate tools do.
 */
void kwh_handle_options(struct kwh_handle *h, int argc, char **argv);

/*
 * Compiles the expressions, reads the token and loads the cluster
 * configuration.  A configuration that cannot be loaded is no error here:
 * as in the chain, every delivery that reaches kwh-apply then gets 500
 * and kwh_handle_run() returns 111.  Returns 0, or dies (100 or 111).
 */
int kwh_handle_init(struct kwh_handle *h);

/*
 * Handles one request: reads it from in, runs verify → annotate → fetch →
 * apply (a stage is skipped once the envelope has a response, as in the
 * chain), spools under --spool, and writes the HTTP response to out.  If
 * envp is not NULL, *envp receives the final envelope (the caller frees
 * it).  Unless h->resident is set, call it once: it wipes the secrets
 * after the check and releases the annotate stage's programs before
 * fetching.  With h->resident (kwh_handle_serve) it keeps both for the
 * next request, and makes the Kubernetes client forget the credentials
 * and discovery misses of the previous one (kwh_kube_reset), keeping its
 * connection.  Returns the exit code: 0 (a 2xx or 3xx response), 1 (400
 * or more), 111 (the response could not be written, the spool write
 * failed, or kwh-apply could not run).
 */
int kwh_handle_run(struct kwh_handle *h, int in, int out, jv *envp);

/*
 * Opens the --listen socket: binds and listens on [HOST:]PORT (HOST
 * 127.0.0.1 by default; a name, an IPv4 address or a bracketed IPv6
 * address), or, for "systemd", takes the socket systemd passed as fd 3
 * (LISTEN_PID and LISTEN_FDS=1).  Dies with 111 when it cannot.  Returns
 * the socket.
 */
int kwh_handle_listen(const struct kwh_handle *h);

/*
 * The resident server (kwh-handle --listen): accepts the connections on
 * fd and reads their requests itself, all at once (--header-timeout,
 * --timeout, --max-pending and the size limits), and hands each complete
 * one to one of --workers processes, which handles it with
 * kwh_handle_run, until --max-requests; supervises them (a worker that exits is replaced, after a backoff when
 * it died young) until SIGTERM or SIGINT, then stops them once their
 * requests are answered.  Call after kwh_handle_init.  Returns the exit
 * code (0 after a signal).
 */
int kwh_handle_serve(struct kwh_handle *h, int fd);

/* Gives back what options and init took, wiping the secrets. */
void kwh_handle_release(struct kwh_handle *h);

/*
 * The envelope text of a verify result (head, payload, tail) parsed into
 * a jv without copying the payload.  Returns the object, or an envelope
 * with a 500 response when the text is not one JSON object.
 */
jv kwh_handle_envelope(const struct kwh_verify_out *v);

#endif
