/* respond.h — the last stage: envelope in, HTTP/1.1 response out. */
#ifndef KWH_RESPOND_H
#define KWH_RESPOND_H
#include <jv.h>
#include "buf.h"

/*
 * Appends to out one complete HTTP/1.1 response for env (consumed): the
 * status from response.status, else 201 when some results entry was
 * created, else 200; a JSON body {status, message, delivery, results};
 * Content-Type, Content-Length and Connection: close; Retry-After when
 * response.retry_after is a number of seconds (1 to 86400); "queued" and
 * "spooled" copied from the response into the body.  Anything that is
 * not a well-formed envelope gives 500.  Returns the status.
 */
int kwh_respond(jv env, struct kwh_buf *out);

#endif
