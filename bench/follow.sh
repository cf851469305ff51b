#!/usr/bin/env bash
# Audit-log follow benchmark: das's own CPU per server_audit line, with no
# database competing for the machine. bench/auditgen appends sysbench-shaped
# lines to a file at RATE lines/s for BENCH_TIME seconds while das serve
# --listen "" --audit-log follows it (local KMS, local log); the script reads
# das's CPU time from /proc and prints CPU per line. With DAS_B_BIN set, each
# round runs this checkout's das and that binary in turn, so two builds are
# compared in the same minutes. bench/audit.sh measures the cost against
# sysbench; on a saturated machine its QPS ratio drifts by more than das's
# share, and this figure is the steadier one. See bench/README.md.
#
# Settings (environment):
#   BENCH_TIME=20   seconds of writing per run
#   RATE=32000      lines per second
#   ROUNDS=3        rounds (one run per build each)
#   DAS_ARGS=       extra das serve flags (both builds)
#   DAS_B_BIN=      a second das binary to alternate with
#   KEEP=1          keep the work directory
set -euo pipefail

BENCH_TIME=${BENCH_TIME:-20}
RATE=${RATE:-32000}
ROUNDS=${ROUNDS:-3}
KEEP=${KEEP:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/das-bench-follow.XXXXXX")
DAS_PID=
cleanup() {
	[ -n "$DAS_PID" ] && kill "$DAS_PID" 2>/dev/null && wait "$DAS_PID" 2>/dev/null
	if [ -z "$KEEP" ]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT

echo "== building das and auditgen" >&2
(cd "$ROOT" && go build -o "$WORK/das" ./cmd/das && go build -o "$WORK/auditgen" ./bench/auditgen)

# cpu_ticks PID: user + system clock ticks of the process so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() { # name binary
	local name=$1 bin=$2 dir="$WORK/$1.$round"
	mkdir -p "$dir"
	: >"$dir/server_audit.log"
	"$bin" serve --listen "" --audit-log "$dir/server_audit.log" --data-dir "$dir/data" \
		--admin-listen 127.0.0.1:0 ${DAS_ARGS:-} >"$dir/das.log" 2>&1 &
	DAS_PID=$!
	sleep 1
	kill -0 "$DAS_PID" 2>/dev/null || { cat "$dir/das.log" >&2; echo "bench: das did not start" >&2; exit 1; }
	local t0 t1 lines
	t0=$(cpu_ticks "$DAS_PID")
	lines=$("$WORK/auditgen" -file "$dir/server_audit.log" -rate "$RATE" -duration "${BENCH_TIME}s")
	sleep 1 # das reads the last lines (it polls every 50 ms)
	t1=$(cpu_ticks "$DAS_PID")
	kill "$DAS_PID"
	wait "$DAS_PID" 2>/dev/null || true
	DAS_PID=
	# The tailer logs the lines it read when it stops: a das that fell
	# behind would show a flattering CPU per line.
	local hz read
	hz=$(getconf CLK_TCK)
	read=$(grep -o '"lines":[0-9]*' "$dir/das.log" | tail -1 | cut -d: -f2)
	[ "${read:-0}" -eq "$lines" ] || echo "bench: $name read ${read:-0} of $lines lines" >&2
	awk -v n="$name" -v r="$round" -v l="$lines" -v t="$((t1 - t0))" -v hz="$hz" \
		'BEGIN { printf "%-5s round %d  lines %d  das CPU %.2f s  %.3f us/line\n", n, r, l, t/hz, t/hz*1e6/l }' |
		tee -a "$WORK/results"
}

for round in $(seq 1 "$ROUNDS"); do
	if [ -n "${DAS_B_BIN:-}" ] && [ $((round % 2)) -eq 0 ]; then
		run dasB "$DAS_B_BIN"; run das "$WORK/das"
	else
		run das "$WORK/das"
		[ -n "${DAS_B_BIN:-}" ] && run dasB "$DAS_B_BIN"
	fi
done

echo "median us/line over $ROUNDS round(s), ${BENCH_TIME}s at $RATE lines/s:"
for n in das dasB; do
	grep "^$n " "$WORK/results" | awk '{print $NF=="us/line" ? $(NF-1) : $NF}' | sort -n |
		awk -v n="$n" '{v[NR]=$1} END { if (NR) printf "  %-5s %.3f\n", n, (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2) }'
done
