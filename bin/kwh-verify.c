/* kwh-verify — one HTTP request on stdin, one envelope on stdout. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "cli.h"
#include "err.h"
#include "metrics.h"
#include "verify.h"

static const char usage[] =
"usage: kwh-verify [--allow-sha1] [--budget SECONDS] [--insecure] [--liveness-path PATH]\n"
"                  [--log DEST] [--log-format logfmt|json] [--log-level LEVEL]\n"
"                  [--max-body BYTES] [--max-header-bytes BYTES] [--max-headers N]\n"
"                  [--max-json-values N] [--secret-file FILE]... [--statsd HOST:PORT]\n"
"                  [--timeout SECONDS]\n"
"       kwh-verify --help | --version\n"
"The secret may also come from the WEBHOOK_SECRET environment variable.\n";

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "allow-sha1", no_argument, NULL, '1' },
		{ "budget", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ "insecure", no_argument, NULL, 'k' },
		{ "liveness-path", required_argument, NULL, 'a' },
		{ "log", required_argument, NULL, 'l' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "log-format", required_argument, NULL, KWH_CLI_LOG_FORMAT },
		{ "max-body", required_argument, NULL, 'B' },
		{ "max-header-bytes", required_argument, NULL, 'H' },
		{ "max-headers", required_argument, NULL, 'N' },
		{ "max-json-values", required_argument, NULL, 'J' },
		{ "secret-file", required_argument, NULL, 's' },
		{ "statsd", required_argument, NULL, KWH_CLI_STATSD },
		{ "timeout", required_argument, NULL, 't' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct kwh_verify_opts o = { .limits = KWH_HTTP_LIMITS_DEFAULT, .budget_ms = KWH_VERIFY_BUDGET_MS,
		.max_json_values = KWH_VERIFY_MAX_JSON_VALUES };
	struct kwh_verify_out out;
	int c, st;
	long long t0;

	kwh_err_init(argv[0]);
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case '1': o.allow_sha1 = 1; break;
		case 'b': o.budget_ms = kwh_cli_seconds_ms("--budget", optarg); break;
		case 'h': kwh_cli_help(usage);
		case 'k': o.insecure = 1; break;
		case 'a': o.liveness_path = kwh_cli_liveness_path(optarg); break;
		case 'l': kwh_cli_log(optarg); break;
		case 'L': kwh_cli_log_level(optarg); break;
		case KWH_CLI_LOG_FORMAT: kwh_cli_log_format(optarg); break;
		case KWH_CLI_STATSD: kwh_metrics_statsd(optarg); break;
		case 'B': o.limits.max_body = kwh_cli_size("--max-body", optarg); break;
		case 'H': o.limits.max_header_bytes = kwh_cli_size("--max-header-bytes", optarg); break;
		case 'N': o.limits.max_headers = kwh_cli_size("--max-headers", optarg); break;
		case 'J': o.max_json_values = kwh_cli_size("--max-json-values", optarg); break;
		case 's': kwh_cli_secret_file(&o.secrets, optarg); break;
		case 't': o.limits.timeout_ms = kwh_cli_seconds_ms("--timeout", optarg); break;
		case 'V': kwh_cli_version();
		default: kwh_usage_error("unknown option");
		}
	}
	if (optind < argc)
		kwh_usage_error("unexpected argument '%s'", argv[optind]);
	kwh_cli_secret_env(&o.secrets, "WEBHOOK_SECRET");
	if (o.secrets.n == 0 && !o.insecure)
		kwh_die(KWH_EXIT_USAGE, "no secret: give --secret-file FILE or WEBHOOK_SECRET "
		    "(or --insecure to accept unsigned deliveries)");
	kwh_pledge("stdio");

	t0 = kwh_metrics_clock();
	st = kwh_verify(&o, 0, &out);
	kwh_metrics_stage(KWH_STAGE_VERIFY, t0);
	kwh_secrets_wipe(&o.secrets);
	if (kwh_verify_write(&out, 1) < 0)
		kwh_die(KWH_EXIT_SYSTEM, "cannot write to stdout: %s", strerror(errno));
	kwh_verify_out_release(&out);
	return st >= 400 ? KWH_EXIT_REFUSED : KWH_EXIT_OK;
}
