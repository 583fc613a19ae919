/*
 * The secret helpers of cli.h, apart from the rest: they pull in sig.o and
 * with it libcrypto, whose loading alone costs a stage that needs no
 * secret several milliseconds per process.
 */
#include "cli.h"
#include "err.h"

#include <stdlib.h>
#include <string.h>

int
kwh_cli_secret_env(struct kwh_secrets *s, const char *var)
{
	char *v = getenv(var);
	int r = -1;

	if (v && *v) {
		if (kwh_secrets_add(s, v, strlen(v)) < 0)
			kwh_die(KWH_EXIT_SYSTEM, "out of memory");
		explicit_bzero(v, strlen(v));
		r = 0;
	}
	unsetenv(var);
	return r;
}

void
kwh_cli_secret_file(struct kwh_secrets *s, const char *path)
{
	char err[512];

	if (kwh_secrets_add_file(s, path, err, sizeof err) < 0)
		kwh_die(KWH_EXIT_SYSTEM, "%s", err);
}
