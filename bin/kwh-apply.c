/* kwh-apply — envelopes in, the annotated objects created in Kubernetes. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "cli.h"
#include "env.h"
#include "err.h"
#include "metrics.h"

static const char usage[] =
"usage: kwh-apply [--allow-kind GROUP/KIND]... [--allow-namespace REGEX]...\n"
"                 [--cache DIR] [--context NAME] [--deadline SECONDS]\n"
"                 [--dedupe | --no-dedupe] [--dry-run[=client|server]]\n"
"                 [--kubeconfig FILE] [--log DEST] [--log-format logfmt|json]\n"
"                 [--log-level LEVEL]\n"
"                 [--namespace NS] [--service-account-dir DIR] [--statsd HOST:PORT]\n"
"       kwh-apply --help | --version\n";

/* The stage when the configuration could not be loaded: every envelope
 * says so, and the program exits 111. */
static jv
unconfigured(void *ctx, jv env)
{
	return kwh_env_respond(env, 500, "kwh-apply cannot run: %s", (const char *)ctx);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "allow-kind", required_argument, NULL, 'K' },
		{ "allow-namespace", required_argument, NULL, 'N' },
		{ "cache", required_argument, NULL, 'c' },
		{ "context", required_argument, NULL, 'C' },
		{ "deadline", required_argument, NULL, 'd' },
		{ "dedupe", no_argument, NULL, 'D' },
		{ "dry-run", optional_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ "kubeconfig", required_argument, NULL, 'k' },
		{ "log", required_argument, NULL, 'l' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "log-format", required_argument, NULL, KWH_CLI_LOG_FORMAT },
		{ "namespace", required_argument, NULL, 'n' },
		{ "no-dedupe", no_argument, NULL, 'u' },
		{ "service-account-dir", required_argument, NULL, 'S' },
		{ "statsd", required_argument, NULL, KWH_CLI_STATSD },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static struct kwh_apply a = { .field_manager = "kwh", .deadline_ms = KWH_APPLY_DEADLINE_MS };
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char err[1024], *defcache = NULL;
	int c, code, is_usage;

	kwh_err_init(argv[0]);
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'K': kwh_cli_policy(a.allow_kind, &a.n_allow_kind, KWH_APPLY_MAX_POLICY, "--allow-kind", optarg); break;
		case 'N': kwh_cli_policy(a.allow_ns, &a.n_allow_ns, KWH_APPLY_MAX_POLICY, "--allow-namespace", optarg); break;
		case 'c': a.cache_dir = optarg; break;
		case 'C': a.src.context = optarg; break;
		case 'd': a.deadline_ms = kwh_cli_seconds_ms("--deadline", optarg); break;
		case 'D': a.no_dedupe = 0; break;	/* the default; kept for old command lines */
		case 'r':
			if (!optarg || !strcmp(optarg, "client"))
				a.dry_run = KWH_DRY_CLIENT;
			else if (!strcmp(optarg, "server"))
				a.dry_run = KWH_DRY_SERVER;
			else
				kwh_usage_error("--dry-run: '%s' is neither client nor server", optarg);
			break;
		case 'h': kwh_cli_help(usage);
		case 'k': a.src.kubeconfig = optarg; break;
		case 'l': kwh_cli_log(optarg); break;
		case 'L': kwh_cli_log_level(optarg); break;
		case KWH_CLI_LOG_FORMAT: kwh_cli_log_format(optarg); break;
		case KWH_CLI_STATSD: kwh_metrics_statsd(optarg); break;
		case 'n': a.namespace = optarg; break;
		case 'u': a.no_dedupe = 1; break;
		case 'S': a.src.sa_dir = optarg; break;
		case 'V': kwh_cli_version();
		default: kwh_usage_error("unknown option");
		}
	}
	if (optind < argc)
		kwh_usage_error("unexpected argument '%s'", argv[optind]);
	if (!a.cache_dir && ((xdg && *xdg && asprintf(&defcache, "%s/kwh", xdg) >= 0) ||
	    (home && *home && asprintf(&defcache, "%s/.cache/kwh", home) >= 0)))
		a.cache_dir = defcache;
	if (kwh_apply_init(&a, &is_usage, err, sizeof err) < 0) {
		if (is_usage)
			kwh_usage_error("%s", err);
		kwh_warn("%s", err);
		if (kwh_env_loop(unconfigured, err) != KWH_EXIT_SYSTEM)
			kwh_die(KWH_EXIT_SYSTEM, "%s", err);
		return KWH_EXIT_SYSTEM;
	}
	kwh_pledge("stdio rpath wpath cpath inet dns proc exec");
	code = kwh_env_loop(kwh_apply, &a);
	kwh_apply_release(&a);
	free(defcache);
	return code;
}
