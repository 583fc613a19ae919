#include "sign.h"
#include "sig.h"

#include <stdio.h>
#include <string.h>

static void
form_encode(struct kwh_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '*')
			kwh_buf_addc(b, (char)c);
		else if (c == ' ')
			kwh_buf_addc(b, '+');
		else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };
			kwh_buf_add(b, e, 3);
		}
	}
}

int
kwh_sign_request(struct kwh_buf *out, const struct kwh_sign_opts *o,
    const void *key, size_t keylen, const char *body, size_t n)
{
	struct kwh_buf form = KWH_BUF_INIT;
	char sig[80], uuid[37];
	const char *delivery = o->delivery;
	int r = -1;

	if (o->form) {
		kwh_buf_adds(&form, "payload=");
		form_encode(&form, body, n);
		if (!form.data)
			return -1;
		body = form.data;
		n = form.len;
	}
	if (!delivery) {
		if (kwh_uuid4(uuid) < 0)
			goto out;
		delivery = uuid;
	}
	kwh_buf_printf(out, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: GitHub-Hookshot/kwh-sign\r\n"
	    "Accept: */*\r\nX-GitHub-Event: %s\r\nX-GitHub-Delivery: %s\r\n"
	    "Content-Type: %s\r\n",
	    o->path, o->host, o->event, delivery,
	    o->form ? "application/x-www-form-urlencoded" : "application/json");
	if (o->sha1) {
		if (kwh_sig_header(sig, KWH_SIG_SHA1, key, keylen, body, n) < 0)
			goto out;
		kwh_buf_printf(out, "X-Hub-Signature: %s\r\n", sig);
	}
	if (kwh_sig_header(sig, KWH_SIG_SHA256, key, keylen, body, n) < 0)
		goto out;
	kwh_buf_printf(out, "X-Hub-Signature-256: %s\r\n", sig);
	for (size_t i = 0; i < o->nheaders; i++)
		kwh_buf_printf(out, "%s\r\n", o->headers[i]);
	if (o->chunked) {
		/* Chunks of at most 4 KiB, as a streaming client would send. */
		kwh_buf_adds(out, "Transfer-Encoding: chunked\r\n\r\n");
		for (size_t i = 0; i < n; i += 4096) {
			size_t c = n - i < 4096 ? n - i : 4096;
			kwh_buf_printf(out, "%zx\r\n", c);
			kwh_buf_add(out, body + i, c);
			kwh_buf_adds(out, "\r\n");
		}
		kwh_buf_adds(out, "0\r\n\r\n");
	} else {
		kwh_buf_printf(out, "Content-Length: %zu\r\n\r\n", n);
		kwh_buf_add(out, body, n);
	}
	r = out->data ? 0 : -1;
out:
	explicit_bzero(sig, sizeof sig);
	kwh_buf_release(&form);
	return r;
}
