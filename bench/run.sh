#!/usr/bin/env bash
# Load test of the device flow against Caddy's own floor, in one run:
#   (a) Caddy with a plain `respond` site: the baseline, measured again
#       right before every scenario, and each ratio is against that
#       adjacent baseline (other work on the machine comes and goes; two
#       measurements seconds apart see the same machine);
#   (b) the device_flow module on the Badger store (`limits off`, plus one
#       site with the limits counting but never reached);
#   (c) the same on Redis, when redis-server is installed;
#   (d) the Badger store alone holding 10k and 1M live codes, and
#       reclaiming expired ones (bench/livecodes).
# Each scenario is driven by wrk (bench/scenario.lua) on 127.0.0.1; the
# table shows req/s, latency, the server's peak RSS during the scenario,
# and the ratios to the baseline. What each scenario measures, and how to
# read the table: docs/performance.md.
#
# Usage: bash bench/run.sh
# Settings (environment): DURATION=10 WARMUP=2 (seconds per scenario),
# BASE_DURATION=4 (seconds of each adjacent baseline),
# CONNECTIONS=64 THREADS=2 (wrk), POOL=50000 (pending codes polled
# round-robin), CHECK=1 (wrk classifies every answer: heavier client),
# STORES="badger redis" (the stores to measure), NO_REDIS=1, KEEP=1 (keep the temporary folder with logs and Caddyfiles),
# LIVE=0 (skip (d), the live-codes runs of the store alone), LIVE_POLL=3
# (seconds of polls in each), LIVE_HTTP=1 (also poll 200k of the 1M codes
# through Caddy: ~25 s more, past the 5 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
BASE_DURATION=${BASE_DURATION:-4}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
POOL=${POOL:-50000}
CHECK=${CHECK:-}
# Polls must come no faster than interval - slack (flow.pollSlack: 0.8 s
# for 1 s); bench/scenario.lua reports the slowest code's period.
INTERVAL=1s
MIN_PERIOD=0.8

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench/run.sh: %s\n' "$*" >&2; exit 1; }

# ---- tools ----------------------------------------------------------------
command -v go >/dev/null || die "needs Go"
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
	say "installing ${need[*]}"
	sudo=""
	[ "$(id -u)" -ne 0 ] && sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# ---- processes: every one we start is stopped at exit ----------------------
tmp=$(mktemp -d /tmp/device-flow-bench.XXXXXX)
pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [ -n "${KEEP:-}" ]; then
		say "kept $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port VAR: sets VAR to a port nobody listens on (and that this run
# has not handed out yet).
used_ports=" "
free_port() {
	local p
	while :; do
		p=$((10000 + RANDOM % 22000)) # below the ephemeral range wrk's connections use
		case $used_ports in *" $p "*) continue ;; esac
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			used_ports+="$p "
			printf -v "$1" '%s' "$p"
			return
		fi
	done
}

say "building Caddy with the module"
go build -o "$tmp/caddy" ./cmd/caddy
go build -o "$tmp/issuecodes" ./bench/issuecodes

# start_caddy NAME SITES: runs Caddy with the given site blocks; sets
# caddy_pid and caddy_admin.
start_caddy() {
	local name=$1 sites=$2
	free_port caddy_admin
	mkdir -p "$tmp/$name"
	cat >"$tmp/$name/Caddyfile" <<EOF
{
	admin 127.0.0.1:$caddy_admin
	auto_https off
	persist_config off
	storage file_system $tmp/$name/data
	log {
		level ERROR
	}
}
$sites
EOF
	HOME="$tmp/$name" XDG_DATA_HOME="$tmp/$name" XDG_CONFIG_HOME="$tmp/$name" \
		"$tmp/caddy" run --config "$tmp/$name/Caddyfile" --adapter caddyfile >"$tmp/$name/log" 2>&1 &
	caddy_pid=$!
	pids+=("$caddy_pid")
	for _ in $(seq 100); do
		if curl -sf "http://127.0.0.1:$caddy_admin/config/" >/dev/null 2>&1; then
			return
		fi
		kill -0 "$caddy_pid" 2>/dev/null || break
		sleep 0.1
	done
	cat "$tmp/$name/log" >&2
	die "Caddy ($name) did not start"
}

# device_flow_site PORT STORAGE [LIMITS]: a site with limits off, or with
# the given limits counting (thresholds never reached).
device_flow_site() {
	local port=$1 storage=$2 limits=${3:-limits off}
	cat <<EOF
http://127.0.0.1:$port {
	device_flow {
		name bench
		authorization_endpoint http://127.0.0.1:9/authorize
		token_endpoint http://127.0.0.1:9/token
		$storage
		interval $INTERVAL
		$limits
	}
}
EOF
}
LIMITS_ON="issue_limit 1000000000 per 1m
		max_live_codes 1000000000"

# metric ADMIN EVENT: the device flow's event counter.
metric() {
	curl -sf "http://127.0.0.1:$1/metrics" |
		awk -v want="caddy_device_flow_events_total{event=\"$2\"}" '$1 == want { printf "%d", $2 + 0; found = 1 } END { if (!found) print 0 }'
}

# redis_stats: "commands bytes_in bytes_out cpu_seconds" of the bench's
# redis-server so far (nothing without one).
redis_stats() {
	[ -n "${redis_port:-}" ] || return 0
	redis-cli -p "$redis_port" INFO all 2>/dev/null | tr -d '\r' | awk -F: '
		$1 == "total_commands_processed" { c = $2 } $1 == "total_net_input_bytes" { i = $2 }
		$1 == "total_net_output_bytes" { o = $2 } $1 == "used_cpu_sys" { s = $2 } $1 == "used_cpu_user" { u = $2 }
		END { print c, i, o, s + u }'
}

hwm_kib() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

wrk_run() { # SECONDS URL SCENARIO CODES
	wrk -t"$THREADS" -c"$CONNECTIONS" -d"$1"s --timeout 5s -s bench/scenario.lua "$2" -- "$3" "$4" "$THREADS" ${CHECK:+check}
}

result_of() { # WRK OUTPUT: its RESULT line
	grep '^RESULT' <<<"$1" || {
		echo "$1" >&2
		die "no result from wrk"
	}
}

rows=()
# measure LABEL STORE SCENARIO URL PID ADMIN CODES [EXTRA_PID]
measure() {
	local label=$1 store=$2 scenario=$3 url=$4 pid=$5 admin=$6 codes=$7 extra_pid=${8:-}
	say "$label ($store): ${WARMUP}s warm-up, ${DURATION}s measured"
	# Before each poll run, wait until every code is due again: a code
	# polled early gets slow_down and, per RFC 8628, a longer interval
	# for good, which would turn it into slow_down ever after.
	local due=0
	case $scenario in pending | slowdown | baseline) due=1.2 ;; esac
	sleep "$due"
	local base
	if [ "$store" != "-" ]; then
		wrk_run 1 "$base_url" baseline "$tmp/dummy-codes" >/dev/null
		base=$(result_of "$(wrk_run "$BASE_DURATION" "$base_url" baseline "$tmp/dummy-codes")")
	fi
	wrk_run "$WARMUP" "$url" "$scenario" "$codes" >/dev/null
	sleep "$due"
	# Writing 5 to clear_refs resets VmHWM: the peak of this scenario only.
	echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true
	[ -n "$extra_pid" ] && { echo 5 >"/proc/$extra_pid/clear_refs" 2>/dev/null || true; }
	local slow0=0 issued0=0
	if [ "$store" != "-" ]; then
		slow0=$(metric "$admin" slow_down)
		issued0=$(metric "$admin" code_issued)
	fi
	local result redis0="" redis1=""
	[ "$store" = redis ] && redis0=$(redis_stats)
	result=$(result_of "$(wrk_run "$DURATION" "$url" "$scenario" "$codes")")
	[ "$store" = redis ] && redis1=$(redis_stats)
	[ "$store" = "-" ] && base=$result
	local hwm extra=""
	hwm=$(hwm_kib "$pid")
	[ -n "$extra_pid" ] && extra=" + redis $(($(hwm_kib "$extra_pid") / 1024))"
	local check=""
	if [ "$store" != "-" ]; then
		local slow issued requests non2xx period
		slow=$(($(metric "$admin" slow_down) - slow0))
		issued=$(($(metric "$admin" code_issued) - issued0))
		requests=$(sed 's/.* requests=\([0-9]*\).*/\1/' <<<"$result")
		non2xx=$(sed 's/.* non2xx=\([0-9]*\).*/\1/' <<<"$result")
		period=$(sed 's/.* period_s=\([0-9.]*\).*/\1/' <<<"$result")
		case $scenario in
		issue) check="issued $issued, non-2xx $non2xx" ;;
		browser) check="non-2xx $non2xx" ;;
		pending | slowdown)
			check=$(awk -v s="$slow" -v r="$requests" -v p="$period" -v m="$MIN_PERIOD" \
				'BEGIN { printf "slow_down %.1f%%, period %.2fs%s", 100 * s / r, p, (p < m ? " TOO FAST" : "") }')
			;;
		esac
	fi
	# On Redis, what each request cost Redis: commands, bytes received and
	# sent, and CPU time (docs/multi-instance.md's capacity model).
	if [ -n "$redis1" ]; then
		local requests
		requests=$(sed 's/.* requests=\([0-9]*\).*/\1/' <<<"$result")
		check="${check:+$check, }$(awk -v a="$redis0" -v b="$redis1" -v r="$requests" 'BEGIN {
			split(a, x, " "); split(b, y, " ")
			printf "redis per request: %.2f commands, %d B in, %d B out, %.1f µs CPU",
				(y[1] - x[1]) / r, (y[2] - x[2]) / r, (y[3] - x[3]) / r, (y[4] - x[4]) * 1e6 / r }')"
	fi
	# With CHECK=1, wrk's own classification of the answers too.
	[ -n "$CHECK" ] && check="${check:+$check, }wrk saw $(sed 's/.* kinds=//' <<<"$result")"
	local errors
	errors=$(sed 's/.* socket_errors=\([0-9]*\).*/\1/' <<<"$result")
	[ "$errors" != 0 ] && check="${check:+$check, }socket errors $errors"
	rows+=("$label|$store|$result|$((hwm / 1024))$extra|$check|$base")
}

# ---- (a) baseline -----------------------------------------------------------
free_port base_port
start_caddy baseline "http://127.0.0.1:$base_port {
	respond \"ok\"
}"
base_pid=$caddy_pid base_admin=$caddy_admin base_url="http://127.0.0.1:$base_port"

# The pending scenario's requests, so the baseline's client does the same
# work per request (the codes mean nothing to `respond`).
printf 'dummy-device-code-%d\n' $(seq 1000) >"$tmp/dummy-codes"
measure "respond (baseline)" - baseline "$base_url" "$base_pid" "$base_admin" "$tmp/dummy-codes"

# ---- (b) Badger, (c) Redis ---------------------------------------------------
run_store() { # NAME STORAGE_LINE_OF_DIR [EXTRA_PID]
	local name=$1 storage_of=$2 extra_pid=${3:-}
	local port run limits label
	# Each issue scenario runs in a Caddy of its own on an empty store:
	# measured one after the other on one store, the second one met the
	# compactions of the first one's quarter million codes in its p99.
	for run in issue issue-limits; do
		limits="limits off" label="issue code"
		[ "$run" = issue-limits ] && limits=$LIMITS_ON label="issue code, limits on"
		free_port port
		start_caddy "$name-$run" "$(device_flow_site "$port" "$($storage_of "$tmp/$name-$run")" "$limits")"
		measure "$label" "$name" issue "http://127.0.0.1:$port" "$caddy_pid" "$caddy_admin" - "$extra_pid"
		stop_caddy "$caddy_pid"
	done
	free_port port
	start_caddy "$name" "$(device_flow_site "$port" "$($storage_of "$tmp/$name")")"
	local pid=$caddy_pid admin=$caddy_admin url="http://127.0.0.1:$port"
	say "issuing $POOL codes to poll"
	"$tmp/issuecodes" -url "$url/device/code" -n "$POOL" -client bench >"$tmp/$name/codes"
	measure "poll, pending" "$name" pending "$url" "$pid" "$admin" "$tmp/$name/codes" "$extra_pid"
	measure "poll, 10% slow_down" "$name" slowdown "$url" "$pid" "$admin" "$tmp/$name/codes" "$extra_pid"
	measure "GET /device (entry page)" "$name" browser "$url" "$pid" "$admin" - "$extra_pid"
	stop_caddy "$pid"
}

# stop_caddy PID: stops a Caddy and waits for it, so that its store is
# closed and its CPU free before the next scenario.
stop_caddy() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# The storage line of a store in DIR: Badger's folder; Redis, a database
# flushed empty first (the Caddy that used it is stopped).
badger_in() { echo "storage badger $1/device-flow"; }
redis_in() {
	redis-cli -p "$redis_port" flushall >/dev/null
	echo "storage redis redis://127.0.0.1:$redis_port"
}

STORES=${STORES:-badger redis}
if [[ " $STORES " == *" badger "* ]]; then
	run_store badger badger_in
fi

if [ -n "${NO_REDIS:-}" ] || [[ " $STORES " != *" redis "* ]]; then
	say "Redis skipped (NO_REDIS)"
elif ! command -v redis-server >/dev/null; then
	say "Redis skipped: redis-server is not installed (apt-get install redis-server)"
elif ! "$tmp/caddy" list-modules 2>/dev/null | grep -qx 'http.device_flow.storage.redis'; then
	say "Redis skipped: this build has no http.device_flow.storage.redis module"
else
	free_port redis_port
	mkdir -p "$tmp/redis"
	redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --dir "$tmp/redis" \
		>"$tmp/redis/log" 2>&1 &
	redis_pid=$!
	pids+=("$redis_pid")
	for _ in $(seq 50); do
		(exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break
		sleep 0.1
	done
	run_store redis redis_in "$redis_pid"
fi

# ---- (d) live codes: the Badger store alone ----------------------------------
# bench/livecodes fills a store with pending codes through the store API and
# polls random ones (docs/performance.md): the memory of a million live
# codes, whether a poll gets dearer as codes pile up, and whether expired
# codes give their disk and memory back. LIVE=0 skips it.
if [ "${LIVE:-1}" != 0 ]; then
	go build -o "$tmp/livecodes" ./bench/livecodes
	say "live codes: 10000 pending codes, then ${LIVE_POLL:-3}s of polls"
	"$tmp/livecodes" -n 10000 -poll "${LIVE_POLL:-3}s" >"$tmp/live-10000.txt" 2>&1 || {
		cat "$tmp/live-10000.txt" >&2
		die "livecodes -n 10000 failed"
	}
	say "live codes: 1000000 pending codes, then ${LIVE_POLL:-3}s of polls"
	# With LIVE_HTTP=1 the store is kept, its codes made for the bench
	# client and interval, and Caddy then polls 200,000 of them over HTTP.
	live_http=()
	[ -n "${LIVE_HTTP:-}" ] && live_http=(-dir "$tmp/live-1m" -namespace "name bench" -client bench -interval "$INTERVAL" -ttl 30m
		-codes "$tmp/live-1m-codes" -codes-n 200000) && mkdir -p "$tmp/live-1m"
	"$tmp/livecodes" -n 1000000 -poll "${LIVE_POLL:-3}s" "${live_http[@]}" >"$tmp/live-1000000.txt" 2>&1 || {
		cat "$tmp/live-1000000.txt" >&2
		die "livecodes -n 1000000 failed"
	}
	if [ -n "${LIVE_HTTP:-}" ]; then
		# What a poll costs over HTTP with a million live codes, 200,000
		# of them polling (as many as wrk can keep to their interval).
		free_port live_port
		start_caddy live-1m "$(device_flow_site "$live_port" "storage badger $tmp/live-1m")"
		# Opening the store may start compactions; let them end, or they
		# would take CPU from the baseline measured next.
		for _ in $(seq 60); do
			t0=$(awk '{ print $14 + $15 }' "/proc/$caddy_pid/stat")
			sleep 0.5
			[ $(($(awk '{ print $14 + $15 }' "/proc/$caddy_pid/stat") - t0)) -le 2 ] && break
		done
		# A fleet polls for minutes: one round of polls first, so the
		# measured ones find the tables in the page cache, as they would.
		say "first polls of the 200k codes, one round"
		wrk_run 15 "http://127.0.0.1:$live_port" pending "$tmp/live-1m-codes" >/dev/null
		measure "poll, 1M live codes (200k polled)" badger pending "http://127.0.0.1:$live_port" "$caddy_pid" "$caddy_admin" "$tmp/live-1m-codes"
		kill "$caddy_pid"
		wait "$caddy_pid" 2>/dev/null || true
		rm -rf "$tmp/live-1m"
	fi
	# Codes that live 15 s and expire; then 200k new ones come in, and
	# the compactions they cause drop the expired ones. 300k codes, so
	# that the tree has several levels.
	say "live codes: 300000 codes living 15s, then expiry and reclaim"
	"$tmp/livecodes" -n 300000 -first=false -poll 2s -ttl 15s -grace 1s -gc 1s -reclaim >"$tmp/live-reclaim.txt" 2>&1 || {
		cat "$tmp/live-reclaim.txt" >&2
		die "livecodes -reclaim failed"
	}
fi


# ---- the table ----------------------------------------------------------------
field() { sed "s/.* $1=\([0-9.]*\).*/\1/" <<<"$2"; }

echo
echo "$(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo); wrk -t$THREADS -c$CONNECTIONS, ${DURATION}s after ${WARMUP}s warm-up; each ratio against a ${BASE_DURATION}s baseline measured just before"
echo
echo "| scenario | store | req/s | p50 ms | p99 ms | peak RSS MiB | baseline req/s | req/s ÷ baseline | p99 ÷ baseline | check |"
echo "|---|---|--:|--:|--:|--:|--:|--:|--:|---|"
for row in "${rows[@]}"; do
	IFS='|' read -r label store result rss check base <<<"$row"
	awk -v l="$label" -v s="$store" -v rps="$(field rps "$result")" -v p50="$(field p50_us "$result")" \
		-v p99="$(field p99_us "$result")" -v rss="$rss" -v c="$check" \
		-v brps="$(field rps "$base")" -v bp99="$(field p99_us "$base")" \
		'BEGIN { printf "| %s | %s | %d | %.2f | %.2f | %s | %d | %.2f | %.2f | %s |\n", l, s, rps, p50 / 1000, p99 / 1000, rss, brps, rps / brps, p99 / bp99, c }'
done

# ---- the targets --------------------------------------------------------------
# target LABEL STORE WANT_RATIO WANT_P99
target() {
	local row l store result base
	for row in "${rows[@]}"; do
		IFS='|' read -r l store result _ _ base <<<"$row"
		[ "$l" = "$1" ] && [ "$store" = "$2" ] || continue
		awk -v l="$1 ($2):" -v w="$3" -v wp="$4" -v rps="$(field rps "$result")" -v p99="$(field p99_us "$result")" \
			-v brps="$(field rps "$base")" -v bp99="$(field p99_us "$base")" 'BEGIN {
				r = rps / brps; p = p99 / bp99
				printf "target %-24s req/s %.2f x baseline (want >= %.2f): %s; p99 %.2f x (want <= %g): %s\n",
					l, r, w, (r >= w ? "met" : "MISSED"), p, wp, (p <= wp ? "met" : "MISSED") }'
	done
}
# limits_cost STORE: what the issue limits add to the cost of an issue
# (each against its own adjacent baseline).
limits_cost() {
	local row l store result base off="" on=""
	for row in "${rows[@]}"; do
		IFS='|' read -r l store result _ _ base <<<"$row"
		[ "$store" = "$1" ] || continue
		case $l in
		"issue code") off=$(awk -v a="$(field rps "$result")" -v b="$(field rps "$base")" 'BEGIN { print a / b }') ;;
		"issue code, limits on") on=$(awk -v a="$(field rps "$result")" -v b="$(field rps "$base")" 'BEGIN { print a / b }') ;;
		esac
	done
	[ -n "$off" ] && [ -n "$on" ] || return 0
	awk -v s="$1" -v off="$off" -v on="$on" 'BEGIN {
		c = off / on - 1
		printf "target %-24s an issue costs %+.0f%% with the limits on (want <= +15%%): %s\n", "limits (" s "):", 100 * c, (c <= 0.15 ? "met" : "MISSED") }'
}
echo
target "poll, pending" badger 0.85 2
target "issue code" badger 0.5 2
limits_cost badger
target "poll, pending" redis 0.6 3
target "issue code" redis 0.4 3
limits_cost redis

# ---- the targets of (d) --------------------------------------------------------
# live_field FILE STAGE WHAT: from the line of a livecodes report.
live_peak() { awk -v st="$2" 'index($0, "  " st " ") == 1 { sub(/.*peak RSS */, ""); print $1 + 0; exit }' "$1"; }
live_now_rss() { awk -v st="$2" 'index($0, "  " st " ") == 1 { sub(/.*now RSS */, ""); print $1 + 0; exit }' "$1"; }
live_disk() { awk -v st="$2" 'index($0, "  " st " ") == 1 { sub(/.*disk */, ""); print $1 + 0; exit }' "$1"; }
live_cpu() { awk '/^polled/ { sub(/.*CPU /, ""); print $1 + 0; exit }' "$1"; }
if [ "${LIVE:-1}" != 0 ]; then
	echo
	echo "live codes (bench/livecodes, the store alone):"
	for n in 10000 1000000; do
		f="$tmp/live-$n.txt"
		echo "  $n codes: $(grep '^filled' "$f"); peak RSS filling $(live_peak "$f" fill) MiB, first polls $(live_peak "$f" "first polls") MiB, polling $(live_peak "$f" polls) MiB"
		echo "    $(grep '^first polls' "$f" | sed 's/.*: //') for a first poll; $(grep '^polled' "$f" | sed 's/.*polls\/s, //')"
	done
	awk -v fill="$(live_peak "$tmp/live-1000000.txt" fill)" -v first="$(live_peak "$tmp/live-1000000.txt" "first polls")" \
		-v polls="$(live_peak "$tmp/live-1000000.txt" polls)" 'BEGIN {
		p = (fill > polls ? fill : polls); p = (first > p ? first : p)
		printf "target 1M live codes:  peak RSS %d MiB (want <= 256): %s\n", p, (p <= 256 ? "met" : "MISSED") }'
	awk -v small="$(live_cpu "$tmp/live-10000.txt")" -v big="$(live_cpu "$tmp/live-1000000.txt")" 'BEGIN {
		r = big / small
		printf "target poll cost flat: %.1f µs CPU per poll at 1M, %.1f at 10k: %.2f x (want <= 1.25): %s\n", big, small, r, (r <= 1.25 ? "met" : "MISSED") }'
	if [ -n "${LIVE_HTTP:-}" ]; then
		few=0 many=0
		for row in "${rows[@]}"; do
			IFS='|' read -r l store result _ _ base <<<"$row"
			[ "$store" = badger ] || continue
			case $l in
			"poll, pending") few=$(awk -v a="$(field rps "$result")" -v b="$(field rps "$base")" 'BEGIN { print a / b }') ;;
			"poll, 1M live codes"*) many=$(awk -v a="$(field rps "$result")" -v b="$(field rps "$base")" 'BEGIN { print a / b }') ;;
			esac
		done
		awk -v few="$few" -v many="$many" 'BEGIN {
			r = many / few
			printf "  over HTTP:           poll %.2f x baseline with 1M live codes (200k polled), %.2f with 50k polled: %.2f x (want >= 0.8): %s\n", many, few, r, (r >= 0.8 ? "met" : "MISSED") }'
	fi
	f="$tmp/live-reclaim.txt"
	# The 200k new codes alone would take 2/3 of the 300k's disk: with the
	# expired ones given back, the store holds little more.
	after="after 200000 new codes"
	awk -v d0="$(live_disk "$f" polls)" -v d1="$(live_disk "$f" "$after")" \
		-v r0="$(live_now_rss "$f" polls)" -v r1="$(live_now_rss "$f" "$after")" 'BEGIN {
		want = d0 * 2 / 3 * 1.25
		printf "target reclaim:        300k expired codes, then 200k new: disk %d -> %d MiB (want <= %d), RSS %d -> %d MiB: %s\n", d0, d1, want, r0, r1, (d1 <= want ? "met" : "MISSED") }'
fi
