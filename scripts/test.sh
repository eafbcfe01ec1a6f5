#!/usr/bin/env bash
# Runs every test, on any Debian-like machine: installs what the tests need
# when it is missing (redis-server for the Redis store, chromium for the
# real-browser test, Node's openid-client for the third client library,
# axe-core for the accessibility check of every page),
# then `go test -race ./...` (plus vet, and the Go benchmarks once each so
# they cannot rot). Extra arguments go to go test.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
	echo "== installing ${need[*]}"
	sudo=""
	[ "$(id -u)" -ne 0 ] && sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Node's openid-client, the third client library the tests run.
if [ ! -d integration/testdata/openid-client/node_modules/openid-client ]; then
	echo "== installing openid-client (npm)"
	(cd integration/testdata/openid-client && npm install --no-save --no-audit --no-fund openid-client@6 >/dev/null)
fi

# axe-core, the accessibility checker the real-browser tests run on every page.
if [ ! -f integration/testdata/axe/node_modules/axe-core/axe.min.js ]; then
	echo "== installing axe-core (npm)"
	(cd integration/testdata/axe && npm install --no-save --no-audit --no-fund axe-core@4 >/dev/null)
fi

echo "== go vet"
go vet ./...
echo "== go test -race"
go test -race -count=1 -timeout 20m "$@" ./...
echo "== benchmarks, once each (so they cannot rot)"
bench_log=$(mktemp)
if ! go test -run '^$' -bench . -benchtime=1x -count=1 -timeout 10m ./... >"$bench_log" 2>&1; then
	grep -v '^{"level' "$bench_log" | tail -n 60
	echo "benchmarks failed"
	exit 1
fi
grep -c '^Benchmark' "$bench_log" | xargs echo "benchmarks ran:"
rm -f "$bench_log"
