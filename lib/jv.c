/*
 * jv.c — the part of libjq's value API (<jv.h>) that the stages use, for
 * the programs that run no jq program: kwh-verify, kwh-fetch, kwh-apply,
 * kwh-respond and kwh-replay link this object instead of libjq.
 *
 * Why: loading libjq brings libonig and libm, three libraries and some
 * forty page faults at every start; on the machines kwh was measured on
 * that is 1.1 ms, a fifth of a whole cached kwh-fetch (bench/README.md).
 * kwh-annotate and kwh-handle run jq programs and keep libjq; lib/ is the
 * same code in both, written against <jv.h>.
 *
 * What it must be: libjq 1.6 (Debian 12), byte for byte.  Parsing keeps
 * jq's grammar (its number and literal rules, U+FFFD for bad UTF-8, the
 * depth limit of 256, RS as a separator, the BOM) and its error messages
 * with line and column; printing keeps jq's number format (shortest
 * round trip, jq's exponent rules), escapes and key order (insertion
 * order; JV_PRINT_SORTED sorts by bytes).  tests/0500-jv-libjq.bats runs
 * the same program linked both ways over a corpus and compares.
 *
 * Ownership is jq's: every function consumes its jv arguments except
 * jv_copy, jv_get_kind, jv_string_value, jv_number_value and the
 * jv_object_iter* family; see <jv.h>.  Out of memory aborts, as libjq's
 * allocator does.
 */
#include <jv.h>

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct jv_refcnt {
	int count;
};

struct jstr {
	struct jv_refcnt rc;
	int len, cap;
	char s[];		/* len bytes, then a NUL; one allocation */
};

struct jarr {
	struct jv_refcnt rc;
	int len, cap;
	jv *v;
};

struct jent {
	jv key, val;
	unsigned hash;
};

/* Entries in insertion order; idx (when cap > SMALL) maps hash -> entry+1. */
struct jobj {
	struct jv_refcnt rc;
	int len, cap;
	struct jent *e;
	int *idx;
	unsigned nidx;
};

struct jinv {
	struct jv_refcnt rc;
	jv msg;
};

#define SMALL 8
#define MAX_DEPTH 256

static void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q) {
		fputs("jv: out of memory\n", stderr);
		abort();
	}
	return q;
}

static jv
mk(jv_kind k, void *p)
{
	jv v = { (unsigned char)k, 0, 0, 0, { .ptr = p } };

	return v;
}

#define STR(v) ((struct jstr *)(v).u.ptr)
#define ARR(v) ((struct jarr *)(v).u.ptr)
#define OBJ(v) ((struct jobj *)(v).u.ptr)
#define INV(v) ((struct jinv *)(v).u.ptr)

jv_kind
jv_get_kind(jv x)
{
	return (jv_kind)x.kind_flags;
}

const char *
jv_kind_name(jv_kind k)
{
	switch (k) {
	case JV_KIND_INVALID: return "<invalid>";
	case JV_KIND_NULL: return "null";
	case JV_KIND_FALSE: return "boolean";
	case JV_KIND_TRUE: return "boolean";
	case JV_KIND_NUMBER: return "number";
	case JV_KIND_STRING: return "string";
	case JV_KIND_ARRAY: return "array";
	case JV_KIND_OBJECT: return "object";
	}
	return "<unknown>";
}

static int
has_ptr(jv x)
{
	return x.kind_flags >= JV_KIND_STRING ||
	    (x.kind_flags == JV_KIND_INVALID && x.u.ptr);
}

jv
jv_copy(jv x)
{
	if (has_ptr(x))
		x.u.ptr->count++;
	return x;
}

void
jv_free(jv x)
{
	int i;

	if (!has_ptr(x) || --x.u.ptr->count > 0)
		return;
	switch (jv_get_kind(x)) {
	case JV_KIND_INVALID:
		jv_free(INV(x)->msg);
		break;
	case JV_KIND_ARRAY:
		for (i = 0; i < ARR(x)->len; i++)
			jv_free(ARR(x)->v[i]);
		free(ARR(x)->v);
		break;
	case JV_KIND_OBJECT:
		for (i = 0; i < OBJ(x)->len; i++) {
			jv_free(OBJ(x)->e[i].key);
			jv_free(OBJ(x)->e[i].val);
		}
		free(OBJ(x)->e);
		free(OBJ(x)->idx);
		break;
	default:
		break;
	}
	free(x.u.ptr);
}

/* Scalars and invalid values */

jv
jv_invalid(void)
{
	return mk(JV_KIND_INVALID, NULL);
}

jv
jv_invalid_with_msg(jv msg)
{
	struct jinv *i = xrealloc(NULL, sizeof *i);

	i->rc.count = 1;
	i->msg = msg;
	return mk(JV_KIND_INVALID, i);
}

jv
jv_invalid_get_msg(jv inv)
{
	jv m = inv.u.ptr && jv_get_kind(inv) == JV_KIND_INVALID ?
	    jv_copy(INV(inv)->msg) : jv_null();

	jv_free(inv);
	return m;
}

int
jv_invalid_has_msg(jv inv)
{
	jv m = jv_invalid_get_msg(inv);
	int r = jv_get_kind(m) != JV_KIND_NULL;

	jv_free(m);
	return r;
}

jv
jv_null(void)
{
	return mk(JV_KIND_NULL, NULL);
}

jv
jv_true(void)
{
	return mk(JV_KIND_TRUE, NULL);
}

jv
jv_false(void)
{
	return mk(JV_KIND_FALSE, NULL);
}

jv
jv_bool(int b)
{
	return b ? jv_true() : jv_false();
}

jv
jv_number(double d)
{
	jv v = { JV_KIND_NUMBER, 0, 0, 0, { .number = d } };

	return v;
}

double
jv_number_value(jv x)
{
	return jv_get_kind(x) == JV_KIND_NUMBER ? x.u.number : 0;
}

/* UTF-8, as jq decodes it: every bad sequence is one U+FFFD */

/* The length a lead byte announces: 1-4, 0 for a bad lead, -1 continuation. */
static int
lead_len(unsigned char c)
{
	if (c < 0x80) return 1;
	if (c < 0xC0) return -1;
	if (c < 0xC2) return 0;
	if (c < 0xE0) return 2;
	if (c < 0xF0) return 3;
	if (c < 0xF5) return 4;
	return 0;
}

/* Decodes one character at s (s < end): its code point, or -1, in *cp. */
static const char *
utf8_next(const char *s, const char *end, int *cp)
{
	static const int first[] = { 0, 0, 0x80, 0x800, 0x10000 };
	static const unsigned char bits[] = { 0, 0x7F, 0x1F, 0x0F, 0x07 };
	unsigned char c = (unsigned char)*s;
	int n = lead_len(c), i, v;

	if (n == 1) {
		*cp = c;
		return s + 1;
	}
	if (n <= 0) {
		*cp = -1;
		return s + 1;
	}
	if (end - s < n) {	/* ends inside the sequence: all of it */
		*cp = -1;
		return end;
	}
	v = c & bits[n];
	for (i = 1; i < n; i++) {
		if (lead_len((unsigned char)s[i]) != -1) {
			*cp = -1;
			return s + i;
		}
		v = (v << 6) | ((unsigned char)s[i] & 0x3F);
	}
	if (v < first[n] || (v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF)
		v = -1;
	*cp = v;
	return s + n;
}

static int
utf8_encode(int c, char *out)
{
	if (c < 0x80) {
		out[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		out[0] = (char)(0xC0 | (c >> 6));
		out[1] = (char)(0x80 | (c & 0x3F));
		return 2;
	}
	if (c < 0x10000) {
		out[0] = (char)(0xE0 | (c >> 12));
		out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
		out[2] = (char)(0x80 | (c & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (c >> 18));
	out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
	out[3] = (char)(0x80 | (c & 0x3F));
	return 4;
}

/* Strings */

static struct jstr *
str_new(int cap)
{
	struct jstr *s = xrealloc(NULL, sizeof *s + (size_t)cap + 1);

	s->rc.count = 1;
	s->len = 0;
	s->cap = cap;
	s->s[0] = '\0';
	return s;
}

/* Appends p[0..n), which must be valid UTF-8, to a string only we hold
 * (which may move: *sp is updated). */
static void
str_put(struct jstr **sp, const char *p, size_t n)
{
	struct jstr *s = *sp;

	if ((size_t)s->len + n > (size_t)s->cap) {
		size_t cap = ((size_t)s->len + n) * 2;
		if (cap > 0x7FFFFFF0u)
			cap = (size_t)s->len + n;
		if (cap > 0x7FFFFFF0u) {
			fputs("jv: string too long\n", stderr);
			abort();
		}
		*sp = s = xrealloc(s, sizeof *s + cap + 1);
		s->cap = (int)cap;
	}
	memcpy(s->s + s->len, p, n);
	s->len += (int)n;
	s->s[s->len] = '\0';
}

/* Appends p[0..n), with each bad UTF-8 sequence made U+FFFD. */
static void
str_put_utf8(struct jstr **s, const char *p, size_t n)
{
	const char *end = p + n, *q = p, *next;
	int c;

	while (q < end) {
		next = utf8_next(q, end, &c);
		if (c < 0) {
			str_put(s, p, (size_t)(q - p));
			str_put(s, "\xEF\xBF\xBD", 3);
			p = next;
		}
		q = next;
	}
	str_put(s, p, (size_t)(end - p));
}

/* s, made ours alone (copied when shared). */
static jv
str_own(jv s)
{
	struct jstr *n;

	if (STR(s)->rc.count == 1)
		return s;
	n = str_new(STR(s)->len);
	str_put(&n, STR(s)->s, (size_t)STR(s)->len);
	jv_free(s);
	return mk(JV_KIND_STRING, n);
}

jv
jv_string_sized(const char *p, int n)
{
	struct jstr *s = str_new(n > 0 ? n : 0);

	if (n > 0)
		str_put_utf8(&s, p, (size_t)n);
	return mk(JV_KIND_STRING, s);
}

jv
jv_string(const char *p)
{
	return jv_string_sized(p, (int)strlen(p));
}

const char *
jv_string_value(jv s)
{
	return jv_get_kind(s) == JV_KIND_STRING ? STR(s)->s : "";
}

int
jv_string_length_bytes(jv s)
{
	int n = jv_get_kind(s) == JV_KIND_STRING ? STR(s)->len : 0;

	jv_free(s);
	return n;
}

jv
jv_string_append_buf(jv a, const char *p, int n)
{
	struct jstr *s;

	a = str_own(a);
	s = STR(a);
	str_put_utf8(&s, p, n > 0 ? (size_t)n : 0);
	return mk(JV_KIND_STRING, s);
}

jv
jv_string_append_str(jv a, const char *p)
{
	return jv_string_append_buf(a, p, (int)strlen(p));
}

jv
jv_string_concat(jv a, jv b)
{
	struct jstr *s;

	a = str_own(a);
	s = STR(a);
	str_put(&s, STR(b)->s, (size_t)STR(b)->len);
	jv_free(b);
	return mk(JV_KIND_STRING, s);
}

jv
jv_string_vfmt(const char *fmt, va_list ap)
{
	char small[256], *p = small;
	va_list ap2;
	int n;
	jv s;

	va_copy(ap2, ap);
	n = vsnprintf(small, sizeof small, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof small) {
		p = xrealloc(NULL, (size_t)n + 1);
		vsnprintf(p, (size_t)n + 1, fmt, ap);
	}
	s = jv_string_sized(p, n);
	if (p != small)
		free(p);
	return s;
}

jv
jv_string_fmt(const char *fmt, ...)
{
	va_list ap;
	jv s;

	va_start(ap, fmt);
	s = jv_string_vfmt(fmt, ap);
	va_end(ap);
	return s;
}

/* Arrays */

jv
jv_array_sized(int n)
{
	struct jarr *a = xrealloc(NULL, sizeof *a);

	a->rc.count = 1;
	a->len = 0;
	a->cap = n > 0 ? n : 0;
	a->v = a->cap ? xrealloc(NULL, (size_t)a->cap * sizeof *a->v) : NULL;
	return mk(JV_KIND_ARRAY, a);
}

jv
jv_array(void)
{
	return jv_array_sized(0);
}

/* a, made ours alone, with room for n elements. */
static jv
arr_own(jv a, int n)
{
	struct jarr *o = ARR(a);
	int i;

	if (o->rc.count > 1) {
		jv c = jv_array_sized(n > o->len ? n : o->len);
		for (i = 0; i < o->len; i++)
			ARR(c)->v[i] = jv_copy(o->v[i]);
		ARR(c)->len = o->len;
		jv_free(a);
		return c;
	}
	if (n > o->cap) {
		int cap = n < 4 ? 4 : n * 2;
		o->v = xrealloc(o->v, (size_t)cap * sizeof *o->v);
		o->cap = cap;
	}
	return a;
}

int
jv_array_length(jv a)
{
	int n = jv_get_kind(a) == JV_KIND_ARRAY ? ARR(a)->len : 0;

	jv_free(a);
	return n;
}

jv
jv_array_get(jv a, int i)
{
	jv v = jv_invalid();

	if (jv_get_kind(a) == JV_KIND_ARRAY && i >= 0 && i < ARR(a)->len)
		v = jv_copy(ARR(a)->v[i]);
	jv_free(a);
	return v;
}

jv
jv_array_set(jv a, int i, jv v)
{
	int k;

	if (i < 0)
		i += ARR(a)->len;
	if (i < 0) {
		jv_free(a);
		jv_free(v);
		return jv_invalid_with_msg(jv_string("Out of bounds negative array index"));
	}
	if (i >= 0x3FFFFFFF) {	/* more than memory could hold, as libjq finds */
		fputs("jv: out of memory\n", stderr);
		abort();
	}
	a = arr_own(a, i + 1);
	for (k = ARR(a)->len; k <= i; k++)
		ARR(a)->v[k] = jv_null();
	if (i < ARR(a)->len)
		jv_free(ARR(a)->v[i]);
	else
		ARR(a)->len = i + 1;
	ARR(a)->v[i] = v;
	return a;
}

jv
jv_array_append(jv a, jv v)
{
	return jv_array_set(a, ARR(a)->len, v);
}

jv
jv_array_concat(jv a, jv b)
{
	int i;

	for (i = 0; i < ARR(b)->len; i++)
		a = jv_array_append(a, jv_copy(ARR(b)->v[i]));
	jv_free(b);
	return a;
}

/* Objects */

static unsigned
hash_key(jv k)
{
	const unsigned char *p = (const unsigned char *)STR(k)->s;
	unsigned h = 2166136261u;
	int i;

	for (i = 0; i < STR(k)->len; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static int
key_eq(jv a, jv b)
{
	return STR(a)->len == STR(b)->len && !memcmp(STR(a)->s, STR(b)->s, (size_t)STR(a)->len);
}

static void
obj_reindex(struct jobj *o)
{
	unsigned n = 16, m, j;
	int i;

	free(o->idx);
	o->idx = NULL;
	o->nidx = 0;
	if (o->cap <= SMALL)
		return;
	while (n < (unsigned)o->cap * 2)
		n *= 2;
	o->idx = xrealloc(NULL, n * sizeof *o->idx);
	memset(o->idx, 0, n * sizeof *o->idx);
	o->nidx = n;
	m = n - 1;
	for (i = 0; i < o->len; i++) {
		for (j = o->e[i].hash & m; o->idx[j]; j = (j + 1) & m)
			;
		o->idx[j] = i + 1;
	}
}

/* The entry of key k in o, or -1. */
static int
obj_find(const struct jobj *o, jv k, unsigned h)
{
	unsigned m, j;
	int i;

	if (!o->idx) {
		for (i = 0; i < o->len; i++)
			if (o->e[i].hash == h && key_eq(o->e[i].key, k))
				return i;
		return -1;
	}
	m = o->nidx - 1;
	for (j = h & m; o->idx[j]; j = (j + 1) & m) {
		i = o->idx[j] - 1;
		if (o->e[i].hash == h && key_eq(o->e[i].key, k))
			return i;
	}
	return -1;
}

jv
jv_object(void)
{
	struct jobj *o = xrealloc(NULL, sizeof *o);

	o->rc.count = 1;
	o->len = o->cap = 0;
	o->e = NULL;
	o->idx = NULL;
	o->nidx = 0;
	return mk(JV_KIND_OBJECT, o);
}

/* obj, made ours alone. */
static jv
obj_own(jv obj)
{
	struct jobj *o = OBJ(obj), *c;
	jv n;
	int i;

	if (o->rc.count == 1)
		return obj;
	n = jv_object();
	c = OBJ(n);
	c->cap = o->len;
	c->e = xrealloc(NULL, (size_t)c->cap * sizeof *c->e);
	for (i = 0; i < o->len; i++) {
		c->e[i].key = jv_copy(o->e[i].key);
		c->e[i].val = jv_copy(o->e[i].val);
		c->e[i].hash = o->e[i].hash;
	}
	c->len = o->len;
	obj_reindex(c);
	jv_free(obj);
	return n;
}

jv
jv_object_get(jv obj, jv key)
{
	jv v = jv_invalid();
	int i;

	if (jv_get_kind(obj) == JV_KIND_OBJECT && jv_get_kind(key) == JV_KIND_STRING &&
	    (i = obj_find(OBJ(obj), key, hash_key(key))) >= 0)
		v = jv_copy(OBJ(obj)->e[i].val);
	jv_free(obj);
	jv_free(key);
	return v;
}

int
jv_object_has(jv obj, jv key)
{
	jv v = jv_object_get(obj, key);
	int r = jv_is_valid(v);

	jv_free(v);
	return r;
}

jv
jv_object_set(jv obj, jv key, jv val)
{
	struct jobj *o;
	unsigned h = hash_key(key);
	int i;

	obj = obj_own(obj);
	o = OBJ(obj);
	if ((i = obj_find(o, key, h)) >= 0) {
		jv_free(key);
		jv_free(o->e[i].val);
		o->e[i].val = val;
		return obj;
	}
	if (o->len == o->cap) {
		o->cap = o->cap ? o->cap * 2 : 4;
		o->e = xrealloc(o->e, (size_t)o->cap * sizeof *o->e);
		obj_reindex(o);
	}
	o->e[o->len].key = key;
	o->e[o->len].val = val;
	o->e[o->len].hash = h;
	o->len++;
	if (o->idx) {
		unsigned m = o->nidx - 1, j;
		for (j = h & m; o->idx[j]; j = (j + 1) & m)
			;
		o->idx[j] = o->len;
	}
	return obj;
}

jv
jv_object_delete(jv obj, jv key)
{
	struct jobj *o;
	int i;

	if ((i = obj_find(OBJ(obj), key, hash_key(key))) >= 0) {
		obj = obj_own(obj);
		o = OBJ(obj);
		jv_free(o->e[i].key);
		jv_free(o->e[i].val);
		memmove(o->e + i, o->e + i + 1, (size_t)(o->len - i - 1) * sizeof *o->e);
		o->len--;
		obj_reindex(o);
	}
	jv_free(key);
	return obj;
}

int
jv_object_length(jv obj)
{
	int n = OBJ(obj)->len;

	jv_free(obj);
	return n;
}

jv
jv_object_merge(jv a, jv b)
{
	int i;

	for (i = 0; i < OBJ(b)->len; i++)
		a = jv_object_set(a, jv_copy(OBJ(b)->e[i].key), jv_copy(OBJ(b)->e[i].val));
	jv_free(b);
	return a;
}

#define ITER_FINISHED (-2)

int
jv_object_iter_next(jv obj, int it)
{
	return it + 1 < OBJ(obj)->len ? it + 1 : ITER_FINISHED;
}

int
jv_object_iter(jv obj)
{
	return jv_object_iter_next(obj, -1);
}

int
jv_object_iter_valid(jv obj, int it)
{
	return it != ITER_FINISHED;
}

jv
jv_object_iter_key(jv obj, int it)
{
	return jv_copy(OBJ(obj)->e[it].key);
}

jv
jv_object_iter_value(jv obj, int it)
{
	return jv_copy(OBJ(obj)->e[it].val);
}

/* Printing */

/*
 * The shortest decimal that reads back as d, laid out as jq's
 * jvp_dtoa_fmt does: plain up to 15 zeros past the digits and down to
 * 0.0001, otherwise d.ddde[+-]XX with at least two exponent digits.
 */
static void
fmt_number(double d, char out[64])
{
	char e[48], digits[24], *p = out;
	int prec, nd = 0, decpt, i, x;

	if (d != d) {
		strcpy(out, "null");
		return;
	}
	if (d > DBL_MAX)
		d = DBL_MAX;
	if (d < -DBL_MAX)
		d = -DBL_MAX;
	if (d == 0) {
		strcpy(out, signbit(d) ? "-0" : "0");
		return;
	}
	if (fabs(d) < 1e15 && d == (double)(long long)d) {
		snprintf(out, 64, "%.0f", d);
		return;
	}
	for (prec = 0; prec < 17; prec++) {
		snprintf(e, sizeof e, "%.*e", prec, d);
		if (strtod(e, NULL) == d)
			break;
		/* the nearest did not read back; the one above may (d a power of two) */
		char up[48];
		int k = (int)(strchr(e, 'e') - e) - 1;
		memcpy(up, e, sizeof up);
		while (k >= 0 && (up[k] == '9' || up[k] == '.')) {
			if (up[k] == '9')
				up[k] = '0';
			k--;
		}
		if (k >= 0 && up[k] >= '0' && up[k] <= '8') {
			up[k]++;
			if (strtod(up, NULL) == d) {
				memcpy(e, up, sizeof e);
				break;
			}
		}
	}
	for (i = 0; e[i] != 'e'; i++)
		if (e[i] >= '0' && e[i] <= '9')
			digits[nd++] = e[i];
	x = atoi(e + i + 1);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	digits[nd] = '\0';
	decpt = x + 1;
	if (d < 0)
		*p++ = '-';
	if (decpt <= -4 || decpt > nd + 15) {
		*p++ = digits[0];
		if (nd > 1) {
			*p++ = '.';
			memcpy(p, digits + 1, (size_t)nd - 1);
			p += nd - 1;
		}
		snprintf(p, 16, "e%c%02d", x < 0 ? '-' : '+', x < 0 ? -x : x);
	} else if (decpt <= 0) {
		*p++ = '0';
		*p++ = '.';
		for (i = decpt; i < 0; i++)
			*p++ = '0';
		strcpy(p, digits);
	} else {
		for (i = 0; i < nd; i++) {
			*p++ = digits[i];
			if (i + 1 == decpt && i + 1 < nd)
				*p++ = '.';
		}
		for (i = nd; i < decpt; i++)
			*p++ = '0';
		*p = '\0';
	}
}

static void
dump_string(struct jstr **out, jv s)
{
	const char *p = STR(s)->s, *end = p + STR(s)->len, *start, *run = p;
	char esc[16];
	int c;

	str_put(out, "\"", 1);
	while (p < end) {
		start = p;
		p = utf8_next(p, end, &c);
		if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7F)
			continue;
		str_put(out, run, (size_t)(start - run));
		run = p;
		switch (c) {
		case '"': str_put(out, "\\\"", 2); break;
		case '\\': str_put(out, "\\\\", 2); break;
		case '\b': str_put(out, "\\b", 2); break;
		case '\t': str_put(out, "\\t", 2); break;
		case '\r': str_put(out, "\\r", 2); break;
		case '\n': str_put(out, "\\n", 2); break;
		case '\f': str_put(out, "\\f", 2); break;
		default:
			snprintf(esc, sizeof esc, "\\u%04x", c < 0 ? 0xFFFD : c);
			str_put(out, esc, strlen(esc));
		}
	}
	str_put(out, run, (size_t)(end - run));
	str_put(out, "\"", 1);
}

static int
cmp_keys(const void *a, const void *b)
{
	jv x = ((const struct jent *)a)->key, y = ((const struct jent *)b)->key;
	int n = STR(x)->len < STR(y)->len ? STR(x)->len : STR(y)->len;
	int r = memcmp(STR(x)->s, STR(y)->s, (size_t)n);

	return r ? r : STR(x)->len - STR(y)->len;
}

static void
dump(struct jstr **out, jv x, int flags)
{
	char num[64];
	int i;

	switch (jv_get_kind(x)) {
	case JV_KIND_INVALID:
		str_put(out, "<invalid>", 9);
		break;
	case JV_KIND_NULL:
		str_put(out, "null", 4);
		break;
	case JV_KIND_FALSE:
		str_put(out, "false", 5);
		break;
	case JV_KIND_TRUE:
		str_put(out, "true", 4);
		break;
	case JV_KIND_NUMBER:
		fmt_number(x.u.number, num);
		str_put(out, num, strlen(num));
		break;
	case JV_KIND_STRING:
		dump_string(out, x);
		break;
	case JV_KIND_ARRAY:
		str_put(out, "[", 1);
		for (i = 0; i < ARR(x)->len; i++) {
			if (i)
				str_put(out, ",", 1);
			dump(out, ARR(x)->v[i], flags);
		}
		str_put(out, "]", 1);
		break;
	case JV_KIND_OBJECT: {
		struct jobj *o = OBJ(x);
		struct jent *e = o->e, *sorted = NULL;

		if ((flags & JV_PRINT_SORTED) && o->len > 1) {
			sorted = xrealloc(NULL, (size_t)o->len * sizeof *sorted);
			memcpy(sorted, o->e, (size_t)o->len * sizeof *sorted);
			qsort(sorted, (size_t)o->len, sizeof *sorted, cmp_keys);
			e = sorted;
		}
		str_put(out, "{", 1);
		for (i = 0; i < o->len; i++) {
			if (i)
				str_put(out, ",", 1);
			dump_string(out, e[i].key);
			str_put(out, ":", 1);
			dump(out, e[i].val, flags);
		}
		str_put(out, "}", 1);
		free(sorted);
		break;
	}
	}
}

jv
jv_dump_string(jv x, int flags)
{
	struct jstr *s = str_new(64);

	dump(&s, x, flags);
	jv_free(x);
	return mk(JV_KIND_STRING, s);
}

void
jv_dumpf(jv x, FILE *f, int flags)
{
	jv s = jv_dump_string(x, flags);

	fwrite(STR(s)->s, 1, (size_t)STR(s)->len, f);
	jv_free(s);
}

/* Parsing: jq 1.6's state machine, so that the same input gives the same
 * values and the same messages */

enum pstate { P_NORMAL, P_STRING, P_ESCAPE, P_WAIT_RS };

struct jv_parser {
	const char *buf;
	int len, pos, partial;
	int eof;
	unsigned bom;		/* bytes of the BOM seen; 3 done, 0xff malformed */
	enum pstate st;
	jv *stack;
	int sp, stackcap;
	jv next;
	char *tok;
	int tokpos, tokcap;
	int line, col;
};

typedef const char *perr;	/* NULL, or what went wrong */

jv_parser *
jv_parser_new(int flags)
{
	jv_parser *p = xrealloc(NULL, sizeof *p);

	memset(p, 0, sizeof *p);
	p->next = jv_invalid();
	p->line = 1;
	p->tokcap = 256;
	p->tok = xrealloc(NULL, (size_t)p->tokcap);
	return p;
}

static void
parser_reset(jv_parser *p)
{
	int i;

	jv_free(p->next);
	p->next = jv_invalid();
	for (i = 0; i < p->sp; i++)
		jv_free(p->stack[i]);
	p->sp = 0;
	p->tokpos = 0;
	p->st = P_NORMAL;
}

void
jv_parser_free(jv_parser *p)
{
	if (!p)
		return;
	parser_reset(p);
	free(p->stack);
	free(p->tok);
	free(p);
}

void
jv_parser_set_buf(jv_parser *p, const char *buf, int len, int partial)
{
	static const unsigned char bom[3] = { 0xEF, 0xBB, 0xBF };

	while (len > 0 && p->bom < 3) {
		if ((unsigned char)*buf == bom[p->bom]) {
			buf++;
			len--;
			p->bom++;
		} else {
			p->bom = p->bom == 0 ? 3 : 0xff;
			break;
		}
	}
	p->buf = buf;
	p->len = len;
	p->pos = 0;
	p->partial = partial;
}

int
jv_parser_remaining(jv_parser *p)
{
	return p->buf ? p->len - p->pos : 0;
}

static void
tokadd(jv_parser *p, char c)
{
	if (p->tokpos + 1 >= p->tokcap) {
		p->tokcap *= 2;
		p->tok = xrealloc(p->tok, (size_t)p->tokcap);
	}
	p->tok[p->tokpos++] = c;
}

static perr
value(jv_parser *p, jv v)
{
	if (jv_is_valid(p->next)) {
		jv_free(v);
		return "Expected separator between values";
	}
	p->next = v;
	return NULL;
}

static void
push(jv_parser *p, jv v)
{
	if (p->sp == p->stackcap) {
		p->stackcap = p->stackcap ? p->stackcap * 2 : 16;
		p->stack = xrealloc(p->stack, (size_t)p->stackcap * sizeof *p->stack);
	}
	p->stack[p->sp++] = v;
}

static perr
structure(jv_parser *p, char c)
{
	jv *top = p->sp ? &p->stack[p->sp - 1] : NULL;

	switch (c) {
	case '[':
	case '{':
		if (p->sp >= MAX_DEPTH)
			return "Exceeds depth limit for parsing";
		if (jv_is_valid(p->next))
			return "Expected separator between values";
		push(p, c == '[' ? jv_array() : jv_object());
		break;
	case ':':
		if (!top || !jv_is_valid(p->next))
			return "Expected string key before ':'";
		if (jv_get_kind(*top) != JV_KIND_OBJECT)
			return "':' not as part of an object";
		if (jv_get_kind(p->next) != JV_KIND_STRING)
			return "Object keys must be strings";
		push(p, p->next);
		p->next = jv_invalid();
		break;
	case ',':
		if (!jv_is_valid(p->next))
			return "Expected value before ','";
		if (!top)
			return "',' not as part of an object or array";
		if (jv_get_kind(*top) == JV_KIND_ARRAY) {
			*top = jv_array_append(*top, p->next);
			p->next = jv_invalid();
		} else if (jv_get_kind(*top) == JV_KIND_STRING) {
			p->stack[p->sp - 2] = jv_object_set(p->stack[p->sp - 2], *top, p->next);
			p->sp--;
			p->next = jv_invalid();
		} else {
			return "Objects must consist of key:value pairs";
		}
		break;
	case ']':
		if (!top || jv_get_kind(*top) != JV_KIND_ARRAY)
			return "Unmatched ']'";
		if (jv_is_valid(p->next)) {
			*top = jv_array_append(*top, p->next);
		} else if (ARR(*top)->len != 0) {
			return "Expected another array element";
		}
		p->next = p->stack[--p->sp];
		break;
	case '}':
		if (!top)
			return "Unmatched '}'";
		if (jv_is_valid(p->next)) {
			if (jv_get_kind(*top) != JV_KIND_STRING)
				return "Objects must consist of key:value pairs";
			p->stack[p->sp - 2] = jv_object_set(p->stack[p->sp - 2], *top, p->next);
			p->sp--;
		} else {
			if (jv_get_kind(*top) != JV_KIND_OBJECT)
				return "Unmatched '}'";
			if (OBJ(*top)->len != 0)
				return "Expected another key-value pair";
		}
		p->next = p->stack[--p->sp];
		break;
	}
	return NULL;
}

static int
unhex4(const char *s)
{
	int r = 0, i, n;

	for (i = 0; i < 4; i++) {
		char c = s[i];
		if (c >= '0' && c <= '9')
			n = c - '0';
		else if (c >= 'a' && c <= 'f')
			n = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			n = c - 'A' + 10;
		else
			return -1;
		r = (r << 4) | n;
	}
	return r;
}

/* The string in tok, escapes decoded in place. */
static perr
found_string(jv_parser *p)
{
	char *in = p->tok, *out = p->tok, *end = p->tok + p->tokpos, c;
	int cp, lo;

	while (in < end) {
		c = *in++;
		if (c != '\\') {
			if (c > 0 && c < 0x1f)
				return "Invalid string: control characters from U+0000 through U+001F must be escaped";
			*out++ = c;
			continue;
		}
		if (in >= end)
			return "Expected escape character at end of string";
		c = *in++;
		switch (c) {
		case '\\': case '"': case '/': *out++ = c; break;
		case 'b': *out++ = '\b'; break;
		case 'f': *out++ = '\f'; break;
		case 't': *out++ = '\t'; break;
		case 'n': *out++ = '\n'; break;
		case 'r': *out++ = '\r'; break;
		case 'u':
			if (end - in < 4)
				return "Invalid \\uXXXX escape";
			if ((cp = unhex4(in)) < 0)
				return "Invalid characters in \\uXXXX escape";
			in += 4;
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				if (end - in < 6 || in[0] != '\\' || in[1] != 'u')
					return "Invalid \\uXXXX\\uXXXX surrogate pair escape";
				lo = unhex4(in + 2);
				if (lo < 0xDC00 || lo > 0xDFFF)
					return "Invalid \\uXXXX\\uXXXX surrogate pair escape";
				in += 6;
				cp = 0x10000 + (((cp - 0xD800) << 10) | (lo - 0xDC00));
			}
			out += utf8_encode(cp, out);
			break;
		default:
			return "Invalid escape";
		}
	}
	return value(p, jv_string_sized(p->tok, (int)(out - p->tok)));
}

/* jq reads numbers with David Gay's strtod: decimal, inf, infinity, nan. */
static int
number_syntax(const char *s)
{
	int digits = 0;

	if (*s == '+' || *s == '-')
		s++;
	if (!strcasecmp(s, "inf") || !strcasecmp(s, "infinity") || !strcasecmp(s, "nan"))
		return 1;
	for (; *s >= '0' && *s <= '9'; s++)
		digits++;
	if (*s == '.')
		for (s++; *s >= '0' && *s <= '9'; s++)
			digits++;
	if (!digits)
		return 0;
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (!(*s >= '0' && *s <= '9'))
			return 0;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	return *s == '\0';
}

static perr
check_literal(jv_parser *p)
{
	const char *pat = NULL;
	jv v = jv_invalid();

	if (p->tokpos == 0)
		return NULL;
	switch (p->tok[0]) {
	case 't': pat = "true"; v = jv_true(); break;
	case 'f': pat = "false"; v = jv_false(); break;
	case 'n':
		if (p->tokpos != 3) {	/* three letters may be "nan" */
			pat = "null";
			v = jv_null();
		}
		break;
	}
	if (pat) {
		if ((size_t)p->tokpos != strlen(pat) || memcmp(p->tok, pat, strlen(pat)))
			return "Invalid literal";
	} else {
		p->tok[p->tokpos] = '\0';
		if (!number_syntax(p->tok))
			return "Invalid numeric literal";
		v = jv_number(strtod(p->tok, NULL));
	}
	p->tokpos = 0;
	return value(p, v);
}

static int
check_done(jv_parser *p, jv *out)
{
	if (p->sp == 0 && jv_is_valid(p->next)) {
		*out = p->next;
		p->next = jv_invalid();
		return 1;
	}
	return 0;
}

/* One byte: NULL to go on, OK with *out set, or an error (*out may be set). */
static const char OK[] = "ok";

static perr
scan(jv_parser *p, char c, jv *out)
{
	perr e;
	int got = 0;

	p->col++;
	if (c == '\n') {
		p->line++;
		p->col = 0;
	}
	if (c == '\036') {	/* RS: ends what is there, or drops it */
		if ((e = check_literal(p)))
			return e;
		if (p->st == P_NORMAL && check_done(p, out))
			return OK;
		parser_reset(p);
		*out = jv_invalid();
		return OK;
	}
	if (p->st != P_NORMAL) {
		if (c == '"' && p->st == P_STRING) {
			p->st = P_NORMAL;
			if ((e = found_string(p)))
				return e;
			p->tokpos = 0;
			return check_done(p, out) ? OK : NULL;
		}
		tokadd(p, c);
		p->st = c == '\\' && p->st == P_STRING ? P_ESCAPE : P_STRING;
		return NULL;
	}
	switch (c) {
	case ' ': case '\t': case '\r': case '\n':
		if ((e = check_literal(p)))
			return e;
		break;
	case '"':
		if ((e = check_literal(p)))
			return e;
		p->st = P_STRING;
		break;
	case '[': case ',': case ']': case '{': case ':': case '}':
		/* a top-level literal ends here and goes out first: "1[" is 1, then [ */
		if ((e = check_literal(p)))
			return e;
		got = check_done(p, out);
		if ((e = structure(p, c)))
			return e;
		break;
	default:
		tokadd(p, c);
		break;
	}
	return got || check_done(p, out) ? OK : NULL;
}

static jv
parse_error(jv_parser *p, const char *fmt, const char *msg)
{
	jv e = jv_invalid_with_msg(jv_string_fmt(fmt, msg, p->line, p->col));

	parser_reset(p);
	return e;
}

jv
jv_parser_next(jv_parser *p)
{
	jv v = jv_invalid();
	perr e = NULL;

	if (p->eof || !p->buf)
		return jv_invalid();
	if (p->bom == 0xff)
		return jv_invalid_with_msg(jv_string("Malformed BOM"));
	while (!e && p->pos < p->len)
		e = scan(p, p->buf[p->pos++], &v);
	if (e == OK)
		return v;
	if (e) {
		jv_free(v);	/* a value that the failing byte ended */
		v = parse_error(p, "%s at line %d, column %d", e);
		p->buf = NULL;	/* not a sequence: the rest of this buffer is dropped */
		p->pos = 0;
		return v;
	}
	if (p->partial)
		return jv_invalid();
	p->eof = 1;
	if (p->st == P_WAIT_RS)
		return parse_error(p, "%sUnfinished abandoned text at EOF at line %d, column %d", "");
	if (p->st != P_NORMAL) {
		v = parse_error(p, "%sUnfinished string at EOF at line %d, column %d", "");
		p->st = P_WAIT_RS;
		return v;
	}
	if ((e = check_literal(p))) {
		v = parse_error(p, "%s at EOF at line %d, column %d", e);
		p->st = P_WAIT_RS;
		return v;
	}
	if (p->sp != 0) {
		v = parse_error(p, "%sUnfinished JSON term at EOF at line %d, column %d", "");
		p->st = P_WAIT_RS;
		return v;
	}
	v = p->next;
	p->next = jv_invalid();
	return v;
}

jv
jv_parse_sized(const char *s, int len)
{
	jv_parser *p = jv_parser_new(0);
	jv v, next, msg;

	jv_parser_set_buf(p, s, len, 0);
	v = jv_parser_next(p);
	if (jv_is_valid(v)) {
		next = jv_parser_next(p);
		if (jv_is_valid(next)) {
			jv_free(v);
			jv_free(next);
			v = jv_invalid_with_msg(jv_string("Unexpected extra JSON values"));
		} else if (jv_invalid_has_msg(jv_copy(next))) {
			jv_free(v);
			v = next;
		} else {
			jv_free(next);
		}
	} else if (!jv_invalid_has_msg(jv_copy(v))) {
		jv_free(v);
		v = jv_invalid_with_msg(jv_string("Expected JSON value"));
	}
	jv_parser_free(p);
	if (!jv_is_valid(v) && jv_invalid_has_msg(jv_copy(v))) {
		msg = jv_invalid_get_msg(v);
		/* jq prints s up to a NUL; s need not have one within len */
		v = jv_invalid_with_msg(jv_string_fmt("%s (while parsing '%.*s')",
		    jv_string_value(msg), len, s));
		jv_free(msg);
	}
	return v;
}

jv
jv_parse(const char *s)
{
	return jv_parse_sized(s, (int)strlen(s));
}
