/*
 * kwh-annotate-programs — test driver: runs the kwh-annotate stage with
 * the given --events/--filter/--ignore-ref/--set over stdin, as the tool
 * does, then prints to stderr how many jq programs the library compiled:
 * "programs=N".  Exit code as kwh_env_loop.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "annotate.h"
#include "env.h"
#include "err.h"

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "events", required_argument, NULL, 'e' },
		{ "filter", required_argument, NULL, 'f' },
		{ "ignore-ref", required_argument, NULL, 'i' },
		{ "set", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	struct kwh_annotate_opts o = { 0 };
	const char **filters = calloc((size_t)argc, sizeof *filters);
	const char **sets = calloc((size_t)argc, sizeof *sets);
	char err[1024];
	int c, code;

	kwh_err_init(argv[0]);
	kwh_log_open("none");
	if (!filters || !sets)
		return 111;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'e': o.events = optarg; break;
		case 'f': filters[o.nfilters++] = optarg; break;
		case 'i': o.ignore_ref = optarg; break;
		case 's': sets[o.nsets++] = optarg; break;
		default: return 100;
		}
	}
	o.filters = filters;
	o.sets = sets;
	if (kwh_annotate_init(&o, err, sizeof err) < 0) {
		fprintf(stderr, "%s\n", err);
		return 100;
	}
	code = kwh_env_loop(kwh_annotate, &o);
	fprintf(stderr, "programs=%d\n", kwh_annotate_programs(&o));
	kwh_annotate_release(&o);
	free(filters);
	free(sets);
	return code;
}
