/* kwh-log-line — test driver for lib/err's event log: writes one log line
 * (level warn, status 400) for DELIVERY and MESSAGE, taken byte for byte
 * from argv, in FORMAT (logfmt or json), to stderr.
 * usage: kwh-log-line FORMAT DELIVERY MESSAGE */
#include <stdio.h>

#include "err.h"

int
main(int argc, char **argv)
{
	kwh_err_init(argv[0]);
	if (argc != 4 || kwh_log_format(argv[1]) < 0) {
		fprintf(stderr, "usage: kwh-log-line logfmt|json DELIVERY MESSAGE\n");
		return KWH_EXIT_USAGE;
	}
	kwh_log(KWH_LOG_WARN, argv[2], 400, "%s", argv[3]);
	return 0;
}
