/* fetch.h — the kwh-fetch stage: manifests from git at the revision. */
#ifndef KWH_FETCH_H
#define KWH_FETCH_H
#include <jv.h>

#include "git.h"
#include "github.h"

/*
 * The stage's options.  Every pointer is borrowed.  remote, when not NULL,
 * is a URL template (set git.pin to it too: its scheme and host are then
 * allowed): "{full_name}", "{owner}" and "{name}" are replaced by
 * payload.repository.full_name and its two halves.  Otherwise the URL is
 * payload.repository.clone_url, or ssh_url when git.ssh_key is set, or
 * git_url under use_git_url.
 */
struct kwh_fetch_opts {
	struct kwh_git_opts git;
	const char *path;		/* file or directory in the repository */
	const char *remote;		/* URL template, or NULL */
	int use_git_url;
	long timeout_ms;		/* budget when the envelope has no deadline */
	size_t max_bytes;		/* manifest bytes of a delivery, all files */
	size_t max_nodes;		/* YAML nodes of a delivery (aliases expanded) */
	size_t max_objects;		/* objects of a delivery */
	/*
	 * A GitHub App (initialised, with app_id and key), or NULL: for an
	 * http(s) remote, an installation token of payload.installation.id
	 * (or app->installation_id) is the git password instead of
	 * git.token.  The client caches it until a minute before it expires.
	 */
	struct kwh_github *app;
};

/* Retry-After of the 503 answered while a fetch goes on in the background. */
#define KWH_FETCH_RETRY_AFTER 30

/* The bounds on a delivery's manifests, over all its files (0: none). */
#define KWH_FETCH_MAX_BYTES_DEFAULT ((size_t)4 << 20)
#define KWH_FETCH_MAX_NODES_DEFAULT ((size_t)250000)
#define KWH_FETCH_MAX_OBJECTS_DEFAULT ((size_t)100)

/*
 * A kwh_stage_fn (ctx is a struct kwh_fetch_opts): reads the revision and
 * ref from env.annotations["k8s-webhook-handler.io/revision" and "/ref"]
 * (no revision, or forty zeros: the remote's default branch), fetches as
 * needed, and adds env.manifests (the objects of every YAML document) and
 * env.source {url, revision, path}.  Failures set env.response: 400 bad
 * payload, 404 revision or path not found, 422 invalid YAML, a file with
 * no objects, manifests over max_bytes, max_nodes or max_objects, a
 * revision that is not a full commit id or a remote that is not allowed
 * (git.allow, git.pin) or, with app, a payload without installation.id,
 * 500 local cache failure, 502 remote unreachable or refusing or GitHub
 * not giving an installation token, 503 with response.retry_after
 * (seconds) when the fetch goes on in the background (git.background_ms)
 * or another delivery's fetch still holds the entry, 504 deadline passed
 * (git work stops KWH_GIT_MARGIN_MS before
 * it; also while reading the YAML).  Remote and cache failures are
 * detailed in the log; the response only says to look there.  Consumes
 * env and returns the new envelope.
 */
jv kwh_fetch(void *ctx, jv env);

#endif
