/* kwh-annotate — envelopes in, the event's annotations added or a decision. */
#include <getopt.h>
#include <stdlib.h>

#include "annotate.h"
#include "cli.h"
#include "env.h"
#include "err.h"
#include "metrics.h"

static const char usage[] =
"usage: kwh-annotate [--events LIST] [--filter EXPR]... [--ignore-ref REGEX]\n"
"                    [--log DEST] [--log-format logfmt|json] [--log-level LEVEL]\n"
"                    [--pull-request-actions LIST|all] [--set KEY=EXPR]...\n"
"                    [--statsd HOST:PORT]\n"
"       kwh-annotate --help | --version\n";

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "events", required_argument, NULL, 'e' },
		{ "filter", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "ignore-ref", required_argument, NULL, 'i' },
		{ "log", required_argument, NULL, 'l' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "pull-request-actions", required_argument, NULL, 'p' },
		{ "log-format", required_argument, NULL, KWH_CLI_LOG_FORMAT },
		{ "set", required_argument, NULL, 's' },
		{ "statsd", required_argument, NULL, KWH_CLI_STATSD },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct kwh_annotate_opts o = { 0 };
	const char **filters = calloc((size_t)argc, sizeof *filters);
	const char **sets = calloc((size_t)argc, sizeof *sets);
	char err[1024];
	int c, code;

	kwh_err_init(argv[0]);
	if (!filters || !sets)
		kwh_die(KWH_EXIT_SYSTEM, "out of memory");
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'e': o.events = optarg; break;
		case 'f': filters[o.nfilters++] = optarg; break;
		case 'h': kwh_cli_help(usage);
		case 'i': o.ignore_ref = optarg; break;
		case 'l': kwh_cli_log(optarg); break;
		case 'L': kwh_cli_log_level(optarg); break;
		case 'p': o.pr_actions = optarg; break;
		case KWH_CLI_LOG_FORMAT: kwh_cli_log_format(optarg); break;
		case KWH_CLI_STATSD: kwh_metrics_statsd(optarg); break;
		case 's': sets[o.nsets++] = optarg; break;
		case 'V': kwh_cli_version();
		default: kwh_usage_error("unknown option");
		}
	}
	if (optind < argc)
		kwh_usage_error("unexpected argument '%s'", argv[optind]);
	o.filters = filters;
	o.sets = sets;
	if (kwh_annotate_init(&o, err, sizeof err) < 0)
		kwh_die(KWH_EXIT_USAGE, "%s", err);
	kwh_pledge("stdio");
	code = kwh_env_loop(kwh_annotate, &o);
	kwh_annotate_release(&o);
	free(filters);
	free(sets);
	return code;
}
