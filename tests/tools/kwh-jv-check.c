/*
 * kwh-jv-check MODE — drives jq's value API (<jv.h>) over stdin and
 * prints what it got, one result per line.  Built twice: linked with
 * libjq (kwh-jv-check) and with lib/jv.c (kwh-jv-check-own);
 * tests/0500-jv-libjq.bats runs both over the same input and compares.
 *
 *   parse N    jv_parser over stdin fed N bytes at a time (partial
 *              buffers, as lib/env.c feeds it); each value printed plain
 *              and sorted, then the error that stops it, if any
 *   records    stdin is records separated by NUL bytes; each is parsed
 *              as by "parse", fed 1, 2, 3, 5, 8, 64 or 65536 bytes at a
 *              time in turn
 *   lines      each line: jv_parse_sized, and the line as a string
 *              (jv_string_sized, _append_buf, _fmt, _length_bytes)
 *   numbers    each line a C floating-point literal (hex allowed): the
 *              number jq prints for that double
 *   api        a fixed sequence over arrays, objects, invalid values and
 *              sharing (a change to a copy must not show in the original)
 */
#include <jv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
out(const char *tag, jv v, int flags)
{
	fputs(tag, stdout);
	jv_dumpf(v, stdout, flags);
	putchar('\n');
}

static void
msg(const char *tag, jv inv)
{
	jv m = jv_invalid_get_msg(inv);

	printf("%s%s %s\n", tag, jv_kind_name(jv_get_kind(m)),
	    jv_get_kind(m) == JV_KIND_STRING ? jv_string_value(m) : "-");
	jv_free(m);
}

static char *
slurp(size_t *n)
{
	size_t cap = 1 << 16;
	char *b = malloc(cap + 1);
	size_t r;

	*n = 0;
	while (b && (r = fread(b + *n, 1, cap - *n, stdin)) > 0) {
		*n += r;
		if (*n == cap && !(b = realloc(b, (cap *= 2) + 1)))
			break;
	}
	if (!b)
		exit(111);
	b[*n] = '\0';
	return b;
}

static void
parse(const char *b, size_t n, int chunk)
{
	jv_parser *p = jv_parser_new(0);
	size_t off = 0;
	int eof = 0;

	for (;;) {
		jv v = jv_parser_next(p);
		if (jv_is_valid(v)) {
			out("V ", jv_copy(v), 0);
			out("S ", v, JV_PRINT_SORTED);
			continue;
		}
		if (jv_invalid_has_msg(jv_copy(v))) {
			msg("E ", v);
			break;
		}
		jv_free(v);
		if (jv_parser_remaining(p) > 0) {
			puts("R");
			continue;
		}
		if (eof)
			break;
		if (off >= n) {
			eof = 1;
			jv_parser_set_buf(p, "", 0, 0);
		} else {
			size_t k = n - off < (size_t)chunk ? n - off : (size_t)chunk;
			jv_parser_set_buf(p, b + off, (int)k, 1);
			off += k;
		}
	}
	jv_parser_free(p);
}

static void
records(const char *b, size_t n)
{
	static const int chunks[] = { 1, 2, 3, 5, 8, 64, 65536 };
	const char *end = b + n, *r = b, *z;
	int i = 0;

	while (r < end) {
		z = memchr(r, '\0', (size_t)(end - r));
		if (!z)
			z = end;
		printf("# %d\n", i);
		parse(r, (size_t)(z - r), chunks[i % 7]);
		r = z + 1;
		i++;
	}
}

static void
lines(char *b)
{
	char *line, *save = NULL;

	for (line = strtok_r(b, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		int len = (int)strlen(line);
		jv v = jv_parse_sized(line, len), s;

		if (jv_is_valid(v))
			out("P ", v, JV_PRINT_SORTED);
		else
			msg("P! ", v);
		s = jv_string_sized(line, len);
		printf("L %d ", jv_string_length_bytes(jv_copy(s)));
		out("", jv_copy(s), 0);
		out("A ", jv_string_append_buf(jv_string("<"), line, len), 0);
		out("C ", jv_string_concat(jv_string_append_str(jv_copy(s), ">"), jv_copy(s)), 0);
		out("F ", jv_string_fmt("%s|%d|%.3f", line, len, len / 7.0), 0);
		out("K ", jv_object_set(jv_object(), s, jv_number(len)), 0);
	}
}

static void
numbers(char *b)
{
	char *line, *save = NULL;

	for (line = strtok_r(b, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		jv a = jv_array_append(jv_array(), jv_number(strtod(line, NULL)));
		out("", a, 0);
	}
}

static void
api(void)
{
	jv a = jv_array(), b, o, o2, k, inv;
	int i;

	a = jv_array_set(a, 3, jv_string("x"));	/* pads with null */
	a = jv_array_append(a, jv_true());
	b = jv_copy(a);
	b = jv_array_set(b, -1, jv_false());
	out("a ", jv_copy(a), 0);
	out("b ", jv_copy(b), 0);
	printf("len %d %d\n", jv_array_length(jv_copy(a)), jv_array_length(jv_copy(b)));
	out("get ", jv_array_get(jv_copy(a), 3), 0);
	printf("get-out %s %s\n", jv_kind_name(jv_get_kind(jv_array_get(jv_copy(a), 9))),
	    jv_kind_name(jv_get_kind(jv_array_get(jv_copy(a), -1))));
	msg("neg ", jv_array_set(jv_copy(a), -9, jv_null()));
	out("cat ", jv_array_concat(jv_copy(a), b), 0);

	o = jv_object();
	for (i = 0; i < 40; i++)
		o = jv_object_set(o, jv_string_fmt("k%d", (i * 7) % 40), jv_number(i));
	o = jv_object_set(o, jv_string("k3"), jv_string("again"));
	o2 = jv_copy(o);
	o2 = jv_object_delete(o2, jv_string("k0"));
	o2 = jv_object_delete(o2, jv_string("absent"));
	o2 = jv_object_set(o2, jv_string("k0"), jv_null());
	out("o ", jv_copy(o), 0);
	out("o2 ", jv_copy(o2), 0);
	out("o2s ", jv_copy(o2), JV_PRINT_SORTED);
	printf("has %d %d len %d\n", jv_object_has(jv_copy(o), jv_string("k39")),
	    jv_object_has(jv_copy(o), jv_string("k40")), jv_object_length(jv_copy(o)));
	out("get ", jv_object_get(jv_copy(o), jv_string("k3")), 0);
	printf("get-absent %s\n", jv_kind_name(jv_get_kind(jv_object_get(jv_copy(o), jv_string("zz")))));
	out("merge ", jv_object_merge(jv_copy(o2), jv_object_set(jv_object_set(jv_object(),
	    jv_string("k5"), jv_string("m")), jv_string("new"), jv_copy(a))), 0);
	for (i = jv_object_iter(o2); jv_object_iter_valid(o2, i); i = jv_object_iter_next(o2, i)) {
		k = jv_object_iter_key(o2, i);
		printf("iter %s ", jv_string_value(k));
		out("", jv_object_iter_value(o2, i), 0);
		jv_free(k);
	}
	k = jv_object();
	printf("iter-empty %d\n", jv_object_iter_valid(k, jv_object_iter(k)));
	jv_free(k);
	jv_free(o);
	jv_free(o2);
	jv_free(a);

	inv = jv_invalid();
	printf("inv %d %s\n", jv_invalid_has_msg(jv_copy(inv)), jv_kind_name(jv_get_kind(inv)));
	printf("inv-null-msg %d\n", jv_invalid_has_msg(jv_invalid_with_msg(jv_null())));
	msg("inv-msg ", jv_invalid_with_msg(jv_string("m")));
	msg("inv-obj ", jv_invalid_with_msg(jv_object()));
	for (i = JV_KIND_INVALID; i <= JV_KIND_OBJECT; i++)
		printf("kind %d %s\n", i, jv_kind_name((jv_kind)i));
	out("bool ", jv_array_append(jv_array_append(jv_array(), jv_bool(1)), jv_bool(0)), 0);
	out("dump ", jv_dump_string(jv_parse("{\"b\":[1,{\"d\":2,\"c\":3}],\"a\":\"\\u00e9\"}"), JV_PRINT_SORTED), 0);
	msg("parse-empty ", jv_parse(""));
	msg("parse-two ", jv_parse("1 2"));
	msg("parse-bad ", jv_parse("[1,"));
}

int
main(int argc, char **argv)
{
	size_t n;
	char *b;

	if (argc < 2)
		return 100;
	if (!strcmp(argv[1], "api")) {
		api();
		return 0;
	}
	b = slurp(&n);
	if (!strcmp(argv[1], "parse"))
		parse(b, n, argc > 2 ? atoi(argv[2]) : 65536);
	else if (!strcmp(argv[1], "records"))
		records(b, n);
	else if (!strcmp(argv[1], "lines"))
		lines(b);
	else if (!strcmp(argv[1], "numbers"))
		numbers(b);
	else
		return 100;
	free(b);
	return 0;
}
