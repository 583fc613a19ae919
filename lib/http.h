/* http.h — reading one HTTP/1.1 request (on libhttp-parser) and answers. */
#ifndef KWH_HTTP_H
#define KWH_HTTP_H
#include <stddef.h>
#include <http_parser.h>
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
 * A request that someone else read off the connection (kwh-handle
 * --listen's acceptor, into a file that is then the fd given to
 * kwh_http_read_request): when it arrived, and why its bytes end where
 * they do when that is not the end of the request nor of the connection.
 */
struct kwh_http_given {
	long long received_ms;	/* epoch ms when the connection was accepted */
	long timed_out_ms;	/* > 0: reading timed out after this many ms (408) */
	int head_timed_out;	/* ... and the head was not complete (--header-timeout) */
};

/*
 * Reads one request from fd (a socket, pipe or file), stopping at its end
 * so that the connection stays usable for the answer.  When the request
 * asks for "Expect: 100-continue" and fd is a socket, writes the interim
 * "100 Continue" to it.  Returns 0 when a whole request was read, else the
 * HTTP status that refuses it (400, 408, 413, 431) with a message for a
 * person in err.  The request is filled in as far as it was read either
 * way; kwh_http_request_release() frees it.  given, when not NULL, says
 * that the end of fd is where reading timed out (408), if it did.
 */
int kwh_http_read_request(struct kwh_http_request *req, int fd,
    const struct kwh_http_limits *lim, const struct kwh_http_given *given,
    char *err, size_t errlen);

/*
 * Finding where a request ends without keeping it, for a reader that
 * gathers the bytes of many connections at once (kwh-handle --listen's
 * acceptor) and hands each complete request on.  kwh_http_scan_feed()
 * takes the bytes as they arrive; it returns 0 while the request is not
 * complete, 1 once it is (later bytes are not looked at), or the status
 * (400, 413, 431) at which kwh_http_read_request(), reading the same bytes,
 * refuses it.  head_done is set once the head is complete, and
 * expect_continue when it asks for "Expect: 100-continue".
 */
struct kwh_http_scan {
	http_parser p;
	const struct kwh_http_limits *lim;
	size_t head_bytes, nheaders, body_bytes;
	int last_was_value, head_done, done, status, expect_continue;
	char field[8], value[16];	/* the current header, when short */
	size_t field_len, value_len;
};
void kwh_http_scan_init(struct kwh_http_scan *s, const struct kwh_http_limits *lim);
int kwh_http_scan_feed(struct kwh_http_scan *s, const char *data, size_t n);
void kwh_http_request_release(struct kwh_http_request *req);

/* The value of the first header called name (lower case), or NULL. */
const char *kwh_http_header(const struct kwh_http_request *req, const char *name);
/* How many headers are called name (lower case). */
size_t kwh_http_header_count(const struct kwh_http_request *req, const char *name);

/* The reason phrase for a status ("Not Found"), "Unknown" when none. */
const char *kwh_http_reason(int status);

#endif
