/* kube.h — talking to a Kubernetes API server: configuration (kubeconfig
 * or in-cluster), the libcurl client with retries inside a deadline, and
 * API discovery with an on-disk cache.  Only this file's .c includes curl. */
#ifndef KWH_KUBE_H
#define KWH_KUBE_H
#include <stddef.h>
#include <jv.h>

#include "buf.h"

/* Where the configuration comes from; every field may be NULL/0. */
struct kwh_kube_source {
	const char *kubeconfig;	/* --kubeconfig FILE (wins over KUBECONFIG) */
	const char *context;	/* --context NAME (default: current-context) */
	const char *sa_dir;	/* in-cluster service account directory
				 * (default /var/run/secrets/kubernetes.io/serviceaccount) */
};

/*
 * The cluster, user and namespace to use.  Every string is owned by the
 * configuration and freed by kwh_kube_config_release().  Paths are
 * absolute (relative ones in a kubeconfig are taken from its directory).
 * Credentials held here are wiped on release.
 */
struct kwh_kube_config {
	char *server;		/* "https://host:port", no trailing slash */
	char *namespace;	/* the context's, the in-cluster one, or "default" */
	char *origin;		/* "kubeconfig FILE, context NAME" or "in-cluster" */
	char *ca_file, *cert_file, *key_file, *token_file;
	struct kwh_buf ca_data, cert_data, key_data, token; /* PEM / raw */
	int insecure;		/* insecure-skip-tls-verify */
	jv exec;		/* the user's exec section (paths made absolute), or null */
};

/*
 * Loads the configuration as kubectl does: src->kubeconfig, else the
 * colon-separated KUBECONFIG list (merged: the first file to define a
 * name wins, as does the first current-context), else ~/.kube/config,
 * else the in-cluster service account (KUBERNETES_SERVICE_HOST and
 * _PORT).  Runs no exec plugin and reads no token file yet.  Returns 0,
 * or -1 with a message in err.  cfg is always safe to release.
 */
int kwh_kube_config_load(struct kwh_kube_config *cfg,
    const struct kwh_kube_source *src, char *err, size_t errlen);
void kwh_kube_config_release(struct kwh_kube_config *cfg);

/* A client: one libcurl handle reused for every request (keep-alive). */
struct kwh_kube;

/*
 * A new client for cfg (borrowed: it must outlive the client).  cache_dir
 * (may be NULL: no disk cache) holds the discovery cache.  Credentials
 * (token file, exec plugin) are read on first use.  NULL when out of
 * memory.
 */
struct kwh_kube *kwh_kube_new(const struct kwh_kube_config *cfg, const char *cache_dir);
void kwh_kube_free(struct kwh_kube *k);
/* The delivery id put on the client's log lines (borrowed; NULL for none). */
void kwh_kube_set_delivery(struct kwh_kube *k, const char *delivery);
/*
 * For a client that serves many deliveries (kwh-handle --listen): forgets
 * what a one-delivery process learns once, so that the next delivery
 * starts as a new process would: the credentials (the token file is read
 * again, so a rotated service-account token is picked up, and an exec
 * plugin runs again) and which group-versions discovery already asked the
 * server about.  Keeps the connection (keep-alive) and the discovery
 * cache in memory.
 */
void kwh_kube_reset(struct kwh_kube *k);

/* What one call came to. */
struct kwh_kube_result {
	int http;		/* final HTTP status, 0 when none was received */
	int status;		/* 0 on 2xx, else the envelope status to answer
				 * (422, 502, 503, 504) */
	jv body;		/* the response parsed (object), else null */
	char msg[1024];		/* when status != 0: what went wrong, and what was tried */
};
void kwh_kube_result_release(struct kwh_kube_result *r);

/* Call flags. */
enum {
	KWH_KUBE_RETRY_SENT = 1,	/* a request that reached the server may be repeated */
};

/*
 * Sends one request: method, path with query (e.g. "/api/v1/..."), a
 * body of ctype (NULL for none).  Retries 429, 500, 502, 503, 504 and
 * connection failures with exponential backoff and jitter, honouring
 * Retry-After, until deadline_ms (Unix epoch milliseconds).  A request
 * that may have reached the server and failed without an answer (reset,
 * timeout), and POST answered 500/502/504, are retried only with
 * KWH_KUBE_RETRY_SENT.  On return r->http is the last HTTP status and
 * r->body the response; r->status is 0 for 2xx, else the mapped status
 * (API refusal 422; 401/403 and other failures 502; 5xx or unreachable
 * after retries 503; deadline 504) with r->msg.  Any HTTP answer is
 * returned as such: callers may accept 404 or 409 themselves.  Always
 * returns r->status.
 */
int kwh_kube_call(struct kwh_kube *k, struct kwh_kube_result *r, const char *method,
    const char *path, const char *ctype, const char *body, size_t bodylen,
    int flags, long long deadline_ms);

/* Fills r->status and r->msg for an HTTP error answer in r (see above). */
void kwh_kube_map_error(struct kwh_kube_result *r, const char *what);

/* How a kind is reached. */
struct kwh_kube_resource {
	char plural[128];
	int namespaced;
};

/*
 * Finds apiVersion+kind through discovery (GET /api/v1 or /apis/G/V),
 * from the disk cache when it knows the kind, else asking the server and
 * updating the cache.  Returns 0; 1 when the server has no such kind
 * (r->msg says so); or the mapped failure status with r->msg.
 */
int kwh_kube_discover(struct kwh_kube *k, struct kwh_kube_result *r,
    struct kwh_kube_resource *out, const char *api_version, const char *kind,
    long long deadline_ms);

/*
 * The scope of a kind from the disk cache or a table of well-known
 * cluster-scoped kinds, without any network: 1 namespaced, 0 cluster.
 */
int kwh_kube_guess_namespaced(const char *cache_dir, const char *server,
    const char *api_version, const char *kind);

#endif
