/* sig.h — webhook secrets and HMAC signatures (OpenSSL). */
#ifndef KWH_SIG_H
#define KWH_SIG_H
#include <stddef.h>
#include "buf.h"

/* A set of secrets, any of which may sign a delivery (rotation). */
struct kwh_secrets {
	struct kwh_buf *v;
	size_t n;
};
#define KWH_SECRETS_INIT { NULL, 0 }

/*
 * Adds the secret held in the file at path: its whole content less one
 * trailing LF or CRLF.  Returns 0; or -1 with a message in err (naming the
 * file, never the secret) when it cannot be read or is empty.
 */
int kwh_secrets_add_file(struct kwh_secrets *s, const char *path, char *err, size_t errlen);
/* Adds a secret given as a string (e.g. from the environment). 0 or -1. */
int kwh_secrets_add(struct kwh_secrets *s, const char *secret, size_t n);
/* Overwrites and frees every secret. */
void kwh_secrets_wipe(struct kwh_secrets *s);

/* SHA-256 of data[0..n) into md (32 bytes). */
void kwh_sha256(const void *data, size_t n, unsigned char md[32]);

/*
 * The delivery digest (kwh.7, the envelope's "digest"): SHA-256, in
 * lowercase hex, of EVENT, a newline, TARGET_TYPE (the
 * X-GitHub-Hook-Installation-Target-Type of kwh_target_type, or "" when
 * there is none), a newline, and the body exactly as received and signed.
 * hex must hold 65 bytes.
 */
void kwh_delivery_digest(char hex[65], const char *event, const char *target_type,
    const void *body, size_t n);

/*
 * The hook target type as it counts in the digest: value when it is one
 * GitHub sends (repository, organization, integration, business,
 * marketplace::listing, sponsors_listing), else "" (NULL counts as "").
 * The header is not signed: a fixed set bounds what a replay can vary.
 */
const char *kwh_target_type(const char *value);

enum kwh_sig_alg { KWH_SIG_SHA256, KWH_SIG_SHA1 };

/*
 * Writes "sha256=<hex>" (or "sha1=<hex>") for data under key into out,
 * which must hold 72 bytes.  0 or -1.
 */
int kwh_sig_header(char *out, enum kwh_sig_alg alg, const void *key, size_t keylen,
    const void *data, size_t n);

/*
 * Checks a signature header value against every secret, comparing the
 * MACs in constant time.  Returns 1 when one secret matches, 0 when none
 * does, -1 when the value is not "<alg>=<hex digest>" of the right length.
 */
int kwh_sig_check(const struct kwh_secrets *s, enum kwh_sig_alg alg,
    const char *value, const void *data, size_t n);

/* Writes a random (version 4) UUID, 36 characters and a NUL. 0 or -1. */
int kwh_uuid4(char out[37]);

#endif
