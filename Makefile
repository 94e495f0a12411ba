# svp — see README.md. `make run` and `make test` set everything up on a fresh clone.
SHELL := /bin/bash
NPX := node_modules/.bin
# Node 20's test runner needs an explicit list of files (a folder or quoted glob runs none).
TEST_FILES := $(shell find test -name '*.test.ts' -not -path '*/node_modules/*' | sort)
SRC_FILES := $(shell find src cli -name '*.ts') package.json scripts/build.mjs tsconfig.types.json
LISTEN ?= 127.0.0.1:1080

.PHONY: all deps install uninstall run test test-node test-deno test-deps check typecheck layers dist bench bench-deps demo clean native

all: dist/svp.cjs

node_modules/.svp-installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: node_modules/.svp-installed

dist/svp.cjs: node_modules/.svp-installed $(SRC_FILES)
	node scripts/build.mjs

run: dist/svp.cjs
	node dist/svp.cjs socks --listen $(LISTEN)

# Tools the tests drive for real (curl). Installed from Debian when missing.
# zsh and fish (about 8 MB from Debian) run the completion tests for real; best effort: without
# them those tests skip and say why.
test-deps:
	@command -v curl >/dev/null || { echo "installing curl for the tests"; (apt-get install -y --no-install-recommends curl || sudo apt-get install -y --no-install-recommends curl); }
	@{ command -v zsh && command -v fish; } >/dev/null || { echo "installing zsh and fish for the completion tests"; $(APT_INSTALL) zsh fish >/dev/null 2>&1 || echo "  (could not: the zsh and fish completion tests will skip)"; }

# The servald backend's AF_UNIX datagram addon (npm ci builds it too). Never fails: without a
# compiler it explains, and only the servald backend (and its tests) are unavailable.
NATIVE_ADDON := native/build/svp_unix_dgram.node
native: $(NATIVE_ADDON)
$(NATIVE_ADDON): native/unix_dgram.c native/build.mjs
	@node native/build.mjs

test: node_modules/.svp-installed dist/svp.cjs test-deps $(NATIVE_ADDON)
	node --import tsx --test $(TEST_FILES)

test-deno: node_modules/.svp-installed dist/svp.cjs test-deps $(NATIVE_ADDON)
	$(NPX)/deno test -A --quiet $(TEST_FILES)

typecheck: node_modules/.svp-installed
	$(NPX)/tsc -p .

layers:
	@scripts/check-layers.sh

check: typecheck layers test

dist: dist/svp

dist/svp: dist/svp.cjs scripts/sea.mjs $(NATIVE_ADDON)
	@node scripts/sea.mjs

# The binary, man page, bash/zsh/fish completions and systemd user unit into PREFIX (see
# scripts/install.sh for where each goes); uninstall removes exactly what install put there.
PREFIX ?= $(HOME)/.local
install: dist/svp
	@scripts/install.sh install "$(PREFIX)" dist/svp

uninstall:
	@scripts/install.sh uninstall "$(PREFIX)"

# What the benchmark builds with (cc) and compares against (microsocks, dante); from Debian when
# missing. (dante-server's package may try to start its system service: the benchmark does
# not use it, it starts its own danted on loopback with a temporary configuration.)
APT_INSTALL := apt-get install -y --no-install-recommends
bench-deps:
	@command -v cc >/dev/null || { echo "installing gcc for the benchmark"; $(APT_INSTALL) gcc libc6-dev || { apt-get update && $(APT_INSTALL) gcc libc6-dev; }; }
	@command -v microsocks >/dev/null || { echo "installing microsocks for the benchmark"; $(APT_INSTALL) microsocks || { apt-get update && $(APT_INSTALL) microsocks; }; }
	@{ command -v danted || test -x /usr/sbin/danted; } >/dev/null || { echo "installing dante-server for the benchmark"; $(APT_INSTALL) dante-server || { apt-get update && $(APT_INSTALL) dante-server; }; }

bench: dist/svp bench-deps
	node --import tsx bench/run.ts

# The whole use case on one machine: two embedded nodes, listen, socks, curl, connect, discover.
demo: dist/svp.cjs test-deps
	scripts/demo.sh

clean:
	rm -rf dist
