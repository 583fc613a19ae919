/* annotate.h — the kwh-annotate stage: event → annotations, filters. */
#ifndef KWH_ANNOTATE_H
#define KWH_ANNOTATE_H
#include <stddef.h>
#include <jv.h>

/* The prefix of the eight annotations every delivery gets. */
#define KWH_ANNOTATE_PREFIX "k8s-webhook-handler.io/"
/* The events handled by default: the original k8s-webhook-handler's. */
#define KWH_ANNOTATE_DEFAULT_EVENTS "push,delete,check_run,check_suite"
/* The pull_request actions handled by default: those that change the code. */
#define KWH_ANNOTATE_DEFAULT_PR_ACTIONS "opened,synchronize,reopened"
/* Kubernetes' limit on all annotation keys and values together. */
#define KWH_ANNOTATE_MAX_TOTAL (256 * 1024)

/*
 * The stage's options.  The caller fills the public fields (all borrowed:
 * they must outlive the opts) and calls kwh_annotate_init(); the rest is
 * the stage's own, given back by kwh_annotate_release().
 *
 * events      comma-separated event names that may pass, or NULL for
 *             KWH_ANNOTATE_DEFAULT_EVENTS; a listed event kwh does not map
 *             gets the generic annotations (repository, event, action; ref,
 *             revision and before empty).
 * pr_actions  comma-separated pull_request actions that may pass, "all",
 *             or NULL for KWH_ANNOTATE_DEFAULT_PR_ACTIONS; others get 202.
 * ignore_ref  a PCRE2 regular expression (RE2's syntax, as the original
 *             k8s-webhook-handler's -ignore, is a subset but for a few
 *             corners) searched for in the ref annotation, or NULL;
 *             matching deliveries get 202 (a match past PCRE2's match
 *             limit: 422).
 * filters     jq expressions on the envelope, and-ed: false, null, no output
 *             or an error stop the delivery (202, or 422 for an error).
 * sets        "KEY=EXPR": annotation KEY from the first output of EXPR.
 */
struct kwh_annotate_opts {
	const char *events;
	const char *pr_actions;
	const char *ignore_ref;
	const char *const *filters;
	size_t nfilters;
	const char *const *sets;
	size_t nsets;

	/* Private: filled by kwh_annotate_init(). */
	struct kwh_annotate_priv *priv;
};

/*
 * Checks the options and compiles every expression, once: the regular
 * expression with pcre2_compile(3), each --filter and --set with jq_compile.
 * With no filters and no sets no jq program is compiled at all.  Returns 0,
 * or -1 with a message for a person in err (the option, the expression
 * and PCRE2's error at its offset, or jq's); then nothing needs releasing.
 */
int kwh_annotate_init(struct kwh_annotate_opts *o, char *err, size_t errlen);

/*
 * The stage (a kwh_stage_fn; ctx is the struct kwh_annotate_opts): takes
 * an envelope without a response (consumed) and returns it with
 * `annotations` added, or with a response: 200 for ping, 202 for a skipped
 * delivery, 400 for a payload that lacks what its event needs, 422 for an
 * expression that failed or an invalid annotation.
 */
jv kwh_annotate(void *ctx, jv env);

/*
 * The annotations for one event and payload (both borrowed), without
 * filters: an object of the eight keys.  generic selects the mapping for
 * events kwh does not know.  Returns the object, or an invalid jv whose
 * message names the field that was wrong (a 400).
 */
jv kwh_annotate_event(const char *event, jv payload, int generic);

/* Whether kwh maps this event (push, delete, …) itself. */
int kwh_annotate_known_event(const char *event);

/*
 * Checks an annotations object as the Kubernetes API server does: keys
 * are qualified names, values strings, everything together at most
 * KWH_ANNOTATE_MAX_TOTAL bytes.  Borrows ann.  0, or -1 with a message
 * naming the key in err.
 */
int kwh_annotate_validate(jv ann, char *err, size_t errlen);

/* How many jq programs init compiled (the tests check the default is 0). */
int kwh_annotate_programs(const struct kwh_annotate_opts *o);

/* Gives back what init took; o may then be initialised again. */
void kwh_annotate_release(struct kwh_annotate_opts *o);

#endif
