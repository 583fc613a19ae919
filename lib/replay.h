/* replay.h — sends spooled deliveries back through the chain (kwh-replay(1)). */
#ifndef KWH_REPLAY_H
#define KWH_REPLAY_H
#include <stddef.h>

#define KWH_REPLAY_SPOOL "/var/spool/kwh"
#define KWH_REPLAY_BUDGET_MS 60000L
/* The most a chain may write for one delivery. */
#define KWH_REPLAY_MAX_OUTPUT ((size_t)64 << 20)

struct kwh_replay {
	const char *spool;	/* the spool directory */
	const char *chain;	/* a shell pipeline; NULL under dry_run only */
	long budget_ms;		/* the refreshed deadline: now + budget */
	int dry_run;		/* print the re-armed envelopes, run nothing */
};

/*
 * Where in chain (a shell pipeline "a | b | c") to start for a delivery
 * that stopped at stage: the offset of the first segment whose command's
 * base name is stage, or 0 (the whole chain) when there is none.  Segments
 * are split at each '|' outside quotes that is not part of "||".
 */
size_t kwh_replay_start(const char *chain, const char *stage);

/*
 * Replays every spooled file of r->spool, oldest first, each locked while
 * it is handled (files another replay holds are skipped).  For each: the
 * envelope, without response and spool and with deadline now + budget, is
 * given on standard input to "sh -c" running the chain from the stage
 * where it stopped (KWH_REPLAY_STAGE and KWH_REPLAY_ATTEMPT in its
 * environment); the first envelope it writes is the result, also written
 * to our standard output.  A result with no response or a 2xx one, from a
 * chain that exited 0, removes the file; anything else keeps it with
 * spool.attempts + 1 and spool.last.  Each outcome is logged.  Returns the
 * exit code: 0 every file replayed was removed (or there were none), 1
 * some stay, 111 the spool could not be read or updated, or stdout failed.
 */
int kwh_replay_run(const struct kwh_replay *r);

/* ---- kwh-replay --from-github ------------------------------------------ */

struct kwh_github;

struct kwh_replay_github {
	struct kwh_github *g;	/* credentials, api_url, ca_file */
	const char *repo;	/* OWNER/REPO */
	long hook_id;
	long long since_ms;	/* epoch ms: older deliveries are not looked at */
	long max;		/* the most redeliveries asked for in one run */
	long budget_ms;		/* the whole run's deadline: now + budget */
	int dry_run;		/* list, ask for nothing */
};

/*
 * TIME as RFC 3339 ("2026-12-06T10:00:00Z", "...+02:00", fractions of a
 * second allowed) or a duration back from now_ms ("90s", "30m", "2h",
 * "1d"; a bare number is seconds) into *ms (epoch milliseconds).  0/-1.
 */
int kwh_replay_since(const char *time, long long now_ms, long long *ms);

/*
 * 1 when a delivery GitHub recorded with status_code code failed for a
 * cause that may pass: 0 (no connection, no answer in time), 408, 429 or
 * 5xx.  A 4xx from kwh is a final refusal (bad signature, unknown event,
 * policy); the same payload would get the same answer again.
 */
int kwh_replay_transient(long code);

/*
 * Lists the hook's deliveries newest first (every page, until they are
 * older than since_ms), keeps the guids whose newest attempt failed
 * transiently and that no attempt delivered (2xx), and asks GitHub to
 * redeliver each (oldest first, at most max).  One JSON line per chosen
 * delivery goes to stdout and one log line per redelivery.  Returns the
 * exit code: 0 every redelivery was accepted (or none was needed), 1 some
 * were refused or not asked for (max, deadline), 111 the list could not
 * be read.
 */
int kwh_replay_github(const struct kwh_replay_github *r);

#endif
