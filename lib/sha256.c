/*
 * sha256.c — SHA-256 for names (cache directories, dedupe names), with
 * mbedTLS, which libgit2 links anyway: kwh-fetch needs no OpenSSL at all
 * to read a cached revision (see lib/ssh2-dl.c for why that matters).
 * Signatures are checked with OpenSSL, in lib/sig.c.
 */
#include "sig.h"

#include <mbedtls/sha256.h>

void
kwh_sha256(const void *data, size_t n, unsigned char md[32])
{
	mbedtls_sha256_ret(data, n, md, 0);
}
