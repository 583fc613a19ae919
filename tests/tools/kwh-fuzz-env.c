/* kwh-fuzz-env — runs the checks of the fuzz target tests/fuzz/fuzz_env.c on
 * the files given (regression inputs), without libFuzzer.  Used by
 * tests/5000-fuzz-regressions.bats.  Usage: kwh-fuzz-env FILE... */
#include "../fuzz/fuzz_env.c"
#include "../fuzz/runner.h"
