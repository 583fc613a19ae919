/* http.h — reading one HTTP/1.1 request (on libhttp-parser) and answers. */
#ifndef KWH_HTTP_H
#define KWH_HTTP_H
#include <stddef.h>
#include "buf.h"

struct kwh_http_limits {
	size_t max_headers;		/* header lines (431 beyond) */
	size_t max_header_bytes;	/* request line and headers (431 beyond) */
	size_t max_body;		/* decoded body bytes (413 beyond) */
	long timeout_ms;		/* whole request (408 beyond) */
};
/* 100 headers, 32 KiB of head, 25 MiB body (GitHub's cap), 10 s. */
#define KWH_HTTP_LIMITS_DEFAULT { 100, 32 * 1024, 25 * 1024 * 1024, 10000 }

struct kwh_http_header {
	char *name;	/* lower-cased */
	char *value;
};

struct kwh_http_request {
	char method[16];
	struct kwh_buf url;
	struct kwh_http_header *headers;
	size_t nheaders;
	struct kwh_buf body;	/* decoded (chunked bodies joined) */
	int chunked;
};

/*
 * Reads one request from fd (a socket, pipe or file), stopping at its end
 * so that the connection stays usable for the answer.  When the request
 * asks for "Expect: 100-continue" and fd is a socket, writes the interim
 * "100 Continue" to it.  Returns 0 when a whole request was read, else the
 * HTTP status that refuses it (400, 408, 413, 431) with a message for a
 * person in err.  The request is filled in as far as it was read either
 * way; kwh_http_request_release() frees it.
 */
int kwh_http_read_request(struct kwh_http_request *req, int fd,
    const struct kwh_http_limits *lim, char *err, size_t errlen);
void kwh_http_request_release(struct kwh_http_request *req);

/* The value of the first header called name (lower case), or NULL. */
const char *kwh_http_header(const struct kwh_http_request *req, const char *name);
/* How many headers are called name (lower case). */
size_t kwh_http_header_count(const struct kwh_http_request *req, const char *name);

/* The reason phrase for a status ("Not Found"), "Unknown" when none. */
const char *kwh_http_reason(int status);

#endif
