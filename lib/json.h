/* json.h — JSON checks that need no tree. */
#ifndef KWH_JSON_H
#define KWH_JSON_H
#include <stddef.h>

/* Nesting deeper than this is refused (jq 1.6 itself stops at 256). */
#define KWH_JSON_MAX_DEPTH 200

/*
 * Checks that p[0..n) is exactly one JSON text (RFC 8259, valid UTF-8,
 * nesting at most KWH_JSON_MAX_DEPTH), with only whitespace around it,
 * without building anything.  Returns 0, or -1 with "what at byte N" in err.
 * *kind, when not NULL, gets the top value's first byte ('{', '[', '"',
 * 't', 'f', 'n' or a digit or '-').
 */
int kwh_json_validate(const char *p, size_t n, char *kind, char *err, size_t errlen);

/*
 * The same check, counting the values on the way (every object, array,
 * string, number, true, false and null, the top one included; object keys
 * are not values).  With max_values not 0, a text holding more values is
 * refused as soon as the count passes it: returns -2 with "more than N
 * JSON values at byte B" in err.  *values, when not NULL, gets the count
 * (so far, on failure).
 */
int kwh_json_validate_n(const char *p, size_t n, size_t max_values, size_t *values,
    char *kind, char *err, size_t errlen);

#endif
