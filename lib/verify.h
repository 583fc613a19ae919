/* verify.h — the first stage: one HTTP request in, one envelope out. */
#ifndef KWH_VERIFY_H
#define KWH_VERIFY_H
#include "http.h"
#include "sig.h"

struct kwh_verify_opts {
	struct kwh_secrets secrets;	/* any one may match */
	int allow_sha1;			/* accept X-Hub-Signature alone */
	int insecure;			/* no secret: verified "none" */
	struct kwh_http_limits limits;
	long budget_ms;			/* deadline = receipt + budget */
	/* the request as kwh-handle --listen's acceptor read it (fd is then
	 * a file of its bytes), or NULL: read off fd as it arrives */
	const struct kwh_http_given *given;
	size_t max_json_values;		/* values in the payload (413 beyond), 0: no bound */
	const char *liveness_path;	/* GET answered 200 "alive"; NULL: KWH_VERIFY_LIVENESS_PATH */
	/* GET /-/ready: 0 when the caller can do work, else -1 and why in
	 * the buffer (answered 503); NULL: ready whenever alive */
	int (*ready)(void *arg, char *why, size_t n);
	void *ready_arg;
};
#define KWH_VERIFY_LIVENESS_PATH "/-/alive"
#define KWH_VERIFY_BUDGET_MS 9000
/* Every value of the payload becomes a jq value in the later stages (some
 * tens of bytes each): a bound on their number bounds their memory.  Real
 * payloads hold a few thousand. */
#define KWH_VERIFY_MAX_JSON_VALUES ((size_t)1000000)

/*
 * The envelope, in pieces so that a large payload is never copied: the
 * text is head, then payload[0..payload_len) (borrowed from req.body),
 * then tail.  When the delivery is refused, head holds the whole envelope
 * and payload_len is 0.
 */
struct kwh_verify_out {
	struct kwh_http_request req;
	struct kwh_buf head;
	const char *payload;
	size_t payload_len;
	const char *tail;
	int status;	/* response status set, 0 when the delivery passed */
};

/*
 * Reads one request from fd and checks it: method (405; GET /-/alive is
 * answered 200, GET /-/ready
 * 200 or 503 as o->ready says), signature (401), headers (400), content type (415), JSON
 * body (400), and the read limits (408, 413, 431) and max_json_values
 * (413).  Fills out; returns
 * out->status.  Logs the decision.  kwh_verify_out_release() frees out.
 */
int kwh_verify(const struct kwh_verify_opts *o, int fd, struct kwh_verify_out *out);
/* Writes the envelope and a newline to fd.  0 or -1. */
int kwh_verify_write(const struct kwh_verify_out *out, int fd);
void kwh_verify_out_release(struct kwh_verify_out *out);

#endif
