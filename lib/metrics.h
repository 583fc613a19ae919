/* metrics.h — counters of deliveries, stages, fetches and API requests:
 * Prometheus text for kwh-handle --listen (GET /metrics), statsd lines
 * for the chain and the one-shot kwh-handle (kwh(7), METRICS). */
#ifndef KWH_METRICS_H
#define KWH_METRICS_H
#include <jv.h>

enum kwh_metrics_stage {
	KWH_STAGE_VERIFY, KWH_STAGE_ANNOTATE, KWH_STAGE_FETCH, KWH_STAGE_APPLY,
	KWH_STAGE_RESPOND, KWH_STAGE_N,
};

/*
 * Every count lives in one table.  By default it is the process's own;
 * kwh_metrics_share() moves it into a MAP_SHARED anonymous mapping, so
 * that the workers forked afterwards (kwh-handle --listen) add to one
 * table, with atomic operations, and any of them can answer a scrape.
 * 0, or -1 with errno set (the counts stay the process's own).
 */
int kwh_metrics_share(void);

/*
 * --statsd HOST:PORT: sends each count, as it happens, as one UDP
 * datagram in statsd form (kwh.deliveries.push.201:1|c).  Sending never
 * blocks, and its errors are ignored: a delivery never waits for or
 * fails on statsd.  Dies with 100 when spec is not HOST:PORT or does not
 * resolve.
 */
void kwh_metrics_statsd(const char *spec);

/* The delivery just answered: its envelope (consumed) for the event
 * (key "event"; bounded: an unknown event counts as "other", none as
 * "none") and its status.  A 200 without an event (GET /-/alive) is not
 * counted. */
void kwh_metrics_delivery(jv env, int status);
/* A stage's duration from start_ns (kwh_metrics_clock()) to now. */
void kwh_metrics_stage(enum kwh_metrics_stage s, long long start_ns);
/* The stage named by a tool's name (kwh-fetch...), or -1. */
int kwh_metrics_stage_of(const char *progname);
/* Monotonic nanoseconds. */
long long kwh_metrics_clock(void);
/* A git fetch ended: result (0 or a KWH_GIT_E* code) and bytes received. */
void kwh_metrics_fetch(int result, unsigned long long bytes);
/* A Kubernetes API response (HTTP status), or 0: no response. */
void kwh_metrics_kube(int code);
/* A Kubernetes API request is sent again. */
void kwh_metrics_kube_retry(void);
/*
 * A delivery answered 202 "accepted for processing" (queued) and completed
 * after the answer: outcome 0 accepted, 1 completed, 2 refused (4xx),
 * 3 left in the spool (5xx).
 */
void kwh_metrics_queued(int outcome);
/* The acceptor's view (kwh-handle --listen's parent). */
void kwh_metrics_server(size_t inflight, size_t queued, size_t workers);

/*
 * The scrape: where it is answered and what it measures at scrape time.
 * path NULL or "none": no endpoint.  spool and cache may be NULL.
 */
void kwh_metrics_endpoint(const char *path, const char *spool, const char *cache);
/*
 * When the request in the file in (read from offset 0 with pread, so a
 * resident worker's memfd, left as it was) is a GET (or HEAD) of the
 * metrics path, writes the whole HTTP response (Prometheus text format
 * 0.0.4) to out and returns 1; else 0.  No secret is needed: see kwh(7),
 * METRICS, on who should reach it.
 */
int kwh_metrics_answer(int in, int out);
/* The Prometheus text of the counts now, appended to b. */
struct kwh_buf;
void kwh_metrics_render(struct kwh_buf *b);

#endif
