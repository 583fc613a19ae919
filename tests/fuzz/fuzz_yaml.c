/* fuzz_yaml.c — the YAML to JSON conversion (lib/yaml.h):
 * kwh_yaml_manifests and kwh_yaml_document on the same bytes, with small
 * limits (the first byte picks one of two sets) so that the depth, node
 * and size bounds are reached often.
 *
 * Checked: return values are those of the enum; a failure leaves *out
 * untouched and says why in err; a result holds only finite numbers, is
 * no deeper than max_depth, and (kwh_yaml_document) has no more values
 * than max_nodes; every manifest is an object with a non-empty string kind. */
#include "fuzz.h"
#include "err.h"
#include "yaml.h"

#include <math.h>
#include <jv.h>

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	kwh_log_open("none");
	return 0;
}

/* Depth (outermost collection 1) and number of values (keys included). */
static void
walk(jv v, unsigned depth, unsigned *maxdepth, size_t *nodes)
{
	(*nodes)++;
	switch (jv_get_kind(v)) {
	case JV_KIND_NUMBER:
		FUZZ_CHECK(isfinite(jv_number_value(v)));
		break;
	case JV_KIND_ARRAY:
		if (depth + 1 > *maxdepth)
			*maxdepth = depth + 1;
		jv_array_foreach(v, i, e) {
			walk(e, depth + 1, maxdepth, nodes);
			jv_free(e);
		}
		break;
	case JV_KIND_OBJECT:
		if (depth + 1 > *maxdepth)
			*maxdepth = depth + 1;
		jv_object_foreach(v, k, e) {
			(*nodes)++;
			jv_free(k);
			walk(e, depth + 1, maxdepth, nodes);
			jv_free(e);
		}
		break;
	case JV_KIND_INVALID:
		FUZZ_CHECK(!"invalid value in a result");
		break;
	default:
		break;
	}
}

static void
check_err(int rc, const char *err, size_t errlen)
{
	FUZZ_CHECK(rc == KWH_YAML_EINVALID || rc == KWH_YAML_ELIMIT ||
	    rc == KWH_YAML_ENOTOBJ || rc == KWH_YAML_ENOMEM);
	FUZZ_CHECK(memchr(err, '\0', errlen) != NULL);
	FUZZ_CHECK(err[0] != '\0');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct kwh_yaml_limits limits[] = {
		{ 16 * 1024, 12, 2000 },
		{ 1024 * 1024, 100, 100000 },
	};
	const struct kwh_yaml_limits *lim;
	const char *text = (const char *)data + 1;
	size_t len = size ? size - 1 : 0;
	char err[256];
	jv out;
	int rc;

	if (size < 1)
		return 0;
	lim = &limits[data[0] & 1];

	out = jv_invalid();
	memset(err, 'x', sizeof err);
	rc = kwh_yaml_manifests(&out, text, len, lim, err, sizeof err);
	if (rc == KWH_YAML_OK) {
		unsigned maxdepth = 0;
		size_t nodes = 0;

		FUZZ_CHECK(jv_get_kind(out) == JV_KIND_ARRAY);
		jv_array_foreach(out, i, o) {
			jv k;
			FUZZ_CHECK(jv_get_kind(o) == JV_KIND_OBJECT);
			k = jv_object_get(jv_copy(o), jv_string("kind"));
			FUZZ_CHECK(jv_get_kind(k) == JV_KIND_STRING && jv_string_length_bytes(jv_copy(k)) > 0);
			jv_free(k);
			maxdepth = 0;
			walk(o, 0, &maxdepth, &nodes);
			FUZZ_CHECK(maxdepth <= lim->max_depth);
			jv_free(o);
		}
		jv_free(out);
	} else {
		check_err(rc, err, sizeof err);
		FUZZ_CHECK(jv_get_kind(out) == JV_KIND_INVALID);
	}

	out = jv_invalid();
	memset(err, 'x', sizeof err);
	rc = kwh_yaml_document(&out, text, len, lim, err, sizeof err);
	if (rc == KWH_YAML_OK) {
		unsigned maxdepth = 0;
		size_t nodes = 0;

		FUZZ_CHECK(jv_is_valid(out));
		walk(out, 0, &maxdepth, &nodes);
		jv_free(out);
		FUZZ_CHECK(maxdepth <= lim->max_depth);
		FUZZ_CHECK(nodes <= lim->max_nodes);
	} else {
		check_err(rc, err, sizeof err);
		FUZZ_CHECK(rc != KWH_YAML_ENOTOBJ);
		FUZZ_CHECK(jv_get_kind(out) == JV_KIND_INVALID);
	}
	return 0;
}
