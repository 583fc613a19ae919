#include "verify.h"
#include "env.h"
#include "err.h"
#include "json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <sys/uio.h>

static long long
epoch_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* 1 when s is 1..max characters of [A-Za-z0-9_-] (plus '.' when dots). */
static int
token_ok(const char *s, size_t max, int dots)
{
	size_t n = 0;

	for (; s[n]; n++) {
		char c = s[n];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' || (dots && c == '.')))
			return 0;
	}
	return n > 0 && n <= max;
}

/* Sets a refusing response: the whole envelope goes into out->head. */
static int
refuse(struct kwh_verify_out *out, const char *delivery, const char *event,
    int status, const char *msg)
{
	jv env = kwh_env_new();
	jv s;

	if (delivery)
		env = jv_object_set(env, jv_string("delivery"), jv_string(delivery));
	if (event)
		env = jv_object_set(env, jv_string("event"), jv_string(event));
	env = kwh_env_respond(env, status, "%s", msg);
	s = jv_dump_string(env, 0);
	kwh_buf_reset(&out->head);
	kwh_buf_adds(&out->head, jv_string_value(s));
	jv_free(s);
	out->payload = NULL;
	out->payload_len = 0;
	out->tail = "";
	return out->status = status;
}

static int
unhex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes application/x-www-form-urlencoded s[0..n) in place; new length. */
static size_t
form_decode(char *s, size_t n)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		if (s[i] == '+')
			s[o++] = ' ';
		else if (s[i] == '%' && i + 2 < n && unhex(s[i + 1]) >= 0 && unhex(s[i + 2]) >= 0) {
			s[o++] = (char)(unhex(s[i + 1]) << 4 | unhex(s[i + 2]));
			i += 2;
		} else
			s[o++] = s[i];
	}
	return o;
}

/* Finds the payload= field of a form body and decodes it in place. */
static int
form_payload(char *body, size_t n, const char **p, size_t *len)
{
	size_t i = 0;

	while (i < n) {
		size_t end = i, eq;
		while (end < n && body[end] != '&')
			end++;
		for (eq = i; eq < end && body[eq] != '='; eq++)
			;
		if (eq < end) {
			size_t klen = form_decode(body + i, eq - i);
			if (klen == 7 && !memcmp(body + i, "payload", 7)) {
				*len = form_decode(body + eq + 1, end - eq - 1);
				*p = body + eq + 1;
				return 0;
			}
		}
		i = end + 1;
	}
	return -1;
}

/* GET /-/ready: distinct from /-/alive (a process that answers but can do
 * no work is alive and not ready: Kubernetes sends it no traffic rather
 * than restarting it). */
static int
ready(const struct kwh_verify_opts *o, struct kwh_verify_out *out, char *why, size_t n)
{
	snprintf(why, n, "ready");
	if (o->ready && o->ready(o->ready_arg, why, n) < 0)
		return refuse(out, NULL, NULL, 503, why);
	return refuse(out, NULL, NULL, 200, "ready");
}

int
kwh_verify(const struct kwh_verify_opts *o, int fd, struct kwh_verify_out *out)
{
	struct kwh_http_request *req = &out->req;
	const char *delivery, *event, *ctype, *sig256, *sig1, *verified;
	char err[512], path[64], digest[65], kind;
	long long received = o->given ? o->given->received_ms : epoch_ms();
	int st, r;
	size_t i;

	memset(out, 0, sizeof *out);
	kwh_buf_init(&out->head, 0);
	st = kwh_http_read_request(req, fd, &o->limits, o->given, err, sizeof err);
	delivery = kwh_http_header(req, "x-github-delivery");
	event = kwh_http_header(req, "x-github-event");
	if (delivery && !token_ok(delivery, 128, 0))
		delivery = NULL;
	if (event && !token_ok(event, 64, 1))
		event = NULL;
	if (st)
		return refuse(out, delivery, event, st, err);

	snprintf(path, sizeof path, "%.*s", (int)strcspn(req->url.data ? req->url.data : "", "?"),
	    req->url.data ? req->url.data : "");
	if (!strcmp(req->method, "GET") &&
	    !strcmp(path, o->liveness_path ? o->liveness_path : KWH_VERIFY_LIVENESS_PATH))
		return refuse(out, NULL, NULL, 200, "alive");
	if (!strcmp(req->method, "GET") && !strcmp(path, "/-/ready"))
		return ready(o, out, err, sizeof err);
	if (strcmp(req->method, "POST")) {
		snprintf(err, sizeof err, "method %s is not allowed: webhooks are delivered with POST", req->method);
		return refuse(out, delivery, event, 405, err);
	}

	/* One of each header that says what the request is: which of two
	 * would count is for no one to guess (first-wins lets a proxy and
	 * kwh read different requests). */
	{
		static const char *const once[] = { "x-hub-signature-256", "x-hub-signature",
		    "x-github-delivery", "x-github-event", "content-type",
		    "x-github-hook-installation-target-type", "x-github-hook-installation-target-id" };
		for (i = 0; i < sizeof once / sizeof once[0]; i++)
			if (kwh_http_header_count(req, once[i]) > 1) {
				snprintf(err, sizeof err, "the %s header is given more than once", once[i]);
				return refuse(out, NULL, NULL, 400, err);
			}
	}

	/* The signature, before anything looks at the body. */
	sig256 = kwh_http_header(req, "x-hub-signature-256");
	sig1 = kwh_http_header(req, "x-hub-signature");
	if (o->insecure && o->secrets.n == 0) {
		verified = "none";
	} else if (sig256) {
		r = kwh_sig_check(&o->secrets, KWH_SIG_SHA256, sig256, req->body.data, req->body.len);
		if (r < 0)
			return refuse(out, delivery, event, 401,
			    "X-Hub-Signature-256 is not of the form sha256=<64 hex digits>");
		if (r == 0)
			return refuse(out, delivery, event, 401,
			    "X-Hub-Signature-256 does not match the body under any configured secret");
		verified = "sha256";
	} else if (sig1 && o->allow_sha1) {
		r = kwh_sig_check(&o->secrets, KWH_SIG_SHA1, sig1, req->body.data, req->body.len);
		if (r < 0)
			return refuse(out, delivery, event, 401,
			    "X-Hub-Signature is not of the form sha1=<40 hex digits>");
		if (r == 0)
			return refuse(out, delivery, event, 401,
			    "X-Hub-Signature does not match the body under any configured secret");
		verified = "sha1";
	} else if (sig1) {
		return refuse(out, delivery, event, 401,
		    "X-Hub-Signature-256 header is missing (the legacy sha1 X-Hub-Signature is accepted only with --allow-sha1)");
	} else {
		return refuse(out, delivery, event, 401, "X-Hub-Signature-256 header is missing");
	}

	if (!kwh_http_header(req, "x-github-event"))
		return refuse(out, delivery, NULL, 400, "X-GitHub-Event header is missing");
	if (!event)
		return refuse(out, delivery, NULL, 400,
		    "X-GitHub-Event must be 1 to 64 letters, digits, '.', '-' or '_'");
	if (!kwh_http_header(req, "x-github-delivery"))
		return refuse(out, NULL, event, 400, "X-GitHub-Delivery header is missing");
	if (!delivery)
		return refuse(out, NULL, event, 400,
		    "X-GitHub-Delivery must be 1 to 128 letters, digits, '-' or '_'");

	/* The key of the delivery (kwh.7), from what is signed: taken before
	 * a form body is decoded in place. */
	kwh_delivery_digest(digest, event,
	    kwh_target_type(kwh_http_header(req, "x-github-hook-installation-target-type")),
	    req->body.data ? req->body.data : "", req->body.len);

	ctype = kwh_http_header(req, "content-type");
	{
		size_t n = ctype ? strcspn(ctype, "; \t") : 0;
		if (ctype && n == 16 && !strncasecmp(ctype, "application/json", n)) {
			out->payload = req->body.data ? req->body.data : "";
			out->payload_len = req->body.len;
		} else if (ctype && n == 33 && !strncasecmp(ctype, "application/x-www-form-urlencoded", n)) {
			if (!req->body.data || form_payload(req->body.data, req->body.len,
			    &out->payload, &out->payload_len) < 0)
				return refuse(out, delivery, event, 400, "form body has no payload field");
		} else {
			snprintf(err, sizeof err,
			    "content type %.100s is not supported: use application/json or application/x-www-form-urlencoded",
			    ctype ? ctype : "(none)");
			return refuse(out, delivery, event, 415, err);
		}
	}
	{
		char jerr[200];
		r = kwh_json_validate_n(out->payload, out->payload_len, o->max_json_values, NULL,
		    &kind, jerr, sizeof jerr);
		if (r == -2) {
			snprintf(err, sizeof err, "payload has %s (the limit is --max-json-values)", jerr);
			return refuse(out, delivery, event, 413, err);
		}
		if (r < 0) {
			snprintf(err, sizeof err, "body is not valid JSON: %s", jerr);
			return refuse(out, delivery, event, 400, err);
		}
		if (kind != '{')
			return refuse(out, delivery, event, 400, "body is JSON but not an object");
	}

	/* The envelope, its payload copied as received. */
	kwh_buf_adds(&out->head, "{\"kwh\":1,\"delivery\":");
	kwh_buf_add_json_string(&out->head, delivery, strlen(delivery));
	kwh_buf_adds(&out->head, ",\"event\":");
	kwh_buf_add_json_string(&out->head, event, strlen(event));
	kwh_buf_printf(&out->head, ",\"digest\":\"%s\"", digest);
	kwh_buf_printf(&out->head, ",\"verified\":\"%s\",\"deadline\":%lld,\"headers\":{",
	    verified, received + o->budget_ms);
	for (i = 0; i < req->nheaders; i++) {
		size_t j;
		for (j = 0; j < i; j++)
			if (!strcmp(req->headers[j].name, req->headers[i].name))
				break;
		if (j < i)
			continue;	/* folded into the first one below */
		if (i)
			kwh_buf_addc(&out->head, ',');
		kwh_buf_add_json_string(&out->head, req->headers[i].name, strlen(req->headers[i].name));
		kwh_buf_addc(&out->head, ':');
		{
			struct kwh_buf v = KWH_BUF_INIT;
			kwh_buf_adds(&v, req->headers[i].value);
			for (j = i + 1; j < req->nheaders; j++)
				if (!strcmp(req->headers[j].name, req->headers[i].name)) {
					kwh_buf_adds(&v, ", ");
					kwh_buf_adds(&v, req->headers[j].value);
				}
			kwh_buf_add_json_string(&out->head, v.data, v.len);
			kwh_buf_release(&v);
		}
	}
	kwh_buf_adds(&out->head, "},\"payload\":");
	out->tail = "}";
	if (!out->head.data)
		return refuse(out, delivery, event, 500, "out of memory");
	kwh_log(KWH_LOG_INFO, delivery, 0, "verified %s event=%s bytes=%zu", verified, event,
	    out->payload_len);
	return out->status = 0;
}

int
kwh_verify_write(const struct kwh_verify_out *out, int fd)
{
	struct iovec iov[4] = {
		{ out->head.data ? out->head.data : "", out->head.len },
		{ (void *)out->payload, out->payload_len },
		{ (void *)out->tail, out->tail ? strlen(out->tail) : 0 },
		{ "\n", 1 },
	};
	size_t i = 0;

	while (i < 4) {
		ssize_t w = writev(fd, iov + i, (int)(4 - i));
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		while (i < 4 && (size_t)w >= iov[i].iov_len) {
			w -= (ssize_t)iov[i].iov_len;
			i++;
		}
		if (i < 4) {
			iov[i].iov_base = (char *)iov[i].iov_base + w;
			iov[i].iov_len -= (size_t)w;
		}
	}
	return 0;
}

void
kwh_verify_out_release(struct kwh_verify_out *out)
{
	kwh_http_request_release(&out->req);
	kwh_buf_release(&out->head);
}
