# `make load`: the bounded load test (tests/load/load.sh, figures in
# tests/load/README.md).  Included from the Makefile; honours O=DIR.
# LOAD_N1, LOAD_N8, LOAD_N32, LOAD_NDEDUPE, LOAD_TIMEOUT tune it.
load:
	@KWH_DEPS=bench sh share/kwh/install-deps
	$(MAKE) all
	KWH_BIN=$(abspath $(or $(O),.))/bin bash tests/load/load.sh

.PHONY: load
