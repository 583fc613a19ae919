/* env.h — the envelope between stages (kwh(7), THE ENVELOPE). */
#ifndef KWH_ENV_H
#define KWH_ENV_H
#include <stddef.h>
#include <jv.h>

#define KWH_ENV_VERSION 1

/* A new envelope: {"kwh": 1}. */
jv kwh_env_new(void);

/* 1 when env already carries a response (later stages pass it through). */
int kwh_env_has_response(jv env);
/* response.status, or 0 when there is none or it is not a number. */
int kwh_env_status(jv env);

/*
 * The string at o.key, borrowed from o (which must stay alive), or NULL
 * when o is not an object or the value is missing or not a string.
 */
const char *kwh_jv_str(jv o, const char *key);

/*
 * Copies the string at env.key into out (n bytes, NUL-terminated, cut if
 * longer) and returns out; "" when missing or not a string.  Borrows env.
 */
const char *kwh_env_str(jv env, const char *key, char *out, size_t n);

/*
 * Ends processing: sets env.response to {status, message} from fmt, logs
 * the decision with the delivery id, and returns env (consumed).  Status
 * below 400 is a decision (logged as info), 400 or more an error.
 */
jv kwh_env_respond(jv env, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Reads a stream of JSON texts from fd, one envelope at a time.  The
 * reader owns its buffer; kwh_env_reader_free() gives it back.
 */
struct kwh_env_reader;
struct kwh_env_reader *kwh_env_reader_new(int fd);
void kwh_env_reader_free(struct kwh_env_reader *r);
/*
 * Next envelope.  Returns 1 with *out set (the caller owns it), 0 at the
 * end of input, and -1 when the input is not JSON or not an object: then
 * *out is an envelope whose response (500) says what was wrong, and the
 * rest of the input is abandoned.  At the end of an input that held no
 * envelope at all, returns 0 and the caller decides (see kwh_env_loop).
 */
int kwh_env_next(struct kwh_env_reader *r, jv *out);

/* Writes env as one line of compact JSON to stdout (consumes env). 0/-1. */
int kwh_env_write(jv env);

/*
 * A stage: takes an envelope that has no response yet and returns it with
 * its additions, or with a response that ends processing.  ctx is the
 * stage's own options.
 */
typedef jv (*kwh_stage_fn)(void *ctx, jv env);

/*
 * The loop every stage's main runs: reads envelopes from stdin; passes
 * those with a response through untouched; gives the others to fn; writes
 * each result to stdout.  Empty input yields one envelope with response 500
 * ("an earlier stage produced nothing").  Returns the exit code: 0, 1 when
 * some envelope got a response of 400 or more from this stage (or the input
 * was empty or unparsable), 111 when stdout could not be written.
 */
int kwh_env_loop(kwh_stage_fn fn, void *ctx);

#endif
