/* kwh-fuzz-http — runs the checks of the fuzz target tests/fuzz/fuzz_http.c on
 * the files given (regression inputs), without libFuzzer.  Used by
 * tests/5000-fuzz-regressions.bats.  Usage: kwh-fuzz-http FILE... */
#include "../fuzz/fuzz_http.c"
#include "../fuzz/runner.h"
