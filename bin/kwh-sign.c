/* kwh-sign — a payload in, a complete signed webhook request out. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "sign.h"

static const char usage[] =
"usage: kwh-sign [--chunked] [--delivery ID] [--event NAME] [--form]\n"
"                [--header 'NAME: VALUE']... [--host HOST] [--no-sha1] [--path PATH]\n"
"                [--secret-file FILE] [FILE]\n"
"       kwh-sign --help | --version\n"
"The secret may also come from the WEBHOOK_SECRET environment variable.\n";

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "chunked", no_argument, NULL, 'c' },
		{ "delivery", required_argument, NULL, 'd' },
		{ "event", required_argument, NULL, 'e' },
		{ "form", no_argument, NULL, 'f' },
		{ "header", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ "host", required_argument, NULL, 'o' },
		{ "no-sha1", no_argument, NULL, '1' },
		{ "path", required_argument, NULL, 'p' },
		{ "secret-file", required_argument, NULL, 's' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct kwh_sign_opts o = { .event = "push", .host = "localhost", .path = "/", .sha1 = 1 };
	struct kwh_secrets secrets = KWH_SECRETS_INIT;
	struct kwh_buf body = KWH_BUF_INIT, out = KWH_BUF_INIT;
	const char *file = "-";
	int c;

	kwh_err_init(argv[0]);
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': o.chunked = 1; break;
		case 'd': o.delivery = optarg; break;
		case 'e': o.event = optarg; break;
		case 'f': o.form = 1; break;
		case 'H':
			if (!strchr(optarg, ':') || strpbrk(optarg, "\r\n"))
				kwh_usage_error("--header: '%s' is not 'Name: value' on one line", optarg);
			o.headers = realloc(o.headers, (o.nheaders + 1) * sizeof *o.headers);
			if (!o.headers)
				kwh_die(KWH_EXIT_SYSTEM, "out of memory");
			o.headers[o.nheaders++] = optarg;
			break;
		case 'h': kwh_cli_help(usage);
		case 'o': o.host = optarg; break;
		case '1': o.sha1 = 0; break;
		case 'p': o.path = optarg; break;
		case 's':
			if (secrets.n)
				kwh_usage_error("--secret-file: one secret signs a request");
			kwh_cli_secret_file(&secrets, optarg);
			break;
		case 'V': kwh_cli_version();
		default: kwh_usage_error("unknown option");
		}
	}
	if (argc - optind > 1)
		kwh_usage_error("unexpected argument '%s'", argv[optind + 1]);
	if (optind < argc)
		file = argv[optind];
	if (strpbrk(o.event, "\r\n ") || strpbrk(o.host, "\r\n ") || strpbrk(o.path, "\r\n ") ||
	    (o.delivery && strpbrk(o.delivery, "\r\n ")))
		kwh_usage_error("--event, --host, --path and --delivery take one word each");
	if (secrets.n == 0)
		kwh_cli_secret_env(&secrets, "WEBHOOK_SECRET");
	else
		unsetenv("WEBHOOK_SECRET");
	if (secrets.n == 0)
		kwh_die(KWH_EXIT_USAGE, "no secret: give --secret-file FILE or WEBHOOK_SECRET");
	kwh_pledge("stdio rpath");

	if ((strcmp(file, "-") ? kwh_buf_read_file(&body, file) : kwh_buf_read_fd(&body, 0)) < 0)
		kwh_die(KWH_EXIT_SYSTEM, "cannot read '%s': %s", file, strerror(errno));
	if (kwh_sign_request(&out, &o, secrets.v[0].data, secrets.v[0].len,
	    body.data ? body.data : "", body.len) < 0)
		kwh_die(KWH_EXIT_SYSTEM, "cannot build the request: out of memory");
	kwh_secrets_wipe(&secrets);
	if (kwh_write_all(1, out.data, out.len) < 0)
		kwh_die(KWH_EXIT_SYSTEM, "cannot write to stdout: %s", strerror(errno));
	kwh_buf_release(&out);
	kwh_buf_release(&body);
	free(o.headers);
	return KWH_EXIT_OK;
}
