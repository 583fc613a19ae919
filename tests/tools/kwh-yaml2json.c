/* kwh-yaml2json — test driver for lib/yaml: prints the JSON kubectl would
 * see for a YAML file, one object after another as `kubectl patch --local
 * -o json` prints them (or, with -d, the single document as kubeconfig
 * loading reads it).  Errors go to stderr: exit 1 for YAML that kwh
 * refuses (invalid, over a limit, not an object), 100 usage, 111 I/O.
 * usage: kwh-yaml2json [-d] [-b max-bytes] [-D max-depth] [-n max-nodes] [FILE] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "yaml.h"

static const char *prog = "kwh-yaml2json";

static size_t
num(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (!*s || *end) {
		fprintf(stderr, "%s: bad number '%s'\n", prog, s);
		exit(100);
	}
	return (size_t)v;
}

int
main(int argc, char **argv)
{
	struct kwh_yaml_limits lim = KWH_YAML_LIMITS_DEFAULT;
	const char *path = "-";
	char err[512], *data = NULL;
	size_t len = 0, cap = 0, n;
	int c, doc = 0, rc, i;
	FILE *f;
	jv out;

	while ((c = getopt(argc, argv, "b:dD:n:")) != -1) {
		switch (c) {
		case 'b': lim.max_bytes = num(optarg); break;
		case 'd': doc = 1; break;
		case 'D': lim.max_depth = (unsigned)num(optarg); break;
		case 'n': lim.max_nodes = num(optarg); break;
		default:
			fprintf(stderr, "usage: %s [-d] [-b max-bytes] [-D max-depth] "
					"[-n max-nodes] [FILE]\n", prog);
			return 100;
		}
	}
	if (optind < argc)
		path = argv[optind];
	f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "%s: fatal: unable to open '%s'\n", prog, path);
		return 111;
	}
	do {
		if (len == cap && !(data = realloc(data, cap = cap ? cap * 2 : 65536))) {
			fprintf(stderr, "%s: fatal: out of memory\n", prog);
			return 111;
		}
		n = fread(data + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	if (ferror(f)) {
		fprintf(stderr, "%s: fatal: unable to read '%s'\n", prog, path);
		return 111;
	}
	if (f != stdin)
		fclose(f);
	rc = doc ? kwh_yaml_document(&out, data, len, &lim, err, sizeof err) :
		kwh_yaml_manifests(&out, data, len, &lim, err, sizeof err);
	free(data);
	if (rc < 0) {
		fprintf(stderr, "%s: '%s': %s (%d)\n", prog, path, err, rc);
		return 1;
	}
	if (doc)
		out = jv_array_append(jv_array(), out);
	for (i = 0; i < jv_array_length(jv_copy(out)); i++) {
		jv_dumpf(jv_array_get(jv_copy(out), i), stdout,
				JV_PRINT_PRETTY | JV_PRINT_SORTED | JV_PRINT_INDENT_FLAGS(4));
		putchar('\n');
	}
	jv_free(out);
	return fflush(stdout) == 0 ? 0 : 111;
}
