/* kwh-replay — spooled deliveries back through the chain, from where they stopped. */
#include <getopt.h>

#include "cli.h"
#include "err.h"
#include "replay.h"

static const char usage[] =
"usage: kwh-replay [--budget SECONDS] [--log DEST] [--spool DIR] [--] CHAIN\n"
"       kwh-replay --dry-run [--budget SECONDS] [--log DEST] [--spool DIR] [CHAIN]\n"
"       kwh-replay --help | --version\n";

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "budget", required_argument, NULL, 'b' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ "log", required_argument, NULL, 'l' },
		{ "spool", required_argument, NULL, 's' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct kwh_replay r = { .spool = KWH_REPLAY_SPOOL, .budget_ms = KWH_REPLAY_BUDGET_MS };
	int c;

	kwh_err_init(argv[0]);
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'b': r.budget_ms = kwh_cli_seconds_ms("--budget", optarg); break;
		case 'h': kwh_cli_help(usage);
		case 'l': kwh_cli_log(optarg); break;
		case 'n': r.dry_run = 1; break;
		case 's': r.spool = optarg; break;
		case 'V': kwh_cli_version();
		default: kwh_usage_error("unknown option");
		}
	}
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
