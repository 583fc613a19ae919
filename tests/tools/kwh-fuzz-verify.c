/* kwh-fuzz-verify — runs the checks of the fuzz target tests/fuzz/fuzz_verify.c on
 * the files given (regression inputs), without libFuzzer.  Used by
 * tests/5000-fuzz-regressions.bats.  Usage: kwh-fuzz-verify FILE... */
#include "../fuzz/fuzz_verify.c"
#include "../fuzz/runner.h"
