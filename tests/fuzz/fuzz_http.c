/* fuzz_http.c — kwh_http_read_request (lib/http.h) on arbitrary bytes.
 * The first byte picks the limits (small, to reach the 413/431 refusals
 * often, or kwh-verify's defaults with a smaller body cap); the rest is
 * the request, read from a memfd. */
#include "fuzz.h"
#include "err.h"
#include "http.h"

#include <ctype.h>

static int fd = -1;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	kwh_log_open("none");
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct kwh_http_limits limits[] = {
		{ 100, 32 * 1024, 1024 * 1024, 2000 },
		{ 8, 512, 256, 2000 },
	};
	const struct kwh_http_limits *lim;
	struct kwh_http_request req;
	char err[256];
	size_t head = 0;
	int st;

	if (size < 1)
		return 0;
	lim = &limits[data[0] & 1];
	fd = fuzz_memfd(fd, data + 1, size - 1);
	memset(err, 'x', sizeof err);
	st = kwh_http_read_request(&req, fd, lim, NULL, err, sizeof err);

	FUZZ_CHECK(st == 0 || st == 400 || st == 408 || st == 413 || st == 431 || st == 500);
	FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL);
	FUZZ_CHECK(st == 0 || err[0] != '\0');	/* a refusal says why */
	FUZZ_CHECK(req.nheaders <= lim->max_headers);
	FUZZ_CHECK(req.body.len <= lim->max_body);
	head = req.url.len;
	for (size_t i = 0; i < req.nheaders; i++) {
		const struct kwh_http_header *h = &req.headers[i];
		FUZZ_CHECK(h->name != NULL && h->value != NULL);
		for (const char *c = h->name; *c; c++)
			FUZZ_CHECK(!isupper((unsigned char)*c));
		head += strlen(h->name) + strlen(h->value);
		FUZZ_CHECK(kwh_http_header(&req, h->name) != NULL);
	}
	if (st == 0) {
		FUZZ_CHECK(req.method[0] != '\0');
		FUZZ_CHECK(memchr(req.method, '\0', sizeof req.method) != NULL);
		FUZZ_CHECK(head <= lim->max_header_bytes);
		FUZZ_CHECK(req.url.data != NULL);
	}
	/* buf.h: data is NUL-terminated whenever it is not NULL.  Known bug
	 * (tests/fuzz/README.md, finding 2): kwh_buf_grow() on an empty
	 * buffer leaves data[0] unset, as when a body announced by
	 * Content-Length never comes; skipped under make fuzz only. */
#ifdef KWH_FUZZ_KNOWN
	if (req.body.data && req.body.len > 0)
#else
	if (req.body.data)
#endif
		FUZZ_CHECK(req.body.data[req.body.len] == '\0');
	kwh_http_request_release(&req);
	return 0;
}
