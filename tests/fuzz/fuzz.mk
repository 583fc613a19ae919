# tests/fuzz/fuzz.mk — `make fuzz`: the libFuzzer targets (tests/fuzz/README.md).
# Included from the top Makefile; usable alone too:
#   make -f Makefile -f tests/fuzz/fuzz.mk fuzz FUZZ_SECONDS=30
# Builds every tests/fuzz/fuzz_T.c with clang (ASan + UBSan + libFuzzer)
# under $(FUZZ_O), the library compiled directly from lib/*.c, then runs
# each target for FUZZ_SECONDS on a scratch corpus ($(FUZZ_O)/corpus/T,
# kept between runs) seeded read-only from tests/fuzz/corpus/T, so that the
# committed corpus only grows by hand.  Crashing inputs land in
# $(FUZZ_O)/artifacts/; the target fails when any run found one.
# FUZZ_TARGETS=http make fuzz runs a subset; FUZZ_FLAGS adds libFuzzer flags.

FUZZ_CC      ?= clang
FUZZ_O       ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_DIR      = tests/fuzz
FUZZ_ALL      = $(patsubst $(FUZZ_DIR)/fuzz_%.c,%,$(wildcard $(FUZZ_DIR)/fuzz_*.c))
FUZZ_TARGETS ?= $(FUZZ_ALL)
FUZZ_PKGS     = libgit2 libssh2 libcurl libcrypto yaml-0.1
FUZZ_DEPCFLAGS := $(shell $(or $(PKG_CONFIG),pkg-config) --cflags $(FUZZ_PKGS) 2>/dev/null)
FUZZ_DEPLIBS   := $(shell $(or $(PKG_CONFIG),pkg-config) --libs $(FUZZ_PKGS) 2>/dev/null)
FUZZ_SAN      = -fsanitize=address,undefined -fno-sanitize-recover=all
# Known bugs (tests/fuzz/README.md) are skipped by the fuzzers so that the
# search goes on; FUZZ_KNOWN= builds fuzzers that stop on them too.  The
# regression drivers (tests/tools/kwh-fuzz-*.c) never skip them.
FUZZ_KNOWN   ?= -DKWH_FUZZ_KNOWN
# No -Werror: clang warns about things gcc does not; the gcc build is the gate.
FUZZ_CFLAGS   = -std=c11 -D_GNU_SOURCE -DKWH_VERSION='"fuzz"' -Wall -Wextra \
	-Wno-unused-parameter -Ilib $(FUZZ_DEPCFLAGS) -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) $(FUZZ_KNOWN)
FUZZ_LIBS     = $(FUZZ_DEPLIBS) -ljq -lhttp_parser -lm
FUZZ_LIB_SRC  = $(wildcard lib/*.c)
FUZZ_LIB_OBJ  = $(FUZZ_LIB_SRC:lib/%.c=$(FUZZ_O)/lib/%.o)
FUZZ_BINS     = $(FUZZ_ALL:%=$(FUZZ_O)/fuzz_%)
FUZZ_RUNFLAGS = -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 $(FUZZ_FLAGS)

$(FUZZ_O)/lib/%.o: lib/%.c $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_O)/libkwh-fuzz.a: $(FUZZ_LIB_OBJ)
	rm -f $@
	ar rcs $@ $(FUZZ_LIB_OBJ)

$(FUZZ_O)/fuzz_%: $(FUZZ_DIR)/fuzz_%.c $(FUZZ_DIR)/fuzz.h $(FUZZ_O)/libkwh-fuzz.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_O)/libkwh-fuzz.a $(FUZZ_LIBS)

# clang and its runtime (libFuzzer), which make check does not need.
fuzz-deps:
	@KWH_DEPS=fuzz sh share/kwh/install-deps

fuzz-build: fuzz-deps
	$(MAKE) $(FUZZ_BINS)

# One target at a time (the fuzzers are single-process); a summary line
# per target from its log in $(FUZZ_O)/logs/T.log.
fuzz: fuzz-build
	@mkdir -p $(FUZZ_O)/artifacts $(FUZZ_O)/logs; fail=0; \
	for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_O)/corpus/$$t; \
		dict=; [ -f $(FUZZ_DIR)/$$t.dict ] && dict=-dict=$(FUZZ_DIR)/$$t.dict; \
		echo "fuzz: $$t for $(FUZZ_SECONDS)s"; \
		if ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0 \
		    LSAN_OPTIONS=suppressions=$(CURDIR)/$(FUZZ_DIR)/lsan.supp \
		    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		    $(FUZZ_O)/fuzz_$$t $(FUZZ_RUNFLAGS) $$dict \
		    -artifact_prefix=$(FUZZ_O)/artifacts/$$t- \
		    $(FUZZ_O)/corpus/$$t $(FUZZ_DIR)/corpus/$$t >$(FUZZ_O)/logs/$$t.log 2>&1; \
		then :; else fail=1; echo "fuzz: $$t FOUND A CRASH (see $(FUZZ_O)/logs/$$t.log)"; \
			grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz: invariant|artifact_prefix|Test unit written)' \
			    $(FUZZ_O)/logs/$$t.log | head -5; fi; \
		grep -E '^(#[0-9]+.*(DONE|INITED)|stat::)' $(FUZZ_O)/logs/$$t.log | \
		    sed "s/^/fuzz: $$t: /" | grep -E 'DONE|number_of_executed_units|average_exec_per_sec|peak_rss' ; \
	done; exit $$fail

fuzz-clean:
	rm -rf $(FUZZ_O)

.PHONY: fuzz fuzz-deps fuzz-build fuzz-clean
