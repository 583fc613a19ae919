/* fuzz_verify.c — the whole first stage, kwh_verify (lib/verify.h), on
 * arbitrary requests, with a fixed secret.
 *
 * Input: one mode byte, then the raw request.  Mode bits: 1 --insecure
 * with no secret, 2 --allow-sha1, 4 sign with the second of the two
 * secrets (rotation) instead of the first.  So that the fuzzer gets past
 * the signature check, the placeholders "@SIG256@" and "@SIG1@" in the
 * request are replaced, before kwh_verify reads it, by the correct
 * "sha256=..." and "sha1=..." of the request's body (found by reading the
 * request once with kwh_http_read_request).  The envelope or refusal that
 * comes out must be one JSON object with the fields kwh(7) promises. */
#include "fuzz.h"
#include "buf.h"
#include "err.h"
#include "sig.h"
#include "verify.h"

#include <jv.h>

static const char secret1[] = "It's a Secret to Everybody";
static const char secret2[] = "rotated-secret";
static struct kwh_secrets secrets = KWH_SECRETS_INIT;
static int fd = -1, outfd = -1;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	kwh_log_open("none");
	if (kwh_secrets_add(&secrets, secret1, sizeof secret1 - 1) < 0 ||
	    kwh_secrets_add(&secrets, secret2, sizeof secret2 - 1) < 0)
		abort();
	return 0;
}

/* b := s with every needle replaced by with. */
static void
replace(struct kwh_buf *b, const char *s, size_t n, const char *needle, const char *with)
{
	size_t nl = strlen(needle), i = 0;

	kwh_buf_reset(b);
	while (i < n) {
		const char *hit = memmem(s + i, n - i, needle, nl);
		if (!hit) {
			kwh_buf_add(b, s + i, n - i);
			break;
		}
		kwh_buf_add(b, s + i, (size_t)(hit - (s + i)));
		kwh_buf_adds(b, with);
		i = (size_t)(hit - s) + nl;
	}
}

static void
check_envelope(const struct kwh_verify_out *out, int st, int mode)
{
	struct kwh_buf text = KWH_BUF_INIT, back = KWH_BUF_INIT;
	jv env, v;

	kwh_buf_add(&text, out->head.data ? out->head.data : "", out->head.len);
	if (out->payload_len)
		kwh_buf_add(&text, out->payload, out->payload_len);
	kwh_buf_adds(&text, out->tail ? out->tail : "");

	env = jv_parse_sized(text.data ? text.data : "", (int)text.len);
	if (!jv_is_valid(env)) {
		jv msg = jv_invalid_get_msg(env);
#ifdef KWH_FUZZ_KNOWN
		/* Known bug (tests/fuzz/README.md, finding 1): kwh_json_validate
		 * lets a lone high surrogate escape through; skipped under make
		 * fuzz only. */
		if (jv_get_kind(msg) == JV_KIND_STRING && strstr(jv_string_value(msg), "surrogate pair")) {
			jv_free(msg);
			kwh_buf_release(&text);
			return;
		}
#endif
		fprintf(stderr, "fuzz: envelope is not JSON (%s): %.300s\n",
		    jv_get_kind(msg) == JV_KIND_STRING ? jv_string_value(msg) : "?", text.data);
		abort();
	}
	FUZZ_CHECK(jv_get_kind(env) == JV_KIND_OBJECT);
	v = jv_object_get(jv_copy(env), jv_string("kwh"));
	FUZZ_CHECK(jv_get_kind(v) == JV_KIND_NUMBER && jv_number_value(v) == 1);
	jv_free(v);
	if (st) {
		jv r = jv_object_get(jv_copy(env), jv_string("response"));
		FUZZ_CHECK(jv_get_kind(r) == JV_KIND_OBJECT);
		v = jv_object_get(jv_copy(r), jv_string("status"));
		FUZZ_CHECK(jv_get_kind(v) == JV_KIND_NUMBER && jv_number_value(v) == st);
		jv_free(v);
		v = jv_object_get(r, jv_string("message"));
		FUZZ_CHECK(jv_get_kind(v) == JV_KIND_STRING && jv_string_length_bytes(jv_copy(v)) > 0);
		jv_free(v);
		FUZZ_CHECK(out->payload_len == 0);
	} else {
		const char *ver;
		v = jv_object_get(jv_copy(env), jv_string("response"));
		FUZZ_CHECK(!jv_is_valid(v) || jv_get_kind(v) == JV_KIND_NULL);
		jv_free(v);
		v = jv_object_get(jv_copy(env), jv_string("delivery"));
		FUZZ_CHECK(jv_get_kind(v) == JV_KIND_STRING);
		jv_free(v);
		v = jv_object_get(jv_copy(env), jv_string("event"));
		FUZZ_CHECK(jv_get_kind(v) == JV_KIND_STRING);
		jv_free(v);
		v = jv_object_get(jv_copy(env), jv_string("headers"));
		FUZZ_CHECK(jv_get_kind(v) == JV_KIND_OBJECT);
		jv_free(v);
		v = jv_object_get(jv_copy(env), jv_string("deadline"));
		FUZZ_CHECK(jv_get_kind(v) == JV_KIND_NUMBER);
		jv_free(v);
		v = jv_object_get(jv_copy(env), jv_string("payload"));
		FUZZ_CHECK(jv_get_kind(v) == JV_KIND_OBJECT);
		jv_free(v);
		v = jv_object_get(jv_copy(env), jv_string("verified"));
		FUZZ_CHECK(jv_get_kind(v) == JV_KIND_STRING);
		ver = jv_string_value(v);
		if (mode & 1)
			FUZZ_CHECK(!strcmp(ver, "none"));
		else
			FUZZ_CHECK(!strcmp(ver, "sha256") || (!strcmp(ver, "sha1") && (mode & 2)));
		jv_free(v);
	}
	jv_free(env);

	/* kwh_verify_write writes exactly that text and a newline. */
	outfd = fuzz_memfd(outfd, "", 0);
	FUZZ_CHECK(kwh_verify_write(out, outfd) == 0);
	lseek(outfd, 0, SEEK_SET);
	FUZZ_CHECK(kwh_buf_read_fd(&back, outfd) == 0);
	FUZZ_CHECK(back.len == text.len + 1);
	FUZZ_CHECK(!memcmp(back.data, text.data ? text.data : "", text.len));
	FUZZ_CHECK(back.data[text.len] == '\n');
	kwh_buf_release(&back);
	kwh_buf_release(&text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kwh_verify_opts o = {
		.limits = { 100, 32 * 1024, 1024 * 1024, 2000 },
		.budget_ms = KWH_VERIFY_BUDGET_MS,
	};
	struct kwh_secrets none = KWH_SECRETS_INIT;
	struct kwh_buf a = KWH_BUF_INIT, b = KWH_BUF_INIT;
	struct kwh_verify_out out;
	const char *req = (const char *)data + 1;
	size_t n = size ? size - 1 : 0;
	int mode, st;

	if (size < 1)
		return 0;
	mode = data[0];
	o.insecure = mode & 1;
	o.allow_sha1 = (mode & 2) != 0;
	o.secrets = (mode & 1) ? none : secrets;

	if (memmem(req, n, "@SIG", 4)) {
		struct kwh_http_request pre;
		char err[256], s256[80], s1[80];
		const char *key = (mode & 4) ? secret2 : secret1;
		size_t keylen = strlen(key);

		fd = fuzz_memfd(fd, req, n);
		kwh_http_read_request(&pre, fd, &o.limits, NULL, err, sizeof err);
		if (kwh_sig_header(s256, KWH_SIG_SHA256, key, keylen, pre.body.data ? pre.body.data : "", pre.body.len) < 0 ||
		    kwh_sig_header(s1, KWH_SIG_SHA1, key, keylen, pre.body.data ? pre.body.data : "", pre.body.len) < 0)
			abort();
		kwh_http_request_release(&pre);
		replace(&a, req, n, "@SIG256@", s256);
		replace(&b, a.data ? a.data : "", a.len, "@SIG1@", s1);
		req = b.data ? b.data : "";
		n = b.len;
	}
	fd = fuzz_memfd(fd, req, n);
	st = kwh_verify(&o, fd, &out);
	FUZZ_CHECK(st == out.status);
	FUZZ_CHECK(st == 0 || st == 200 || st == 400 || st == 401 || st == 405 || st == 408 ||
	    st == 413 || st == 415 || st == 431 || st == 500);
	check_envelope(&out, st, mode);
	kwh_verify_out_release(&out);
	kwh_buf_release(&a);
	kwh_buf_release(&b);
	return 0;
}
