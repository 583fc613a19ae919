/* sign.h — building a signed webhook request, as GitHub sends one. */
#ifndef KWH_SIGN_H
#define KWH_SIGN_H
#include "buf.h"

struct kwh_sign_opts {
	const char *event;	/* X-GitHub-Event */
	const char *delivery;	/* X-GitHub-Delivery; NULL: a fresh UUID */
	const char *host;	/* Host */
	const char *path;	/* request target */
	int form;		/* application/x-www-form-urlencoded payload= */
	int chunked;		/* Transfer-Encoding: chunked */
	int sha1;		/* also X-Hub-Signature (GitHub sends both) */
	const char **headers;	/* extra "Name: value" lines */
	size_t nheaders;
};

/*
 * Appends to out a complete HTTP/1.1 POST request carrying body[0..n),
 * signed with key.  Returns 0, or -1 (out of memory, no randomness).
 */
int kwh_sign_request(struct kwh_buf *out, const struct kwh_sign_opts *o,
    const void *key, size_t keylen, const char *body, size_t n);

#endif
