/* kwh-fuzz-yaml — runs the checks of the fuzz target tests/fuzz/fuzz_yaml.c on
 * the files given (regression inputs), without libFuzzer.  Used by
 * tests/5000-fuzz-regressions.bats.  Usage: kwh-fuzz-yaml FILE... */
#include "../fuzz/fuzz_yaml.c"
#include "../fuzz/runner.h"
