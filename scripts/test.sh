#!/usr/bin/env bash
# Runs every test, on any Debian-like machine: installs what the tests need
# when it is missing (redis-server for the Redis store, chromium for the
# real-browser test, Node's openid-client for the third client library,
# axe-core for the accessibility check of every page),
# then go vet, `go test -race ./...`, the Go benchmarks once each so they
# cannot rot, and the Dockerfile's xcaddy build (scripts/check-dockerfile.sh).
# Each phase prints a line with the time so far. Extra arguments go to
# go test.
#
# NO_INSTALL=1 installs nothing (no apt-get, no npm, no xcaddy): the tests
# that need what is missing skip, each saying what it needs, and the
# Dockerfile check runs only if xcaddy is already on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$SECONDS
elapsed() { printf '%dm%02ds' $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60)); }
phase() { echo "== [$(elapsed)] $*"; }
# go test -race compiles for minutes before its first line: say it is alive.
heartbeat() { while sleep 60 </dev/null >/dev/null 2>&1; do echo "   [$(elapsed)] still at it"; done; }

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
openid_client=integration/testdata/openid-client
axe=integration/testdata/axe
if [ "${NO_INSTALL:-}" = 1 ]; then
	missing=("${need[@]}")
	[ -d "$openid_client/node_modules/openid-client" ] || missing+=(openid-client)
	[ -f "$axe/node_modules/axe-core/axe.min.js" ] || missing+=(axe-core)
	if [ ${#missing[@]} -gt 0 ]; then
		phase "NO_INSTALL=1: not installing ${missing[*]}; the tests that need them skip and say so"
		# CI means every test must run; here the missing ones cannot.
		unset CI
	fi
else
	if [ ${#need[@]} -gt 0 ]; then
		phase "installing ${need[*]} (apt-get; NO_INSTALL=1 skips this)"
		sudo=""
		[ "$(id -u)" -ne 0 ] && sudo="sudo"
		$sudo apt-get update -qq
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
	fi
	# Node's openid-client, the third client library the tests run.
	if [ ! -d "$openid_client/node_modules/openid-client" ]; then
		phase "installing openid-client (npm)"
		(cd "$openid_client" && npm install --no-save --no-audit --no-fund openid-client@6 >/dev/null)
	fi
	# axe-core, the accessibility checker the real-browser tests run on
	# every page.
	if [ ! -f "$axe/node_modules/axe-core/axe.min.js" ]; then
		phase "installing axe-core (npm)"
		(cd "$axe" && npm install --no-save --no-audit --no-fund axe-core@4 >/dev/null)
	fi
fi

phase "go vet"
go vet ./...

phase "go test -race (about 7 minutes on 2 cores, most of it compiling; a line per package as each passes)"
heartbeat &
beating=$!
trap 'kill $beating 2>/dev/null || true' EXIT
go test -race -count=1 -timeout 20m "$@" ./...
kill $beating 2>/dev/null || true

phase "benchmarks, once each (so they cannot rot)"
bench_log=$(mktemp)
if ! go test -run '^$' -bench . -benchtime=1x -count=1 -timeout 10m ./... >"$bench_log" 2>&1; then
	grep -v '^{"level' "$bench_log" | tail -n 60
	echo "benchmarks failed"
	exit 1
fi
echo "   benchmarks ran: $(grep -c '^Benchmark' "$bench_log")"
rm -f "$bench_log"

if [ "${NO_INSTALL:-}" = 1 ] && ! command -v xcaddy >/dev/null 2>&1; then
	phase "skipping the Dockerfile's xcaddy build: NO_INSTALL=1 and no xcaddy on PATH"
else
	phase "the Dockerfile's xcaddy build (scripts/check-dockerfile.sh)"
	bash scripts/check-dockerfile.sh
fi
phase "all passed"
