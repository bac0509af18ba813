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
            nginx-light openssl curl wrk socat hyperfine nodejs

# Libraries linked into bin/ato itself. Heavy ones (libcurl pulls ~35 shared
# libraries and costs ~5 ms of start-up) live in loadable modules instead, so
# `ato -e ''` starts as fast as lua5.4 does.
HOST_PKGS   := lua5.4 libuv
MODULE_PKGS := libcurl
# Each loadable module and what it links (libhttp-parser has no .pc file).
MODULE_SRC  := bindings/httpc.c bindings/httpd.c
# nodelete: curl's resolver threads may outlive a cancelled transfer
# (CURLOPT_QUICK_EXIT), so its code must stay mapped after lua_close.
LIBS_httpc  = $(shell pkg-config --libs libcurl) -Wl,-z,nodelete
LIBS_httpd  = -lhttp_parser

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CSTD    := -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -DATO_VERSION='"$(VERSION)"'
PKG_CFLAGS = $(shell pkg-config --cflags $(HOST_PKGS) $(MODULE_PKGS) 2>/dev/null)
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

.SECONDARY:

.PHONY: all deps run test test-c test-lua test-asan bench install uninstall clean

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

$(BUILD)/%.o: %.c $(wildcard runtime/*.h) | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BIN): $(HOST_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDFLAGS_ALL) $(HOST_LIBS)

$(LIBDIR)/%.so: $(BUILD)/bindings/%.o
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -shared -o $@ $< $(LDFLAGS) $(EXTRA_LDFLAGS) $(LIBS_$*)

# C unit tests link the runtime objects (not main.o) and cmocka.
$(BUILD)/tests/%: tests/c/%.c $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDFLAGS_ALL) $(HOST_LIBS) -lcmocka

run: deps all
	$(BIN) scripts/demo.lua

# prove runs every C test binary and every Lua spec; tests/tap-exec picks the
# interpreter (the cmocka binary itself, or busted inside $(BIN)).
test: deps all $(CTESTS)
	ATO_BIN=$(BIN) ATO_CTEST_DIR=$(BUILD)/tests prove -f --timer --exec tests/tap-exec \
	  $(CTESTS) $(sort $(wildcard tests/lua/*_spec.lua))

ASAN_FLAGS := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
test-asan: deps
	@mkdir -p build/asan && ln -sfn ../../stdlib build/asan/stdlib
	$(MAKE) BUILD=build/asan BIN=build/asan/bin/ato LIBDIR=build/asan/lib/ato \
	  OPT="$(ASAN_FLAGS)" EXTRA_LDFLAGS="-fsanitize=address,undefined" test

bench: deps all
	bench/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/ato $(DESTDIR)$(PREFIX)/share/ato/lua
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/ato
	for m in $(MODULES); do install -m 0644 $$m $(DESTDIR)$(PREFIX)/lib/ato/; done
	cd stdlib && find . -name '*.lua' -exec install -D -m 0644 {} $(DESTDIR)$(PREFIX)/share/ato/lua/{} \;

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/bin/ato $(DESTDIR)$(PREFIX)/lib/ato $(DESTDIR)$(PREFIX)/share/ato

clean:
	rm -rf build bin lib
