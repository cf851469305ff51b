#!/usr/bin/env bash
# Proxy benchmark: sysbench against MariaDB directly, through haproxy (a plain
# L4 TCP proxy, the baseline) and through das, in alternation, on 127.0.0.1
# only. Prints QPS and p95 latency per run, the means, and the ratios.
# See bench/README.md. Everything it starts is stopped on exit.
#
# Settings (environment):
#   BENCH_TIME=20      seconds per measured sysbench run
#   WARMUP=5           seconds of warm-up per workload (direct), 0 to skip
#   ROUNDS=2           alternation rounds (direct, haproxy, das, direct, ...)
#   THREADS=8          sysbench threads
#   TABLES=4 TABLE_SIZE=10000   sysbench data set
#   WORKLOADS="oltp_point_select oltp_read_only"
#   BASE_PORT=23306    MariaDB on BASE_PORT, haproxy on +1, das on +2
#   DAS_CMD=           command that runs das in the foreground (see below);
#                      default: das built from this checkout, async mode,
#                      local KMS, local log; "none": the das leg is skipped
#   DAS_ARGS=          extra das serve flags, e.g. "--mode sync"
#   DAS_SINK=local     local, or kafka (an in-process Kafka cluster, bench/kfake)
#   DAS_B_ARGS=        with the default DAS_CMD: also run a second das (leg
#                      dasB, port BASE_PORT+3, its own data dir and topic) with
#                      these flags instead of DAS_ARGS, e.g. "--mode sync", to
#                      compare two settings in the same minutes
#   DAS_B_BIN=         the das binary of leg dasB (default: this checkout's),
#                      to compare two builds in the same minutes
#   KEEP=1             keep the work directory (logs) after the run
#   ONLY=              targets to run, e.g. "das" for the 5-minute memory run
#                      (BENCH_TIME=300 ROUNDS=1 ONLY=das WORKLOADS=oltp_read_only)
#   PROXY_CPUS=        CPUs (taskset list, e.g. "1") for haproxy, das and dasB;
#                      MariaDB, sysbench and kfake then run on LOAD_CPUS (default:
#                      every other CPU). Empty: everything shares every CPU
set -euo pipefail

BENCH_TIME=${BENCH_TIME:-20}
WARMUP=${WARMUP:-5}
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-8}
TABLES=${TABLES:-4}
TABLE_SIZE=${TABLE_SIZE:-10000}
WORKLOADS=${WORKLOADS:-"oltp_point_select oltp_read_only"}
BASE_PORT=${BASE_PORT:-23306}
DAS_CMD=${DAS_CMD:-}
KEEP=${KEEP:-}

PROXY_CPUS=${PROXY_CPUS:-}
LOAD_CPUS=${LOAD_CPUS:-}

HOST=127.0.0.1
DB_PORT=$BASE_PORT
HAPROXY_PORT=$((BASE_PORT + 1))
DAS_PORT=$((BASE_PORT + 2))
SB_USER=sbtest
SB_PASS=sbtest-bench
SB_DB=sbtest

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }

for tool in mariadbd mariadb-install-db mariadb sysbench haproxy; do
	command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] ||
		die "$tool not found; run scripts/install-test-deps.sh"
done
MARIADBD=$(command -v mariadbd || echo /usr/sbin/mariadbd)

# With PROXY_CPUS the proxies get cores of their own, as a proxy on its own
# host or with a reserved core would: the legs then compare what each proxy
# adds to a query, not how much CPU it takes from the database and client.
PROXY_PIN=()
LOAD_PIN=()
if [ -n "$PROXY_CPUS" ]; then
	if [ -z "$LOAD_CPUS" ]; then
		LOAD_CPUS=$(python3 -c '
import os, sys
def parse(s):
    out = set()
    for part in s.split(","):
        a, _, b = part.partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return out
rest = sorted(set(os.sched_getaffinity(0)) - parse(sys.argv[1]))
print(",".join(map(str, rest)))' "$PROXY_CPUS") || die "PROXY_CPUS=$PROXY_CPUS: not a CPU list (e.g. 1 or 2-3)"
		[ -n "$LOAD_CPUS" ] || die "PROXY_CPUS=$PROXY_CPUS leaves no CPU for MariaDB and sysbench; set LOAD_CPUS"
	fi
	PROXY_PIN=(taskset -c "$PROXY_CPUS")
	LOAD_PIN=(taskset -c "$LOAD_CPUS")
	log "CPUs: proxies on $PROXY_CPUS; MariaDB, sysbench and kfake on $LOAD_CPUS"
fi
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
for p in "$DB_PORT" "$HAPROXY_PORT" "$DAS_PORT"; do
	port_busy "$p" && die "port $p on $HOST is in use; set BASE_PORT"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/das-bench.XXXXXX")
PIDS=()  # daemons, stopped at exit
CHILD= # the running client command, if any
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[ -n "$CHILD" ] && kill -TERM "$CHILD" 2>/dev/null
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		# mariadbd needs a moment for a clean shutdown; then force it.
		for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [ -n "$KEEP" ]; then
		log "work directory kept: $WORK"
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_port() { # port name pid
	for _ in $(seq 1 600); do
		port_busy "$1" && return 0
		kill -0 "$3" 2>/dev/null || die "$2 exited while starting (logs in $WORK; KEEP=1 keeps them)"
		sleep 0.1
	done
	die "$2 not listening on $HOST:$1 after 60s"
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# proc_cost prints a process's CPU clock ticks (user + system) so far: per
# query, they say what a proxy costs on a machine whose cores sysbench and
# MariaDB already saturate, where every µs of proxy CPU is taken from them.
proc_cost() {
	[ -n "$1" ] || return 0
	awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat" 2>/dev/null || return 0
}
# machine_ticks prints the machine's idle (idle + iowait) and total clock
# ticks so far. A leg that leaves the cores idle while its clients wait is
# limited by latency (a proxy holding packets back), not by CPU.
machine_ticks() {
	awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print $5 + $6, t; exit }' /proc/stat
}

# --- MariaDB -----------------------------------------------------------------
AS_ROOT=()
[ "$(id -u)" -eq 0 ] && AS_ROOT=(--user=root)
DB_OPTS=(
	--innodb-buffer-pool-size=512M
	--innodb-log-file-size=128M
	--max-connections=500
	--skip-log-bin
	--performance-schema=OFF
)
log "MariaDB: install into $WORK/data"
cat >"$WORK/setup.sql" <<EOF
FLUSH PRIVILEGES;
DELETE FROM mysql.global_priv WHERE User='';
FLUSH PRIVILEGES;
CREATE DATABASE $SB_DB;
CREATE USER '$SB_USER'@'127.0.0.1' IDENTIFIED BY '$SB_PASS';
GRANT ALL PRIVILEGES ON $SB_DB.* TO '$SB_USER'@'127.0.0.1';
EOF
mariadb-install-db --no-defaults --datadir="$WORK/data" --auth-root-authentication-method=normal \
	--skip-test-db --skip-name-resolve --extra-file="$WORK/setup.sql" "${AS_ROOT[@]}" "${DB_OPTS[@]}" \
	>"$WORK/install.log" 2>&1 || { cat "$WORK/install.log" >&2; die "mariadb-install-db failed"; }

"${LOAD_PIN[@]}" "$MARIADBD" --no-defaults "${AS_ROOT[@]}" --datadir="$WORK/data" --port="$DB_PORT" \
	--bind-address=$HOST --skip-name-resolve --socket="$WORK/mariadbd.sock" \
	--pid-file="$WORK/mariadbd.pid" --log-error="$WORK/mariadbd.err" "${DB_OPTS[@]}" \
	>>"$WORK/mariadbd.err" 2>&1 &
PIDS+=($!)
DB_PID=$!
wait_port "$DB_PORT" mariadbd "$DB_PID"
log "MariaDB $("$MARIADBD" --version | awk '{print $3}') on $HOST:$DB_PORT (pid $DB_PID)"

# --- haproxy: plain L4 -------------------------------------------------------
cat >"$WORK/haproxy.cfg" <<EOF
global
	maxconn 2000
defaults
	mode tcp
	timeout connect 5s
	timeout client 1h
	timeout server 1h
frontend mysql
	bind $HOST:$HAPROXY_PORT
	default_backend mariadb
backend mariadb
	server db $HOST:$DB_PORT
EOF
"${PROXY_PIN[@]}" "$HAPROXY" -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
PIDS+=($!)
HAPROXY_PID=$!
wait_port "$HAPROXY_PORT" haproxy "$HAPROXY_PID"
log "haproxy $("$HAPROXY" -v | awk 'NR==1 {print $3}') on $HOST:$HAPROXY_PORT -> $HOST:$DB_PORT (pid $HAPROXY_PID)"

# --- das ---------------------------------------------------------------------
# >>> DAS LEG: DAS_CMD runs das in the foreground, listening on $DAS_LISTEN and
# relaying to $DAS_UPSTREAM, with its data under $DAS_DATA_DIR, for example:
#   DAS_CMD='./das serve --listen $DAS_LISTEN --upstream $DAS_UPSTREAM --data-dir $DAS_DATA_DIR'
# The variables are exported to it; it is stopped with SIGTERM at the end.
TARGETS=(direct haproxy)
DAS_PID=
if [ -z "$DAS_CMD" ]; then
	log "building das"
	(cd "$(dirname "$0")/.." && go build -o "$WORK/das" ./cmd/das) || die "go build failed"
	SINK_ARGS=
	if [ "${DAS_SINK:-local}" = kafka ]; then
		(cd "$(dirname "$0")/.." && go build -o "$WORK/kfake" ./bench/kfake) || die "go build kfake failed"
		mkfifo "$WORK/kfake.in"
		"${LOAD_PIN[@]}" "$WORK/kfake" <"$WORK/kfake.in" >"$WORK/kfake.addr" 2>&1 &
		PIDS+=($!)
		exec 7>"$WORK/kfake.in" # kfake runs while this stays open
		for _ in $(seq 50); do [ -s "$WORK/kfake.addr" ] && break; sleep 0.1; done
		SINK_ARGS="--sink kafka://$(head -1 "$WORK/kfake.addr")/das-bench"
		SINK_B_ARGS="${SINK_ARGS}-b"
		log "kafka (kfake) at $(head -1 "$WORK/kfake.addr")"
	fi
	DAS_CMD="$WORK/das serve --listen \$DAS_LISTEN --upstream \$DAS_UPSTREAM --data-dir \$DAS_DATA_DIR --upstream-tls off --admin-listen 127.0.0.1:0 --log-level warn $SINK_ARGS ${DAS_ARGS:-}"
	if [ -n "${DAS_B_ARGS:-}${DAS_B_BIN:-}" ]; then
		DAS_B_PORT=$((BASE_PORT + 3))
		port_busy "$DAS_B_PORT" && die "port $DAS_B_PORT on $HOST is in use; set BASE_PORT"
		mkdir -p "$WORK/das-data-b"
		"${PROXY_PIN[@]}" "${DAS_B_BIN:-$WORK/das}" serve --listen "$HOST:$DAS_B_PORT" --upstream "$HOST:$DB_PORT" --data-dir "$WORK/das-data-b" \
			--upstream-tls off --admin-listen 127.0.0.1:0 --log-level warn ${SINK_B_ARGS:-} ${DAS_B_ARGS:-} >"$WORK/das-b.log" 2>&1 &
		PIDS+=($!)
		DAS_B_PID=$!
		wait_port "$DAS_B_PORT" dasB "$DAS_B_PID"
		log "dasB on $HOST:$DAS_B_PORT (pid $DAS_B_PID): ${DAS_B_BIN:-this checkout} ${DAS_B_ARGS:-}"
	fi
fi
if [ "$DAS_CMD" != none ]; then
	export DAS_LISTEN="$HOST:$DAS_PORT" DAS_UPSTREAM="$HOST:$DB_PORT" DAS_DATA_DIR="$WORK/das-data"
	mkdir -p "$DAS_DATA_DIR"
	"${PROXY_PIN[@]}" bash -c "exec $DAS_CMD" >"$WORK/das.log" 2>&1 &
	PIDS+=($!)
	DAS_PID=$!
	wait_port "$DAS_PORT" das "$DAS_PID"
	log "das on $DAS_LISTEN -> $DAS_UPSTREAM (pid $DAS_PID): $DAS_CMD"
	TARGETS+=(das)
	[ -n "${DAS_B_PID:-}" ] && TARGETS+=(dasB)
else
	log "das leg skipped: DAS_CMD=none"
fi
# <<< DAS LEG

port_of() {
	case $1 in
	direct) echo "$DB_PORT" ;;
	haproxy) echo "$HAPROXY_PORT" ;;
	das) echo "$DAS_PORT" ;;
	dasB) echo "$DAS_B_PORT" ;;
	esac
}

# run runs a command in the background and waits for it, so that a signal
# reaches the traps at once instead of after a 20-second sysbench run.
run() {
	"$@" &
	CHILD=$!
	local rc=0
	wait "$CHILD" || rc=$?
	CHILD=
	return "$rc"
}

sb() { # workload port seconds command
	run "${LOAD_PIN[@]}" timeout $(($3 + 60)) sysbench "$1" --db-driver=mysql --mysql-host=$HOST --mysql-port="$2" \
		--mysql-user=$SB_USER --mysql-password=$SB_PASS --mysql-db=$SB_DB \
		--tables="$TABLES" --table-size="$TABLE_SIZE" --threads="$THREADS" \
		--time="$3" --events=0 --percentile=95 --report-interval=0 "$4"
}

log "sysbench prepare: $TABLES tables x $TABLE_SIZE rows"
sb oltp_read_only "$DB_PORT" 0 prepare >"$WORK/prepare.log" 2>&1 ||
	{ cat "$WORK/prepare.log" >&2; die "sysbench prepare failed"; }

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
for w in $WORKLOADS; do
	if [ "$WARMUP" -gt 0 ]; then
		log "warm-up: $w direct ${WARMUP}s"
		sb "$w" "$DB_PORT" "$WARMUP" run >/dev/null 2>&1 || die "warm-up $w failed"
	fi
done

if [ -n "${ONLY:-}" ]; then
	TARGETS=($ONLY)
fi
printf '%-18s %-8s %5s %12s %9s %22s %12s %6s\n' workload target round QPS p95_ms proxy_RSS_kB_min..max cpu_us/query idle%
for round in $(seq 1 "$ROUNDS"); do
	for w in $WORKLOADS; do
		# Each round starts one target later than the last, so that no
		# target always runs right after the same one.
		order=()
		for i in "${!TARGETS[@]}"; do
			order+=("${TARGETS[$(((i + round - 1) % ${#TARGETS[@]}))]}")
		done
		for target in "${order[@]}"; do
			out="$WORK/$w.$target.$round.log"
			pid=
			case $target in
			haproxy) pid=$HAPROXY_PID ;;
			das) pid=$DAS_PID ;;
			dasB) pid=$DAS_B_PID ;;
			esac
			before=$(proc_cost "$pid")
			mbefore=$(machine_ticks)
			# RSS every 5 s while the run lasts: a leak shows as a climb.
			rssf="$WORK/rss.$w.$target.$round"
			: >"$rssf"
			if [ -n "$pid" ]; then
				(while kill -0 "$pid" 2>/dev/null; do rss_kb "$pid" >>"$rssf"; sleep 5; done) &
				SAMPLER=$!
			fi
			if ! sb "$w" "$(port_of "$target")" "$BENCH_TIME" run >"$out" 2>&1; then
				cat "$out" >&2
				die "sysbench $w against $target failed"
			fi
			if [ -n "$pid" ]; then
				kill "$SAMPLER" 2>/dev/null || true
				wait "$SAMPLER" 2>/dev/null || true
				rss_kb "$pid" >>"$rssf"
			fi
			after=$(proc_cost "$pid")
			mafter=$(machine_ticks)
			idle=$(awk -v b="$mbefore" -v a="$mafter" 'BEGIN {
				split(b, x, " "); split(a, y, " ")
				if (y[2] > x[2]) printf "%.1f\n", 100 * (y[1] - x[1]) / (y[2] - x[2]); else print "-" }')
			qps=$(awk '/queries:/ {gsub(/\(/, "", $3); print $3}' "$out")
			total=$(awk '/queries:/ {print $2}' "$out")
			cpu=$(awk -v b="$before" -v a="$after" -v n="$total" -v hz="$(getconf CLK_TCK)" 'BEGIN {
				if (b == "" || n == 0) { print "-"; exit }
				split(b, x, " "); split(a, y, " ")
				printf "%.1f\n", (y[1] - x[1]) / hz * 1e6 / n }')
			p95=$(awk '/95th percentile:/ {print $3}' "$out")
			rss=$(awk 'NR == 1 || $1 < lo { lo = $1 } $1 > hi { hi = $1 } END { if (NR) printf "%d..%d", lo, hi; else print "-" }' "$rssf")
			printf '%-18s %-8s %5s %12s %9s %22s %12s %6s\n' "$w" "$target" "$round" "$qps" "$p95" "$rss" "$cpu" "$idle"
			printf '%s\t%s\t%s\t%s\t%s\n' "$w" "$target" "$round" "$qps" "$p95" >>"$RESULTS"
		done
	done
done

echo
echo "means over $ROUNDS round(s), ${BENCH_TIME}s each, $THREADS threads:"
awk -F'\t' -v targets="${TARGETS[*]}" '
	function median(a, m,   i, j, t) { # sorts a[1..m] in place
		for (i = 2; i <= m; i++)
			for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
		return m % 2 ? a[(m+1)/2] : (a[m/2] + a[m/2+1]) / 2
	}
	# Legs of one round run close together; rounds, further apart, see the
	# neighbours of the machine change: on a shared host the median of the
	# per-round ratios is the steadier figure.
	function perRound(w, k,   r, m, a, list) {
		m = 0; list = ""
		for (r = 1; r <= rounds; r++)
			if ((w, k, r) in qr && (w, "haproxy", r) in qr) { a[++m] = qr[w, k, r] / qr[w, "haproxy", r]; list = list sprintf(" %.3f", a[m]) }
		if (m) printf "  %-18s %s/haproxy per round:%s; median %.3f\n", w, k, list, median(a, m)
	}
	{ q[$1, $2] += $4; p[$1, $2] += $5; n[$1, $2]++; qr[$1, $2, $3] = $4; if ($3 > rounds) rounds = $3; if (!($1 in seen)) { seen[$1] = 1; order[++nw] = $1 } }
	END {
		nt = split(targets, t, " ")
		for (i = 1; i <= nw; i++) {
			w = order[i]
			for (j = 1; j <= nt; j++) {
				k = t[j]; Q[k] = q[w, k] / n[w, k]; P[k] = p[w, k] / n[w, k]
				printf "  %-18s %-8s QPS %10.1f  p95 %7.3f ms\n", w, k, Q[k], P[k]
			}
			if (("haproxy" in Q) && ("direct" in Q))
				printf "  %-18s haproxy/direct QPS %.3f  p95 added %+.0f us\n", w, Q["haproxy"] / Q["direct"], (P["haproxy"] - P["direct"]) * 1000
			if (("das" in Q) && ("haproxy" in Q))
				printf "  %-18s das/haproxy    QPS %.3f  p95 added %+.0f us\n", w, Q["das"] / Q["haproxy"], (P["das"] - P["haproxy"]) * 1000
			if (("dasB" in Q) && ("haproxy" in Q))
				printf "  %-18s dasB/haproxy   QPS %.3f  p95 added %+.0f us\n", w, Q["dasB"] / Q["haproxy"], (P["dasB"] - P["haproxy"]) * 1000
			if (("dasB" in Q) && ("das" in Q))
				printf "  %-18s dasB/das       QPS %.3f\n", w, Q["dasB"] / Q["das"]
			perRound(w, "das")
			perRound(w, "dasB")
			delete Q; delete P
		}
	}' "$RESULTS"
