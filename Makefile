# kwh — see README.md.  `make` builds, `make check` runs the suite.
PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
MANDIR   ?= $(PREFIX)/share/man
SHAREDIR ?= $(PREFIX)/share
PKG_CONFIG ?= pkg-config
CC       ?= cc
CFLAGS   ?= -O2 -g
KWH_VERSION = 0.1.0

PKGS = libgit2 libcurl openssl yaml-0.1
DEPCFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
LIBDIR    := $(shell $(PKG_CONFIG) --variable=libdir libgit2 2>/dev/null)
# Debian's libjq-dev ships no .pc file (and no static library).
JQ_LIBS   ?= -ljq
# libgit2 and what it needs, libyaml and http-parser are linked statically
# (their -dev packages ship the archives): a process that loads them as
# shared libraries spends more time in the dynamic loader than kwh-fetch
# spends reading a cached revision (bench/README.md).  An archive only
# brings in what a program calls, so tools that never touch git load
# neither libgit2 nor Kerberos.  The --wrap options let lib/git.c defer
# libgit2's TLS set-up and its parse of the system CA bundle until a fetch
# needs them.
STATIC_LIBS ?= $(addprefix $(LIBDIR)/,libgit2.a libmbedtls.a libmbedx509.a \
	libmbedcrypto.a libpcre2-8.a libz.a libhttp_parser.a libyaml.a)
GIT_WRAP  ?= -Wl,--wrap=git_mbedtls_stream_global_init,--wrap=mbedtls_x509_crt_parse_file,--wrap=mbedtls_x509_crt_parse_path
# libcurl and libssh2 (with the OpenSSL they bring) are opened with
# dlopen when a request or an SSH fetch needs them: lib/curl-dl.c (part of
# libkwh.a) and lib/ssh2-dl.c (an archive of its own, after libgit2's in
# the link, so that it comes into the programs whose libgit2 has SSH)
# define the functions kwh and libgit2 call.
# What kwh itself takes from OpenSSL (SHA-1/SHA-256 blocks, CRYPTO_memcmp)
# comes from its archive; no program needs libssl.
LAZY_OBJ   = $(O)/lib/libssh2-dl.a
CRYPTO_LIBS = $(LIBDIR)/libcrypto.a

ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -DKWH_VERSION='"$(KWH_VERSION)"' \
	-Wall -Wextra -Werror -Wno-unused-parameter -Ilib $(DEPCFLAGS) $(CFLAGS)
DEP_LIBS   = $(GIT_WRAP) $(STATIC_LIBS) $(LAZY_OBJ) -Wl,--as-needed $(CRYPTO_LIBS)
SYS_LIBS   = -lm -ldl -pthread $(LDLIBS)
ALL_LIBS   = $(DEP_LIBS) $(JQ_LIBS) $(SYS_LIBS)
# The stages that run no jq program take jq's value API from lib/jv.c
# instead of libjq, which would bring libonig and libm into every start
# (bench/README.md, kwh-fetch, "No libjq").  tests/0500 proves the two
# print and parse alike.  jv.o stays out of libkwh.a: kwh-annotate and
# kwh-handle link libjq, whose own calls must not bind to it.
JV_OBJ     = $(O)/lib/jv.o
# The programs that load no shared library are linked statically: without
# the dynamic loader each start costs about a millisecond less.  kwh-fetch's
# network side needs shared libraries (libssh2, the resolver's modules), so
# its fetch child runs the fetch helper, linked dynamically (lib/git.c,
# "The fetch helper").  ld warns that the static kwh-fetch contains
# dlopen, getaddrinfo and getpwuid_r: libgit2's transports (and
# lib/ssh2-dl.c for them), which only the helper runs.  STATIC= links
# them all dynamically (the sanitizer build, which cannot be static).
# Each has a dynamic twin in tests/tools for valgrind, which cannot follow
# a static C library's allocator (tests/5400).
STATIC     ?= -static-pie
STATIC_BINS = $(addprefix $(O)/bin/kwh-,fetch verify respond)
TWINS      = $(STATIC_BINS:$(O)/bin/%=$(O)/tests/tools/%-dynamic)
HELPER     = $(O)/libexec/kwh/kwh-fetch-net
JV_BINS    = $(addprefix $(O)/bin/kwh-,verify fetch apply respond replay)

# Linking a program from its .c ($<): with libjq, or with lib/jv.c.
LINK_JQ    = $(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(O)/lib/libkwh.a $(ALL_LIBS)
LINK_NOJQ  = $(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(O)/lib/libkwh.a $(JV_OBJ) \
	$(DEP_LIBS) $(SYS_LIBS)

# O=DIR builds out of tree (objects and programs under DIR); the suite
# then runs with KWH_BIN=DIR/bin KWH_TOOLS=DIR/tests/tools.
O        ?= .
LIB_SRC  = $(filter-out lib/ssh2-dl.c lib/jv.c,$(wildcard lib/*.c))
LIB_OBJ  = $(LIB_SRC:%.c=$(O)/%.o)
LIB_HDR  = $(wildcard lib/*.h)
BIN_SRC  = $(wildcard bin/kwh-*.c)
BINS     = $(BIN_SRC:%.c=$(O)/%)
TOOL_SRC = $(wildcard tests/tools/*.c)
TOOLS    = $(TOOL_SRC:%.c=$(O)/%) $(O)/tests/tools/kwh-jv-check-own $(TWINS)

all: $(BINS) $(HELPER) $(TOOLS)

$(O)/lib/%.o: lib/%.c $(LIB_HDR)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(O)/lib/libkwh.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $(LIB_OBJ)

$(LAZY_OBJ): $(O)/lib/ssh2-dl.o
	rm -f $@
	ar rcs $@ $<

$(O)/bin/kwh-%: bin/kwh-%.c $(O)/lib/libkwh.a $(LAZY_OBJ) $(LIB_HDR)
	@mkdir -p $(@D)
	$(LINK_JQ)

$(JV_BINS): $(O)/bin/kwh-%: bin/kwh-%.c $(O)/lib/libkwh.a $(JV_OBJ) $(LAZY_OBJ) $(LIB_HDR)
	@mkdir -p $(@D)
	$(LINK_NOJQ)

$(STATIC_BINS): LDFLAGS += $(STATIC)

$(HELPER): libexec/kwh-fetch-net.c $(O)/lib/libkwh.a $(JV_OBJ) $(LAZY_OBJ) $(LIB_HDR)
	@mkdir -p $(@D)
	$(LINK_NOJQ)

$(TWINS): $(O)/tests/tools/kwh-%-dynamic: bin/kwh-%.c $(O)/lib/libkwh.a $(JV_OBJ) $(LAZY_OBJ) $(LIB_HDR)
	@mkdir -p $(@D)
	$(LINK_NOJQ)

# The same check program linked with lib/jv.c instead of libjq (tests/0500).
$(O)/tests/tools/kwh-jv-check-own: tests/tools/kwh-jv-check.c $(JV_OBJ) $(LIB_HDR)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(JV_OBJ) -lm

$(O)/tests/tools/%: tests/tools/%.c $(O)/lib/libkwh.a $(LAZY_OBJ) $(LIB_HDR)
	@mkdir -p $(@D)
	$(LINK_JQ)

deps:
	@sh share/kwh/install-deps

# The whole story on this machine: git server, chain behind socat, a
# signed push with curl, and what each stage did.  See examples/demo.sh.
demo: deps
	$(MAKE) all
	bash examples/demo.sh

check: deps
	$(MAKE) all
	bats $(BATS_FLAGS) tests

# Benchmarks, side by side with the reference tools; figures in
# bench/README.md.  Bounded: each script runs a fixed number of times.
BENCHES ?= verify annotate fetch apply peers
bench: deps
	$(MAKE) all
	for b in $(BENCHES); do echo "== bench/$$b.sh"; sh -c "bench/$$b.sh" || exit 1; echo; done

SAN_FLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
SAN_DIR   = build-sanitize
# The whole suite against binaries built with ASan and UBSan.
sanitize-check: deps
	$(MAKE) all O=$(SAN_DIR) CFLAGS='$(SAN_FLAGS)' LDFLAGS='-fsanitize=address,undefined' STATIC=
	rm -rf $(SAN_DIR)/reports && mkdir -p $(SAN_DIR)/reports
	@# jq 1.6 leaks a parsed value on some syntax errors (tests/fuzz/README.md);
	@# suppressing exactly that needs full stacks: libjq has no frame pointers.
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:exitcode=99:fast_unwind_on_malloc=0:log_path=$(CURDIR)/$(SAN_DIR)/reports/asan \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/fuzz/lsan.supp \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=98:log_path=$(CURDIR)/$(SAN_DIR)/reports/ubsan \
	KWH_SANITIZED=1 KWH_BIN=$(CURDIR)/$(SAN_DIR)/bin KWH_TOOLS=$(CURDIR)/$(SAN_DIR)/tests/tools \
		bats $(BATS_FLAGS) tests
	@# A report from any process fails the run, even one whose exit status a test ignored.
	@# (A report that only lists the suppressions used is not an error.)
	@if grep -lE 'ERROR: |runtime error' $(SAN_DIR)/reports/* >/dev/null 2>&1; then \
		cat $(SAN_DIR)/reports/*; \
		echo "sanitize-check: the sanitizers reported the errors above" >&2; exit 1; fi

install: all
	mkdir -p $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7
	for b in $(BINS); do install -m 755 $$b $(DESTDIR)$(BINDIR)/; done
	@# kwh-fetch looks for its helper in ../libexec/kwh from its own directory
	mkdir -p $(DESTDIR)$(BINDIR)/../libexec/kwh
	install -m 755 $(HELPER) $(DESTDIR)$(BINDIR)/../libexec/kwh/
	for m in man/*.1; do [ -f "$$m" ] && install -m 644 $$m $(DESTDIR)$(MANDIR)/man1/; done; true
	for m in man/*.7; do [ -f "$$m" ] && install -m 644 $$m $(DESTDIR)$(MANDIR)/man7/; done; true
	mkdir -p $(DESTDIR)$(SHAREDIR)/bash-completion/completions \
		$(DESTDIR)$(SHAREDIR)/zsh/vendor-completions $(DESTDIR)$(SHAREDIR)/fish/vendor_completions.d
	for b in $(BINS); do t=$${b##*/}; \
		install -m 644 completions/kwh.bash $(DESTDIR)$(SHAREDIR)/bash-completion/completions/$$t; \
		install -m 644 completions/kwh.fish $(DESTDIR)$(SHAREDIR)/fish/vendor_completions.d/$$t.fish; \
	done
	install -m 644 completions/_kwh $(DESTDIR)$(SHAREDIR)/zsh/vendor-completions/_kwh
	mkdir -p $(DESTDIR)$(SHAREDIR)/kwh/systemd $(DESTDIR)$(SHAREDIR)/kwh/kubernetes
	install -m 755 share/kwh/kwh-handler share/socat/kwh-socat $(DESTDIR)$(SHAREDIR)/kwh/
	install -m 644 share/kwh/kwh.env.example share/inetd/kwh.inetd.conf $(DESTDIR)$(SHAREDIR)/kwh/
	install -m 644 share/systemd/kwh.socket share/systemd/kwh@.service \
	    share/systemd/kwh-handle-listen.socket share/systemd/kwh-handle-listen.service \
	    $(DESTDIR)$(SHAREDIR)/kwh/systemd/
	install -m 644 share/kubernetes/*.yaml $(DESTDIR)$(SHAREDIR)/kwh/kubernetes/

clean:
	rm -f $(O)/lib/*.o $(O)/lib/libkwh.a $(LAZY_OBJ) $(BINS) $(HELPER) $(TOOLS)
	rm -rf $(SAN_DIR)

.PHONY: all bench deps demo check sanitize-check install clean

# make fuzz (libFuzzer, bounded) and make load (bounded load on 127.0.0.1).
-include tests/fuzz/fuzz.mk tests/load/load.mk
