/* github.h — a small client for GitHub's REST API (api.github.com or an Enterprise server). */
#ifndef KWH_GITHUB_H
#define KWH_GITHUB_H
#include <stddef.h>
#include <jv.h>
#include "buf.h"

/*
 * Options and state of one client.  Set the options (borrowed strings),
 * then call kwh_github_init(); kwh_github_release() frees what the client
 * owns, wiping the tokens.  Authentication is a personal token (token) or a
 * GitHub App (app_id and a key from kwh_github_app_key()), whose
 * installation tokens are cached in memory until a minute before they
 * expire.  The token never goes to a log or a message.
 */
struct kwh_github {
	const char *api_url;	/* default https://api.github.com */
	const char *ca_file;	/* NULL: the system's CAs */
	const char *delivery;	/* for the log lines, or NULL */
	size_t max_answer;	/* bytes, default 1 MiB */
	struct kwh_buf token;	/* a personal token, owned */
	long app_id;		/* 0: no App */
	void *app_key;		/* EVP_PKEY, owned */
	long installation_id;	/* 0: from each call */
	/* private */
	void *curl;
	struct kwh_buf inst_token;
	long inst_for;
	long long inst_expires_ms;
	long retry_after;	/* seconds, from the last answer, or -1 */
	long long ratelimit_reset;	/* epoch seconds, or 0 */
	int ratelimit_out;
	int tokens_fetched;	/* how many installation tokens were asked for */
	/* after a request: the answer's Link rel="next" URL, or empty */
	struct kwh_buf next;
};
#define KWH_GITHUB_INIT { 0 }

int kwh_github_init(struct kwh_github *g);
void kwh_github_release(struct kwh_github *g);

/* Reads the App's private key (PEM).  0, or -1 with why in err. */
int kwh_github_app_key(struct kwh_github *g, const char *path, char *err, size_t errlen);

/*
 * For a tool's main: the credentials from GITHUB_TOKEN (always taken out
 * of the environment), --token-file (token_file, wins over it) and the
 * App's key (key_file, with g->app_id set), into g; dies with 111 when a
 * file cannot be read and 100 (naming give, what to pass) when there are
 * none.
 */
void kwh_github_credentials(struct kwh_github *g, const char *token_file,
    const char *key_file, const char *give);

/*
 * Makes the JWT that authenticates as the App: RS256, iat 60 s in the
 * past, exp 10 minutes after iat, iss the App id.  Appended to out.  0/-1.
 */
int kwh_github_jwt(struct kwh_github *g, long long now_s, struct kwh_buf *out);

/*
 * An installation token for installation (g->installation_id when set)
 * in out (wiped first), from the cache or asked for with the App's JWT:
 * the password of git over HTTPS (user x-access-token).  0, or -1 with
 * why in err.
 */
int kwh_github_installation_token(struct kwh_github *g, long installation,
    long long deadline_ms, struct kwh_buf *out, char *err, size_t errlen);

/*
 * METHOD path (e.g. "/repos/o/r/statuses/SHA", or a whole URL under
 * api_url, such as g->next after a listing) with body (JSON or NULL),
 * authenticated by the personal token, or by an installation token of
 * installation (g->installation_id when set, else installation), before
 * deadline_ms (epoch milliseconds).  5xx answers, connection failures and
 * rate limits (403 or 429 with x-ratelimit-remaining 0 or Retry-After) are
 * retried while the deadline allows, waiting as Retry-After or
 * x-ratelimit-reset says.  The answer's body goes to answer (at most
 * max_answer bytes) and its status to *status.  Returns 0 when GitHub
 * answered 2xx, else -1 with a message in err (GitHub's message, never the
 * token).
 */
int kwh_github_request(struct kwh_github *g, const char *method, const char *path,
    const char *body, long installation, long long deadline_ms,
    struct kwh_buf *answer, long *status, char *err, size_t errlen);

#endif
