/* kwh_yaml: YAML manifests and kubeconfig files to libjq values, converted
 * exactly as kubectl converts them (sigs.k8s.io/yaml over go-yaml v2, then
 * the apimachinery document reader and unstructured decoder).  The rules
 * and the known divergences are listed at the top of yaml.c. */
#ifndef KWH_YAML_H
#define KWH_YAML_H

#include <stddef.h>
#include <jv.h>

/* Bounds against hostile input.  max_bytes caps the input length.
 * max_depth caps the nesting of mappings and sequences in the result,
 * counting the outermost collection as 1 and counting nesting brought in
 * by aliases.  max_nodes caps the values produced (keys, scalars and
 * collections), counting every alias as the size of what it expands to,
 * so a "billion laughs" file is refused as soon as the count passes the
 * bound, without expanding it first.  A zero field means "no bound". */
struct kwh_yaml_limits {
	size_t max_bytes;
	unsigned max_depth;
	size_t max_nodes;
};

/* The defaults: 4 MiB, depth 100, 1,000,000 nodes.  Real manifests and
 * kubeconfig files stay far below all three. */
#define KWH_YAML_MAX_BYTES_DEFAULT ((size_t)4 << 20)
#define KWH_YAML_MAX_DEPTH_DEFAULT 100u
#define KWH_YAML_MAX_NODES_DEFAULT ((size_t)1000000)
#define KWH_YAML_LIMITS_DEFAULT { KWH_YAML_MAX_BYTES_DEFAULT, \
	KWH_YAML_MAX_DEPTH_DEFAULT, KWH_YAML_MAX_NODES_DEFAULT }

/* Bounds over several files (the manifests of one delivery), and a
 * deadline.  nodes and objects count what every call given this budget
 * produced so far (start them at 0); max_nodes bounds the nodes as
 * kwh_yaml_limits.max_nodes does, max_objects the objects added to the
 * result, 0 meaning "no bound".  The deadline, in kwh_now_ms() time (0:
 * none), is looked at every few thousand parser events, so that reading
 * stops soon after it passed. */
struct kwh_yaml_budget {
	long long deadline;
	size_t nodes, objects;
	size_t max_nodes, max_objects;
};

/* Return values of the functions below. */
enum {
	KWH_YAML_OK = 0,
	KWH_YAML_EINVALID = -1,	/* not YAML, or YAML kubectl refuses */
	KWH_YAML_ELIMIT = -2,	/* a limit was exceeded */
	KWH_YAML_ENOTOBJ = -3,	/* a document that is not a Kubernetes object */
	KWH_YAML_ENOMEM = -4,	/* out of memory */
	KWH_YAML_ETOTAL = -5,	/* a bound of the kwh_yaml_budget was exceeded */
	KWH_YAML_EDEADLINE = -6	/* the budget's deadline passed */
};

/* Converts every document in data[0..len) to JSON values, as kubectl reads
 * a manifest file: the file is cut into documents at lines that start with
 * "---", a file whose first non-blank byte is '{' is read as a stream of
 * JSON values instead, empty documents are skipped, and a document with an
 * "items" field (any kind, as kubectl does) is replaced by its items, each
 * item lacking both kind and apiVersion taking the list's apiVersion and
 * its kind less a trailing "List".  Every object must then have a non-empty
 * string kind, and every item of a list a non-empty string apiVersion too
 * (kubectl asks no apiVersion of a top-level object).
 * On success returns 0 and *out is a new jv array of the objects, owned by
 * the caller.  On failure returns a negative value from the enum above,
 * writes "line L, column C: what" (1-based, counted in the whole file) into
 * err (errlen bytes, always NUL-terminated when errlen > 0) and leaves *out
 * untouched.  lim may be NULL for the defaults. */
int kwh_yaml_manifests(jv *out, const char *data, size_t len,
		const struct kwh_yaml_limits *lim, char *err, size_t errlen);

/* The same, also counting against budget b (may be NULL): returns
 * KWH_YAML_ETOTAL when this file takes the nodes or objects of b past its
 * bounds, KWH_YAML_EDEADLINE when b's deadline passes while reading. */
int kwh_yaml_manifests_budget(jv *out, const char *data, size_t len,
		const struct kwh_yaml_limits *lim, struct kwh_yaml_budget *b,
		char *err, size_t errlen);

/* The same conversion for a single document that need not be a Kubernetes
 * object (kubeconfig files), read as sigs.k8s.io/yaml.Unmarshal reads it:
 * the first document of the stream only.  *out is that one value, null for
 * an empty file.  Returns and errors as kwh_yaml_manifests (never -3). */
int kwh_yaml_document(jv *out, const char *data, size_t len,
		const struct kwh_yaml_limits *lim, char *err, size_t errlen);

#endif

/* This header shadows libyaml's <yaml.h> for everything compiled with
 * -Ilib.  yaml.c defines KWH_YAML_LIBYAML and includes <yaml.h> to reach
 * past this file to libyaml's header. */
#if defined(KWH_YAML_LIBYAML) && !defined(YAML_H)
#include_next <yaml.h>
#endif
