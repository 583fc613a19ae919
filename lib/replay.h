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

#endif
