#include "respond.h"
#include "env.h"
#include "http.h"

#include <stdio.h>
#include <string.h>

/* "2 objects: created 1, exists 1" from the results array (consumed). */
static jv
summary(jv results, int *created)
{
	static const char *actions[] = { "created", "configured", "unchanged", "exists", "dry-run" };
	int count[5] = { 0 }, n = 0;
	struct kwh_buf b = KWH_BUF_INIT;
	jv out;

	jv_array_foreach(results, i, e) {
		jv a = jv_get_kind(e) == JV_KIND_OBJECT ? jv_object_get(jv_copy(e), jv_string("action")) : jv_null();
		if (jv_get_kind(a) == JV_KIND_STRING)
			for (int k = 0; k < 5; k++)
				if (!strcmp(jv_string_value(a), actions[k]))
					count[k]++;
		jv_free(a);
		jv_free(e);
		n++;
		(void)i;
	}
	jv_free(results);
	*created = count[0];
	kwh_buf_printf(&b, "%d object%s", n, n == 1 ? "" : "s");
	for (int k = 0, first = 1; k < 5; k++)
		if (count[k]) {
			kwh_buf_printf(&b, "%s %s %d", first ? ":" : ",", actions[k], count[k]);
			first = 0;
		}
	out = jv_string(b.data ? b.data : "");
	kwh_buf_release(&b);
	return out;
}

int
kwh_respond(jv env, struct kwh_buf *out)
{
	jv body, resp, results, msg = jv_null();
	int status = 0, created = 0, retry = 0;
	jv s;

	if (jv_get_kind(env) != JV_KIND_OBJECT) {
		jv_free(env);
		env = kwh_env_respond(kwh_env_new(), 500,
		    "an earlier stage produced something that is not an envelope");
	}
	resp = jv_object_get(jv_copy(env), jv_string("response"));
	results = jv_object_get(jv_copy(env), jv_string("results"));
	if (jv_get_kind(resp) == JV_KIND_OBJECT) {
		status = kwh_env_status(env);
		msg = jv_object_get(jv_copy(resp), jv_string("message"));
		if (!status) {
			jv_free(msg);
			msg = jv_string("an earlier stage set a response without a valid status");
			status = 500;
		}
	} else if (jv_get_kind(resp) != JV_KIND_INVALID && jv_get_kind(resp) != JV_KIND_NULL) {
		msg = jv_string("an earlier stage set a response that is not an object");
		status = 500;
	}
	if (jv_get_kind(results) == JV_KIND_ARRAY) {
		jv sum = summary(jv_copy(results), &created);
		if (!status) {
			status = created ? 201 : 200;
			jv_free(msg);
			msg = sum;
		} else
			jv_free(sum);
	} else {
		jv_free(results);
		results = jv_array();
	}
	if (!status)
		status = 200;
	if (jv_get_kind(msg) != JV_KIND_STRING) {
		jv_free(msg);
		msg = jv_string(status < 300 ? "ok" : kwh_http_reason(status));
	}
	body = jv_object_set(jv_object(), jv_string("status"), jv_number(status));
	body = jv_object_set(body, jv_string("message"), msg);
	{
		jv d = jv_object_get(jv_copy(env), jv_string("delivery"));
		body = jv_object_set(body, jv_string("delivery"),
		    jv_get_kind(d) == JV_KIND_STRING ? d : (jv_free(d), jv_string("")));
	}
	body = jv_object_set(body, jv_string("results"), results);
	if (jv_get_kind(resp) == JV_KIND_OBJECT) {
		/* Set by kwh_spool_respond: whether the delivery was kept for replay. */
		jv sp = jv_object_get(jv_copy(resp), jv_string("spooled"));
		if (jv_get_kind(sp) == JV_KIND_TRUE || jv_get_kind(sp) == JV_KIND_FALSE)
			body = jv_object_set(body, jv_string("spooled"), sp);
		else
			jv_free(sp);
	}
	if (jv_get_kind(resp) == JV_KIND_OBJECT) {
		/* Set by kwh-handle: accepted and spooled, processed later
		 * (kwh(7), STATUSES, 202), unlike a deliberate skip. */
		jv q = jv_object_get(jv_copy(resp), jv_string("queued"));
		if (jv_get_kind(q) == JV_KIND_TRUE)
			body = jv_object_set(body, jv_string("queued"), q);
		else
			jv_free(q);
		/* Set by kwh-fetch when the fetch goes on in the background. */
		q = jv_object_get(jv_copy(resp), jv_string("retry_after"));
		if (jv_get_kind(q) == JV_KIND_NUMBER && jv_number_value(q) >= 1 &&
		    jv_number_value(q) <= 86400)
			retry = (int)jv_number_value(q);
		jv_free(q);
	}
	jv_free(resp);
	jv_free(env);
	s = jv_dump_string(body, 0);
	kwh_buf_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n",
	    status, kwh_http_reason(status));
	if (retry)
		kwh_buf_printf(out, "Retry-After: %d\r\n", retry);
	kwh_buf_printf(out, "Content-Length: %d\r\nConnection: close\r\n\r\n%s\n",
	    jv_string_length_bytes(jv_copy(s)) + 1, jv_string_value(s));
	jv_free(s);
	return status;
}
