/* yaml.c — YAML to jv exactly as kubectl reads it.
 *
 * kubectl cuts a file into documents at lines starting with "---"
 * (apimachinery's YAMLReader; anything but blanks or a comment after the
 * dashes is an error), reads a file whose first non-blank byte is '{' as a
 * JSON stream, converts each piece with sigs.k8s.io/yaml (go-yaml v2, first
 * YAML document of the piece only, then encoding/json), and decodes the
 * JSON into unstructured objects, flattening anything with "items".
 * Scalars resolve as go-yaml v2 resolves them into interface{}:
 *   y Y yes Yes YES true True TRUE on On ON   -> true  (n ... off -> false)
 *   "" ~ null Null NULL                       -> null
 *   [+-]digits, 0x.., 0o.., 0b.., 0.. (octal), '_' ignored -> integer;
 *   beyond int64 -> uint64; beyond that, a float if it looks like one
 *   [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? -> float
 *   .inf .nan and friends -> float, refused as values (JSON has none)
 *   anything else, quoted and block scalars -> string (timestamps too)
 * Keys become strings: ints in decimal, floats as Go's
 * FormatFloat(f, 'g', -1, 32), bools "true"/"false"; null, uint64 and
 * collection keys are refused.  Merge keys follow v2: "<<" overrides the
 * keys before it, earlier maps of a merged list win.
 * go-yaml v2 quirks over libyaml 0.2.5 that kwh copies: "\/" in double
 * quotes and '?' inside a flow plain scalar are errors; only the first
 * YAML document of each "---" piece counts ("..." then more is ignored).
 * Known divergences: jv numbers are doubles, so integers beyond 2^53 are
 * rounded (kubectl keeps int64 exact); invalid UTF-8 is refused (kubectl
 * turns it into U+FFFD); a local tag with flow indicators (!a[b]) is
 * refused; an explicit !!timestamp is not validated; !!binary bytes that
 * are not UTF-8 are repaired by libjq's rules, not Go's; JSON input is
 * bounded by libjq's parser depth, not max_depth; when two keys of
 * different YAML types give the same string (true and "true", 1 and 1.0)
 * kubectl picks one at random, kwh the later one. */
#define KWH_YAML_LIBYAML
#include <yaml.h>
#include "buf.h"
#include "err.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG_PFX "tag:yaml.org,2002:"

enum { T_NULL, T_BOOL, T_INT, T_UINT, T_FLOAT, T_STR };
enum { K_SCALAR, K_SEQ, K_MAP };

/* A resolved scalar: its Go type and value (strings live in a jv). */
struct scal {
	int t;
	int b;
	int64_t i;
	uint64_t u;
	double d;
};

struct anchor {
	char *name;		/* NULL: free slot */
	unsigned long id;	/* registration number */
	int busy;		/* collection still being read */
	int kind;
	jv val;
	struct scal s;
	size_t size;
	unsigned height;
};

struct frame {
	int kind;
	jv val;
	jv key;			/* map: pending key, or invalid */
	int merge;		/* map: pending value is merged */
	int flow;		/* inside a flow collection */
	unsigned long anchor;	/* id to complete, 0 for none */
	char *aname;
	size_t count0;
	unsigned height;
	yaml_mark_t mark;
};

struct conv {
	const struct kwh_yaml_limits *lim;
	struct kwh_yaml_budget *budget;	/* or NULL */
	unsigned long events;	/* parser events, for the deadline checks */
	size_t line0;		/* line of the piece in the file */
	const char *data;	/* the piece, and a cursor mapping libyaml's */
	size_t len;		/* character index to a byte offset */
	size_t cchar, cbyte;
	char *err;
	size_t errlen;
	size_t count;
	struct anchor *anc;
	size_t nanc, canc;
	unsigned long nextid;
	struct frame *st;
	size_t nst, cst;
	jv root;
	int done;
};

static int fail(struct conv *c, int rc, size_t line, size_t col,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int
fail(struct conv *c, int rc, size_t line, size_t col, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (c->errlen == 0)
		return rc;
	n = snprintf(c->err, c->errlen, "line %zu, column %zu: ",
			c->line0 + line + 1, col + 1);
	if (n >= 0 && (size_t)n < c->errlen) {
		va_start(ap, fmt);
		vsnprintf(c->err + n, c->errlen - n, fmt, ap);
		va_end(ap);
	}
	return rc;
}

#define FAILM(c, rc, m, ...) fail(c, rc, (m).line, (m).column, __VA_ARGS__)

/* --- anchors: open addressing, names owned --- */

static size_t
hash(const char *s)
{
	size_t h = 5381;

	while (*s)
		h = h * 33 + (unsigned char)*s++;
	return h;
}

static struct anchor *
anchor_find(struct conv *c, const char *name)
{
	size_t i;

	if (c->canc == 0)
		return NULL;
	for (i = hash(name) & (c->canc - 1); c->anc[i].name;
			i = (i + 1) & (c->canc - 1))
		if (strcmp(c->anc[i].name, name) == 0)
			return &c->anc[i];
	return NULL;
}

static int
anchor_grow(struct conv *c)
{
	struct anchor *old = c->anc;
	size_t i, j, n = c->canc;

	c->canc = n ? n * 2 : 64;
	c->anc = calloc(c->canc, sizeof *c->anc);
	if (!c->anc) {
		c->anc = old;
		c->canc = n;
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (!old[i].name)
			continue;
		for (j = hash(old[i].name) & (c->canc - 1); c->anc[j].name;
				j = (j + 1) & (c->canc - 1))
			;
		c->anc[j] = old[i];
	}
	free(old);
	return 0;
}

/* Registers name (taking it) for a new node; returns its slot or NULL. */
static struct anchor *
anchor_set(struct conv *c, char *name)
{
	struct anchor *a = anchor_find(c, name);
	size_t i;

	if (a) {
		free(name);
		jv_free(a->val);
	} else {
		if ((c->nanc + 1) * 2 > c->canc && anchor_grow(c) < 0) {
			free(name);
			return NULL;
		}
		for (i = hash(name) & (c->canc - 1); c->anc[i].name;
				i = (i + 1) & (c->canc - 1))
			;
		a = &c->anc[i];
		a->name = name;
		c->nanc++;
	}
	a->id = ++c->nextid;
	a->busy = 1;
	a->val = jv_null();
	a->size = 0;
	a->height = 0;
	memset(&a->s, 0, sizeof a->s);
	return a;
}

/* --- scalars, as go-yaml v2 resolve() --- */

/* strconv.ParseUint(s, 0, 64): 0, -1 syntax, -2 range. */
static int
go_parse_uint(const char *s, size_t n, uint64_t *out)
{
	unsigned base = 10, d;
	uint64_t v = 0;
	size_t i = 0;

	if (n == 0)
		return -1;
	if (s[0] == '0' && n > 1) {
		switch (s[1]) {
		case 'x': case 'X': base = 16; i = 2; break;
		case 'o': case 'O': base = 8; i = 2; break;
		case 'b': case 'B': base = 2; i = 2; break;
		default: base = 8; i = 1; break;
		}
		if (i == n)
			return -1;
	}
	for (; i < n; i++) {
		char ch = s[i];
		if (ch >= '0' && ch <= '9')
			d = ch - '0';
		else if (ch >= 'a' && ch <= 'z')
			d = ch - 'a' + 10;
		else if (ch >= 'A' && ch <= 'Z')
			d = ch - 'A' + 10;
		else
			return -1;
		if (d >= base)
			return -1;
		if (v > (UINT64_MAX - d) / base)
			return -2;
		v = v * base + d;
	}
	*out = v;
	return 0;
}

/* strconv.ParseInt(s, 0, 64). */
static int
go_parse_int(const char *s, size_t n, int64_t *out)
{
	int neg = 0, rc;
	uint64_t u;

	if (n > 0 && (s[0] == '+' || s[0] == '-')) {
		neg = s[0] == '-';
		s++, n--;
	}
	if ((rc = go_parse_uint(s, n, &u)) < 0)
		return rc;
	if (neg) {
		if (u > (uint64_t)1 << 63)
			return -2;
		*out = u == (uint64_t)1 << 63 ? INT64_MIN : -(int64_t)u;
	} else {
		if (u >= (uint64_t)1 << 63)
			return -2;
		*out = (int64_t)u;
	}
	return 0;
}

/* ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$ */
static int
yaml_style_float(const char *s, size_t n)
{
	size_t i = 0, d;

	if (i < n && (s[i] == '+' || s[i] == '-'))
		i++;
	if (i < n && s[i] == '.') {
		for (d = ++i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			;
		if (i == d)
			return 0;
	} else {
		for (d = i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			;
		if (i == d)
			return 0;
		if (i < n && s[i] == '.')
			for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
				;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		for (d = i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			;
		if (i == d)
			return 0;
	}
	return i == n;
}

/* strconv.ParseFloat on a yaml_style_float string: 0, or -1 (overflow). */
static int
go_parse_float(const char *s, size_t n, double *out)
{
	char buf[128], *p = n < sizeof buf ? buf : malloc(n + 1);
	double d;

	if (!p)
		return -1;
	memcpy(p, s, n);
	p[n] = 0;
	d = strtod(p, NULL);
	if (p != buf)
		free(p);
	if (isinf(d))
		return -1;
	*out = d;
	return 0;
}

static const struct {
	const char *s;
	int t, v;
} resolve_map[] = {
	{ "y", T_BOOL, 1 }, { "Y", T_BOOL, 1 }, { "yes", T_BOOL, 1 },
	{ "Yes", T_BOOL, 1 }, { "YES", T_BOOL, 1 }, { "true", T_BOOL, 1 },
	{ "True", T_BOOL, 1 }, { "TRUE", T_BOOL, 1 }, { "on", T_BOOL, 1 },
	{ "On", T_BOOL, 1 }, { "ON", T_BOOL, 1 },
	{ "n", T_BOOL, 0 }, { "N", T_BOOL, 0 }, { "no", T_BOOL, 0 },
	{ "No", T_BOOL, 0 }, { "NO", T_BOOL, 0 }, { "false", T_BOOL, 0 },
	{ "False", T_BOOL, 0 }, { "FALSE", T_BOOL, 0 }, { "off", T_BOOL, 0 },
	{ "Off", T_BOOL, 0 }, { "OFF", T_BOOL, 0 },
	{ "", T_NULL, 0 }, { "~", T_NULL, 0 }, { "null", T_NULL, 0 },
	{ "Null", T_NULL, 0 }, { "NULL", T_NULL, 0 },
	{ ".nan", T_FLOAT, 0 }, { ".NaN", T_FLOAT, 0 }, { ".NAN", T_FLOAT, 0 },
	{ ".inf", T_FLOAT, 1 }, { ".Inf", T_FLOAT, 1 }, { ".INF", T_FLOAT, 1 },
	{ "+.inf", T_FLOAT, 1 }, { "+.Inf", T_FLOAT, 1 },
	{ "+.INF", T_FLOAT, 1 }, { "-.inf", T_FLOAT, -1 },
	{ "-.Inf", T_FLOAT, -1 }, { "-.INF", T_FLOAT, -1 },
};

enum { R_NONE, R_NULL, R_BOOL, R_INT, R_FLOAT, R_STR, R_TIME };
static const char *const rname[] = {
	"", "null", "bool", "int", "float", "str", "timestamp"
};

static int
tag_kind(const char *tag)
{
	if (!tag || !*tag)
		return R_NONE;
	if (strncmp(tag, TAG_PFX, sizeof TAG_PFX - 1) != 0)
		return -1;
	tag += sizeof TAG_PFX - 1;
	for (int k = R_NULL; k <= R_TIME; k++)
		if (strcmp(tag, rname[k]) == 0)
			return k;
	return -1;
}

/* Resolves a scalar event into *s and, for strings, *str. */
static int
resolve(struct conv *c, const yaml_event_t *ev, struct scal *s, jv *str)
{
	const char *in = (const char *)ev->data.scalar.value;
	const char *tag = (const char *)ev->data.scalar.tag;
	size_t n = ev->data.scalar.length, i;
	int tk, rt = R_STR, hint = 0;
	char plain[128], *pl;
	size_t pn = 0;

	memset(s, 0, sizeof *s);
	s->t = T_STR;
	if (!tag && !ev->data.scalar.plain_implicit)
		goto str;
	if (tag && strcmp(tag, TAG_PFX "binary") == 0) {
		struct kwh_buf b = KWH_BUF_INIT;
		int rc = kwh_base64_decode(&b, in, n);
		if (rc == -1)
			return FAILM(c, KWH_YAML_ENOMEM, ev->start_mark,
					"out of memory");
		if (rc < 0)
			return FAILM(c, KWH_YAML_EINVALID, ev->start_mark,
					"!!binary value contains invalid base64 data");
		*str = jv_string_sized(b.data ? b.data : "", (int)b.len);
		kwh_buf_release(&b);
		return 0;
	}
	if ((tk = tag_kind(tag)) < 0)
		goto str;	/* other tags: the text, as a string */
	if (n == 0)
		hint = 'N';
	else if (strchr("+-", in[0]))
		hint = 'S';
	else if (in[0] >= '0' && in[0] <= '9')
		hint = 'D';
	else if (strchr("yYnNtTfFoO~", in[0]))
		hint = 'M';
	else if (in[0] == '.')
		hint = '.';
	if (!hint || tk == R_STR)
		goto check;
	for (i = 0; i < sizeof resolve_map / sizeof *resolve_map; i++) {
		if (strlen(resolve_map[i].s) != n ||
				memcmp(resolve_map[i].s, in, n) != 0)
			continue;
		s->t = resolve_map[i].t;
		if (s->t == T_BOOL) {
			s->b = resolve_map[i].v;
			rt = R_BOOL;
		} else if (s->t == T_NULL) {
			rt = R_NULL;
		} else {
			s->d = resolve_map[i].v == 0 ? NAN :
				resolve_map[i].v * INFINITY;
			rt = R_FLOAT;
		}
		goto check;
	}
	if (hint == '.') {
		if (yaml_style_float(in, n) && go_parse_float(in, n, &s->d) == 0) {
			s->t = T_FLOAT;
			rt = R_FLOAT;
		}
		goto check;
	}
	if (hint != 'D' && hint != 'S')
		goto check;
	if ((tk == R_NONE || tk == R_TIME) && n > 4 && in[4] == '-' &&
			strspn(in, "0123456789") == 4) {
		rt = R_TIME;	/* a string either way; not validated */
		goto check;
	}
	pl = n < sizeof plain ? plain : malloc(n);
	if (!pl)
		return FAILM(c, KWH_YAML_ENOMEM, ev->start_mark, "out of memory");
	for (i = 0; i < n; i++)
		if (in[i] != '_')
			pl[pn++] = in[i];
	if (go_parse_int(pl, pn, &s->i) == 0) {
		s->t = T_INT;
		rt = R_INT;
	} else if (go_parse_uint(pl, pn, &s->u) == 0) {
		s->t = T_UINT;
		rt = R_INT;
	} else if (yaml_style_float(pl, pn) &&
			go_parse_float(pl, pn, &s->d) == 0) {
		s->t = T_FLOAT;
		rt = R_FLOAT;
	}
	if (pl != plain)
		free(pl);
check:
	if (tk != R_NONE && tk != rt && tk != R_STR) {
		if (tk == R_FLOAT && rt == R_INT && s->t == T_INT) {
			s->t = T_FLOAT;
			s->d = (double)s->i;
		} else {
			return FAILM(c, KWH_YAML_EINVALID, ev->start_mark,
					"cannot decode !!%s `%.*s` as a !!%s",
					rname[rt], (int)(n > 64 ? 64 : n), in,
					rname[tk]);
		}
	}
	if (s->t != T_STR)
		return 0;
str:
	s->t = T_STR;
	*str = jv_string_sized(in, (int)n);
	return 0;
}

/* The JSON value of a resolved scalar in value position. */
static int
scal_value(struct conv *c, const struct scal *s, jv str, yaml_mark_t m,
		jv *out)
{
	switch (s->t) {
	case T_NULL: *out = jv_null(); break;
	case T_BOOL: *out = jv_bool(s->b); break;
	case T_INT: *out = jv_number((double)s->i); break;
	case T_UINT: *out = jv_number((double)s->u); break;
	case T_FLOAT:
		if (isnan(s->d) || isinf(s->d))
			return FAILM(c, KWH_YAML_EINVALID, m,
					"json: unsupported value: %s",
					isnan(s->d) ? "NaN" :
					s->d > 0 ? "+Inf" : "-Inf");
		*out = jv_number(s->d == 0 ? 0.0 : s->d);
		break;
	default: *out = jv_copy(str); break;
	}
	return 0;
}

/* strconv.FormatFloat(d, 'g', -1, 32): the shortest digits that read back
 * as the same float32, %e form when the exponent is < -4 or >= 6. */
static void
go_format_g32(double d, char *buf, size_t len)
{
	float f = (float)d, a;
	char e[32], dg[16], *p, *o = buf;
	int prec, exp, nd = 0, dp, i;

	if (isnan(f) || isinf(f)) {
		snprintf(buf, len, "%s", isnan(f) ? ".nan" : f > 0 ? ".inf" : "-.inf");
		return;
	}
	if (signbit(f))
		*o++ = '-';
	a = fabsf(f);
	if (a == 0) {
		snprintf(o, len - 1, "0");
		return;
	}
	for (prec = 1; prec < 9; prec++) {
		snprintf(e, sizeof e, "%.*e", prec - 1, (double)a);
		if (strtof(e, NULL) == a)
			break;
	}
	snprintf(e, sizeof e, "%.*e", prec - 1, (double)a);
	for (p = e; *p && *p != 'e'; p++)
		if (*p >= '0' && *p <= '9')
			dg[nd++] = *p;
	exp = atoi(p + 1);
	while (nd > 1 && dg[nd - 1] == '0')
		nd--;
	dp = exp + 1;
	if (exp < -4 || exp >= 6) {
		*o++ = dg[0];
		if (nd > 1) {
			*o++ = '.';
			for (i = 1; i < nd; i++)
				*o++ = dg[i];
		}
		sprintf(o, "e%c%02d", exp < 0 ? '-' : '+', abs(exp));
		return;
	}
	if (dp <= 0) {
		*o++ = '0';
		*o++ = '.';
		for (i = dp; i < 0; i++)
			*o++ = '0';
		for (i = 0; i < nd; i++)
			*o++ = dg[i];
	} else {
		for (i = 0; i < dp || i < nd; i++) {
			if (i == dp)
				*o++ = '.';
			*o++ = i < nd ? dg[i] : '0';
		}
	}
	*o = 0;
}

/* The string a scalar becomes as a mapping key (sigs.k8s.io/yaml). */
static int
scal_key(struct conv *c, const struct scal *s, jv str, yaml_mark_t m,
		jv *out)
{
	char buf[64];

	switch (s->t) {
	case T_NULL:
		return FAILM(c, KWH_YAML_EINVALID, m,
				"unsupported map key of type: <nil>");
	case T_UINT:
		return FAILM(c, KWH_YAML_EINVALID, m,
				"unsupported map key of type: uint64");
	case T_BOOL: *out = jv_string(s->b ? "true" : "false"); return 0;
	case T_INT: *out = jv_string_fmt("%lld", (long long)s->i); return 0;
	case T_FLOAT:
		go_format_g32(s->d, buf, sizeof buf);
		*out = jv_string(buf);
		return 0;
	default: *out = jv_copy(str); return 0;
	}
}

/* --- the event walk --- */

static int
count(struct conv *c, size_t n, yaml_mark_t m)
{
	struct kwh_yaml_budget *b = c->budget;

	c->count += n;
	if (c->lim->max_nodes && c->count > c->lim->max_nodes)
		return FAILM(c, KWH_YAML_ELIMIT, m,
				"more than %zu nodes (aliases expanded)",
				c->lim->max_nodes);
	if (b) {
		b->nodes += n;
		if (b->max_nodes && b->nodes > b->max_nodes)
			return FAILM(c, KWH_YAML_ETOTAL, m,
					"more than %zu nodes in all the files "
					"(aliases expanded)", b->max_nodes);
	}
	return 0;
}

/* Every DEADLINE_EVERY events (a few milliseconds of work), and at every
 * document: has the budget's deadline passed? */
#define DEADLINE_EVERY 4096

static int
deadline_passed(struct conv *c, size_t line, size_t col)
{
	if (!c->budget || !c->budget->deadline || kwh_now_ms() < c->budget->deadline)
		return 0;
	return fail(c, KWH_YAML_EDEADLINE, line, col, "reading stopped");
}

static int
is_object_array(jv a)
{
	int i, n = jv_array_length(jv_copy(a));

	for (i = 0; i < n; i++) {
		jv e = jv_array_get(jv_copy(a), i);
		int ok = jv_get_kind(e) == JV_KIND_OBJECT;
		jv_free(e);
		if (!ok)
			return 0;
	}
	return 1;
}

static jv
overlay(jv dst, jv src)
{
	jv_object_foreach(src, k, v)
		dst = jv_object_set(dst, k, v);
	jv_free(src);
	return dst;
}

/* Hands a finished node to its parent (or makes it the root).  v is taken;
 * s and str describe it when it is a scalar; alias tells whether it came
 * through an alias (merges want a mapping behind an alias). */
static int
deliver(struct conv *c, int kind, jv v, const struct scal *s, jv str,
		unsigned height, int alias, yaml_mark_t m)
{
	struct frame *f = c->nst ? &c->st[c->nst - 1] : NULL;
	jv x;
	int rc;

	if (f && f->kind == K_MAP && !jv_is_valid(f->key) && !f->merge) {
		if (kind != K_SCALAR) {
			jv_free(v);
			return FAILM(c, KWH_YAML_EINVALID, m, "invalid map key: %s",
					kind == K_MAP ? "a mapping" : "a sequence");
		}
		jv_free(f->key);
		rc = scal_key(c, s, str, m, &f->key);
		jv_free(v);
		return rc;
	}
	if (kind == K_SCALAR) {
		jv_free(v);
		if ((rc = scal_value(c, s, str, m, &v)) < 0)
			return rc;
	}
	if (f && height > f->height)
		f->height = height;	/* the parent's is one more */
	if (!f) {
		c->root = v;
		return 0;
	}
	if (f->kind == K_SEQ) {
		f->val = jv_array_append(f->val, v);
		return 0;
	}
	if (f->merge) {
		f->merge = 0;
		if (kind == K_MAP) {
			f->val = overlay(f->val, v);
			return 0;
		}
		if (kind == K_SEQ && !alias && is_object_array(v)) {
			for (int i = jv_array_length(jv_copy(v)); i-- > 0;)
				f->val = overlay(f->val, jv_array_get(jv_copy(v), i));
			jv_free(v);
			return 0;
		}
		jv_free(v);
		return FAILM(c, KWH_YAML_EINVALID, m,
				"map merge requires map or sequence of maps as the value");
	}
	x = f->key;
	f->key = jv_invalid();
	f->val = jv_object_set(f->val, x, v);
	return 0;
}

static int
is_merge_key(struct conv *c, const yaml_event_t *ev)
{
	struct frame *f = c->nst ? &c->st[c->nst - 1] : NULL;
	const char *tag = (const char *)ev->data.scalar.tag;

	return f && f->kind == K_MAP && !jv_is_valid(f->key) && !f->merge &&
		ev->data.scalar.length == 2 &&
		memcmp(ev->data.scalar.value, "<<", 2) == 0 &&
		((!tag && ev->data.scalar.plain_implicit) ||
		 (tag && strcmp(tag, TAG_PFX "merge") == 0));
}

/* The byte offset of libyaml's character index i (which never goes back
 * by much: scalars come in order). */
static size_t
byte_at(struct conv *c, size_t i)
{
	if (i < c->cchar) {
		c->cchar = 0;
		c->cbyte = c->len >= 3 && memcmp(c->data, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
	}
	while (c->cchar < i && c->cbyte < c->len) {
		c->cbyte++;
		while (c->cbyte < c->len &&
				((unsigned char)c->data[c->cbyte] & 0xc0) == 0x80)
			c->cbyte++;
		c->cchar++;
	}
	return c->cbyte;
}

/* Where go-yaml v2 reads scalars differently from libyaml 0.2.5, refuses
 * what v2 refuses: "\/" in double quotes (a YAML 1.2 escape) and '?'
 * inside a plain scalar in a flow collection (v2 ends the scalar there). */
static int
v2_scalar_quirks(struct conv *c, const yaml_event_t *ev)
{
	size_t i, end;

	if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && c->nst &&
			c->st[c->nst - 1].flow &&
			memchr(ev->data.scalar.value, '?', ev->data.scalar.length))
		return FAILM(c, KWH_YAML_EINVALID, ev->start_mark,
				"'?' inside a plain scalar in a flow collection");
	if (ev->data.scalar.style != YAML_DOUBLE_QUOTED_SCALAR_STYLE ||
			!memchr(ev->data.scalar.value, '/', ev->data.scalar.length))
		return 0;
	i = byte_at(c, ev->start_mark.index);
	end = byte_at(c, ev->end_mark.index);
	for (i++; i + 1 < end; i++) {
		if (c->data[i] != '\\')
			continue;
		if (c->data[++i] == '/')
			return FAILM(c, KWH_YAML_EINVALID, ev->start_mark,
					"found unknown escape character '/'");
	}
	return 0;
}

static int
on_scalar(struct conv *c, yaml_event_t *ev)
{
	struct scal s;
	jv str = jv_null();
	int rc;

	if ((rc = count(c, 1, ev->start_mark)) < 0)
		return rc;
	if ((rc = v2_scalar_quirks(c, ev)) < 0)
		return rc;
	if (is_merge_key(c, ev)) {
		c->st[c->nst - 1].merge = 1;
		return 0;
	}
	if ((rc = resolve(c, ev, &s, &str)) < 0)
		return rc;
	if (ev->data.scalar.anchor) {
		struct anchor *a = anchor_set(c,
				(char *)ev->data.scalar.anchor);
		ev->data.scalar.anchor = NULL;
		if (!a) {
			jv_free(str);
			return FAILM(c, KWH_YAML_ENOMEM, ev->start_mark,
					"out of memory");
		}
		a->busy = 0;
		a->kind = K_SCALAR;
		a->s = s;
		a->val = jv_copy(str);
		a->size = 1;
	}
	rc = deliver(c, K_SCALAR, jv_null(), &s, str, 0, 0, ev->start_mark);
	jv_free(str);
	return rc;
}

static int
on_alias(struct conv *c, yaml_event_t *ev)
{
	const char *name = (const char *)ev->data.alias.anchor;
	struct anchor *a = anchor_find(c, name);
	int rc;

	if (!a)
		return FAILM(c, KWH_YAML_EINVALID, ev->start_mark,
				"unknown anchor '%s' referenced", name);
	if (a->busy)
		return FAILM(c, KWH_YAML_EINVALID, ev->start_mark,
				"anchor '%s' value contains itself", name);
	if ((rc = count(c, a->size, ev->start_mark)) < 0)
		return rc;
	if (c->lim->max_depth && c->nst + a->height > c->lim->max_depth)
		return FAILM(c, KWH_YAML_ELIMIT, ev->start_mark,
				"nested deeper than %u", c->lim->max_depth);
	if (a->kind == K_SCALAR)
		return deliver(c, K_SCALAR, jv_null(), &a->s, a->val, 0, 1,
				ev->start_mark);
	return deliver(c, a->kind, jv_copy(a->val), NULL, jv_null(),
			a->height, 1, ev->start_mark);
}

static int
on_start(struct conv *c, yaml_event_t *ev, int kind)
{
	struct frame *f;
	yaml_char_t **anchor = kind == K_MAP ? &ev->data.mapping_start.anchor :
		&ev->data.sequence_start.anchor;
	int rc;

	if ((rc = count(c, 1, ev->start_mark)) < 0)
		return rc;
	if (c->lim->max_depth && c->nst + 1 > c->lim->max_depth)
		return FAILM(c, KWH_YAML_ELIMIT, ev->start_mark,
				"nested deeper than %u", c->lim->max_depth);
	if (c->nst == c->cst) {
		size_t n = c->cst ? c->cst * 2 : 16;
		struct frame *st = realloc(c->st, n * sizeof *st);
		if (!st)
			return FAILM(c, KWH_YAML_ENOMEM, ev->start_mark,
					"out of memory");
		c->st = st;
		c->cst = n;
	}
	f = &c->st[c->nst++];
	memset(f, 0, sizeof *f);
	f->kind = kind;
	f->val = kind == K_MAP ? jv_object() : jv_array();
	f->key = jv_invalid();
	f->count0 = c->count;
	f->mark = ev->start_mark;
	f->flow = (c->nst > 1 && c->st[c->nst - 2].flow) || (kind == K_MAP ?
		ev->data.mapping_start.style == YAML_FLOW_MAPPING_STYLE :
		ev->data.sequence_start.style == YAML_FLOW_SEQUENCE_STYLE);
	if (*anchor) {
		struct anchor *a = anchor_set(c, (char *)*anchor);
		*anchor = NULL;
		if (!a)
			return FAILM(c, KWH_YAML_ENOMEM, ev->start_mark,
					"out of memory");
		a->kind = kind;
		f->anchor = a->id;
		f->aname = strdup(a->name);
		if (!f->aname)
			return FAILM(c, KWH_YAML_ENOMEM, ev->start_mark,
					"out of memory");
	}
	return 0;
}

static void
frame_release(struct frame *f)
{
	jv_free(f->val);
	jv_free(f->key);
	free(f->aname);
}

static int
on_end(struct conv *c, yaml_event_t *ev)
{
	struct frame f = c->st[--c->nst];
	int rc;

	if (f.aname) {
		struct anchor *a = anchor_find(c, f.aname);
		if (a && a->id == f.anchor) {
			a->busy = 0;
			jv_free(a->val);
			a->val = jv_copy(f.val);
			a->size = c->count - f.count0 + 1;
			a->height = f.height + 1;
		}
		free(f.aname);
	}
	jv_free(f.key);
	rc = deliver(c, f.kind, f.val, NULL, jv_null(), f.height + 1, 0,
			f.mark);
	return rc;
}

static void
conv_release(struct conv *c)
{
	size_t i;

	for (i = 0; i < c->canc; i++)
		if (c->anc[i].name) {
			free(c->anc[i].name);
			jv_free(c->anc[i].val);
		}
	free(c->anc);
	c->anc = NULL;
	c->canc = c->nanc = 0;
	while (c->nst)
		frame_release(&c->st[--c->nst]);
	free(c->st);
	c->st = NULL;
	c->cst = 0;
}

static int
parser_fail(struct conv *c, yaml_parser_t *p, const char *data, size_t len)
{
	size_t line = p->problem_mark.line, col = p->problem_mark.column;
	const char *what = p->problem ? p->problem : "invalid YAML";

	if (p->error == YAML_MEMORY_ERROR)
		return fail(c, KWH_YAML_ENOMEM, 0, 0, "out of memory");
	if (p->error == YAML_READER_ERROR) {
		size_t i, end = p->problem_offset < len ? p->problem_offset : len;
		line = col = 0;
		for (i = 0; i < end; i++) {
			if (data[i] == '\n') {
				line++;
				col = 0;
			} else if (((unsigned char)data[i] & 0xc0) != 0x80) {
				col++;
			}
		}
		return fail(c, KWH_YAML_EINVALID, line, col, "%s", what);
	}
	if (p->context)
		return fail(c, KWH_YAML_EINVALID, line, col,
				"%s %s at line %zu, column %zu", what, p->context,
				c->line0 + p->context_mark.line + 1,
				p->context_mark.column + 1);
	return fail(c, KWH_YAML_EINVALID, line, col, "%s", what);
}

/* Converts the first YAML document of data[0..len) into *out (invalid when
 * there is none). */
static int
convert_first(struct conv *c, const char *data, size_t len, jv *out)
{
	yaml_parser_t p;
	yaml_event_t ev;
	int rc = 0;

	if (!yaml_parser_initialize(&p))
		return fail(c, KWH_YAML_ENOMEM, 0, 0, "out of memory");
	yaml_parser_set_input_string(&p, (const unsigned char *)data, len);
	c->root = jv_invalid();
	c->data = data;
	c->len = len;
	c->cchar = 0;
	c->cbyte = len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
	while (rc == 0) {
		if (!yaml_parser_parse(&p, &ev)) {
			rc = parser_fail(c, &p, data, len);
			break;
		}
		if (++c->events % DEADLINE_EVERY == 0)
			rc = deadline_passed(c, ev.start_mark.line, ev.start_mark.column);
		if (rc < 0) {
			yaml_event_delete(&ev);
			break;
		}
		switch (ev.type) {
		case YAML_SCALAR_EVENT: rc = on_scalar(c, &ev); break;
		case YAML_ALIAS_EVENT: rc = on_alias(c, &ev); break;
		case YAML_SEQUENCE_START_EVENT: rc = on_start(c, &ev, K_SEQ); break;
		case YAML_MAPPING_START_EVENT: rc = on_start(c, &ev, K_MAP); break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT: rc = on_end(c, &ev); break;
		case YAML_DOCUMENT_END_EVENT:
		case YAML_STREAM_END_EVENT: rc = 1; break;
		default: break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	conv_release(c);
	if (rc < 0) {
		jv_free(c->root);
		c->root = jv_invalid();
		return rc;
	}
	*out = c->root;
	c->root = jv_invalid();
	return 0;
}

/* --- kubectl's view of a manifest file --- */

static int
kstr(jv o, const char *k, jv *out)
{
	jv v = jv_object_get(jv_copy(o), jv_string(k));

	if (jv_get_kind(v) == JV_KIND_STRING && jv_string_length_bytes(
				jv_copy(v)) > 0) {
		*out = v;
		return 1;
	}
	jv_free(v);
	*out = jv_string("");
	return 0;
}

static int
check_object(struct conv *c, jv o, size_t line, int item)
{
	jv k;
	int ok;

	if (jv_get_kind(o) != JV_KIND_OBJECT)
		return fail(c, KWH_YAML_ENOTOBJ, line, 0, "%s is not an object",
				item ? "an item of a list" : "document");
	ok = kstr(o, "kind", &k);
	jv_free(k);
	if (!ok)
		return fail(c, KWH_YAML_ENOTOBJ, line, 0,
				"%s has no kind", item ? "an item of a list" :
				"document");
	if (!item)
		return 0;	/* kubectl needs no apiVersion at the top */
	ok = kstr(o, "apiVersion", &k);
	jv_free(k);
	if (!ok)
		return fail(c, KWH_YAML_ENOTOBJ, line, 0,
				"an item of a list has no apiVersion");
	return 0;
}

/* One more object for the result: counted against the budget. */
static int
take_object(struct conv *c, size_t line)
{
	struct kwh_yaml_budget *b = c->budget;

	if (!b)
		return 0;
	if (b->max_objects && b->objects >= b->max_objects)
		return fail(c, KWH_YAML_ETOTAL, line, 0,
				"more than %zu objects in all the files",
				b->max_objects);
	b->objects++;
	return 0;
}

/* Adds a decoded document (taken) to *list, flattening lists. */
static int
add_doc(struct conv *c, jv *list, jv doc, size_t line)
{
	jv items, kind, api;
	int i, n, rc = 0;

	if (jv_get_kind(doc) == JV_KIND_NULL || !jv_is_valid(doc)) {
		jv_free(doc);
		return 0;
	}
	if (jv_get_kind(doc) != JV_KIND_OBJECT) {
		jv_free(doc);
		return fail(c, KWH_YAML_ENOTOBJ, line, 0,
				"document is not an object");
	}
	items = jv_object_has(jv_copy(doc), jv_string("items")) ?
		jv_object_get(jv_copy(doc), jv_string("items")) : jv_invalid();
	if (!jv_is_valid(items)) {
		rc = check_object(c, doc, line, 0);
		if (rc == 0)
			rc = take_object(c, line);
		if (rc == 0)
			*list = jv_array_append(*list, doc);
		else
			jv_free(doc);
		return rc;
	}
	if (jv_get_kind(items) == JV_KIND_NULL) {
		jv_free(doc);
		jv_free(items);
		return 0;
	}
	if (jv_get_kind(items) != JV_KIND_ARRAY) {
		jv_free(doc);
		jv_free(items);
		return fail(c, KWH_YAML_ENOTOBJ, line, 0,
				"items of a list is not an array");
	}
	kstr(doc, "kind", &kind);
	kstr(doc, "apiVersion", &api);
	if (jv_string_length_bytes(jv_copy(kind)) >= 4 && strcmp(jv_string_value(
				kind) + jv_string_length_bytes(jv_copy(kind)) - 4,
				"List") == 0) {
		jv nk = jv_string_sized(jv_string_value(kind),
				jv_string_length_bytes(jv_copy(kind)) - 4);
		jv_free(kind);
		kind = nk;
	}
	n = jv_array_length(jv_copy(items));
	for (i = 0; i < n && rc == 0; i++) {
		jv it = jv_array_get(jv_copy(items), i), t, ik, ia;
		if (jv_get_kind(it) == JV_KIND_OBJECT) {
			int hk = kstr(it, "kind", &ik), ha = kstr(it, "apiVersion", &ia);
			jv_free(ik);
			jv_free(ia);
			if (!hk && !ha) {
				it = jv_object_set(it, jv_string("kind"), jv_copy(kind));
				it = jv_object_set(it, jv_string("apiVersion"),
						jv_copy(api));
			}
			t = jv_object_get(jv_copy(it), jv_string("items"));
			if (jv_get_kind(t) == JV_KIND_ARRAY)
				rc = fail(c, KWH_YAML_ENOTOBJ, line, 0,
						"item %d of a list is a list", i);
			jv_free(t);
		}
		if (rc == 0)
			rc = check_object(c, it, line, 1);
		if (rc == 0)
			rc = take_object(c, line);
		if (rc == 0)
			*list = jv_array_append(*list, it);
		else
			jv_free(it);
	}
	jv_free(kind);
	jv_free(api);
	jv_free(items);
	jv_free(doc);
	return rc;
}

/* The nodes of a value (borrowed) as YAML counts them: keys too. */
static size_t
jv_nodes(jv v)
{
	size_t n = 1;

	if (jv_get_kind(v) == JV_KIND_ARRAY) {
		jv_array_foreach(v, i, e) {
			n += jv_nodes(e);
			jv_free(e);
		}
	} else if (jv_get_kind(v) == JV_KIND_OBJECT) {
		jv_object_foreach(v, k, e) {
			n += 1 + jv_nodes(e);
			jv_free(k);
			jv_free(e);
		}
	}
	return n;
}

static int
json_stream(struct conv *c, jv *list, const char *data, size_t len)
{
	static const yaml_mark_t top = { 0, 0, 0 };
	jv_parser *p;
	jv v;
	int rc = 0;

	if (len > INT32_MAX)
		return fail(c, KWH_YAML_ELIMIT, 0, 0, "file too large");
	if (!(p = jv_parser_new(0)))
		return fail(c, KWH_YAML_ENOMEM, 0, 0, "out of memory");
	jv_parser_set_buf(p, data, (int)len, 0);
	while (rc == 0 && jv_is_valid(v = jv_parser_next(p))) {
		if ((rc = count(c, jv_nodes(v), top)) < 0 ||
				(rc = deadline_passed(c, 0, 0)) < 0) {
			jv_free(v);
			break;
		}
		rc = add_doc(c, list, v, 0);
	}
	if (rc == 0 && jv_invalid_has_msg(jv_copy(v))) {
		jv msg = jv_invalid_get_msg(v);
		const char *s = jv_string_value(msg), *at = strstr(s, " at line ");
		unsigned long l = 1, col = 1;
		if (at)
			sscanf(at, " at line %lu, column %lu", &l, &col);
		rc = fail(c, KWH_YAML_EINVALID, l ? l - 1 : 0, col ? col - 1 : 0,
				"json: %.*s", at ? (int)(at - s) : (int)strlen(s), s);
		jv_free(msg);
	} else if (rc == 0) {
		jv_free(v);
		/* jq stops early, with no message, at an RS byte (0x1e). */
		if (jv_parser_remaining(p) > 0)
			rc = fail(c, KWH_YAML_EINVALID, 0, 0, "json: invalid character (0x1e) in the stream");
	}
	jv_parser_free(p);
	return rc;
}

static int
too_big(struct conv *c, size_t len)
{
	if (c->lim->max_bytes && len > c->lim->max_bytes)
		return fail(c, KWH_YAML_ELIMIT, 0, 0,
				"file is %zu bytes, more than the limit of %zu",
				len, c->lim->max_bytes);
	return 0;
}

static void
conv_init(struct conv *c, const struct kwh_yaml_limits *lim,
		const struct kwh_yaml_limits *def, char *err, size_t errlen)
{
	memset(c, 0, sizeof *c);
	c->lim = lim ? lim : def;
	c->err = err;
	c->errlen = errlen;
	c->root = jv_invalid();
	if (errlen)
		err[0] = 0;
}

int
kwh_yaml_manifests(jv *out, const char *data, size_t len,
		const struct kwh_yaml_limits *lim, char *err, size_t errlen)
{
	return kwh_yaml_manifests_budget(out, data, len, lim, NULL, err, errlen);
}

int
kwh_yaml_manifests_budget(jv *out, const char *data, size_t len,
		const struct kwh_yaml_limits *lim, struct kwh_yaml_budget *b,
		char *err, size_t errlen)
{
	static const struct kwh_yaml_limits def = KWH_YAML_LIMITS_DEFAULT;
	struct conv c;
	jv list = jv_array(), doc;
	size_t i = 0, start = 0, line = 0, startline = 0;
	int rc = 0;

	conv_init(&c, lim, &def, err, errlen);
	c.budget = b;
	if ((rc = too_big(&c, len)) < 0 || (rc = deadline_passed(&c, 0, 0)) < 0)
		goto out;
	while (i < len && strchr(" \t\n\v\f\r", data[i]))
		i++;
	if (i < len && data[i] == '{') {
		rc = json_stream(&c, &list, data, len);
		goto out;
	}
	for (i = 0; rc == 0 && i <= len; line++) {
		const char *nl = i < len ? memchr(data + i, '\n', len - i) : NULL;
		size_t end = nl ? (size_t)(nl - data) + 1 : len, j;
		int sep = end - i >= 3 && memcmp(data + i, "---", 3) == 0;

		if (sep) {
			for (j = i + 3; j < end && strchr(" \t\n\v\f\r", data[j]); j++)
				;
			if (j < end && data[j] != '#') {
				c.line0 = 0;
				rc = fail(&c, KWH_YAML_EINVALID, line, j - i,
						"invalid document separator");
				break;
			}
		}
		if ((sep && start < i) || i == len) {
			c.line0 = startline;
			if (start < i && (rc = deadline_passed(&c, 0, 0)) == 0 &&
					(rc = convert_first(&c, data + start,
							i - start, &doc)) == 0)
				rc = add_doc(&c, &list, doc, 0);
			start = end;
			startline = line + 1;
		}
		if (i == len)
			break;
		i = end;
	}
out:
	if (rc < 0) {
		jv_free(list);
		return rc;
	}
	*out = list;
	return 0;
}

int
kwh_yaml_document(jv *out, const char *data, size_t len,
		const struct kwh_yaml_limits *lim, char *err, size_t errlen)
{
	static const struct kwh_yaml_limits def = KWH_YAML_LIMITS_DEFAULT;
	struct conv c;
	jv v;
	int rc;

	conv_init(&c, lim, &def, err, errlen);
	if ((rc = too_big(&c, len)) < 0)
		return rc;
	if ((rc = convert_first(&c, data, len, &v)) < 0)
		return rc;
	*out = jv_is_valid(v) ? v : jv_null();
	return 0;
}
