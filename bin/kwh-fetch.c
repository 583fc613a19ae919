/* kwh-fetch — envelopes on stdin; the manifests from git added on stdout. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "env.h"
#include "err.h"
#include "metrics.h"
#include "fetch.h"
#include "git.h"

static const char usage[] =
"usage: kwh-fetch [--allow-remote-host HOST]... [--ca-file FILE] [--cache DIR]\n"
"                 [--api-url URL] [--app-id N --app-key-file PEM]\n"
"                 [--cache-max-bytes BYTES] [--fetch-budget SECONDS]\n"
"                 [--insecure-skip-host-key-check] [--installation-id N]\n"
"                 [--known-hosts FILE] [--log DEST]\n"
"                 [--log-format logfmt|json] [--log-level LEVEL]\n"
"                 [--max-background-fetches N]\n"
"                 [--max-manifest-bytes BYTES] [--max-objects N] [--max-yaml-nodes N]\n"
"                 [--path PATH]\n"
"                 [--remote TEMPLATE] [--ssh-key FILE] [--statsd HOST:PORT]\n"
"                 [--timeout SECONDS]\n"
"                 [--token-file FILE] [--use-git-url]\n"
"       kwh-fetch --help | --version\n"
"The HTTPS token may also come from the GITHUB_TOKEN environment variable\n"
"(--token-file wins); with --app-id, a GitHub App's installation token\n"
"(the installation from the payload) is the HTTPS password instead.\n";

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "allow-remote-host", required_argument, NULL, 'A' },
		{ "api-url", required_argument, NULL, 'u' },
		{ "app-id", required_argument, NULL, 'a' },
		{ "app-key-file", required_argument, NULL, 'K' },
		{ "ca-file", required_argument, NULL, 'C' },
		{ "cache", required_argument, NULL, 'c' },
		{ "cache-max-bytes", required_argument, NULL, 'M' },
		{ "fetch-budget", required_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ "insecure-skip-host-key-check", no_argument, NULL, 'I' },
		{ "installation-id", required_argument, NULL, 'i' },
		{ "known-hosts", required_argument, NULL, 'k' },
		{ "log", required_argument, NULL, 'l' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "log-format", required_argument, NULL, KWH_CLI_LOG_FORMAT },
		{ "max-background-fetches", required_argument, NULL, 'X' },
		{ "max-manifest-bytes", required_argument, NULL, 'B' },
		{ "max-objects", required_argument, NULL, 'O' },
		{ "max-yaml-nodes", required_argument, NULL, 'N' },
		{ "path", required_argument, NULL, 'p' },
		{ "remote", required_argument, NULL, 'r' },
		{ "ssh-key", required_argument, NULL, 's' },
		{ "statsd", required_argument, NULL, KWH_CLI_STATSD },
		{ "timeout", required_argument, NULL, 't' },
		{ "token-file", required_argument, NULL, 'T' },
		{ "use-git-url", no_argument, NULL, 'g' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct kwh_fetch_opts o = { .path = ".ci/workflow.yaml", .timeout_ms = 9000,
		.max_bytes = KWH_FETCH_MAX_BYTES_DEFAULT, .max_nodes = KWH_FETCH_MAX_NODES_DEFAULT,
		.max_objects = KWH_FETCH_MAX_OBJECTS_DEFAULT,
		.git.max_bytes = KWH_GIT_MAX_BYTES_DEFAULT,
		.git.background_ms = KWH_GIT_BACKGROUND_MS_DEFAULT,
		.git.max_background = KWH_GIT_MAX_BACKGROUND_DEFAULT };
	struct kwh_buf cache = KWH_BUF_INIT, token = KWH_BUF_INIT, kh = KWH_BUF_INIT;
	struct kwh_github app = KWH_GITHUB_INIT;
	const char *token_file = NULL, *key_file = NULL, **allow;
	char kerr[512];
	int c, code;

	kwh_err_init(argv[0]);
	if (!(allow = calloc((size_t)argc + 1, sizeof *allow)))
		kwh_die(KWH_EXIT_SYSTEM, "out of memory");
	o.git.allow = allow;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'A':
			if (kwh_git_allow_entry_ok(optarg) < 0)
				kwh_usage_error("--allow-remote-host: '%s' is neither HOST, "
				    "SCHEME://HOST (https, http, ssh, git) nor file://", optarg);
			allow[o.git.n_allow++] = optarg;
			break;
		case 'u': app.api_url = optarg; break;
		case 'a': app.app_id = (long)kwh_cli_size("--app-id", optarg); break;
		case 'K': key_file = optarg; break;
		case 'i': app.installation_id = (long)kwh_cli_size("--installation-id", optarg); break;
		case 'C': o.git.ca_file = optarg; break;
		case 'c': o.git.cache_dir = optarg; break;
		case 'M': o.git.max_bytes = kwh_cli_size("--cache-max-bytes", optarg); break;
		case 'F': o.git.background_ms = kwh_cli_seconds_ms("--fetch-budget", optarg); break;
		case 'g': o.use_git_url = 1; break;
		case 'h':
			/* which fetches this build makes (tests and people ask) */
			fputs(usage, stdout);
			printf("git cache: %s\n", kwh_git_fetch_kind());
			exit(fflush(stdout) ? KWH_EXIT_SYSTEM : KWH_EXIT_OK);
		case 'I': o.git.skip_host_key_check = 1; break;
		case 'k': o.git.known_hosts = optarg; break;
		case 'l': kwh_cli_log(optarg); break;
		case 'L': kwh_cli_log_level(optarg); break;
		case KWH_CLI_LOG_FORMAT: kwh_cli_log_format(optarg); break;
		case KWH_CLI_STATSD: kwh_metrics_statsd(optarg); break;
		case 'X': o.git.max_background = (unsigned)kwh_cli_max_background(optarg); break;
		case 'B': o.max_bytes = kwh_cli_size("--max-manifest-bytes", optarg); break;
		case 'O': o.max_objects = kwh_cli_size("--max-objects", optarg); break;
		case 'N': o.max_nodes = kwh_cli_size("--max-yaml-nodes", optarg); break;
		case 'p': o.path = optarg; break;
		case 'r': o.remote = o.git.pin = optarg; break;
		case 's': o.git.ssh_key = optarg; break;
		case 't': o.timeout_ms = kwh_cli_seconds_ms("--timeout", optarg); break;
		case 'T': token_file = optarg; break;
		case 'V': kwh_cli_version();
		default: kwh_usage_error("unknown option");
		}
	}
	if (optind < argc)
		kwh_usage_error("unexpected argument '%s'", argv[optind]);
	if (!*o.path)
		kwh_usage_error("--path: empty");
	if (o.remote && !strstr(o.remote, "{full_name}") &&
	    !strstr(o.remote, "{owner}") && !strstr(o.remote, "{name}"))
		kwh_usage_error("--remote: '%s' has no {full_name}, {owner} or {name}", o.remote);
	if (!!app.app_id != !!key_file)
		kwh_usage_error("--app-id and --app-key-file go together");
	if (!app.app_id && (app.installation_id || app.api_url))
		kwh_usage_error("--installation-id and --api-url go with --app-id");
	if (key_file) {
		/* one-shot: the token is asked for afresh at each run (the cache is
		 * this process's memory); kwh-handle --listen keeps it */
		if (kwh_github_app_key(&app, key_file, kerr, sizeof kerr) < 0)
			kwh_die(KWH_EXIT_SYSTEM, "%s", kerr);
		app.ca_file = o.git.ca_file;
		if (kwh_github_init(&app) < 0)
			kwh_die(KWH_EXIT_SYSTEM, "cannot set up libcurl");
		o.app = &app;
	}
	if (!o.git.max_background)
		o.git.background_ms = 0;	/* killed at the deadline, as before */
	if (!o.git.cache_dir) {
		kwh_cli_default_cache(&cache);
		o.git.cache_dir = cache.data;
	}
	/* GITHUB_TOKEN (the original's variable) is read and wiped either
	 * way: no git transport or helper ever sees it in the environment */
	if (kwh_cli_token_env(&token, "GITHUB_TOKEN") == 0)
		o.git.token = token.data;
	if (token_file) {
		char err[512];

		kwh_buf_wipe(&token);
		if (kwh_cli_token_read(token_file, &token, err, sizeof err) < 0)
			kwh_die(KWH_EXIT_SYSTEM, "%s", err);
		o.git.token = token.data;
	}
	if (o.git.ssh_key) {
		kwh_cli_readable("SSH key", o.git.ssh_key);
		if (!o.git.known_hosts && !o.git.skip_host_key_check) {
			const char *home = getenv("HOME");
			kwh_buf_printf(&kh, "%s/.ssh/known_hosts", home ? home : "");
			o.git.known_hosts = kh.data;
		}
	}
	if (o.git.known_hosts && !o.git.skip_host_key_check)
		kwh_cli_readable("known hosts file", o.git.known_hosts);
	if (o.git.ca_file)
		kwh_cli_readable("CA file", o.git.ca_file);
	o.git.progress = isatty(2);
	kwh_pledge("stdio rpath wpath cpath flock inet dns proc");
	/* consolidation and the cache's size bound once the envelopes are
	 * out, in a detached process: the next stage waits for neither */
	kwh_git_defer_upkeep(1);
	code = kwh_env_loop(kwh_fetch, &o);
	kwh_git_upkeep(1);
	kwh_buf_wipe(&token);
	kwh_github_release(&app);
	kwh_buf_release(&cache);
	kwh_buf_release(&kh);
	free(allow);
	return code;
}
