/* apply.h — the kwh-apply stage: annotate the envelope's manifests and
 * create them in Kubernetes (kwh-apply(1)). */
#ifndef KWH_APPLY_H
#define KWH_APPLY_H
#include <regex.h>
#include <stddef.h>
#include <jv.h>

#include "kube.h"

enum { KWH_DRY_NONE, KWH_DRY_CLIENT, KWH_DRY_SERVER };

#define KWH_APPLY_DEADLINE_MS 8000L
#define KWH_APPLY_MAX_POLICY 64
/* The one kind allowed without --allow-kind. */
#define KWH_APPLY_DEFAULT_KIND "argoproj.io/Workflow"

/*
 * The stage's options (filled by main) and state (set by kwh_apply_init).
 * Strings are borrowed from argv.
 */
struct kwh_apply {
	int dry_run;			/* KWH_DRY_* */
	int no_dedupe;			/* --no-dedupe (deduplication is the default) */
	const char *namespace;		/* --namespace, or NULL */
	const char *field_manager;	/* "kwh" */
	const char *cache_dir;		/* --cache, or NULL: no disk cache */
	long deadline_ms;		/* --deadline */
	const char *allow_kind[KWH_APPLY_MAX_POLICY];	/* "GROUP/KIND" */
	size_t n_allow_kind;
	const char *allow_ns[KWH_APPLY_MAX_POLICY];	/* extended regexes */
	size_t n_allow_ns;
	struct kwh_kube_source src;

	/* state */
	int have_cfg;
	struct kwh_kube_config cfg;
	struct kwh_kube *kube;
	regex_t ns_re[KWH_APPLY_MAX_POLICY];
	size_t n_ns_re;
};

/*
 * Compiles the policy and loads the cluster configuration (under
 * --dry-run=client a missing configuration is no error: the namespace
 * then defaults to "default").  Returns 0, or -1 with a message in err
 * (the caller exits 100 for a bad regex, 111 for the configuration:
 * *usage tells which).
 */
int kwh_apply_init(struct kwh_apply *a, int *usage, char *err, size_t errlen);
void kwh_apply_release(struct kwh_apply *a);

/* The stage (a kwh_stage_fn; ctx is a struct kwh_apply *). */
jv kwh_apply(void *ctx, jv env);

/*
 * The name deduplication gives an object with generateName gen: gen cut to
 * 58 bytes, then 5 characters of [a-z0-9] from SHA-256 of "KEY/INDEX".  KEY
 * is the envelope's digest (kwh.7: event, hook target type and signed
 * body), or its delivery id when it has none.  out must hold 64 bytes.
 */
void kwh_apply_dedupe_name(char *out, const char *gen, const char *key, size_t index);

#endif
