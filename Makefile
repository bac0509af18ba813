# ato — build, test, benchmark, install.
#
#   make deps        install the Debian packages the build, tests and benchmarks need
#   make             build bin/ato and the loadable modules in lib/ato/
#   make run         deps + build + run the main job (scripts/demo.lua)
#   make test        C and Lua suites through prove (TAP)
#   make test-asan   the same suites with AddressSanitizer + UBSan
#   make bench       benchmarks next to their peers (bench/*.sh)
#   make install     PREFIX=/usr/local by default

PREFIX  ?= /usr/local
CC      ?= cc
OPT     ?= -O2
VERSION := 0.1.0

# Everything the build, the tests and the benchmarks need, as Debian 12 packages.
DEB_PKGS := gcc make pkg-config libc6-dev perl bsdutils time \
            liblua5.4-dev lua5.4 lua-cjson lua-busted \
            libuv1-dev libcurl4-openssl-dev libhttp-parser-dev libcmocka-dev \
            libvectorscan-dev libpcre2-dev libgit2-dev libsqlite3-dev sqlite3 tzdata git clang \
            libedit-dev tmux \
            nginx-light openssl curl wrk socat ripgrep hyperfine nodejs

# Libraries linked into bin/ato itself. Heavy ones (libcurl pulls ~35 shared
# libraries and costs ~5 ms of start-up) live in loadable modules instead, so
# `ato -e ''` starts as fast as lua5.4 does.
HOST_PKGS   := lua5.4 libuv
MODULE_PKGS := libcurl
# Each loadable module and what it links (libhttp-parser has no .pc file).
MODULE_SRC  := bindings/httpc.c bindings/httpd.c bindings/edit.c
# Folder modules: bindings/DIR/*.c make lib/ato/NAME.so (require "ato.NAME");
# DIR/binding.c is the Lua binding, the other files the C core, which the
# tests tests/c/test_DIR_*.c link without Lua. DIR:NAME pairs:
#   scan:scanner   the secret-scanning engine under the facade ato.scan
#   cron:cron      cron expressions and time zones under ato.sched
#   store:storedb  the SQLite state store under the facade ato.store
FOLDER_MODULES := scan:scanner cron:cron store:storedb
.DEFAULT_GOAL := all
SCAN_PKGS   := libhs libpcre2-8 libgit2
SCAN_SRC    := $(wildcard bindings/scan/*.c)
LIBS_scan   = $(shell pkg-config --libs $(SCAN_PKGS)) -lpthread
LIBS_cron   =
LIBS_store  = $(shell pkg-config --libs sqlite3) -lpthread
# nodelete: curl's resolver threads may outlive a cancelled transfer
# (CURLOPT_QUICK_EXIT), so its code must stay mapped after lua_close.
LIBS_httpc  = $(shell pkg-config --libs libcurl) -Wl,-z,nodelete
LIBS_httpd  = -lhttp_parser
# nodelete: libedit's readline interface keeps its editor and history in
# globals that nothing in that interface frees; unmapping the library at
# lua_close would turn them into leaks (LeakSanitizer reports them).
LIBS_edit   = $(shell pkg-config --libs libedit) -Wl,-z,nodelete

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CSTD    := -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -DATO_VERSION='"$(VERSION)"'
PKG_CFLAGS = $(shell pkg-config --cflags $(HOST_PKGS) $(MODULE_PKGS) $(SCAN_PKGS) sqlite3 2>/dev/null)
CFLAGS_ALL = $(CSTD) $(OPT) $(WARN) -g -fPIC -Iruntime $(PKG_CFLAGS) $(CFLAGS) $(EXTRA_CFLAGS)
HOST_LIBS  = $(shell pkg-config --libs $(HOST_PKGS) 2>/dev/null) -lm -ldl -lpthread
# -rdynamic: loadable modules (lib/ato/*.so) call the runtime's ato_* API.
LDFLAGS_ALL = -rdynamic $(LDFLAGS) $(EXTRA_LDFLAGS)

# BUILD selects an output tree so the sanitizer build never mixes with the normal one.
BUILD   ?= build/release
BIN     ?= bin/ato
LIBDIR  ?= lib/ato

RUNTIME_SRC := $(wildcard runtime/*.c)
# bindings/*.c not in MODULE_SRC are linked into the host.
HOSTBIND_SRC := $(filter-out $(MODULE_SRC),$(wildcard bindings/*.c))
HOST_OBJ    := $(patsubst %.c,$(BUILD)/%.o,$(RUNTIME_SRC) $(HOSTBIND_SRC))
CORE_OBJ    := $(filter-out $(BUILD)/runtime/main.o,$(HOST_OBJ))
MODULES     := $(patsubst bindings/%.c,$(LIBDIR)/%.so,$(MODULE_SRC))
CTEST_SRC   := $(wildcard tests/c/test_*.c)
CTESTS      := $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(CTEST_SRC))

# One folder module (see FOLDER_MODULES): $(1) the folder, $(2) the name.
# C unit tests link the runtime objects (not main.o) and cmocka; a folder's
# tests (test_$(1)_*) link its core too. A folder without sources is skipped.
define folder_module
ifneq ($$(wildcard bindings/$(1)/*.c),)
$(1)_OBJ := $$(patsubst %.c,$$(BUILD)/%.o,$$(wildcard bindings/$(1)/*.c))
$(1)_CORE_OBJ := $$(filter-out $$(BUILD)/bindings/$(1)/binding.o,$$($(1)_OBJ))
MODULES += $$(LIBDIR)/$(2).so
$$(LIBDIR)/$(2).so: $$($(1)_OBJ)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS_ALL) -shared -o $$@ $$^ $$(LDFLAGS) $$(EXTRA_LDFLAGS) $$(LIBS_$(1))
$$(BUILD)/tests/test_$(1)_%: tests/c/test_$(1)_%.c $$(CORE_OBJ) $$($(1)_CORE_OBJ)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS_ALL) -Ibindings/$(1) -o $$@ $$^ $$(LDFLAGS_ALL) $$(HOST_LIBS) $$(LIBS_$(1)) -lcmocka
endif
endef
$(foreach m,$(FOLDER_MODULES),$(eval $(call folder_module,$(word 1,$(subst :, ,$(m))),$(word 2,$(subst :, ,$(m))))))

.SECONDARY:

.PHONY: all deps run test test-c test-lua test-asan bench fuzz install uninstall clean

all: $(BIN) $(MODULES)

deps:
	@have=$$(dpkg-query -W -f='$${Package} $${db:Status-Abbrev}\n' $(DEB_PKGS) 2>/dev/null \
	  | awk '$$2 ~ /^ii/ {print $$1}'); \
	missing=; for p in $(DEB_PKGS); do \
	  echo "$$have" | grep -qx "$$p" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(BUILD)/%.o: %.c $(wildcard runtime/*.h bindings/*/*.h) | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BIN): $(HOST_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDFLAGS_ALL) $(HOST_LIBS)

$(LIBDIR)/%.so: $(BUILD)/bindings/%.o
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -shared -o $@ $< $(LDFLAGS) $(EXTRA_LDFLAGS) $(LIBS_$*)

$(BUILD)/tests/%: tests/c/%.c $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDFLAGS_ALL) $(HOST_LIBS) -lcmocka

run: deps all
	$(BIN) scripts/demo.lua

# npm test tooling, each folder pinned by its lock file: tests/sarif (the
# SARIF validator of the scan tests), tests/cron (cron-parser, the oracle of
# the cron tests). Debian 12's nodejs has no npm and NodeSource's includes
# it: install Debian's npm only when there is none.
NPM_TOOLS := $(patsubst %/package-lock.json,%/node_modules/.package-lock.json,$(wildcard tests/*/package-lock.json))
tests/%/node_modules/.package-lock.json: tests/%/package.json tests/%/package-lock.json | deps
	@command -v npm >/dev/null 2>&1 || { sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends npm; }
	npm ci --prefix tests/$* --no-audit --no-fund
	@touch $@

# prove runs every C test binary and every Lua spec; tests/tap-exec picks the
# interpreter (the cmocka binary itself, or busted inside $(BIN)).
test: deps all $(CTESTS) $(NPM_TOOLS)
	ATO_BIN=$(BIN) ATO_CTEST_DIR=$(BUILD)/tests prove -f --timer --exec tests/tap-exec \
	  $(CTESTS) $(sort $(wildcard tests/lua/*_spec.lua))

ASAN_FLAGS := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
test-asan: deps
	@mkdir -p build/asan && ln -sfn ../../stdlib build/asan/stdlib && ln -sfn ../../rules build/asan/rules
	$(MAKE) BUILD=build/asan BIN=build/asan/bin/ato LIBDIR=build/asan/lib/ato \
	  OPT="$(ASAN_FLAGS)" EXTRA_LDFLAGS="-fsanitize=address,undefined" test

bench: deps all
	bench/run.sh

# libFuzzer targets (clang), 60 s each; not part of `make test`.
FUZZ_SECONDS ?= 60
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_CORE := runtime/sha256.c runtime/redact.c $(filter-out bindings/scan/binding.c,$(SCAN_SRC))
fuzz: deps
	@mkdir -p build/fuzz
	@for f in $(FUZZ_SRC); do \
	  n=$$(basename $$f .c); \
	  clang $(CSTD) $(FUZZ_FLAGS) -Iruntime -Ibindings/scan $(PKG_CFLAGS) -o build/fuzz/$$n $$f $(FUZZ_CORE) \
	    $(shell pkg-config --libs $(SCAN_PKGS)) -lpthread -lstdc++ || exit 1; \
	  mkdir -p build/fuzz/$$n.corpus; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS) s"; \
	  build/fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 build/fuzz/$$n.corpus tests/fuzz/seeds 2>&1 | tail -3 || exit 1; \
	done

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/ato $(DESTDIR)$(PREFIX)/share/ato/lua
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/ato
	for m in $(MODULES); do install -m 0644 $$m $(DESTDIR)$(PREFIX)/lib/ato/; done
	cd stdlib && find . -name '*.lua' -exec install -D -m 0644 {} $(DESTDIR)$(PREFIX)/share/ato/lua/{} \;
	install -d $(DESTDIR)$(PREFIX)/share/ato/rules
	for r in rules/*.rules; do [ -e "$$r" ] && install -m 0644 $$r $(DESTDIR)$(PREFIX)/share/ato/rules/; done; true

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/bin/ato $(DESTDIR)$(PREFIX)/lib/ato $(DESTDIR)$(PREFIX)/share/ato

clean:
	rm -rf build bin lib
