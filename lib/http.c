#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <strings.h>
#include <unistd.h>
#include <http_parser.h>

struct reader {
	struct kwh_http_request *req;
	const struct kwh_http_limits *lim;
	int fd;
	size_t head_bytes;
	int last_was_value;
	int headers_done, done;
	int status;		/* set by a callback that refuses */
	char *err;
	size_t errlen;
	struct kwh_buf field, value;
};

static int
refuse(struct reader *r, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
refuse(struct reader *r, int status, const char *fmt, ...)
{
	va_list ap;

	r->status = status;
	va_start(ap, fmt);
	vsnprintf(r->err, r->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int
count_head(struct reader *r, size_t n)
{
	r->head_bytes += n;
	if (r->head_bytes > r->lim->max_header_bytes)
		return refuse(r, 431, "request headers are larger than %zu bytes",
		    r->lim->max_header_bytes);
	return 0;
}

static int
flush_header(struct reader *r)
{
	struct kwh_http_request *q = r->req;
	struct kwh_http_header *h;

	if (!r->field.data)
		return 0;
	if (q->nheaders >= r->lim->max_headers)
		return refuse(r, 431, "request has more than %zu headers", r->lim->max_headers);
	h = realloc(q->headers, (q->nheaders + 1) * sizeof *h);
	if (!h)
		return refuse(r, 500, "out of memory");
	q->headers = h;
	for (size_t i = 0; i < r->field.len; i++)
		r->field.data[i] = (char)tolower((unsigned char)r->field.data[i]);
	if (!r->value.data)
		kwh_buf_grow(&r->value, 0);
	h[q->nheaders].name = kwh_buf_detach(&r->field, NULL);
	h[q->nheaders].value = kwh_buf_detach(&r->value, NULL);
	if (!h[q->nheaders].name || !h[q->nheaders].value) {
		free(h[q->nheaders].name);
		free(h[q->nheaders].value);
		return refuse(r, 500, "out of memory");
	}
	q->nheaders++;
	return 0;
}

static int
on_url(http_parser *p, const char *at, size_t n)
{
	struct reader *r = p->data;

	if (count_head(r, n) < 0)
		return -1;
	return kwh_buf_add(&r->req->url, at, n) < 0 ? refuse(r, 500, "out of memory") : 0;
}

static int
on_header_field(http_parser *p, const char *at, size_t n)
{
	struct reader *r = p->data;

	if (count_head(r, n) < 0)
		return -1;
	if (r->last_was_value && flush_header(r) < 0)
		return -1;
	r->last_was_value = 0;
	return kwh_buf_add(&r->field, at, n) < 0 ? refuse(r, 500, "out of memory") : 0;
}

static int
on_header_value(http_parser *p, const char *at, size_t n)
{
	struct reader *r = p->data;

	if (count_head(r, n) < 0)
		return -1;
	r->last_was_value = 1;
	return kwh_buf_add(&r->value, at, n) < 0 ? refuse(r, 500, "out of memory") : 0;
}

static int
is_socket(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

static int
on_headers_complete(http_parser *p)
{
	struct reader *r = p->data;
	struct kwh_http_request *q = r->req;
	const char *expect;

	if (r->last_was_value && flush_header(r) < 0)
		return -1;
	r->headers_done = 1;
	snprintf(q->method, sizeof q->method, "%s", http_method_str(p->method));
	q->chunked = (p->flags & F_CHUNKED) != 0;
	if (!q->chunked && p->content_length != ULLONG_MAX &&
	    p->content_length > r->lim->max_body)
		return refuse(r, 413, "request body of %llu bytes is larger than the limit of %zu bytes",
		    (unsigned long long)p->content_length, r->lim->max_body);
	/* One allocation for a body of known size. */
	if (!q->chunked && p->content_length != ULLONG_MAX && p->content_length > 0 &&
	    kwh_buf_grow(&q->body, (size_t)p->content_length) < 0)
		return refuse(r, 500, "out of memory");
	expect = kwh_http_header(q, "expect");
	if (expect && !strcasecmp(expect, "100-continue") && is_socket(r->fd)) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		if (kwh_write_all(r->fd, cont, sizeof cont - 1) < 0)
			return refuse(r, 400, "cannot answer 100-continue: %s", strerror(errno));
	}
	return 0;
}

static int
on_body(http_parser *p, const char *at, size_t n)
{
	struct reader *r = p->data;

	if (kwh_buf_add(&r->req->body, at, n) < 0)
		return errno == EFBIG
		    ? refuse(r, 413, "request body is larger than the limit of %zu bytes", r->lim->max_body)
		    : refuse(r, 500, "out of memory");
	return 0;
}

static int
on_message_complete(http_parser *p)
{
	struct reader *r = p->data;

	r->done = 1;
	http_parser_pause(p, 1);
	return 0;
}

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int
kwh_http_read_request(struct kwh_http_request *req, int fd,
    const struct kwh_http_limits *lim, const struct kwh_http_given *given,
    char *err, size_t errlen)
{
	static const http_parser_settings settings = {
		.on_url = on_url,
		.on_header_field = on_header_field,
		.on_header_value = on_header_value,
		.on_headers_complete = on_headers_complete,
		.on_body = on_body,
		.on_message_complete = on_message_complete,
	};
	struct reader r = { .req = req, .lim = lim, .fd = fd, .err = err, .errlen = errlen };
	http_parser p;
	char chunk[65536];
	size_t total = 0;
	long deadline = now_ms() + lim->timeout_ms;

	memset(req, 0, sizeof *req);
	kwh_buf_init(&req->url, 0);
	kwh_buf_init(&req->body, lim->max_body);
	kwh_buf_init(&r.field, 0);
	kwh_buf_init(&r.value, 0);
	err[0] = '\0';
	http_parser_init(&p, HTTP_REQUEST);
	p.data = &r;

	while (!r.done && !r.status) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		long left = deadline - now_ms();
		ssize_t n;
		int pr;

		if (left <= 0 || (pr = poll(&pfd, 1, (int)left)) == 0) {
			refuse(&r, 408, "request not received within %ld ms (%zu bytes read)",
			    lim->timeout_ms, total);
			break;
		}
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			refuse(&r, 400, "cannot read request: %s", strerror(errno));
			break;
		}
		n = read(fd, chunk, sizeof chunk);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			refuse(&r, 400, "cannot read request: %s", strerror(errno));
			break;
		}
		if (n == 0) {
			if (given && given->timed_out_ms > 0)
				refuse(&r, 408, "request%s not received within %ld ms (%zu bytes read)",
				    given->head_timed_out ? " headers" : "", given->timed_out_ms, total);
			else if (total == 0)
				refuse(&r, 400, "empty request: the connection closed before any byte arrived");
			else if (!r.headers_done)
				refuse(&r, 400, "request truncated: the connection closed inside the headers");
			else if (!req->chunked && p.content_length != ULLONG_MAX)
				refuse(&r, 400, "request body truncated: got %zu of %zu bytes",
				    req->body.len, req->body.len + (size_t)p.content_length);
			else
				refuse(&r, 400, "request body truncated: the connection closed before its end");
			break;
		}
		http_parser_execute(&p, &settings, chunk, (size_t)n);
		total += (size_t)n;
		if (r.status || r.done)
			break;
		if (HTTP_PARSER_ERRNO(&p) != HPE_OK) {
			if (HTTP_PARSER_ERRNO(&p) == HPE_HEADER_OVERFLOW)
				refuse(&r, 431, "request headers are too large");
			else
				refuse(&r, 400, "malformed HTTP request: %s",
				    http_errno_description(HTTP_PARSER_ERRNO(&p)));
			break;
		}
	}
	kwh_buf_release(&r.field);
	kwh_buf_release(&r.value);
	return r.done && !r.status ? 0 : r.status;
}

/* The scanner: the reader's limits, counted rather than kept. */
static int
scan_head(struct kwh_http_scan *s, size_t n)
{
	s->head_bytes += n;
	if (s->head_bytes > s->lim->max_header_bytes)
		s->status = 431;
	return s->status ? -1 : 0;
}

/* A header ends: counted, and "Expect: 100-continue" noted. */
static int
scan_flush(struct kwh_http_scan *s)
{
	if (!s->field_len && !s->value_len && !s->last_was_value)
		return 0;
	if (s->nheaders >= s->lim->max_headers) {
		s->status = 431;
		return -1;
	}
	s->nheaders++;
	if (s->field_len == 6 && !strncasecmp(s->field, "expect", 6) && s->expect_continue >= 0)
		s->expect_continue = s->value_len == 12 && !strncasecmp(s->value, "100-continue", 12) ? 1 : -1;
	s->field_len = s->value_len = 0;
	return 0;
}

/* Appends to a short buffer; what does not fit makes it too long to match. */
static void
scan_keep(char *buf, size_t cap, size_t *len, const char *at, size_t n)
{
	if (*len + n <= cap)
		memcpy(buf + *len, at, n);
	*len = *len + n <= cap ? *len + n : cap + 1;
}

static int
scan_url(http_parser *p, const char *at, size_t n)
{
	return scan_head(p->data, n);
}

static int
scan_field(http_parser *p, const char *at, size_t n)
{
	struct kwh_http_scan *s = p->data;

	if (scan_head(s, n) < 0 || (s->last_was_value && scan_flush(s) < 0))
		return -1;
	s->last_was_value = 0;
	scan_keep(s->field, sizeof s->field, &s->field_len, at, n);
	return 0;
}

static int
scan_value(http_parser *p, const char *at, size_t n)
{
	struct kwh_http_scan *s = p->data;

	if (scan_head(s, n) < 0)
		return -1;
	s->last_was_value = 1;
	scan_keep(s->value, sizeof s->value, &s->value_len, at, n);
	return 0;
}

static int
scan_headers_complete(http_parser *p)
{
	struct kwh_http_scan *s = p->data;

	if (s->last_was_value && scan_flush(s) < 0)
		return -1;
	s->head_done = 1;
	if (!(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX &&
	    p->content_length > s->lim->max_body) {
		s->status = 413;
		return -1;
	}
	if (s->expect_continue < 0)
		s->expect_continue = 0;
	return 0;
}

static int
scan_body(http_parser *p, const char *at, size_t n)
{
	struct kwh_http_scan *s = p->data;

	s->body_bytes += n;
	if (s->body_bytes > s->lim->max_body) {
		s->status = 413;
		return -1;
	}
	return 0;
}

static int
scan_complete(http_parser *p)
{
	struct kwh_http_scan *s = p->data;

	s->done = 1;
	http_parser_pause(p, 1);
	return 0;
}

void
kwh_http_scan_init(struct kwh_http_scan *s, const struct kwh_http_limits *lim)
{
	memset(s, 0, sizeof *s);
	s->lim = lim;
	http_parser_init(&s->p, HTTP_REQUEST);
	s->p.data = s;
}

int
kwh_http_scan_feed(struct kwh_http_scan *s, const char *data, size_t n)
{
	static const http_parser_settings settings = {
		.on_url = scan_url,
		.on_header_field = scan_field,
		.on_header_value = scan_value,
		.on_headers_complete = scan_headers_complete,
		.on_body = scan_body,
		.on_message_complete = scan_complete,
	};

	if (s->status || s->done)
		return s->status ? s->status : 1;
	http_parser_execute(&s->p, &settings, data, n);
	if (s->status || s->done)
		return s->status ? s->status : 1;
	if (HTTP_PARSER_ERRNO(&s->p) != HPE_OK)
		s->status = HTTP_PARSER_ERRNO(&s->p) == HPE_HEADER_OVERFLOW ? 431 : 400;
	return s->status;
}

void
kwh_http_request_release(struct kwh_http_request *req)
{
	for (size_t i = 0; i < req->nheaders; i++) {
		free(req->headers[i].name);
		free(req->headers[i].value);
	}
	free(req->headers);
	req->headers = NULL;
	req->nheaders = 0;
	kwh_buf_release(&req->url);
	kwh_buf_release(&req->body);
}

const char *
kwh_http_header(const struct kwh_http_request *req, const char *name)
{
	for (size_t i = 0; i < req->nheaders; i++)
		if (!strcmp(req->headers[i].name, name))
			return req->headers[i].value;
	return NULL;
}

size_t
kwh_http_header_count(const struct kwh_http_request *req, const char *name)
{
	size_t n = 0;

	for (size_t i = 0; i < req->nheaders; i++)
		n += !strcmp(req->headers[i].name, name);
	return n;
}

const char *
kwh_http_reason(int status)
{
	static const struct { int s; const char *r; } t[] = {
		{ 100, "Continue" }, { 200, "OK" }, { 201, "Created" },
		{ 202, "Accepted" }, { 204, "No Content" },
		{ 400, "Bad Request" }, { 401, "Unauthorized" }, { 403, "Forbidden" },
		{ 404, "Not Found" }, { 405, "Method Not Allowed" },
		{ 408, "Request Timeout" }, { 409, "Conflict" },
		{ 413, "Content Too Large" }, { 415, "Unsupported Media Type" },
		{ 422, "Unprocessable Content" }, { 429, "Too Many Requests" },
		{ 431, "Request Header Fields Too Large" },
		{ 500, "Internal Server Error" }, { 502, "Bad Gateway" },
		{ 503, "Service Unavailable" }, { 504, "Gateway Timeout" },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (t[i].s == status)
			return t[i].r;
	return "Unknown";
}
