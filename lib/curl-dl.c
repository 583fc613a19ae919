/*
 * curl-dl.c — libcurl, loaded when the first request to the API server
 * needs it.
 *
 * Debian's libcurl pulls in 36 shared libraries (GnuTLS for librtmp,
 * Kerberos, LDAP, libssh2, OpenSSL, ...), all built with BIND_NOW: loading
 * them takes longer than everything else kwh-apply does (bench/README.md).
 * Most deliveries that reach kwh-apply need it, but not all: one that an
 * earlier stage answered (a bad signature, a ping, an ignored ref) passes
 * through, and --dry-run=client sends nothing.  kwh is therefore linked
 * with this file instead of libcurl: it defines the libcurl functions kwh
 * calls, and the first call opens libcurl.so.4 with dlopen(3); lib/kube.c
 * makes that first call only when it is about to send a request.
 */
#define CURL_DISABLE_TYPECHECK	/* the real prototypes, not gcc's macros */
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>

#include "dl.h"

#define CURL_SONAME "libcurl.so.4"

static struct {
	int state;		/* 0 not tried, 1 loaded, -1 failed */
	char why[256];
	CURLcode (*global_init)(long);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_perform)(CURL *);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	void (*easy_reset)(CURL *);
	void (*easy_cleanup)(CURL *);
	const char *(*easy_strerror)(CURLcode);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
} c;

static const struct kwh_dl_sym syms[] = {
	{ "curl_global_init", (void **)&c.global_init },
	{ "curl_easy_init", (void **)&c.easy_init },
	{ "curl_easy_setopt", (void **)&c.easy_setopt },
	{ "curl_easy_perform", (void **)&c.easy_perform },
	{ "curl_easy_getinfo", (void **)&c.easy_getinfo },
	{ "curl_easy_reset", (void **)&c.easy_reset },
	{ "curl_easy_cleanup", (void **)&c.easy_cleanup },
	{ "curl_easy_strerror", (void **)&c.easy_strerror },
	{ "curl_slist_append", (void **)&c.slist_append },
	{ "curl_slist_free_all", (void **)&c.slist_free_all },
};

static int
load(void)
{
	if (c.state)
		return c.state > 0 ? 0 : -1;
	c.state = -1;
	if (kwh_dl_open(CURL_SONAME, "", syms, sizeof syms / sizeof *syms, c.why, sizeof c.why) < 0)
		return -1;
	c.state = 1;
	return 0;
}

/*
 * Loads libcurl now: 0, or -1 with the reason in msg.  lib/kube.c calls it
 * before its first request, so that a missing library is reported as such.
 */
int kwh_curl_load(char *msg, size_t msglen);

int
kwh_curl_load(char *msg, size_t msglen)
{
	if (load() == 0)
		return 0;
	snprintf(msg, msglen, "%s", c.why);
	return -1;
}

CURLcode
curl_global_init(long flags)
{
	return load() == 0 ? c.global_init(flags) : CURLE_FAILED_INIT;
}

CURL *
curl_easy_init(void)
{
	return load() == 0 ? c.easy_init() : NULL;
}

/* The one variadic argument is passed on with the type its option's
 * number says (curl.h: CURLOPTTYPE_*). */
CURLcode
curl_easy_setopt(CURL *h, CURLoption opt, ...)
{
	CURLcode r;
	va_list ap;

	if (load() < 0)
		return CURLE_FAILED_INIT;
	va_start(ap, opt);
	if (opt < CURLOPTTYPE_OBJECTPOINT)
		r = c.easy_setopt(h, opt, va_arg(ap, long));
	else if (opt < CURLOPTTYPE_FUNCTIONPOINT)
		r = c.easy_setopt(h, opt, va_arg(ap, void *));
	else if (opt < CURLOPTTYPE_OFF_T)
		r = c.easy_setopt(h, opt, va_arg(ap, void (*)(void)));
	else if (opt < CURLOPTTYPE_BLOB)
		r = c.easy_setopt(h, opt, va_arg(ap, curl_off_t));
	else
		r = c.easy_setopt(h, opt, va_arg(ap, void *));
	va_end(ap);
	return r;
}

CURLcode
curl_easy_perform(CURL *h)
{
	return load() == 0 ? c.easy_perform(h) : CURLE_FAILED_INIT;
}

/* Every CURLINFO takes a pointer. */
CURLcode
curl_easy_getinfo(CURL *h, CURLINFO info, ...)
{
	CURLcode r;
	va_list ap;

	if (load() < 0)
		return CURLE_FAILED_INIT;
	va_start(ap, info);
	r = c.easy_getinfo(h, info, va_arg(ap, void *));
	va_end(ap);
	return r;
}

void
curl_easy_reset(CURL *h)
{
	if (load() == 0)
		c.easy_reset(h);
}

void
curl_easy_cleanup(CURL *h)
{
	if (c.state > 0)
		c.easy_cleanup(h);
}

const char *
curl_easy_strerror(CURLcode e)
{
	return load() == 0 ? c.easy_strerror(e) : c.why;
}

struct curl_slist *
curl_slist_append(struct curl_slist *l, const char *s)
{
	return load() == 0 ? c.slist_append(l, s) : NULL;
}

void
curl_slist_free_all(struct curl_slist *l)
{
	if (c.state > 0)
		c.slist_free_all(l);
}
