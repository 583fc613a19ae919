#include "json.h"

#include <stdio.h>
#include <string.h>

#define WS(c) ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r')

struct scan {
	const unsigned char *p, *end, *start;
	char *err;
	size_t errlen;
};

static int
fail(struct scan *s, const char *what)
{
	snprintf(s->err, s->errlen, "%s at byte %zu", what, (size_t)(s->p - s->start));
	return -1;
}

static int
hex4(const unsigned char *p)
{
	for (int i = 0; i < 4; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || ((p[i] | 0x20) >= 'a' && (p[i] | 0x20) <= 'f')))
			return 0;
	return 1;
}

static int
string(struct scan *s)
{
	const unsigned char *p = s->p + 1, *end = s->end;

	for (;;) {
		/* Fast path over plain ASCII. */
		while (p < end && *p >= 0x20 && *p != '"' && *p != '\\' && *p < 0x80)
			p++;
		if (p >= end) {
			s->p = p;
			return fail(s, "unterminated string");
		}
		if (*p == '"') {
			s->p = p + 1;
			return 0;
		}
		if (*p == '\\') {
			if (p + 1 >= end)
				break;
			switch (p[1]) {
			case '"': case '\\': case '/': case 'b': case 'f':
			case 'n': case 'r': case 't':
				p += 2;
				continue;
			case 'u':
				if (end - p < 6 || !hex4(p + 2)) {
					s->p = p;
					return fail(s, "bad \\u escape");
				}
				if ((p[2] | 0x20) == 'd' && strchr("89ab", p[3] | 0x20)) {
					/* a high surrogate must be followed by a low one */
					if (end - p < 12 || p[6] != '\\' || p[7] != 'u' || !hex4(p + 8) ||
					    (p[8] | 0x20) != 'd' || !((p[9] | 0x20) >= 'c' && (p[9] | 0x20) <= 'f')) {
						s->p = p;
						return fail(s, "unpaired surrogate in \\u escape");
					}
					p += 6;
				}
				p += 6;
				continue;
			default:
				s->p = p;
				return fail(s, "bad escape in string");
			}
		}
		if (*p < 0x20) {
			s->p = p;
			return fail(s, "control character in string");
		}
		/* UTF-8 sequence. */
		{
			unsigned c = *p, cp;
			int len;
			if (c >= 0xc2 && c <= 0xdf)
				len = 2, cp = c & 0x1f;
			else if (c >= 0xe0 && c <= 0xef)
				len = 3, cp = c & 0x0f;
			else if (c >= 0xf0 && c <= 0xf4)
				len = 4, cp = c & 0x07;
			else {
				s->p = p;
				return fail(s, "invalid UTF-8");
			}
			if (end - p < len) {
				s->p = p;
				return fail(s, "invalid UTF-8");
			}
			for (int i = 1; i < len; i++) {
				if ((p[i] & 0xc0) != 0x80) {
					s->p = p;
					return fail(s, "invalid UTF-8");
				}
				cp = cp << 6 | (p[i] & 0x3f);
			}
			if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
			    (len == 4 && (cp < 0x10000 || cp > 0x10ffff))) {
				s->p = p;
				return fail(s, "invalid UTF-8");
			}
			p += len;
		}
	}
	s->p = p;
	return fail(s, "unterminated string");
}

static int
number(struct scan *s)
{
	const unsigned char *p = s->p, *end = s->end;

	if (p < end && *p == '-')
		p++;
	if (p < end && *p == '0')
		p++;
	else if (p < end && *p >= '1' && *p <= '9')
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	else
		goto bad;
	if (p < end && *p == '.') {
		p++;
		if (p >= end || *p < '0' || *p > '9')
			goto bad;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || *p < '0' || *p > '9')
			goto bad;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	s->p = p;
	return 0;
bad:
	s->p = p;
	return fail(s, "bad number");
}

static int
literal(struct scan *s, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n))
		return fail(s, "unexpected character");
	s->p += n;
	return 0;
}

int
kwh_json_validate(const char *data, size_t n, char *kind, char *err, size_t errlen)
{
	return kwh_json_validate_n(data, n, 0, NULL, kind, err, errlen);
}

int
kwh_json_validate_n(const char *data, size_t n, size_t max_values, size_t *values,
    char *kind, char *err, size_t errlen)
{
	struct scan s = { (const unsigned char *)data, (const unsigned char *)data + n,
		(const unsigned char *)data, err, errlen };
	char stack[KWH_JSON_MAX_DEPTH];	/* '{' or '[' */
	int depth = 0;
	size_t count = 0;

	err[0] = '\0';
	while (s.p < s.end && WS(*s.p))
		s.p++;
	if (s.p >= s.end)
		return fail(&s, "no JSON value");
	if (kind)
		*kind = (char)*s.p;
	for (;;) {
		/* A value is expected here. */
		while (s.p < s.end && WS(*s.p))
			s.p++;
		if (s.p >= s.end)
			return fail(&s, "unexpected end of input");
		count++;
		if (values)
			*values = count;
		if (max_values && count > max_values) {
			snprintf(err, errlen, "more than %zu JSON values at byte %zu", max_values,
			    (size_t)(s.p - s.start));
			return -2;
		}
		switch (*s.p) {
		case '{':
		case '[':
			if (depth == KWH_JSON_MAX_DEPTH)
				return fail(&s, "nesting too deep");
			stack[depth++] = (char)*s.p++;
			while (s.p < s.end && WS(*s.p))
				s.p++;
			if (s.p < s.end && *s.p == (stack[depth - 1] == '{' ? '}' : ']')) {
				s.p++;
				depth--;
				goto after_value;
			}
			if (stack[depth - 1] == '{')
				goto key;
			continue;
		case '"':
			if (string(&s) < 0)
				return -1;
			break;
		case 't':
			if (literal(&s, "true") < 0)
				return -1;
			break;
		case 'f':
			if (literal(&s, "false") < 0)
				return -1;
			break;
		case 'n':
			if (literal(&s, "null") < 0)
				return -1;
			break;
		default:
			if (*s.p == '-' || (*s.p >= '0' && *s.p <= '9')) {
				if (number(&s) < 0)
					return -1;
				break;
			}
			return fail(&s, "unexpected character");
		}
after_value:
		while (s.p < s.end && WS(*s.p))
			s.p++;
		if (depth == 0) {
			if (s.p != s.end)
				return fail(&s, "trailing data after the JSON value");
			return 0;
		}
		if (s.p >= s.end)
			return fail(&s, "unexpected end of input");
		if (*s.p == ',') {
			s.p++;
			if (stack[depth - 1] == '[')
				continue;
			goto key;
		}
		if (*s.p == (stack[depth - 1] == '{' ? '}' : ']')) {
			s.p++;
			depth--;
			goto after_value;
		}
		return fail(&s, stack[depth - 1] == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
key:
		while (s.p < s.end && WS(*s.p))
			s.p++;
		if (s.p >= s.end || *s.p != '"')
			return fail(&s, "expected a string key");
		if (string(&s) < 0)
			return -1;
		while (s.p < s.end && WS(*s.p))
			s.p++;
		if (s.p >= s.end || *s.p != ':')
			return fail(&s, "expected ':'");
		s.p++;
	}
}
