/* kwh-fuzz-kubeconfig — runs the checks of the fuzz target tests/fuzz/fuzz_kubeconfig.c on
 * the files given (regression inputs), without libFuzzer.  Used by
 * tests/5000-fuzz-regressions.bats.  Usage: kwh-fuzz-kubeconfig FILE... */
#include "../fuzz/fuzz_kubeconfig.c"
#include "../fuzz/runner.h"
