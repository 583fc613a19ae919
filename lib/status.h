/* status.h — each delivery's outcome reported on its commit (kwh-status(1), kwh-handle --status). */
#ifndef KWH_STATUS_H
#define KWH_STATUS_H
#include <jv.h>
#include "github.h"

/* How long a report may take when nothing else bounds it (ms). */
#define KWH_STATUS_TIMEOUT_MS 5000

/*
 * What is reported: a commit status (check_run 0) or a check run, with
 * context (the status's context, the check run's name; NULL: "kwh"), a
 * target URL template ({namespace}, {name}, {kind}, {delivery}, {repo},
 * {sha} replaced; NULL: none) and whether skipped deliveries (202) are
 * reported too.  A report takes at most timeout_ms; in the chain also no
 * longer than the envelope's deadline (less half a second), unless
 * after_answer says the answer is written already (kwh-handle).
 */
struct kwh_status {
	int check_run;
	const char *context;
	const char *target_url;
	int report_skipped;
	long timeout_ms;
	int after_answer;
};

/*
 * Reports one envelope's outcome on its commit (borrows env): pending with
 * the created Workflow's name and link, pending for a delivery queued to
 * be completed after its answer (202 with "queued"), failure (4xx) or
 * error (5xx) with kwh's message; nothing for a skipped delivery (unless
 * report_skipped), nor for one without a repository and commit.  The
 * installation is the payload's installation.id (g->installation_id
 * wins).  A failure to report is logged and returned as -1; 0 reported or
 * nothing to report.
 */
int kwh_status_report_env(struct kwh_github *g, const struct kwh_status *r, jv env);

/*
 * Reports state (pending, success, failure, error) with description on
 * repo (OWNER/REPO) at sha: the standalone mode, e.g. from a Workflow's
 * exit handler.  0, or -1 with the reason logged.
 */
int kwh_status_report(struct kwh_github *g, const struct kwh_status *r,
    const char *repo, const char *sha, const char *state, const char *description,
    const char *target_url, long installation, long long deadline_ms);

#endif
