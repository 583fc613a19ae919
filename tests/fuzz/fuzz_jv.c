/* fuzz_jv.c — lib/jv.c (jq's value API without libjq) on arbitrary bytes.
 *
 * The first byte picks how many bytes the parser is fed at a time, as
 * lib/env.c feeds it from a pipe; every value found is printed plain and
 * sorted, and the rest of the input also goes through jv_parse_sized and
 * the string constructors.  Invariants: what is printed parses back to
 * a value that prints the same, and every string printed is valid UTF-8.
 * (That lib/jv.c agrees with libjq is tests/0500-jv-libjq.bats.)  Linked
 * with lib/jv.o alone, not libjq (tests/fuzz/fuzz.mk). */
#include "fuzz.h"

#include <jv.h>


static int
valid_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0, k, len;
	unsigned c;

	while (i < n) {
		c = s[i];
		len = c < 0x80 ? 1 : c >= 0xC2 && c < 0xE0 ? 2 : c >= 0xE0 && c < 0xF0 ? 3 :
		    c >= 0xF0 && c < 0xF5 ? 4 : 0;
		if (!len || i + len > n)
			return 0;
		for (k = 1; k < len; k++)
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
		i += len;
	}
	return 1;
}

static void
round_trip(jv v, int flags)
{
	jv s = jv_dump_string(jv_copy(v), flags), back, s2;
	const char *t = jv_string_value(s);
	int n = jv_string_length_bytes(jv_copy(s));

	FUZZ_CHECK(valid_utf8((const unsigned char *)t, (size_t)n));
	back = jv_parse_sized(t, n);
	FUZZ_CHECK(jv_is_valid(back));
	s2 = jv_dump_string(back, flags);
	FUZZ_CHECK(jv_string_length_bytes(jv_copy(s2)) == n &&
	    !memcmp(jv_string_value(s2), t, (size_t)n));
	jv_free(s2);
	jv_free(s);
	jv_free(v);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data + 1;
	size_t n = size ? size - 1 : 0, off = 0, chunk;
	jv_parser *p;
	int eof = 0;

	if (!size || n > 1 << 20)
		return 0;
	chunk = (size_t)data[0] % 16 + 1;
	if (data[0] >= 0xF0)
		chunk = n + 1;
	p = jv_parser_new(0);
	for (;;) {
		jv v = jv_parser_next(p);
		if (jv_is_valid(v)) {
			round_trip(jv_copy(v), 0);
			round_trip(v, JV_PRINT_SORTED);
			continue;
		}
		if (jv_invalid_has_msg(jv_copy(v))) {
			jv m = jv_invalid_get_msg(v);
			FUZZ_CHECK(jv_get_kind(m) == JV_KIND_STRING);
			jv_free(m);
			break;
		}
		jv_free(v);
		if (jv_parser_remaining(p) > 0)
			continue;
		if (eof)
			break;
		if (off >= n) {
			eof = 1;
			jv_parser_set_buf(p, "", 0, 0);
		} else {
			size_t k = n - off < chunk ? n - off : chunk;
			jv_parser_set_buf(p, in + off, (int)k, 1);
			off += k;
		}
	}
	jv_parser_free(p);
	{
		jv v = jv_parse_sized(in, (int)n), s;
		if (jv_is_valid(v))
			round_trip(v, 0);
		else
			jv_free(v);
		s = jv_string_sized(in, (int)n);
		round_trip(jv_string_append_buf(s, in, (int)n), 0);
	}
	return 0;
}
