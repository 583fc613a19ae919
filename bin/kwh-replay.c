/* kwh-replay — spooled deliveries back through the chain, from where they stopped;
 * or, with --from-github, the hook's failed deliveries redelivered by GitHub. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "github.h"
#include "replay.h"

static const char usage[] =
"usage: kwh-replay [--budget SECONDS] [--log DEST] [--spool DIR] [--] CHAIN\n"
"       kwh-replay --dry-run [--budget SECONDS] [--log DEST] [--spool DIR] [CHAIN]\n"
"       kwh-replay --from-github --repo OWNER/REPO --hook-id N --since TIME\n"
"                  [--max N] [--dry-run] [--budget SECONDS] [--log DEST]\n"
"                  [--token-file FILE | --app-id N --app-key-file PEM\n"
"                  --installation-id N] [--api-url URL] [--ca-file FILE]\n"
"       kwh-replay --help | --version\n";

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "api-url", required_argument, NULL, 'u' },
		{ "app-id", required_argument, NULL, 'a' },
		{ "app-key-file", required_argument, NULL, 'k' },
		{ "budget", required_argument, NULL, 'b' },
		{ "ca-file", required_argument, NULL, 'c' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "from-github", no_argument, NULL, 'G' },
		{ "help", no_argument, NULL, 'h' },
		{ "hook-id", required_argument, NULL, 'H' },
		{ "installation-id", required_argument, NULL, 'i' },
		{ "log", required_argument, NULL, 'l' },
		{ "max", required_argument, NULL, 'm' },
		{ "repo", required_argument, NULL, 'r' },
		{ "since", required_argument, NULL, 'S' },
		{ "spool", required_argument, NULL, 's' },
		{ "token-file", required_argument, NULL, 'f' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct kwh_replay r = { .spool = KWH_REPLAY_SPOOL, .budget_ms = KWH_REPLAY_BUDGET_MS };
	struct kwh_github g = KWH_GITHUB_INIT;
	struct kwh_replay_github rg = { .g = &g, .max = 100 };
	const char *token_file = NULL, *key_file = NULL, *since = NULL;
	int c, from_github = 0, github_opts = 0, spool_opts = 0, rc;

	kwh_err_init(argv[0]);
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'u': g.api_url = optarg; github_opts++; break;
		case 'a': g.app_id = (long)kwh_cli_size("--app-id", optarg); github_opts++; break;
		case 'k': key_file = optarg; github_opts++; break;
		case 'b': r.budget_ms = kwh_cli_seconds_ms("--budget", optarg); break;
		case 'c': g.ca_file = optarg; github_opts++; break;
		case 'n': r.dry_run = 1; break;
		case 'G': from_github = 1; break;
		case 'h': kwh_cli_help(usage);
		case 'H': rg.hook_id = (long)kwh_cli_size("--hook-id", optarg); github_opts++; break;
		case 'i': g.installation_id = (long)kwh_cli_size("--installation-id", optarg); github_opts++; break;
		case 'l': kwh_cli_log(optarg); break;
		case 'm': rg.max = (long)kwh_cli_size("--max", optarg); github_opts++; break;
		case 'r': rg.repo = optarg; github_opts++; break;
		case 'S': since = optarg; github_opts++; break;
		case 's': r.spool = optarg; spool_opts++; break;
		case 'f': token_file = optarg; github_opts++; break;
		case 'V': kwh_cli_version();
		default: kwh_usage_error("unknown option");
		}
	}
	if (!from_github) {
		if (github_opts)
			kwh_usage_error("--repo, --hook-id, --since, --max and the GitHub credentials "
			    "go with --from-github");
		if (optind < argc)
			r.chain = argv[optind++];
		if (optind < argc)
			kwh_usage_error("unexpected argument '%s' (give the chain as one argument, quoted)", argv[optind]);
		if (!r.chain && !r.dry_run)
			kwh_usage_error("no chain to replay through (or --dry-run)");
		if (r.chain && !*r.chain)
			kwh_usage_error("the chain is empty");
		kwh_pledge("stdio rpath wpath cpath flock proc exec");
		return kwh_replay_run(&r);
	}

	if (spool_opts || optind < argc)
		kwh_usage_error("--from-github takes no --spool and no chain: GitHub sends the "
		    "deliveries to the hook's URL again");
	if (!rg.repo || !strchr(rg.repo, '/') || strchr(rg.repo, '/') != strrchr(rg.repo, '/') ||
	    strcspn(rg.repo, "?#% ") != strlen(rg.repo))
		kwh_usage_error("--from-github needs --repo OWNER/REPO");
	if (!rg.hook_id)
		kwh_usage_error("--from-github needs --hook-id N (the hook's id: its settings page's URL ends with it)");
	if (!since)
		kwh_usage_error("--from-github needs --since TIME (RFC 3339, or a duration such as 2h)");
	if (kwh_replay_since(since, kwh_now_ms(), &rg.since_ms) < 0)
		kwh_usage_error("--since: '%s' is neither RFC 3339 (2026-12-06T10:00:00Z) nor a duration "
		    "(90s, 30m, 2h, 1d; at most 400d)", since);
	if (!rg.max)
		kwh_usage_error("--max: give at least 1");
	if (!!g.app_id != !!key_file)
		kwh_usage_error("--app-id and --app-key-file go together");
	if (g.app_id && !g.installation_id)
		kwh_usage_error("--app-id needs --installation-id (there is no payload to take it from)");
	rg.dry_run = r.dry_run;
	rg.budget_ms = r.budget_ms;
	kwh_github_credentials(&g, token_file, key_file,
	    "--token-file, GITHUB_TOKEN, or --app-id, --app-key-file and --installation-id");
	if (g.ca_file)
		kwh_cli_readable("CA file", g.ca_file);
	if (kwh_github_init(&g) < 0)
		kwh_die(KWH_EXIT_SYSTEM, "cannot set up libcurl");
	kwh_pledge("stdio rpath inet dns");
	rc = kwh_replay_github(&rg);
	kwh_github_release(&g);
	return rc;
}
