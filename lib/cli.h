/* cli.h — what every tool's main shares: help, version, log, numbers. */
#ifndef KWH_CLI_H
#define KWH_CLI_H
#include <stddef.h>
#include "sig.h"

/* Prints usage (the man page SYNOPSIS) to stdout and exits 0. */
void kwh_cli_help(const char *usage) __attribute__((noreturn));
/* Prints "PROG (kwh) VERSION" and exits 0. */
void kwh_cli_version(void) __attribute__((noreturn));
/* Opens the log at spec (see kwh_log_open) or dies with 100. */
void kwh_cli_log(const char *spec);
/* Parses a non-negative number (with optional k, M, G suffix when size) for option opt, or dies with 100. */
size_t kwh_cli_size(const char *opt, const char *arg);
/* Parses seconds (decimals allowed) into milliseconds, or dies with 100. */
long kwh_cli_seconds_ms(const char *opt, const char *arg);
/*
 * Adds the secret in environment variable var, if set and not empty, then
 * wipes it from the environment so that no child sees it.  0 when added.
 */
int kwh_cli_secret_env(struct kwh_secrets *s, const char *var);
/* Adds the secret file or dies with 111 naming the file. */
void kwh_cli_secret_file(struct kwh_secrets *s, const char *path);

#endif
