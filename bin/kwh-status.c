/* kwh-status — reports each delivery's outcome on its commit; envelopes pass through unchanged. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "env.h"
#include "err.h"
#include "github.h"
#include "status.h"

static const char usage[] =
"usage: kwh-status [--api-url URL] [--app-id N --app-key-file PEM] [--ca-file FILE]\n"
"                  [--check-run] [--context NAME] [--installation-id N] [--log DEST]\n"
"                  [--report-skipped] [--target-url TEMPLATE] [--timeout SECONDS]\n"
"                  [--token-file FILE]\n"
"       kwh-status --state STATE --repo OWNER/REPO --sha SHA [--description TEXT]\n"
"                  [options above]\n"
"       kwh-status --help | --version\n";

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "api-url", required_argument, NULL, 'u' },
		{ "app-id", required_argument, NULL, 'a' },
		{ "app-key-file", required_argument, NULL, 'k' },
		{ "ca-file", required_argument, NULL, 'c' },
		{ "check-run", no_argument, NULL, 'C' },
		{ "context", required_argument, NULL, 'x' },
		{ "description", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ "installation-id", required_argument, NULL, 'i' },
		{ "log", required_argument, NULL, 'l' },
		{ "repo", required_argument, NULL, 'r' },
		{ "report-skipped", no_argument, NULL, 'S' },
		{ "sha", required_argument, NULL, 's' },
		{ "state", required_argument, NULL, 't' },
		{ "target-url", required_argument, NULL, 'T' },
		{ "timeout", required_argument, NULL, 'o' },
		{ "token-file", required_argument, NULL, 'f' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct kwh_github g = KWH_GITHUB_INIT;
	struct kwh_status rep = { 0, "kwh", NULL, 0, KWH_STATUS_TIMEOUT_MS, 0 };
	const char *token_file = NULL, *key_file = NULL, *state = NULL, *repo = NULL,
	    *sha = NULL, *desc = NULL;
	struct kwh_env_reader *r;
	int c, rc, got = 0, code = KWH_EXIT_OK;
	jv env;

	kwh_err_init(argv[0]);
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'u': g.api_url = optarg; break;
		case 'a': g.app_id = (long)kwh_cli_size("--app-id", optarg); break;
		case 'k': key_file = optarg; break;
		case 'c': g.ca_file = optarg; break;
		case 'C': rep.check_run = 1; break;
		case 'x': rep.context = optarg; break;
		case 'd': desc = optarg; break;
		case 'h': kwh_cli_help(usage);
		case 'i': g.installation_id = (long)kwh_cli_size("--installation-id", optarg); break;
		case 'l': kwh_cli_log(optarg); break;
		case 'r': repo = optarg; break;
		case 'S': rep.report_skipped = 1; break;
		case 's': sha = optarg; break;
		case 't': state = optarg; break;
		case 'T': rep.target_url = optarg; break;
		case 'o': rep.timeout_ms = kwh_cli_seconds_ms("--timeout", optarg); break;
		case 'f': token_file = optarg; break;
		case 'V': kwh_cli_version();
		default: kwh_usage_error("unknown option");
		}
	}
	if (optind < argc)
		kwh_usage_error("unexpected argument '%s'", argv[optind]);
	if (!!g.app_id != !!key_file)
		kwh_usage_error("--app-id and --app-key-file go together");
	if (state && (!repo || !sha || !strchr(repo, '/')))
		kwh_usage_error("--state needs --repo OWNER/REPO and --sha SHA");
	if (state && strcmp(state, "pending") && strcmp(state, "success") &&
	    strcmp(state, "failure") && strcmp(state, "error"))
		kwh_usage_error("--state: '%s' is not pending, success, failure or error", state);
	if (!state && (repo || sha || desc))
		kwh_usage_error("--repo, --sha and --description go with --state");
	kwh_github_credentials(&g, token_file, key_file,
	    "--token-file, GITHUB_TOKEN, or --app-id and --app-key-file");
	if (g.ca_file)
		kwh_cli_readable("CA file", g.ca_file);
	if (kwh_github_init(&g) < 0)
		kwh_die(KWH_EXIT_SYSTEM, "cannot set up libcurl");
	kwh_pledge("stdio rpath inet dns");

	if (state) {
		rc = kwh_status_report(&g, &rep, repo, sha, state, desc, rep.target_url,
		    g.installation_id, kwh_now_ms() + rep.timeout_ms);
		kwh_github_release(&g);
		return rc < 0 ? KWH_EXIT_REFUSED : KWH_EXIT_OK;
	}
	if (!(r = kwh_env_reader_new(0)))
		kwh_die(KWH_EXIT_SYSTEM, "out of memory");
	for (;;) {
		rc = kwh_env_next(r, &env);
		if (rc == 0 && got)
			break;
		if (rc == 0)
			env = kwh_env_respond(kwh_env_new(), 500,
			    "no envelope: an earlier stage produced nothing");
		got = 1;
		if (rc <= 0)
			code = KWH_EXIT_REFUSED;
		else {
			char id[128];

			g.delivery = kwh_env_str(env, "delivery", id, sizeof id);
			/* a failure to report is logged there and changes nothing here */
			kwh_status_report_env(&g, &rep, env);
			g.delivery = NULL;
		}
		if (kwh_env_write(env) < 0)
			kwh_die(KWH_EXIT_SYSTEM, "cannot write to stdout: %s", strerror(errno));
		if (rc <= 0)
			break;
	}
	kwh_env_reader_free(r);
	kwh_github_release(&g);
	return code;
}
