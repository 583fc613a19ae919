/* kwh-respond — envelopes on stdin, one HTTP/1.1 response each on stdout. */
#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "cli.h"
#include "env.h"
#include "err.h"
#include "metrics.h"
#include "respond.h"
#include "spool.h"

static const char usage[] =
"usage: kwh-respond [--log DEST] [--log-format logfmt|json] [--log-level LEVEL]\n"
"                   [--spool DIR]\n"
"                   [--statsd HOST:PORT]\n"
"       kwh-respond --help | --version\n";

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "log", required_argument, NULL, 'l' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "log-format", required_argument, NULL, KWH_CLI_LOG_FORMAT },
		{ "spool", required_argument, NULL, 's' },
		{ "statsd", required_argument, NULL, KWH_CLI_STATSD },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct kwh_env_reader *r;
	const char *spool = NULL;
	int c, rc, got = 0, code = KWH_EXIT_OK, spool_failed = 0;
	long long t0;
	jv env;

	kwh_err_init(argv[0]);
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'h': kwh_cli_help(usage);
		case 'l': kwh_cli_log(optarg); break;
		case 'L': kwh_cli_log_level(optarg); break;
		case KWH_CLI_LOG_FORMAT: kwh_cli_log_format(optarg); break;
		case KWH_CLI_STATSD: kwh_metrics_statsd(optarg); break;
		case 's': spool = optarg; break;
		case 'V': kwh_cli_version();
		default: kwh_usage_error("unknown option");
		}
	}
	if (optind < argc)
		kwh_usage_error("unexpected argument '%s'", argv[optind]);
	kwh_pledge(spool ? "stdio rpath wpath cpath flock" : "stdio");
	if (!(r = kwh_env_reader_new(0)))
		kwh_die(KWH_EXIT_SYSTEM, "out of memory");
	for (;;) {
		struct kwh_buf out = KWH_BUF_INIT;

		rc = kwh_env_next(r, &env);
		if (rc == 0 && got)
			break;
		if (rc == 0)
			env = kwh_env_respond(kwh_env_new(), 500,
			    "no envelope: an earlier stage produced nothing");
		got = 1;
		/* Only a 500 of its own (no input, or not JSON) is a failure here. */
		if (rc <= 0)
			code = KWH_EXIT_REFUSED;
		/* A verified delivery that failed for a cause that may pass is kept. */
		t0 = kwh_metrics_clock();
		if (spool && rc > 0)
			env = kwh_spool_respond(spool, env, &spool_failed);
		kwh_metrics_delivery(jv_copy(env), kwh_respond(jv_copy(env), &out));
		jv_free(env);
		if (!out.data || kwh_write_all(1, out.data, out.len) < 0)
			kwh_die(KWH_EXIT_SYSTEM, "cannot write the response: %s", strerror(errno));
		kwh_buf_release(&out);
		kwh_metrics_stage(KWH_STAGE_RESPOND, t0);
		if (rc <= 0)
			break;
	}
	kwh_env_reader_free(r);
	return spool_failed ? KWH_EXIT_SYSTEM : code;
}
