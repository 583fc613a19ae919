/* handle.c — kwh-handle: the five stages in one process. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "env.h"
#include "err.h"
#include "handle.h"
#include "metrics.h"
#include "respond.h"
#include "spool.h"

static const char usage[] =
"usage: kwh-handle [--allow-kind GROUP/KIND]... [--allow-namespace REGEX]...\n"
"                  [--allow-remote-host HOST]...\n"
"                  [--allow-sha1] [--api-url URL] [--app-id N --app-key-file PEM]\n"
"                  [--backlog N] [--budget SECONDS] [--ca-file FILE]\n"
"                  [--cache DIR] [--cache-max-bytes BYTES] [--config FILE]\n"
"                  [--context NAME]\n"
"                  [--deadline SECONDS] [--dedupe | --no-dedupe]\n"
"                  [--dry-run[=client|server]]\n"
"                  [--events LIST] [--fetch-budget SECONDS] [--filter EXPR]...\n"
"                  [--header-timeout SECONDS]\n"
"                  [--ignore-ref REGEX]\n"
"                  [--insecure] [--insecure-skip-host-key-check]\n"
"                  [--known-hosts FILE] [--kubeconfig FILE]\n"
"                  [--liveness-path PATH] [--listen [HOST]:PORT|PORT|systemd]\n"
"                  [--log DEST] [--log-format logfmt|json] [--log-level LEVEL]\n"
"                  [--max-background-fetches N]\n"
"                  [--max-body BYTES] [--max-header-bytes BYTES] [--max-headers N]\n"
"                  [--max-json-values N] [--max-manifest-bytes BYTES]\n"
"                  [--max-objects N] [--max-pending N] [--max-queued N]\n"
"                  [--max-requests N] [--max-yaml-nodes N] [--metrics-path PATH|none]\n"
"                  [--namespace NS] [--path PATH] [--pull-request-actions LIST|all]\n"
"                  [--remote TEMPLATE] [--secret-file FILE]...\n"
"                  [--service-account-dir DIR] [--set KEY=EXPR]... [--spool DIR]\n"
"                  [--ssh-key FILE] [--statsd HOST:PORT]\n"
"                  [--status commit|check-run] [--status-context NAME]\n"
"                  [--status-report-skipped] [--status-target-url TEMPLATE]\n"
"                  [--timeout SECONDS]\n"
"                  [--token-file FILE] [--installation-id N]\n"
"                  [--use-git-url] [--workers N]\n"
"       kwh-handle --help | --version\n"
"One request on stdin, its response on stdout; with --listen, a resident\n"
"server of --workers processes (default: 4 per online CPU, at least 16).\n"
"The secret may also come from the WEBHOOK_SECRET environment variable,\n"
"the HTTPS token from GITHUB_TOKEN (--token-file wins); with --status\n"
"and no --app-id, that token also reports the statuses.\n";

enum {
	O_ALLOW_KIND = 256, O_ALLOW_NS, O_ALLOW_REMOTE_HOST, O_ALLOW_SHA1, O_BACKLOG, O_BUDGET, O_CA_FILE, O_CACHE, O_CACHE_MAX_BYTES, O_CONFIG, O_CONTEXT,
	O_DEADLINE, O_DEDUPE, O_DRY_RUN, O_EVENTS, O_FETCH_BUDGET, O_MAX_BACKGROUND, O_FILTER, O_HEADER_TIMEOUT, O_HELP, O_IGNORE_REF,
	O_INSECURE, O_SKIP_HOST_KEY, O_KNOWN_HOSTS, O_KUBECONFIG, O_LISTEN, O_LOG,
	O_LOG_FORMAT, O_METRICS_PATH, O_STATSD,
	O_MAX_BODY, O_MAX_HEADER_BYTES, O_MAX_HEADERS, O_MAX_JSON_VALUES, O_MAX_MANIFEST_BYTES,
	O_MAX_OBJECTS, O_MAX_PENDING, O_MAX_QUEUED, O_MAX_REQUESTS, O_MAX_YAML_NODES, O_NAMESPACE, O_NO_DEDUPE,
	O_PATH, O_REMOTE, O_SECRET_FILE, O_SA_DIR, O_SET, O_SPOOL, O_SSH_KEY,
	O_TIMEOUT, O_TOKEN_FILE, O_USE_GIT_URL, O_VERSION, O_WORKERS,
	O_LIVENESS_PATH, O_LOG_LEVEL, O_PR_ACTIONS,
	O_API_URL, O_APP_ID, O_APP_KEY_FILE, O_INSTALLATION_ID,
	O_STATUS, O_STATUS_CONTEXT, O_STATUS_REPORT_SKIPPED, O_STATUS_TARGET_URL,
};

static const struct option longopts[] = {
	{ "allow-kind", required_argument, NULL, O_ALLOW_KIND },
	{ "allow-namespace", required_argument, NULL, O_ALLOW_NS },
	{ "allow-remote-host", required_argument, NULL, O_ALLOW_REMOTE_HOST },
	{ "allow-sha1", no_argument, NULL, O_ALLOW_SHA1 },
	{ "api-url", required_argument, NULL, O_API_URL },
	{ "app-id", required_argument, NULL, O_APP_ID },
	{ "app-key-file", required_argument, NULL, O_APP_KEY_FILE },
	{ "installation-id", required_argument, NULL, O_INSTALLATION_ID },
	{ "backlog", required_argument, NULL, O_BACKLOG },
	{ "budget", required_argument, NULL, O_BUDGET },
	{ "ca-file", required_argument, NULL, O_CA_FILE },
	{ "cache", required_argument, NULL, O_CACHE },
	{ "cache-max-bytes", required_argument, NULL, O_CACHE_MAX_BYTES },
	{ "config", required_argument, NULL, O_CONFIG },
	{ "context", required_argument, NULL, O_CONTEXT },
	{ "deadline", required_argument, NULL, O_DEADLINE },
	{ "dedupe", no_argument, NULL, O_DEDUPE },
	{ "dry-run", optional_argument, NULL, O_DRY_RUN },
	{ "events", required_argument, NULL, O_EVENTS },
	{ "fetch-budget", required_argument, NULL, O_FETCH_BUDGET },
	{ "filter", required_argument, NULL, O_FILTER },
	{ "header-timeout", required_argument, NULL, O_HEADER_TIMEOUT },
	{ "help", no_argument, NULL, O_HELP },
	{ "ignore-ref", required_argument, NULL, O_IGNORE_REF },
	{ "insecure", no_argument, NULL, O_INSECURE },
	{ "insecure-skip-host-key-check", no_argument, NULL, O_SKIP_HOST_KEY },
	{ "known-hosts", required_argument, NULL, O_KNOWN_HOSTS },
	{ "kubeconfig", required_argument, NULL, O_KUBECONFIG },
	{ "listen", required_argument, NULL, O_LISTEN },
	{ "liveness-path", required_argument, NULL, O_LIVENESS_PATH },
	{ "log", required_argument, NULL, O_LOG },
	{ "log-level", required_argument, NULL, O_LOG_LEVEL },
	{ "log-format", required_argument, NULL, O_LOG_FORMAT },
	{ "max-background-fetches", required_argument, NULL, O_MAX_BACKGROUND },
	{ "max-body", required_argument, NULL, O_MAX_BODY },
	{ "max-header-bytes", required_argument, NULL, O_MAX_HEADER_BYTES },
	{ "max-headers", required_argument, NULL, O_MAX_HEADERS },
	{ "max-json-values", required_argument, NULL, O_MAX_JSON_VALUES },
	{ "max-manifest-bytes", required_argument, NULL, O_MAX_MANIFEST_BYTES },
	{ "max-objects", required_argument, NULL, O_MAX_OBJECTS },
	{ "max-pending", required_argument, NULL, O_MAX_PENDING },
	{ "max-queued", required_argument, NULL, O_MAX_QUEUED },
	{ "max-requests", required_argument, NULL, O_MAX_REQUESTS },
	{ "max-yaml-nodes", required_argument, NULL, O_MAX_YAML_NODES },
	{ "metrics-path", required_argument, NULL, O_METRICS_PATH },
	{ "namespace", required_argument, NULL, O_NAMESPACE },
	{ "no-dedupe", no_argument, NULL, O_NO_DEDUPE },
	{ "path", required_argument, NULL, O_PATH },
	{ "pull-request-actions", required_argument, NULL, O_PR_ACTIONS },
	{ "remote", required_argument, NULL, O_REMOTE },
	{ "secret-file", required_argument, NULL, O_SECRET_FILE },
	{ "service-account-dir", required_argument, NULL, O_SA_DIR },
	{ "set", required_argument, NULL, O_SET },
	{ "spool", required_argument, NULL, O_SPOOL },
	{ "ssh-key", required_argument, NULL, O_SSH_KEY },
	{ "statsd", required_argument, NULL, O_STATSD },
	{ "status", required_argument, NULL, O_STATUS },
	{ "status-context", required_argument, NULL, O_STATUS_CONTEXT },
	{ "status-report-skipped", no_argument, NULL, O_STATUS_REPORT_SKIPPED },
	{ "status-target-url", required_argument, NULL, O_STATUS_TARGET_URL },
	{ "timeout", required_argument, NULL, O_TIMEOUT },
	{ "token-file", required_argument, NULL, O_TOKEN_FILE },
	{ "use-git-url", no_argument, NULL, O_USE_GIT_URL },
	{ "version", no_argument, NULL, O_VERSION },
	{ "workers", required_argument, NULL, O_WORKERS },
	{ NULL, 0, NULL, 0 },
};

/*
 * --config FILE: options kept in a file (a ConfigMap's key), one long option
 * a line as on the command line, leading "--" optional ("set=k=.x",
 * "dedupe"); blank lines and lines starting with # are skipped.  They go
 * before the command line's own, so those win where one value counts.
 * Returns the new argv (argc updated) and the file's path in *path.
 */
#define KWH_CONFIG_MAX_BYTES (64 * 1024)

static char **
config_argv(int *argc, char **argv, const char **path)
{
	struct kwh_buf text;
	char **nv, *line, *next;
	int i, n = 0, nc = *argc;

	*path = NULL;
	for (i = 1; i < nc && strcmp(argv[i], "--"); i++) {
		if (!strcmp(argv[i], "--config") && i + 1 < nc)
			*path = argv[i + 1];
		else if (!strncmp(argv[i], "--config=", 9))
			*path = argv[i] + 9;
	}
	if (!*path)
		return argv;
	kwh_buf_init(&text, KWH_CONFIG_MAX_BYTES);
	if (kwh_buf_read_file(&text, *path) < 0 || kwh_buf_addc(&text, '\0') < 0)
		kwh_usage_error("--config %s: cannot read it: %s", *path,
		    errno == EFBIG ? "larger than 64 KiB" : strerror(errno));
	for (i = 0; i < (int)text.len; i++)
		n += text.data[i] == '\n';
	if (!(nv = calloc((size_t)nc + (size_t)n + 2, sizeof *nv)))
		kwh_die(KWH_EXIT_SYSTEM, "out of memory");
	nv[0] = argv[0];
	n = 1;
	for (line = text.data; line && *line; line = next) {
		size_t len;

		if ((next = strchr(line, '\n')))
			*next++ = '\0';
		line += strspn(line, " \t");
		len = strlen(line);
		while (len && strchr(" \t\r", line[len - 1]))
			line[--len] = '\0';
		if (!len || *line == '#')
			continue;
		if (!strncmp(line, "--", 2))
			line += 2;
		/* "name value" is "name=value" */
		len = strcspn(line, "= \t");
		if ((line[len] == ' ' || line[len] == '\t') ?
		    asprintf(&nv[n], "--%.*s=%s", (int)len, line, line + len + strspn(line + len, " \t")) < 0 :
		    asprintf(&nv[n], "--%s", line) < 0)
			kwh_die(KWH_EXIT_SYSTEM, "out of memory");
		if (!strncmp(nv[n], "--config", 8) && (!nv[n][8] || nv[n][8] == '='))
			kwh_usage_error("--config %s: no --config inside it", *path);
		n++;
	}
	/* copies of the lines (never freed: the options point into them) */
	for (i = 1; i < nc; i++)
		nv[n++] = argv[i];
	nv[n] = NULL;
	kwh_buf_release(&text);
	*argc = n;
	return nv;
}

void
kwh_handle_options(struct kwh_handle *h, int argc, char **argv)
{
	int c, header_timeout = 0, max_pending = 0, backlog = 0;
	const char *config;

	memset(h, 0, sizeof *h);
	kwh_err_init(argv[0]);
	h->argv = argv;
	argv = config_argv(&argc, argv, &config);
	if (config) {
		h->config = config;
		stat(config, &h->config_stat);
	}
	h->verify.limits = (struct kwh_http_limits)KWH_HTTP_LIMITS_DEFAULT;
	h->verify.budget_ms = KWH_VERIFY_BUDGET_MS;
	h->header_timeout_ms = KWH_HANDLE_HEADER_TIMEOUT_MS;
	h->max_pending = KWH_HANDLE_MAX_PENDING;
	h->backlog = KWH_HANDLE_BACKLOG;
	h->fetch.path = ".ci/workflow.yaml";
	h->fetch.timeout_ms = 9000;
	h->verify.max_json_values = KWH_VERIFY_MAX_JSON_VALUES;
	h->fetch.max_bytes = KWH_FETCH_MAX_BYTES_DEFAULT;
	h->fetch.max_nodes = KWH_FETCH_MAX_NODES_DEFAULT;
	h->fetch.max_objects = KWH_FETCH_MAX_OBJECTS_DEFAULT;
	h->fetch.git.max_bytes = KWH_GIT_MAX_BYTES_DEFAULT;
	h->fetch.git.background_ms = KWH_GIT_BACKGROUND_MS_DEFAULT;
	h->fetch.git.max_background = KWH_GIT_MAX_BACKGROUND_DEFAULT;
	h->apply.field_manager = "kwh";
	h->apply.deadline_ms = KWH_APPLY_DEADLINE_MS;
	kwh_buf_init(&h->cache, 0);
	kwh_buf_init(&h->token, 0);
	kwh_buf_init(&h->known_hosts, 0);
	h->filters = calloc((size_t)argc + 1, sizeof *h->filters);
	h->sets = calloc((size_t)argc + 1, sizeof *h->sets);
	h->secret_files = calloc((size_t)argc + 1, sizeof *h->secret_files);
	h->secret_stat = calloc((size_t)argc + 1, sizeof *h->secret_stat);
	h->allow_remote = calloc((size_t)argc + 1, sizeof *h->allow_remote);
	h->fetch.git.allow = h->allow_remote;
	if (!h->filters || !h->sets || !h->secret_files || !h->secret_stat || !h->allow_remote)
		kwh_die(KWH_EXIT_SYSTEM, "out of memory");
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case O_ALLOW_KIND: kwh_cli_policy(h->apply.allow_kind, &h->apply.n_allow_kind, KWH_APPLY_MAX_POLICY, "--allow-kind", optarg); break;
		case O_ALLOW_NS: kwh_cli_policy(h->apply.allow_ns, &h->apply.n_allow_ns, KWH_APPLY_MAX_POLICY, "--allow-namespace", optarg); break;
		case O_ALLOW_REMOTE_HOST:
			if (kwh_git_allow_entry_ok(optarg) < 0)
				kwh_usage_error("--allow-remote-host: '%s' is neither HOST, "
				    "SCHEME://HOST (https, http, ssh, git) nor file://", optarg);
			h->allow_remote[h->fetch.git.n_allow++] = optarg;
			break;
		case O_ALLOW_SHA1: h->verify.allow_sha1 = 1; break;
		case O_BUDGET: h->verify.budget_ms = kwh_cli_seconds_ms("--budget", optarg); break;
		case O_CA_FILE: h->fetch.git.ca_file = optarg; break;
		case O_CACHE: h->fetch.git.cache_dir = h->apply.cache_dir = optarg; break;
		case O_CACHE_MAX_BYTES: h->fetch.git.max_bytes = kwh_cli_size("--cache-max-bytes", optarg); break;
		case O_CONFIG: break;	/* read above (config_argv) */
		case O_CONTEXT: h->apply.src.context = optarg; break;
		case O_DEADLINE: h->apply.deadline_ms = kwh_cli_seconds_ms("--deadline", optarg); break;
		case O_DEDUPE: h->apply.no_dedupe = 0; break;	/* the default; kept for old command lines */
		case O_DRY_RUN:
			if (!optarg || !strcmp(optarg, "client"))
				h->apply.dry_run = KWH_DRY_CLIENT;
			else if (!strcmp(optarg, "server"))
				h->apply.dry_run = KWH_DRY_SERVER;
			else
				kwh_usage_error("--dry-run: '%s' is neither client nor server", optarg);
			break;
		case O_EVENTS: h->annotate.events = optarg; break;
		case O_FETCH_BUDGET: h->fetch.git.background_ms = kwh_cli_seconds_ms("--fetch-budget", optarg); break;
		case O_MAX_BACKGROUND: h->fetch.git.max_background = (unsigned)kwh_cli_max_background(optarg); break;
		case O_FILTER: h->filters[h->annotate.nfilters++] = optarg; break;
		case O_HEADER_TIMEOUT:
			h->header_timeout_ms = kwh_cli_seconds_ms("--header-timeout", optarg);
			header_timeout = 1;
			break;
		case O_HELP: kwh_cli_help(usage);
		case O_IGNORE_REF: h->annotate.ignore_ref = optarg; break;
		case O_INSECURE: h->verify.insecure = 1; break;
		case O_SKIP_HOST_KEY: h->fetch.git.skip_host_key_check = 1; break;
		case O_KNOWN_HOSTS: h->fetch.git.known_hosts = optarg; break;
		case O_KUBECONFIG: h->apply.src.kubeconfig = optarg; break;
		case O_LISTEN:
			if (!*optarg)
				kwh_usage_error("--listen: empty");
			h->listen = optarg;
			break;
		case O_LIVENESS_PATH: h->verify.liveness_path = kwh_cli_liveness_path(optarg); break;
		case O_LOG: kwh_cli_log(optarg); break;
		case O_LOG_LEVEL: kwh_cli_log_level(optarg); break;
		case O_LOG_FORMAT: kwh_cli_log_format(optarg); break;
		case O_METRICS_PATH:
			if (optarg[0] != '/' && strcmp(optarg, "none"))
				kwh_usage_error("--metrics-path: '%s' is neither a path (/...) nor none", optarg);
			h->metrics_path = optarg;
			break;
		case O_STATSD: kwh_metrics_statsd(optarg); break;
		case O_MAX_BODY: h->verify.limits.max_body = kwh_cli_size("--max-body", optarg); break;
		case O_MAX_HEADER_BYTES: h->verify.limits.max_header_bytes = kwh_cli_size("--max-header-bytes", optarg); break;
		case O_MAX_HEADERS: h->verify.limits.max_headers = kwh_cli_size("--max-headers", optarg); break;
		case O_MAX_JSON_VALUES: h->verify.max_json_values = kwh_cli_size("--max-json-values", optarg); break;
		case O_MAX_MANIFEST_BYTES: h->fetch.max_bytes = kwh_cli_size("--max-manifest-bytes", optarg); break;
		case O_MAX_OBJECTS: h->fetch.max_objects = kwh_cli_size("--max-objects", optarg); break;
		case O_BACKLOG:
			h->backlog = kwh_cli_size("--backlog", optarg);
			if (h->backlog < 1 || h->backlog > INT_MAX)
				kwh_usage_error("--backlog: '%s' is not 1 or more", optarg);
			backlog = 1;
			break;
		case O_MAX_QUEUED:
			h->max_queued = kwh_cli_size("--max-queued", optarg);
			if (h->max_queued < 1 || h->max_queued > KWH_HANDLE_MAX_QUEUED)
				kwh_usage_error("--max-queued: '%s' is not between 1 and %d", optarg,
				    KWH_HANDLE_MAX_QUEUED);
			break;
		case O_MAX_PENDING:
			h->max_pending = kwh_cli_size("--max-pending", optarg);
			if (h->max_pending < 1)
				kwh_usage_error("--max-pending: '%s' is not 1 or more", optarg);
			max_pending = 1;
			break;
		case O_MAX_REQUESTS: h->max_requests = kwh_cli_size("--max-requests", optarg); break;
		case O_MAX_YAML_NODES: h->fetch.max_nodes = kwh_cli_size("--max-yaml-nodes", optarg); break;
		case O_NAMESPACE: h->apply.namespace = optarg; break;
		case O_NO_DEDUPE: h->apply.no_dedupe = 1; break;
		case O_PATH: h->fetch.path = optarg; break;
		case O_PR_ACTIONS: h->annotate.pr_actions = optarg; break;
		case O_REMOTE: h->fetch.remote = h->fetch.git.pin = optarg; break;
		case O_SECRET_FILE:
			/* noted before it is read: a change while it is read is
			 * seen at the next request (reload_files) */
			stat(optarg, &h->secret_stat[h->n_secret_files]);
			h->secret_files[h->n_secret_files++] = optarg;
			kwh_cli_secret_file(&h->verify.secrets, optarg);
			break;
		case O_SA_DIR: h->apply.src.sa_dir = optarg; break;
		case O_SET: h->sets[h->annotate.nsets++] = optarg; break;
		case O_SPOOL: h->spool = optarg; break;
		case O_SSH_KEY: h->fetch.git.ssh_key = optarg; break;
		case O_TIMEOUT:
			h->verify.limits.timeout_ms = h->fetch.timeout_ms =
			    kwh_cli_seconds_ms("--timeout", optarg);
			break;
		case O_STATUS:
			if (!strcmp(optarg, "commit"))
				h->status.check_run = 0;
			else if (!strcmp(optarg, "check-run"))
				h->status.check_run = 1;
			else
				kwh_usage_error("--status: '%s' is not commit or check-run", optarg);
			h->status_on = 1;
			break;
		case O_STATUS_CONTEXT: h->status.context = optarg; break;
		case O_STATUS_REPORT_SKIPPED: h->status.report_skipped = 1; break;
		case O_STATUS_TARGET_URL: h->status.target_url = optarg; break;
		case O_TOKEN_FILE: h->token_file = optarg; break;
		case O_API_URL: h->app.api_url = optarg; break;
		case O_APP_ID: h->app.app_id = (long)kwh_cli_size("--app-id", optarg); break;
		case O_APP_KEY_FILE: h->app_key_file = optarg; break;
		case O_INSTALLATION_ID: h->app.installation_id = (long)kwh_cli_size("--installation-id", optarg); break;
		case O_USE_GIT_URL: h->fetch.use_git_url = 1; break;
		case O_VERSION: kwh_cli_version();
		case O_WORKERS:
			h->workers = kwh_cli_size("--workers", optarg);
			if (h->workers < 1 || h->workers > KWH_HANDLE_MAX_WORKERS)
				kwh_usage_error("--workers: '%s' is not between 1 and %d", optarg,
				    KWH_HANDLE_MAX_WORKERS);
			break;
		default: kwh_usage_error("unknown option");
		}
	}
	if (optind < argc)
		kwh_usage_error("unexpected argument '%s'", argv[optind]);
	if (!h->listen && h->workers)
		kwh_usage_error("--workers: only with --listen");
	if (!h->listen && h->max_requests)
		kwh_usage_error("--max-requests: only with --listen");
	if (!h->listen && header_timeout)
		kwh_usage_error("--header-timeout: only with --listen");
	if (!h->listen && max_pending)
		kwh_usage_error("--max-pending: only with --listen");
	if (!h->listen && h->metrics_path)
		kwh_usage_error("--metrics-path: only with --listen");
	if (!h->listen && backlog)
		kwh_usage_error("--backlog: only with --listen");
	if (!!h->app.app_id != !!h->app_key_file)
		kwh_usage_error("--app-id and --app-key-file go together");
	if (!h->app.app_id && h->app.installation_id)
		kwh_usage_error("--installation-id goes with --app-id");
	if (!h->app.app_id && !h->status_on && h->app.api_url)
		kwh_usage_error("--api-url goes with --app-id or --status");
	if (!h->status_on && (h->status.context || h->status.target_url || h->status.report_skipped))
		kwh_usage_error("--status-context, --status-target-url and --status-report-skipped "
		    "go with --status");
	/* GitHub lets Apps only create check runs (personal tokens may read them) */
	if (h->status.check_run && !h->app.app_id)
		kwh_usage_error("--status check-run: GitHub creates check runs for GitHub Apps "
		    "only: give --app-id and --app-key-file, or use --status commit");
	h->status.timeout_ms = KWH_STATUS_TIMEOUT_MS;
	h->status.after_answer = 1;
	if (!h->fetch.git.max_background)
		h->fetch.git.background_ms = 0;	/* killed at the deadline, as before */
	h->annotate.filters = h->filters;
	h->annotate.sets = h->sets;
	if (!*h->fetch.path)
		kwh_usage_error("--path: empty");
	if (h->fetch.remote && !strstr(h->fetch.remote, "{full_name}") &&
	    !strstr(h->fetch.remote, "{owner}") && !strstr(h->fetch.remote, "{name}"))
		kwh_usage_error("--remote: '%s' has no {full_name}, {owner} or {name}", h->fetch.remote);
	h->env_secret = kwh_cli_secret_env(&h->verify.secrets, "WEBHOOK_SECRET") == 0;
	if (h->verify.secrets.n == 0 && !h->verify.insecure)
		kwh_die(KWH_EXIT_USAGE, "no secret: give --secret-file FILE or WEBHOOK_SECRET "
		    "(or --insecure to accept unsigned deliveries)");
}

/* A file kwh-fetch needs is readable: 0, or -1 with why in h->fetch_err.
 * The resident server stops at start-up; a one-shot run still answers
 * its request (500), as the chain's kwh-fetch would. */
static int
fetch_readable(struct kwh_handle *h, const char *what, const char *path)
{
	if (h->fetch_err[0])
		return -1;
	if (h->listen)
		kwh_cli_readable(what, path);
	else if (access(path, R_OK) < 0) {
		snprintf(h->fetch_err, sizeof h->fetch_err, "cannot read %s '%s': %s", what, path,
		    strerror(errno));
		kwh_warn("%s", h->fetch_err);
		return -1;
	}
	return 0;
}

/* Under --status without an App, the status client's token is a copy of
 * the fetch token (GITHUB_TOKEN or --token-file), kept in step with it. */
static void
status_token(struct kwh_handle *h)
{
	if (!h->status_on || h->app.app_id)
		return;
	kwh_buf_wipe(&h->app.token);
	if (h->token.len && kwh_buf_add(&h->app.token, h->token.data, h->token.len) < 0)
		kwh_log(KWH_LOG_WARN, NULL, 0, "out of memory: no token for the statuses");
}

/*
 * --status: the statuses go through h->app, the App's client when
 * --app-id is given (one cache of installation tokens for fetches and
 * statuses), else a client of its own with the fetch token.
 */
static void
init_status(struct kwh_handle *h)
{
	if (!h->status_on || h->app.app_id)
		return;
	/* (an unreadable --token-file is reported by init_fetch) */
	if (!h->token.len && !h->token_file)
		kwh_usage_error("--status: no GitHub credentials: give --token-file, "
		    "GITHUB_TOKEN, or --app-id and --app-key-file");
	status_token(h);
	h->app.ca_file = h->fetch.git.ca_file;
	if (kwh_github_init(&h->app) < 0)
		kwh_die(KWH_EXIT_SYSTEM, "cannot set up libcurl");
}

/* kwh-fetch's checks and set-up of the git options. */
static void
init_fetch(struct kwh_handle *h)
{
	struct kwh_git_opts *g = &h->fetch.git;

	if (!g->cache_dir) {
		kwh_cli_default_cache(&h->cache);
		g->cache_dir = h->apply.cache_dir = h->cache.data;
	}
	/* GITHUB_TOKEN: read and wiped either way; --token-file wins */
	if (kwh_cli_token_env(&h->token, "GITHUB_TOKEN") == 0)
		g->token = h->token.data;
	if (h->token_file) {
		char err[512];

		kwh_buf_wipe(&h->token);
		stat(h->token_file, &h->token_stat);
		if (kwh_cli_token_read(h->token_file, &h->token, err, sizeof err) < 0) {
			if (h->listen)
				kwh_die(KWH_EXIT_SYSTEM, "%s", err);
			snprintf(h->fetch_err, sizeof h->fetch_err, "%s", err);
			kwh_warn("%s", err);
		}
		g->token = h->token.data;
	}
	if (g->ssh_key) {
		fetch_readable(h, "SSH key", g->ssh_key);
		if (!g->known_hosts && !g->skip_host_key_check) {
			const char *home = getenv("HOME");
			kwh_buf_printf(&h->known_hosts, "%s/.ssh/known_hosts", home ? home : "");
			g->known_hosts = h->known_hosts.data;
		}
	}
	if (g->known_hosts && !g->skip_host_key_check)
		fetch_readable(h, "known hosts file", g->known_hosts);
	if (g->ca_file)
		fetch_readable(h, "CA file", g->ca_file);
	if (h->app_key_file && fetch_readable(h, "GitHub App key file", h->app_key_file) == 0) {
		char err[512];

		/* the installation tokens are cached in this process: a
		 * resident worker asks for one per installation and hour */
		if (kwh_github_app_key(&h->app, h->app_key_file, err, sizeof err) < 0) {
			if (h->listen)
				kwh_die(KWH_EXIT_SYSTEM, "%s", err);
			snprintf(h->fetch_err, sizeof h->fetch_err, "%s", err);
			kwh_warn("%s", err);
		} else {
			h->app.ca_file = g->ca_file;
			if (kwh_github_init(&h->app) < 0)
				kwh_die(KWH_EXIT_SYSTEM, "cannot set up libcurl");
			h->fetch.app = &h->app;
		}
	}
	g->progress = isatty(2);
	init_status(h);
}

/* dir (the cache or the spool, made on demand) can be written, or could
 * be made: 0, or -1 with why. */
static int
dir_writable(const char *what, const char *dir, char *why, size_t n)
{
	char parent[4096];
	const char *slash;

	if (access(dir, W_OK | X_OK) == 0)
		return 0;
	if (errno == ENOENT && (slash = strrchr(dir, '/'))) {
		snprintf(parent, sizeof parent, "%.*s", slash == dir ? 1 : (int)(slash - dir), dir);
		if (access(parent, W_OK | X_OK) == 0)
			return 0;
	}
	snprintf(why, n, "%s directory '%s' is not writable: %s", what, dir, strerror(errno));
	return -1;
}

/* GET /-/ready (kwh-verify asks): the worker can do a delivery's work. */
static int
handle_ready(void *arg, char *why, size_t n)
{
	struct kwh_handle *h = arg;

	if (!h->apply_ready) {
		snprintf(why, n, "no Kubernetes configuration: %s", h->apply_err);
		return -1;
	}
	if (h->fetch_err[0]) {
		snprintf(why, n, "kwh-fetch cannot run: %s", h->fetch_err);
		return -1;
	}
	if (dir_writable("cache", h->fetch.git.cache_dir, why, n) < 0 ||
	    (h->spool && dir_writable("spool", h->spool, why, n) < 0))
		return -1;
	return 0;
}

int
kwh_handle_init(struct kwh_handle *h)
{
	char err[1024];
	int is_usage = 0;

	kwh_git_defer_upkeep(1);	/* after the answer (see upkeep()) */
	if (kwh_annotate_init(&h->annotate, err, sizeof err) < 0)
		kwh_die(KWH_EXIT_USAGE, "%s", err);
	h->annotate_ready = 1;
	init_fetch(h);
	if (kwh_apply_init(&h->apply, &is_usage, h->apply_err, sizeof h->apply_err) < 0) {
		if (is_usage)
			kwh_usage_error("%s", h->apply_err);
		kwh_warn("%s", h->apply_err);
		if (!h->apply_err[0])
			snprintf(h->apply_err, sizeof h->apply_err, "no cluster configuration");
	} else {
		h->apply_ready = 1;
	}
	h->verify.ready = handle_ready;
	h->verify.ready_arg = h;
	kwh_pledge("stdio rpath wpath cpath flock inet dns proc exec");
	return 0;
}

/* Feeds len bytes to p; keeps the first value in *v; 0, or -1 with *msg
 * when the text is not JSON or holds a second value. */
static int
feed(jv_parser *p, const char *s, size_t len, int partial, jv *v, jv *msg)
{
	if (len > INT_MAX) {
		*msg = jv_string("envelope text too large");
		return -1;
	}
	jv_parser_set_buf(p, s, (int)len, partial);
	for (;;) {
		jv x = jv_parser_next(p);

		if (jv_is_valid(x)) {
			if (jv_is_valid(*v)) {
				jv_free(x);
				*msg = jv_string("more than one JSON text");
				return -1;
			}
			jv_free(*v);
			*v = x;
			continue;
		}
		if (jv_invalid_has_msg(jv_copy(x))) {
			*msg = jv_invalid_get_msg(x);
			return -1;
		}
		jv_free(x);
		return 0;
	}
}

jv
kwh_handle_envelope(const struct kwh_verify_out *o)
{
	jv_parser *p = jv_parser_new(0);
	jv v = jv_invalid(), msg = jv_null();
	const char *head = o->head.data ? o->head.data : "";
	int bad;

	if (!p)
		kwh_die(KWH_EXIT_SYSTEM, "out of memory");
	bad = feed(p, head, o->head.len, 1, &v, &msg) < 0 ||
	    (o->payload_len && feed(p, o->payload, o->payload_len, 1, &v, &msg) < 0) ||
	    feed(p, o->tail ? o->tail : "", o->tail ? strlen(o->tail) : 0, 0, &v, &msg) < 0;
	jv_parser_free(p);
	if (bad) {
		jv_free(v);
		v = kwh_env_respond(kwh_env_new(), 500, "kwh-verify produced output that is not JSON: %s",
		    jv_get_kind(msg) == JV_KIND_STRING ? jv_string_value(msg) : "parse error");
	} else if (!jv_is_valid(v)) {
		v = kwh_env_respond(kwh_env_new(), 500, "no envelope: kwh-verify produced nothing");
	} else if (jv_get_kind(v) != JV_KIND_OBJECT) {
		const char *k = jv_kind_name(jv_get_kind(v));
		jv_free(v);
		v = kwh_env_respond(kwh_env_new(), 500,
		    "kwh-verify produced a JSON %s, not an envelope object", k);
	}
	jv_free(msg);
	return v;
}

/*
 * Runs one stage under its own name, so that its log lines, messages and
 * response.stage (which kwh-replay(1) restarts from) are the chain's.
 */
static jv
stage(const char *name, kwh_stage_fn fn, void *ctx, jv env)
{
	const char *self = kwh_progname;
	long long t0 = kwh_metrics_clock();

	if (kwh_env_has_response(env))
		return env;
	kwh_progname = name;
	env = fn(ctx, env);
	kwh_metrics_stage(kwh_metrics_stage_of(name), t0);
	kwh_progname = self;
	return env;
}

static jv
unconfigured(void *ctx, jv env)
{
	return kwh_env_respond(env, 500, "kwh-apply cannot run: %s", (const char *)ctx);
}

static jv
fetch_unconfigured(void *ctx, jv env)
{
	return kwh_env_respond(env, 500, "kwh-fetch cannot run: %s", (const char *)ctx);
}

/* Has the file at path changed since *was (which it updates)?  A file that
 * cannot be stat'ed counts as changed once. */
static int
changed(const char *path, struct stat *was)
{
	struct stat now;

	if (stat(path, &now) < 0)
		memset(&now, 0, sizeof now);	/* missing: all zero, so once */
	if (now.st_dev == was->st_dev && now.st_ino == was->st_ino &&
	    now.st_size == was->st_size && now.st_mtim.tv_sec == was->st_mtim.tv_sec &&
	    now.st_mtim.tv_nsec == was->st_mtim.tv_nsec)
		return 0;
	*was = now;
	return 1;
}

/*
 * A resident worker reads the secret files and --token-file again when one
 * has changed since it was read (a rotation: a Kubernetes Secret volume
 * swaps a symlink, an editor or mv replaces the file), so that no restart
 * is needed; a stat(2) per file per request.  A file that cannot be read
 * then keeps what is in use, with a warning.  WEBHOOK_SECRET, read once
 * and removed from the environment, stays among the secrets.
 */
static void
reload_files(struct kwh_handle *h)
{
	struct kwh_secrets s = KWH_SECRETS_INIT;
	struct kwh_buf tok = KWH_BUF_INIT;
	char err[512];
	size_t i;
	int any = 0;

	for (i = 0; i < h->n_secret_files; i++)
		any |= changed(h->secret_files[i], &h->secret_stat[i]);
	if (any) {
		for (i = 0; i < h->n_secret_files; i++)
			if (kwh_secrets_add_file(&s, h->secret_files[i], err, sizeof err) < 0)
				break;
		if (i < h->n_secret_files) {
			kwh_log(KWH_LOG_WARN, NULL, 0, "%s; the secrets in use are kept", err);
			kwh_secrets_wipe(&s);
		} else {
			const struct kwh_buf *e = &h->verify.secrets.v[h->verify.secrets.n - 1];

			if (h->env_secret && kwh_secrets_add(&s, e->data, e->len) < 0) {
				kwh_log(KWH_LOG_WARN, NULL, 0, "out of memory; the secrets in use are kept");
				kwh_secrets_wipe(&s);
			} else {
				kwh_secrets_wipe(&h->verify.secrets);
				h->verify.secrets = s;
				kwh_log(KWH_LOG_INFO, NULL, 0, "a secret file changed: the secrets were read again");
			}
		}
	}
	if (h->token_file && changed(h->token_file, &h->token_stat)) {
		if (kwh_cli_token_read(h->token_file, &tok, err, sizeof err) < 0) {
			kwh_log(KWH_LOG_WARN, NULL, 0, "%s; the token in use is kept", err);
			kwh_buf_wipe(&tok);
		} else {
			kwh_buf_wipe(&h->token);
			h->token = tok;
			h->fetch.git.token = h->token.data;
			status_token(h);
			kwh_log(KWH_LOG_INFO, NULL, 0, "the token file changed: it was read again");
		}
	}
}

/* Did kwh-fetch answer 503 because the fetch goes on in the background? */
static int
fetch_goes_on(jv env)
{
	jv r = jv_object_get(jv_copy(env), jv_string("response"));
	jv ra = jv_get_kind(r) == JV_KIND_OBJECT ?
	    jv_object_get(jv_copy(r), jv_string("retry_after")) : jv_invalid();
	int yes = kwh_env_status(env) == 503 && jv_get_kind(ra) == JV_KIND_NUMBER &&
	    kwh_spool_wanted(env);

	jv_free(ra);
	jv_free(r);
	return yes;
}

/*
 * The cache's upkeep after a fetch (pack consolidation, its size bound),
 * once the answer is written (kwh_git_defer_upkeep): the client is let go
 * first (out, unless -1, half-closed; in one-shot mode /dev/null in its
 * place, so that socat sees the end), then it runs under the entry's
 * exclusive lock: here in one-shot mode, in a detached process under
 * --listen, so that consolidating a large entry does not keep the worker
 * from the next request.
 */
static void
upkeep(struct kwh_handle *h, int out)
{
	if (!kwh_git_upkeep_pending())
		return;
	if (out >= 0) {
		shutdown(out, SHUT_WR);
		if (!h->resident)
			kwh_cli_devnull(out);
	}
	kwh_git_upkeep(h->resident);
}

/*
 * --status: reports env's outcome on its commit (consumes env), once the
 * answer is written and the client let go (out, unless -1, half-closed;
 * in one-shot mode /dev/null in its place), so that GitHub's wait for the
 * answer is not spent on it.  A failure to report is logged by
 * kwh_status_report_env() and changes nothing.
 */
static void
report(struct kwh_handle *h, jv env, int out)
{
	const char *self = kwh_progname;
	char d[256];

	if (!h->status_on || !h->app.curl) {
		jv_free(env);
		return;
	}
	if (out >= 0) {
		shutdown(out, SHUT_WR);
		if (!h->resident)
			kwh_cli_devnull(out);
	}
	kwh_progname = "kwh-status";
	h->app.delivery = kwh_env_str(env, "delivery", d, sizeof d);
	kwh_status_report_env(&h->app, &h->status, env);
	h->app.delivery = NULL;
	kwh_progname = self;
	jv_free(env);
}

/* env answered 503 with Retry-After: the server cannot do it now. */
static jv
retry_later(jv env, const char *msg)
{
	jv r;

	env = kwh_env_respond(env, 503, "%s", msg);
	r = jv_object_get(jv_copy(env), jv_string("response"));
	r = jv_object_set(r, jv_string("retry_after"), jv_number(KWH_FETCH_RETRY_AFTER));
	return jv_object_set(env, jv_string("response"), r);
}

/* How many processes may complete a queued delivery at once: --max-queued,
 * or half the workers (rounded up) under --listen, or as many as the
 * background fetches in one-shot mode. */
static unsigned
max_queued(const struct kwh_handle *h)
{
	if (h->max_queued)
		return (unsigned)h->max_queued;
	if (h->resident && h->workers)
		return (unsigned)((h->workers + 1) / 2);
	return KWH_GIT_MAX_BACKGROUND_DEFAULT;
}

/*
 * Under --spool, a delivery answered before its work is done: because its
 * fetch goes on in the background (waited < 0), or because it waited
 * waited ms for a free worker and too little of its budget is left
 * (kwh_handle_run()).  Takes one of max_queued() slots (a flock(2) on
 * SPOOL/.kwh-queued-N.slot, across processes), spools the delivery
 * (durably), answers 202 with "queued": true and lets the client go;
 * then runs kwh-fetch (waiting for the background fetch, --fetch-budget)
 * and kwh-apply, and removes the spool file when that succeeded or the
 * answer is final (4xx), or leaves it, updated, for kwh-replay.  The
 * spool file stays locked meanwhile, so that kwh-replay leaves it alone.
 * Returns the exit code; -1 when the delivery could not be spooled, -2
 * when every slot is taken (the caller answers 503 with Retry-After).
 */
static int
queue(struct kwh_handle *h, jv env, int out, jv *envp, long long waited)
{
	struct kwh_fetch_opts fo = h->fetch;
	struct kwh_buf resp = KWH_BUF_INIT, name = KWH_BUF_INIT;
	char d[256], err[512];
	int lock = -1, st, code = KWH_EXIT_OK, slot;
	unsigned which = 0, max = max_queued(h);
	long long wait_ms = h->fetch.git.background_ms > h->verify.budget_ms ?
	    h->fetch.git.background_ms : h->verify.budget_ms;
	const char *after = waited < 0 ? " after the background fetch" : "";
	jv a, r;

	kwh_env_str(env, "delivery", d, sizeof d);
	if ((slot = kwh_cli_slot(h->spool, ".kwh-queued", max, &which)) < 0) {
		kwh_log(KWH_LOG_WARN, d, 503, "not queued: %u queued deliver%s completed "
		    "already (--max-queued); answered 503, retry after %d s", max,
		    max == 1 ? "y is being" : "ies are being", KWH_FETCH_RETRY_AFTER);
		jv_free(env);
		return -2;
	}
	if (kwh_spool_envelope(h->spool, jv_copy(env), err, sizeof err) < 0) {
		kwh_log(KWH_LOG_ERROR, d, 503, "delivery NOT spooled: %s", err);
		jv_free(env);
		close(slot);
		return -1;
	}
	kwh_spool_name(&name, env);
	kwh_spool_lock(h->spool, name.data, &lock);
	if (waited < 0)
		kwh_log(KWH_LOG_INFO, d, 202, "delivery accepted for processing and spooled in "
		    "'%s': completed here once the background fetch lands", h->spool);
	else
		kwh_log(KWH_LOG_INFO, d, 202, "delivery accepted for processing and spooled in "
		    "'%s': it waited %lld ms for a free worker, too long to be completed within "
		    "--budget; completed here after the answer (queued slot %u)", h->spool, waited,
		    which);
	a = kwh_env_respond(jv_copy(env), 202, "%s", waited < 0 ? "accepted for processing: "
	    "the repository is being fetched in the background; the delivery is spooled and "
	    "completed as soon as the fetch lands" : "accepted for processing: the server was "
	    "busy; the delivery is spooled and completed as soon as possible");
	r = jv_object_get(jv_copy(a), jv_string("response"));
	r = jv_object_set(r, jv_string("queued"), jv_true());
	r = jv_object_set(r, jv_string("spooled"), jv_true());
	a = jv_object_set(a, jv_string("response"), r);
	if (envp)
		*envp = jv_copy(a);
	kwh_metrics_queued(0);
	kwh_metrics_delivery(jv_copy(a), 202);
	kwh_respond(jv_copy(a), &resp);
	if (!resp.data || kwh_write_all(out, resp.data, resp.len) < 0)
		kwh_log(KWH_LOG_WARN, d, 202, "cannot write the response: %s", strerror(errno));
	kwh_buf_release(&resp);
	/* the answer is complete: let the client (or socat) go */
	shutdown(out, SHUT_WR);
	if (!h->resident)
		kwh_cli_devnull(out);
	report(h, a, -1);	/* pending: queued */

	env = jv_object_delete(env, jv_string("response"));
	env = jv_object_set(env, jv_string("deadline"),
	    jv_number((double)(kwh_now_ms() + wait_ms + KWH_GIT_MARGIN_MS)));
	fo.git.background_ms = 0;	/* this process waits for it */
	if (waited < 0)
		kwh_log(KWH_LOG_INFO, d, 0, "waiting for the background fetch (at most %lld s, "
		    "--fetch-budget)", wait_ms / 1000);
	env = stage("kwh-fetch", kwh_fetch, &fo, env);
	env = jv_object_set(env, jv_string("deadline"),
	    jv_number((double)(kwh_now_ms() + h->verify.budget_ms)));
	if (h->resident && h->apply_ready)
		kwh_kube_reset(h->apply.kube);
	env = h->apply_ready ? stage("kwh-apply", kwh_apply, &h->apply, env) :
	    stage("kwh-apply", unconfigured, h->apply_err, env);
	st = kwh_respond(jv_copy(env), &resp);
	kwh_buf_release(&resp);
	report(h, jv_copy(env), -1);	/* the final state */
	if (st < 500) {
		if (lock >= 0 && kwh_spool_remove(h->spool, name.data, lock) < 0)
			kwh_log(KWH_LOG_ERROR, d, st, "cannot remove the spool file '%s/%s': %s",
			    h->spool, name.data, strerror(errno));
		kwh_log(st < 400 ? KWH_LOG_INFO : KWH_LOG_WARN, d, st, "queued delivery %s%s "
		    "(status %d); its spool file is removed",
		    st < 400 ? "completed" : "refused", after, st);
		code = st < 400 ? KWH_EXIT_OK : KWH_EXIT_REFUSED;
		kwh_metrics_queued(st < 400 ? 1 : 2);
		jv_free(env);
	} else if (kwh_spool_envelope(h->spool, env, err, sizeof err) == 0) {
		kwh_log(KWH_LOG_WARN, d, st, "queued delivery not completed (status %d): left "
		    "in the spool for kwh-replay", st);
		kwh_metrics_queued(3);
		code = KWH_EXIT_REFUSED;
	} else {
		kwh_log(KWH_LOG_ERROR, d, st, "queued delivery not completed (status %d), and "
		    "its spool file could not be updated: %s", st, err);
		code = KWH_EXIT_SYSTEM;
	}
	if (lock >= 0)
		close(lock);
	close(slot);
	kwh_buf_release(&name);
	upkeep(h, -1);
	return code;
}

/* What is left of env's deadline, in ms. */
static long long
time_left(jv env)
{
	jv d = jv_object_get(jv_copy(env), jv_string("deadline"));
	long long left = jv_get_kind(d) == JV_KIND_NUMBER ?
	    (long long)jv_number_value(d) - kwh_now_ms() : 0;

	jv_free(d);
	return left;
}

/*
 * A request that waited in the --listen parent's queue for a free worker
 * until less than KWH_HANDLE_EARLY_MS (or half the budget) of its budget
 * was left: answered now rather than late.  Under --spool queued (202,
 * completed by this worker after the answer); otherwise, or when
 * --max-queued is reached, 503 with Retry-After.  Returns the exit code
 * when it answered, or -1 with *envp the envelope to go on with.
 */
static int
answer_early(struct kwh_handle *h, jv *envp, int out, jv *finalp)
{
	long long early = h->verify.budget_ms / 2 < KWH_HANDLE_EARLY_MS ?
	    h->verify.budget_ms / 2 : KWH_HANDLE_EARLY_MS, left, waited;
	char d[256], msg[512];
	int code;

	if (!h->verify.given || kwh_env_has_response(*envp) || (left = time_left(*envp)) >= early)
		return -1;
	waited = kwh_now_ms() - h->verify.given->received_ms;
	if (h->spool && (code = queue(h, jv_copy(*envp), out, finalp, waited)) >= 0) {
		jv_free(*envp);
		return code;
	}
	kwh_env_str(*envp, "delivery", d, sizeof d);
	if (!h->spool)
		kwh_log(KWH_LOG_WARN, d, 503, "it waited %lld ms for a free worker: %lld ms of "
		    "--budget left, too little; answered 503, retry after %d s", waited,
		    left > 0 ? left : 0, KWH_FETCH_RETRY_AFTER);
	snprintf(msg, sizeof msg, "the server is busy: every worker was taken until too "
	    "little of the time to answer was left; redeliver after %d seconds (see the log "
	    "for delivery %s)", KWH_FETCH_RETRY_AFTER, *d ? d : "-");
	*envp = retry_later(*envp, msg);
	return -1;
}

int
kwh_handle_run(struct kwh_handle *h, int in, int out, jv *envp)
{
	struct kwh_verify_out v;
	struct kwh_buf resp = KWH_BUF_INIT;
	int st, code, spool_failed = 0, unconfigured_used = 0;
	const char *self;
	long long t0;
	jv env;

	if (h->resident && kwh_metrics_answer(in, out))
		return KWH_EXIT_OK;
	if (h->resident)
		reload_files(h);
	self = kwh_progname;
	kwh_progname = "kwh-verify";
	t0 = kwh_metrics_clock();
	kwh_verify(&h->verify, in, &v);
	kwh_metrics_stage(KWH_STAGE_VERIFY, t0);
	if (!h->resident)
		kwh_secrets_wipe(&h->verify.secrets);
	env = kwh_handle_envelope(&v);
	kwh_verify_out_release(&v);
	kwh_progname = self;
	env = stage("kwh-annotate", kwh_annotate, &h->annotate, env);
	if (!h->resident) {
		/* One request per run: kwh-fetch's forked child must not inherit
		 * the compiled jq programs (memory checkers following it would see
		 * them).  A resident worker keeps them for the next request. */
		kwh_annotate_release(&h->annotate);
		h->annotate_ready = 0;
	}
	if ((code = answer_early(h, &env, out, envp)) >= 0)
		return code;
	if (h->fetch_err[0] && !kwh_env_has_response(env))
		unconfigured_used = 1;
	env = h->fetch_err[0] ? stage("kwh-fetch", fetch_unconfigured, h->fetch_err, env) :
	    stage("kwh-fetch", kwh_fetch, &h->fetch, env);
	if (h->spool && fetch_goes_on(env)) {
		kwh_progname = self;
		if ((code = queue(h, jv_copy(env), out, envp, -1)) >= 0) {
			jv_free(env);
			return code;
		}
	}
	if (!h->apply_ready && !kwh_env_has_response(env))
		unconfigured_used = 1;
	if (h->resident && h->apply_ready)
		kwh_kube_reset(h->apply.kube);
	env = h->apply_ready ? stage("kwh-apply", kwh_apply, &h->apply, env) :
	    stage("kwh-apply", unconfigured, h->apply_err, env);
	kwh_progname = "kwh-respond";
	t0 = kwh_metrics_clock();
	if (h->spool)
		env = kwh_spool_respond(h->spool, env, &spool_failed);
	if (envp)
		*envp = jv_copy(env);
	st = kwh_respond(jv_copy(env), &resp);
	kwh_metrics_delivery(jv_copy(env), st);
	kwh_progname = self;
	if (!resp.data || kwh_write_all(out, resp.data, resp.len) < 0) {
		kwh_warn("cannot write the response: %s", strerror(errno));
		kwh_buf_release(&resp);
		jv_free(env);
		return KWH_EXIT_SYSTEM;
	}
	kwh_buf_release(&resp);
	kwh_metrics_stage(KWH_STAGE_RESPOND, t0);
	code = st >= 400 ? KWH_EXIT_REFUSED : KWH_EXIT_OK;
	if (h->status_on) {
		report(h, env, out);
		out = -1;	/* let go already */
	} else
		jv_free(env);
	upkeep(h, out);
	return spool_failed || unconfigured_used ? KWH_EXIT_SYSTEM : code;
}

void
kwh_handle_release(struct kwh_handle *h)
{
	kwh_secrets_wipe(&h->verify.secrets);
	if (h->annotate_ready)
		kwh_annotate_release(&h->annotate);
	if (h->apply_ready)
		kwh_apply_release(&h->apply);
	kwh_buf_wipe(&h->token);
	kwh_github_release(&h->app);
	kwh_buf_release(&h->cache);
	kwh_buf_release(&h->known_hosts);
	free(h->filters);
	free(h->allow_remote);
	free(h->sets);
	free(h->secret_files);
	free(h->secret_stat);
	h->filters = h->sets = NULL;
	h->secret_files = NULL;
	h->secret_stat = NULL;
	h->annotate_ready = h->apply_ready = 0;
}
