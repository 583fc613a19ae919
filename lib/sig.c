/*
 * sig.c — webhook secrets, HMAC signatures (OpenSSL) and delivery ids.
 */
#include "sig.h"
#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

int
kwh_secrets_add(struct kwh_secrets *s, const char *secret, size_t n)
{
	struct kwh_buf *v = realloc(s->v, (s->n + 1) * sizeof *v);

	if (!v)
		return -1;
	s->v = v;
	kwh_buf_init(&v[s->n], 0);
	if (kwh_buf_add(&v[s->n], secret, n) < 0)
		return -1;
	s->n++;
	return 0;
}

int
kwh_secrets_add_file(struct kwh_secrets *s, const char *path, char *err, size_t errlen)
{
	struct kwh_buf b;
	int r;

	kwh_buf_init(&b, 1 << 20);
	if (kwh_buf_read_file(&b, path) < 0) {
		snprintf(err, errlen, "cannot read secret file '%s': %s", path,
		    errno == EFBIG ? "larger than 1 MiB" : strerror(errno));
		kwh_buf_wipe(&b);
		return -1;
	}
	if (b.len && b.data[b.len - 1] == '\n') {
		b.len--;
		if (b.len && b.data[b.len - 1] == '\r')
			b.len--;
	}
	if (b.len == 0) {
		snprintf(err, errlen, "secret file '%s' is empty", path);
		kwh_buf_wipe(&b);
		return -1;
	}
	r = kwh_secrets_add(s, b.data, b.len);
	kwh_buf_wipe(&b);
	if (r < 0)
		snprintf(err, errlen, "out of memory");
	return r;
}

void
kwh_secrets_wipe(struct kwh_secrets *s)
{
	for (size_t i = 0; i < s->n; i++)
		kwh_buf_wipe(&s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

#define MAC_MAX 32

static const char *
prefix_of(enum kwh_sig_alg alg, size_t *len)
{
	*len = alg == KWH_SIG_SHA1 ? SHA_DIGEST_LENGTH : SHA256_DIGEST_LENGTH;
	return alg == KWH_SIG_SHA1 ? "sha1=" : "sha256=";
}

/* HMAC(key, data) into out, with OpenSSL's one-shot HMAC(). */
static int
mac(unsigned char *out, enum kwh_sig_alg alg, const void *key, size_t keylen,
    const void *data, size_t n)
{
	static const unsigned char none[1];
	unsigned int outlen = 0;
	size_t len;

	prefix_of(alg, &len);
	if (!HMAC(alg == KWH_SIG_SHA1 ? EVP_sha1() : EVP_sha256(), keylen ? key : none,
	    (int)keylen, data ? data : none, n, out, &outlen) || outlen != len)
		return -1;
	return 0;
}

void
kwh_sha256(const void *data, size_t n, unsigned char md[32])
{
	SHA256(data, n, md);
}

const char *
kwh_target_type(const char *value)
{
	static const char *const known[] = { "repository", "organization", "integration",
	    "business", "marketplace::listing", "sponsors_listing" };

	for (size_t i = 0; value && i < sizeof known / sizeof *known; i++)
		if (!strcmp(value, known[i]))
			return known[i];
	return "";
}

void
kwh_delivery_digest(char hex[65], const char *event, const char *target_type,
    const void *body, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(c, event, strlen(event)) || !EVP_DigestUpdate(c, "\n", 1) ||
	    !EVP_DigestUpdate(c, target_type, strlen(target_type)) || !EVP_DigestUpdate(c, "\n", 1) ||
	    (n && !EVP_DigestUpdate(c, body, n)) || !EVP_DigestFinal_ex(c, md, &len) || len != 32)
		kwh_die(KWH_EXIT_SYSTEM, "SHA-256 failed");
	EVP_MD_CTX_free(c);
	for (unsigned i = 0; i < 32; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[64] = '\0';
}

int
kwh_sig_header(char *out, enum kwh_sig_alg alg, const void *key, size_t keylen,
    const void *data, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char m[MAC_MAX];
	const char *prefix;
	size_t len, i;

	prefix = prefix_of(alg, &len);
	if (mac(m, alg, key, keylen, data, n) < 0)
		return -1;
	strcpy(out, prefix);
	out += strlen(prefix);
	for (i = 0; i < len; i++) {
		*out++ = hex[m[i] >> 4];
		*out++ = hex[m[i] & 15];
	}
	*out = '\0';
	explicit_bzero(m, sizeof m);
	return 0;
}

static int
unhex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
kwh_sig_check(const struct kwh_secrets *s, enum kwh_sig_alg alg,
    const char *value, const void *data, size_t n)
{
	unsigned char want[MAC_MAX], got[MAC_MAX];
	const char *prefix;
	size_t len, i, plen;
	int ok = 0;

	prefix = prefix_of(alg, &len);
	plen = strlen(prefix);
	if (strncmp(value, prefix, plen) || strlen(value + plen) != 2 * len)
		return -1;
	for (i = 0; i < len; i++) {
		int hi = unhex(value[plen + 2 * i]), lo = unhex(value[plen + 2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		want[i] = (unsigned char)(hi << 4 | lo);
	}
	/* Every secret is tried, so the time does not tell which matched. */
	for (i = 0; i < s->n; i++) {
		if (mac(got, alg, s->v[i].data, s->v[i].len, data, n) < 0)
			continue;
		ok |= CRYPTO_memcmp(got, want, len) == 0;
	}
	explicit_bzero(got, sizeof got);
	explicit_bzero(want, sizeof want);
	return ok;
}

int
kwh_uuid4(char out[37])
{
	unsigned char r[16];

	if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
		return -1;
	r[6] = (r[6] & 0x0f) | 0x40;
	r[8] = (r[8] & 0x3f) | 0x80;
	snprintf(out, 37,
	    "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	    r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10],
	    r[11], r[12], r[13], r[14], r[15]);
	return 0;
}
