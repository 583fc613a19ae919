# kwh — see README.md.  `make` builds, `make check` runs the suite.
#
# The libraries are linked as the distribution ships them: shared, found
# with pkg-config where they install a .pc file, by name where they do not
# (libjq, http-parser).  CFLAGS, CPPFLAGS, LDFLAGS, LDLIBS, PREFIX and
# DESTDIR are honoured; O=DIR builds out of tree.

PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
MANDIR   ?= $(PREFIX)/share/man
SHAREDIR ?= $(PREFIX)/share
PKG_CONFIG ?= pkg-config
CFLAGS   ?= -O2 -g
WERROR   ?= -Werror
KWH_VERSION = 0.1.0

PKGS     = libgit2 libssh2 libcurl libcrypto yaml-0.1 libpcre2-8
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)

ALL_CFLAGS  = -std=c11 -D_GNU_SOURCE -DKWH_VERSION='"$(KWH_VERSION)"' \
	-Wall -Wextra $(WERROR) -Wno-unused-parameter -Ilib $(PKG_CFLAGS) $(CPPFLAGS) $(CFLAGS)
# --as-needed: each program records only the libraries it calls, so that
# ldd and dpkg-shlibdeps tell the truth about it.
ALL_LDFLAGS = -Wl,--as-needed $(LDFLAGS)
ALL_LIBS    = $(PKG_LIBS) -ljq -lhttp_parser -lm -pthread $(LDLIBS)

O       ?=
OUT      = $(if $(O),$(O)/)
LIB_SRC  = $(wildcard lib/*.c)
LIB_OBJ  = $(LIB_SRC:%.c=$(OUT)%.o)
LIB_HDR  = $(wildcard lib/*.h)
BINS     = $(patsubst %.c,$(OUT)%,$(wildcard bin/kwh-*.c))
TOOLS    = $(patsubst %.c,$(OUT)%,$(wildcard tests/tools/*.c))

all: $(BINS) $(TOOLS)

# Without the -dev packages, say what to run rather than fail on a header.
depcheck:
	@$(PKG_CONFIG) --exists $(PKGS) 2>/dev/null && \
	printf '#include <jq.h>\n#include <http_parser.h>\n' | \
	    $(CC) $(PKG_CFLAGS) $(CPPFLAGS) -E -o /dev/null - 2>/dev/null || { \
	echo "make: the build dependencies are missing (pkg-config and the -dev packages of" >&2; \
	echo "  $(PKGS), libjq, http-parser)." >&2; \
	echo "  Run 'make deps' (Debian: installs them with apt-get), or see README.md." >&2; \
	exit 1; }

$(OUT)lib/%.o: lib/%.c $(LIB_HDR) | depcheck
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(OUT)lib/libkwh.a: $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $(LIB_OBJ)

$(BINS) $(TOOLS): $(OUT)%: %.c $(OUT)lib/libkwh.a $(LIB_HDR)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(OUT)lib/libkwh.a $(ALL_LIBS)

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
BENCHES ?= verify annotate fetch apply peers slow-clients
bench:
	@KWH_DEPS=bench sh share/kwh/install-deps
	$(MAKE) all
	for b in $(BENCHES); do echo "== bench/$$b.sh"; sh -c "bench/$$b.sh" || exit 1; echo; done
# Issue 16's benchmarks at scale (a 1 GiB repository, 200 repositories,
# bursts of 1,000 deliveries, 500 fetches into one entry): minutes each.
BENCHES_SCALE ?= cold-start repos burst cache-read
bench-scale:
	@KWH_DEPS=bench sh share/kwh/install-deps
	$(MAKE) all
	for b in $(BENCHES_SCALE); do echo "== bench/$$b.sh"; sh -c "bench/$$b.sh" || exit 1; echo; done

SAN_FLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
SAN_DIR   = build-sanitize
# The whole suite against binaries built with ASan and UBSan.
sanitize-check: deps
	$(MAKE) all O=$(SAN_DIR) CFLAGS='$(SAN_FLAGS)' LDFLAGS='-fsanitize=address,undefined'
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
	install -m 755 $(BINS) $(DESTDIR)$(BINDIR)/
	install -m 644 man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 man/*.7 $(DESTDIR)$(MANDIR)/man7/
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
	    share/systemd/kwh-redeliver.service share/systemd/kwh-redeliver.timer \
	    $(DESTDIR)$(SHAREDIR)/kwh/systemd/
	install -m 644 share/kubernetes/*.yaml $(DESTDIR)$(SHAREDIR)/kwh/kubernetes/

clean:
	rm -f $(LIB_OBJ) $(OUT)lib/libkwh.a $(BINS) $(TOOLS)
	rm -rf $(SAN_DIR)

.PHONY: all depcheck bench bench-scale deps demo check sanitize-check install clean

# make fuzz (libFuzzer, bounded) and make load (bounded load on 127.0.0.1).
-include tests/fuzz/fuzz.mk tests/load/load.mk
