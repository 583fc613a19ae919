/* github.c — GitHub's REST API over libcurl; App JWTs with OpenSSL's EVP API. */
#include "github.h"
#include "cli.h"
#include "env.h"
#include "err.h"

#include <curl/curl.h>
#include <errno.h>
#include <jv.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DEFAULT_API "https://api.github.com"

int
kwh_github_init(struct kwh_github *g)
{
	static int global;

	if (!global) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		global = 1;
	}
	if (!g->api_url)
		g->api_url = DEFAULT_API;
	if (!g->max_answer)
		g->max_answer = 1 << 20;
	if (!(g->curl = curl_easy_init()))
		return -1;
	return 0;
}

void
kwh_github_release(struct kwh_github *g)
{
	if (g->curl)
		curl_easy_cleanup(g->curl);
	g->curl = NULL;
	EVP_PKEY_free(g->app_key);
	g->app_key = NULL;
	kwh_buf_wipe(&g->token);
	kwh_buf_wipe(&g->inst_token);
	kwh_buf_release(&g->next);
}

int
kwh_github_app_key(struct kwh_github *g, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *k;

	if (!f) {
		snprintf(err, errlen, "cannot open App key file '%s': %s", path, strerror(errno));
		return -1;
	}
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!k || EVP_PKEY_base_id(k) != EVP_PKEY_RSA) {
		EVP_PKEY_free(k);
		snprintf(err, errlen, "App key file '%s' holds no RSA private key in PEM "
		    "(download one from the App's settings)", path);
		return -1;
	}
	EVP_PKEY_free(g->app_key);
	g->app_key = k;
	return 0;
}

/* Appends p[0..n) in unpadded base64url (RFC 7515). */
static int
b64url(struct kwh_buf *out, const unsigned char *p, size_t n)
{
	size_t cap = 4 * ((n + 2) / 3) + 1, len;
	char *s;

	if (kwh_buf_grow(out, cap) < 0)
		return -1;
	s = out->data + out->len;
	len = (size_t)EVP_EncodeBlock((unsigned char *)s, p, (int)n);
	while (len && s[len - 1] == '=')
		len--;
	for (size_t i = 0; i < len; i++)
		s[i] = s[i] == '+' ? '-' : s[i] == '/' ? '_' : s[i];
	out->len += len;
	out->data[out->len] = '\0';
	return 0;
}

int
kwh_github_jwt(struct kwh_github *g, long long now_s, struct kwh_buf *out)
{
	static const char header[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
	char claims[128];
	unsigned char sig[1024];
	size_t siglen = sizeof sig, start = out->len;
	EVP_MD_CTX *md;
	int n, ok;

	if (!g->app_key)
		return -1;
	/* GitHub refuses an iat in its future and an exp more than 10 minutes
	 * ahead: iat a minute back covers clock drift, exp is iat + 10 min. */
	n = snprintf(claims, sizeof claims, "{\"iat\":%lld,\"exp\":%lld,\"iss\":\"%ld\"}",
	    now_s - 60, now_s - 60 + 600, g->app_id);
	if (b64url(out, (const unsigned char *)header, strlen(header)) < 0 ||
	    kwh_buf_addc(out, '.') < 0 ||
	    b64url(out, (const unsigned char *)claims, (size_t)n) < 0)
		return -1;
	if (!(md = EVP_MD_CTX_new()))
		return -1;
	ok = EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, g->app_key) == 1 &&
	    EVP_DigestSign(md, sig, &siglen, (const unsigned char *)out->data + start,
		out->len - start) == 1;
	EVP_MD_CTX_free(md);
	if (!ok || kwh_buf_addc(out, '.') < 0 || b64url(out, sig, siglen) < 0)
		return -1;
	return 0;
}

struct answer {
	struct kwh_github *g;
	struct kwh_buf *body;
};

static size_t
on_body(char *p, size_t sz, size_t n, void *u)
{
	struct answer *a = u;

	return kwh_buf_add(a->body, p, sz * n) < 0 ? 0 : sz * n;
}

/* A number after "name:" in header line p, or -1. */
static long long
header_num(const char *p, size_t len, const char *name)
{
	size_t k = strlen(name);
	char tmp[32];
	char *end;
	long long v;

	if (len <= k || strncasecmp(p, name, k))
		return -1;
	len -= k;
	if (len >= sizeof tmp)
		len = sizeof tmp - 1;
	memcpy(tmp, p + k, len);
	tmp[len] = '\0';
	v = strtoll(tmp, &end, 10);
	return end == tmp || v < 0 ? -1 : v;
}

/*
 * The rel="next" URL of a Link header (RFC 8288) into g->next:
 * "link: <URL>; rel="next", <URL>; rel="last"".
 */
static void
link_next(struct kwh_github *g, const char *p, size_t len)
{
	const char *end = p + len;

	if (len < 5 || strncasecmp(p, "link:", 5))
		return;
	for (p += 5; p < end;) {
		const char *lt = memchr(p, '<', (size_t)(end - p)), *gt, *nx;

		if (!lt || !(gt = memchr(lt, '>', (size_t)(end - lt))))
			return;
		/* the parameters run to the next '<' */
		nx = memchr(gt, '<', (size_t)(end - gt));
		if (!nx)
			nx = end;
		if (memmem(gt, (size_t)(nx - gt), "rel=\"next\"", 10) ||
		    memmem(gt, (size_t)(nx - gt), "rel=next", 8)) {
			kwh_buf_reset(&g->next);
			kwh_buf_add(&g->next, lt + 1, (size_t)(gt - lt - 1));
			return;
		}
		p = nx;
	}
}

static size_t
on_header(char *p, size_t sz, size_t n, void *u)
{
	struct kwh_github *g = ((struct answer *)u)->g;
	size_t len = sz * n;
	long long v;

	link_next(g, p, len);
	if ((v = header_num(p, len, "retry-after:")) >= 0)
		g->retry_after = (long)v;
	if ((v = header_num(p, len, "x-ratelimit-remaining:")) == 0)
		g->ratelimit_out = 1;
	if ((v = header_num(p, len, "x-ratelimit-reset:")) >= 0)
		g->ratelimit_reset = v;
	return len;
}

/* GitHub's "message" from an error answer, or a short text. */
static void
api_message(const struct kwh_buf *b, long status, char *err, size_t errlen)
{
	jv j = jv_parse_sized(b->data ? b->data : "", (int)b->len);
	jv m = jv_get_kind(j) == JV_KIND_OBJECT ? jv_object_get(jv_copy(j), jv_string("message")) : jv_invalid();

	if (jv_get_kind(m) == JV_KIND_STRING)
		snprintf(err, errlen, "GitHub answered %ld: %.200s", status, jv_string_value(m));
	else
		snprintf(err, errlen, "GitHub answered %ld", status);
	jv_free(m);
	jv_free(j);
}

/* One request, retried within the deadline.  auth is the whole header value. */
static int
call(struct kwh_github *g, const char *method, const char *path, const char *body,
    const char *auth, long long deadline_ms, struct kwh_buf *out, long *status,
    char *err, size_t errlen)
{
	struct kwh_buf url = KWH_BUF_INIT, authz = KWH_BUF_INIT;
	struct curl_slist *hl = NULL;
	long long wait = 200;
	int rc = -1;

	if (!strncmp(path, "https://", 8) || !strncmp(path, "http://", 7)) {
		size_t n = strlen(g->api_url);

		/* a URL from an answer (Link): the credentials go to api_url only */
		if (strncmp(path, g->api_url, n) || (path[n] != '/' && path[n] != '?')) {
			snprintf(err, errlen, "GitHub's answer points outside %s (%.200s); not followed",
			    g->api_url, path);
			return -1;
		}
		kwh_buf_adds(&url, path);
	} else
		kwh_buf_printf(&url, "%s%s", g->api_url, path);
	kwh_buf_printf(&authz, "Authorization: %s", auth);
	hl = curl_slist_append(hl, "Accept: application/vnd.github+json");
	hl = curl_slist_append(hl, "X-GitHub-Api-Version: 2022-11-28");
	hl = curl_slist_append(hl, "Content-Type: application/json");
	hl = curl_slist_append(hl, authz.data);
	kwh_buf_wipe(&authz);
	for (int attempt = 1;; attempt++) {
		struct answer a = { g, out };
		char cerr[CURL_ERROR_SIZE] = "";
		long long left = deadline_ms - kwh_now_ms();
		CURLcode cc;
		int retry;

		if (left <= 0) {
			if (!*err)
				snprintf(err, errlen, "no time left to call GitHub");
			break;
		}
		kwh_buf_reset(out);
		kwh_buf_reset(&g->next);
		out->max = g->max_answer;
		g->retry_after = -1;
		g->ratelimit_out = 0;
		g->ratelimit_reset = 0;
		*status = 0;
		curl_easy_reset(g->curl);
		curl_easy_setopt(g->curl, CURLOPT_URL, url.data);
		curl_easy_setopt(g->curl, CURLOPT_HTTPHEADER, hl);
		curl_easy_setopt(g->curl, CURLOPT_CUSTOMREQUEST, method);
		if (body) {
			curl_easy_setopt(g->curl, CURLOPT_POSTFIELDS, body);
			curl_easy_setopt(g->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
		}
		curl_easy_setopt(g->curl, CURLOPT_TIMEOUT_MS, (long)left);
		curl_easy_setopt(g->curl, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(g->curl, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(g->curl, CURLOPT_USERAGENT, "kwh/" KWH_VERSION);
		curl_easy_setopt(g->curl, CURLOPT_ERRORBUFFER, cerr);
		curl_easy_setopt(g->curl, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(g->curl, CURLOPT_WRITEDATA, &a);
		curl_easy_setopt(g->curl, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(g->curl, CURLOPT_HEADERDATA, &a);
		if (g->ca_file)
			curl_easy_setopt(g->curl, CURLOPT_CAINFO, g->ca_file);
		cc = curl_easy_perform(g->curl);
		if (cc == CURLE_OK) {
			curl_easy_getinfo(g->curl, CURLINFO_RESPONSE_CODE, status);
			if (*status >= 200 && *status < 300) {
				rc = 0;
				break;
			}
			api_message(out, *status, err, errlen);
			retry = *status >= 500 || ((*status == 403 || *status == 429) &&
			    (g->ratelimit_out || g->retry_after >= 0));
		} else {
			snprintf(err, errlen, "cannot reach GitHub at %s: %s", g->api_url,
			    *cerr ? cerr : curl_easy_strerror(cc));
			retry = cc != CURLE_WRITE_ERROR;
			if (cc == CURLE_WRITE_ERROR)
				snprintf(err, errlen, "GitHub's answer is larger than %zu bytes", g->max_answer);
		}
		if (!retry)
			break;
		/* Retry-After wins, then the rate limit's reset time, else back off. */
		if (g->retry_after >= 0)
			wait = g->retry_after * 1000LL;
		else if (g->ratelimit_out && g->ratelimit_reset)
			wait = g->ratelimit_reset * 1000LL - kwh_now_ms() + 100;
		if (wait < 0)
			wait = 0;
		if (kwh_now_ms() + wait >= deadline_ms) {
			kwh_log(KWH_LOG_WARN, g->delivery, 0, "%s; not retried: the deadline is closer than the wait (%lld ms)", err, wait);
			break;
		}
		kwh_log(KWH_LOG_WARN, g->delivery, 0, "%s; retry %d in %lld ms", err, attempt, wait);
		{
			struct timespec ts = { wait / 1000, (wait % 1000) * 1000000L };
			while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
				;
		}
		wait = wait < 2000 ? wait * 2 : 4000;
	}
	curl_slist_free_all(hl);
	kwh_buf_release(&url);
	return rc;
}

/* "2026-11-26T07:49:08Z" to epoch milliseconds, or 0. */
static long long
iso_ms(const char *s)
{
	struct tm tm = { 0 };
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);

	return end && !*end ? (long long)timegm(&tm) * 1000 : 0;
}

/* An installation token for inst, from the cache or asked for with a JWT. */
static int
installation_token(struct kwh_github *g, long inst, long long deadline_ms, char *err, size_t errlen)
{
	struct kwh_buf jwt = KWH_BUF_INIT, auth = KWH_BUF_INIT, ans = KWH_BUF_INIT, path = KWH_BUF_INIT;
	long status;
	int rc = -1;
	jv j;

	/* a minute of margin: a call that starts now must not meet an expired token */
	if (g->inst_token.len && g->inst_for == inst && g->inst_expires_ms - 60000 > kwh_now_ms())
		return 0;
	if (kwh_github_jwt(g, kwh_now_ms() / 1000, &jwt) < 0) {
		snprintf(err, errlen, "cannot sign the App's JWT with its key");
		return -1;
	}
	kwh_buf_printf(&auth, "Bearer %s", jwt.data);
	kwh_buf_wipe(&jwt);
	kwh_buf_printf(&path, "/app/installations/%ld/access_tokens", inst);
	g->tokens_fetched++;
	if (call(g, "POST", path.data, NULL, auth.data, deadline_ms, &ans, &status, err, errlen) < 0) {
		size_t l = strlen(err);
		snprintf(err + l, errlen - l, " (asking for an installation token of installation %ld, App %ld)", inst, g->app_id);
		goto out;
	}
	j = jv_parse_sized(ans.data ? ans.data : "", (int)ans.len);
	if (jv_get_kind(j) == JV_KIND_OBJECT) {
		jv t = jv_object_get(jv_copy(j), jv_string("token"));
		jv e = jv_object_get(jv_copy(j), jv_string("expires_at"));

		if (jv_get_kind(t) == JV_KIND_STRING && jv_get_kind(e) == JV_KIND_STRING) {
			kwh_buf_wipe(&g->inst_token);
			if (kwh_buf_adds(&g->inst_token, jv_string_value(t)) == 0) {
				g->inst_for = inst;
				g->inst_expires_ms = iso_ms(jv_string_value(e));
				rc = 0;
			}
		}
		jv_free(t);
		jv_free(e);
	}
	jv_free(j);
	if (rc < 0)
		snprintf(err, errlen, "GitHub's installation token answer has no token and expires_at");
out:
	kwh_buf_wipe(&ans);
	kwh_buf_wipe(&auth);
	kwh_buf_release(&path);
	return rc;
}

/* The installation's token in g->inst_token (--installation-id, else the
 * payload's installation): 0, or -1 with why in err. */
static int
app_token(struct kwh_github *g, long installation, long long deadline_ms, char *err,
    size_t errlen)
{
	long inst = g->installation_id ? g->installation_id : installation;

	if (inst <= 0) {
		snprintf(err, errlen, "no installation id: the payload has no installation.id "
		    "(give --installation-id)");
		return -1;
	}
	return installation_token(g, inst, deadline_ms, err, errlen);
}

int
kwh_github_installation_token(struct kwh_github *g, long installation,
    long long deadline_ms, struct kwh_buf *out, char *err, size_t errlen)
{
	*err = '\0';
	kwh_buf_wipe(out);
	if (!g->app_id || !g->app_key) {
		snprintf(err, errlen, "no GitHub App (give --app-id and --app-key-file)");
		return -1;
	}
	if (app_token(g, installation, deadline_ms, err, errlen) < 0)
		return -1;
	return kwh_buf_adds(out, g->inst_token.data);
}

void
kwh_github_credentials(struct kwh_github *g, const char *token_file, const char *key_file,
    const char *give)
{
	char err[512];

	/* the token is taken out of the environment whatever else is given */
	kwh_cli_token_env(&g->token, "GITHUB_TOKEN");
	if (token_file && kwh_cli_token_read(token_file, &g->token, err, sizeof err) < 0)
		kwh_die(KWH_EXIT_SYSTEM, "%s", err);
	if (key_file && kwh_github_app_key(g, key_file, err, sizeof err) < 0)
		kwh_die(KWH_EXIT_SYSTEM, "%s", err);
	if (!g->token.len && !g->app_id)
		kwh_usage_error("no GitHub credentials: give %s", give);
}

int
kwh_github_request(struct kwh_github *g, const char *method, const char *path,
    const char *body, long installation, long long deadline_ms,
    struct kwh_buf *answer, long *status, char *err, size_t errlen)
{
	struct kwh_buf auth = KWH_BUF_INIT;
	int rc;

	*err = '\0';
	*status = 0;
	if (g->app_id && g->app_key) {
		if (app_token(g, installation, deadline_ms, err, errlen) < 0)
			return -1;
		kwh_buf_printf(&auth, "token %s", g->inst_token.data);
	} else if (g->token.len) {
		kwh_buf_printf(&auth, "Bearer %s", g->token.data);
	} else {
		snprintf(err, errlen, "no GitHub credentials (give --token-file, GITHUB_TOKEN, or --app-id and --app-key-file)");
		return -1;
	}
	if (!auth.data) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rc = call(g, method, path, body, auth.data, deadline_ms, answer, status, err, errlen);
	kwh_buf_wipe(&auth);
	return rc;
}
