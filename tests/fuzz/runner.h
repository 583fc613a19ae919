/* runner.h — a main for a fuzz target without libFuzzer: runs
 * LLVMFuzzerTestOneInput on each file named on the command line (the
 * tests/tools/kwh-fuzz-*.c drivers include one fuzz_T.c and this file).
 * Exit 0 when every input passed; an input that breaks an invariant
 * aborts, as under the fuzzer.  Usage: kwh-fuzz-T FILE... */
#include <errno.h>
#include <fcntl.h>
#include "buf.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE...\n", argv[0]);
		return 100;
	}
	LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++) {
		struct kwh_buf b = KWH_BUF_INIT;

		if (kwh_buf_read_file(&b, argv[i]) < 0) {
			fprintf(stderr, "%s: cannot read '%s': %s\n", argv[0], argv[i], strerror(errno));
			return 111;
		}
		fprintf(stderr, "%s: running '%s' (%zu bytes)\n", argv[0], argv[i], b.len);
		LLVMFuzzerTestOneInput((const uint8_t *)(b.data ? b.data : ""), b.len);
		kwh_buf_release(&b);
	}
	return 0;
}
