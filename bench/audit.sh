#!/usr/bin/env bash
# server_audit benchmark: sysbench against one MariaDB in three legs, in
# alternation, on 127.0.0.1 only:
#   plain      server_audit loaded, server_audit_logging=OFF
#   audit      server_audit_logging=ON (the plugin's own cost)
#   audit+das  logging ON and das serve --listen "" --audit-log following it
# Prints QPS per run, the means, the ratios audit/plain and
# (audit+das)/audit (target: >= 0.95), and for each das run how far behind
# das was when sysbench ended, how long it took to catch up, and whether
# every QUERY line of the log is in the stream (das consume --command QUERY).
# Each leg starts a fresh audit log (logging off, files removed, logging on),
# and each das run a fresh data dir, so das reads only its own leg's lines.
# See bench/README.md. Everything it starts is stopped on exit.
#
# Settings (environment):
#   BENCH_TIME=15      seconds per measured sysbench run
#   WARMUP=5           seconds of warm-up (logging off), 0 to skip
#   ROUNDS=2           alternation rounds (plain, audit, audit+das; the next
#                      round starts with audit, and so on)
#   THREADS=8          sysbench threads
#   WORKLOAD=oltp_point_select
#   TABLES=4 TABLE_SIZE=10000   sysbench data set
#   EVENTS=CONNECT,QUERY        server_audit_events
#   ROTATE_SIZE=268435456       server_audit_file_rotate_size (rotations: 9)
#   BASE_PORT=23406    MariaDB on BASE_PORT, das's admin API on +1
#   DAS_ARGS=          extra das serve flags
#   DAS_B_ARGS= DAS_B_BIN= DAS_B_DATA_ROOT=   set any to add a leg
#                      audit+dasB, alternated with the others: das with these
#                      flags instead, this das binary (to compare builds in the
#                      same minutes), or its data dir under this directory
#                      (e.g. /dev/shm: no fsync reaches the audit log's disk)
#   KEEP=1             keep the work directory (logs) after the run
set -euo pipefail

BENCH_TIME=${BENCH_TIME:-15}
WARMUP=${WARMUP:-5}
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-8}
WORKLOAD=${WORKLOAD:-oltp_point_select}
TABLES=${TABLES:-4}
TABLE_SIZE=${TABLE_SIZE:-10000}
EVENTS=${EVENTS:-CONNECT,QUERY}
ROTATE_SIZE=${ROTATE_SIZE:-268435456}
BASE_PORT=${BASE_PORT:-23406}
KEEP=${KEEP:-}

HOST=127.0.0.1
DB_PORT=$BASE_PORT
ADMIN_PORT=$((BASE_PORT + 1))
SB_USER=sbtest
SB_PASS=sbtest-bench
SB_DB=sbtest

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }

for tool in mariadbd mariadb-install-db mariadb sysbench go; do
	command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] ||
		die "$tool not found; run scripts/install-test-deps.sh"
done
MARIADBD=$(command -v mariadbd || echo /usr/sbin/mariadbd)

port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
for p in "$DB_PORT" "$ADMIN_PORT"; do
	port_busy "$p" && die "port $p on $HOST is in use; set BASE_PORT"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/das-bench-audit.XXXXXX")
AUDIT_DIR="$WORK/audit"
AUDIT_LOG="$AUDIT_DIR/server_audit.log"
mkdir -p "$AUDIT_DIR"
PIDS=()  # daemons, stopped at exit
DAS_PID= # the running das, if any
CHILD=   # the running client command, if any
stop_pid() { # pid: SIGTERM, wait up to 10s, then SIGKILL
	kill -TERM "$1" 2>/dev/null || return 0
	for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[ -n "$CHILD" ] && kill -TERM "$CHILD" 2>/dev/null
	[ -n "$DAS_PID" ] && stop_pid "$DAS_PID"
	for pid in "${PIDS[@]}"; do
		stop_pid "$pid"
	done
	if [ -n "$KEEP" ]; then
		log "work directory kept: $WORK"
	else
		rm -rf "$WORK"
		# das data dirs put elsewhere (DAS_DATA_ROOT, DAS_B_DATA_ROOT)
		for root in "${DAS_DATA_ROOT:-}" "${DAS_B_DATA_ROOT:-}"; do
			[ -n "$root" ] && rm -rf "$root"/das-data.audit+das*.*
		done
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

# run runs a command in the background and waits for it, so that a signal
# reaches the traps at once instead of after a sysbench run.
run() {
	"$@" &
	CHILD=$!
	local rc=0
	wait "$CHILD" || rc=$?
	CHILD=
	return "$rc"
}

# --- MariaDB with server_audit loaded, logging off ---------------------------
AS_ROOT=()
[ "$(id -u)" -eq 0 ] && AS_ROOT=(--user=root)
DB_OPTS=(
	--innodb-buffer-pool-size=512M
	--innodb-log-file-size=128M
	--max-connections=500
	--skip-log-bin
	--performance-schema=OFF
)
ROOT_PASS=root-bench
log "MariaDB: install into $WORK/data"
cat >"$WORK/setup.sql" <<EOF
FLUSH PRIVILEGES;
DELETE FROM mysql.global_priv WHERE User='';
FLUSH PRIVILEGES;
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '$ROOT_PASS';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
CREATE DATABASE $SB_DB;
CREATE USER '$SB_USER'@'127.0.0.1' IDENTIFIED BY '$SB_PASS';
GRANT ALL PRIVILEGES ON $SB_DB.* TO '$SB_USER'@'127.0.0.1';
EOF
mariadb-install-db --no-defaults --datadir="$WORK/data" --auth-root-authentication-method=normal \
	--skip-test-db --skip-name-resolve --extra-file="$WORK/setup.sql" "${AS_ROOT[@]}" "${DB_OPTS[@]}" \
	>"$WORK/install.log" 2>&1 || { cat "$WORK/install.log" >&2; die "mariadb-install-db failed"; }

"$MARIADBD" --no-defaults "${AS_ROOT[@]}" --datadir="$WORK/data" --port="$DB_PORT" \
	--bind-address=$HOST --skip-name-resolve --socket="$WORK/mariadbd.sock" \
	--pid-file="$WORK/mariadbd.pid" --log-error="$WORK/mariadbd.err" "${DB_OPTS[@]}" \
	--plugin-load-add=server_audit --server-audit-logging=OFF --server-audit-output-type=file \
	--server-audit-file-path="$AUDIT_LOG" --server-audit-events="$EVENTS" \
	--server-audit-file-rotate-size="$ROTATE_SIZE" --server-audit-file-rotations=9 \
	--server-audit-query-log-limit=65536 \
	>>"$WORK/mariadbd.err" 2>&1 &
PIDS+=($!)
DB_PID=$!
wait_port "$DB_PORT" mariadbd "$DB_PID"
log "MariaDB $("$MARIADBD" --version | awk '{print $3}') on $HOST:$DB_PORT (pid $DB_PID), server_audit events $EVENTS"

sql() { # statement
	mariadb --no-defaults --protocol=TCP --host=$HOST --port="$DB_PORT" --user=root \
		--password="$ROOT_PASS" --batch --skip-column-names -e "$1"
}

# fresh_audit: logging off, every audit file removed; then on (ON) or not.
fresh_audit() { # ON|OFF
	sql "SET GLOBAL server_audit_logging=OFF"
	rm -f "$AUDIT_DIR"/server_audit.log*
	if [ "$1" = ON ]; then
		sql "SET GLOBAL server_audit_logging=ON"
		[ -f "$AUDIT_LOG" ] || die "server_audit did not create $AUDIT_LOG"
	fi
}

# --- das ---------------------------------------------------------------------
log "building das"
(cd "$(dirname "$0")/.." && go build -o "$WORK/das" ./cmd/das) || die "go build failed"
DAS="$WORK/das"

LEGS="plain audit audit+das"
if [ -n "${DAS_B_ARGS:-}${DAS_B_BIN:-}${DAS_B_DATA_ROOT:-}" ]; then
	LEGS="$LEGS audit+dasB"
fi

start_das() { # data dir, leg
	local bin=$DAS args=${DAS_ARGS:-}
	if [ "$2" = audit+dasB ]; then
		bin=${DAS_B_BIN:-$DAS} args=${DAS_B_ARGS:-}
	fi
	# --upstream-tls off: with no proxy there is no upstream to make TLS for.
	# shellcheck disable=SC2086 # args are words
	"$bin" serve --listen "" --audit-log "$AUDIT_LOG" --data-dir "$1" --upstream-tls off \
		--admin-listen "$HOST:$ADMIN_PORT" --log-level warn $args >"$1.log" 2>&1 &
	DAS_PID=$!
	wait_port "$ADMIN_PORT" das "$DAS_PID"
}

counter() { # data dir, name: a counter of describe-activity-streams
	env -u DAS_CPUPROFILE "$DAS" describe-activity-streams --data-dir "$1" --admin "$HOST:$ADMIN_PORT" --json |
		jq -r ".ActivityStreams[0].Counters.$2 // 0"
}

# audit_lines: lines in the log and its rotations (the log was fresh).
audit_lines() { cat "$AUDIT_DIR"/server_audit.log* | wc -l; }
audit_queries() { cat "$AUDIT_DIR"/server_audit.log* | grep -c ',QUERY,' || true; }

sb() { # seconds command
	run timeout $(($1 + 60)) sysbench "$WORKLOAD" --db-driver=mysql --mysql-host=$HOST --mysql-port="$DB_PORT" \
		--mysql-user=$SB_USER --mysql-password=$SB_PASS --mysql-db=$SB_DB \
		--tables="$TABLES" --table-size="$TABLE_SIZE" --threads="$THREADS" \
		--time="$1" --events=0 --percentile=95 --report-interval=0 "$2"
}

log "sysbench prepare: $TABLES tables x $TABLE_SIZE rows"
sb 0 prepare >"$WORK/prepare.log" 2>&1 || { cat "$WORK/prepare.log" >&2; die "sysbench prepare failed"; }
if [ "$WARMUP" -gt 0 ]; then
	log "warm-up: ${WARMUP}s, logging off"
	sb "$WARMUP" run >/dev/null 2>&1 || die "warm-up failed"
fi

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
printf '%-10s %5s %10s %9s %12s %12s %s\n' leg round QPS p95_ms queries audit_lines das
for round in $(seq 1 "$ROUNDS"); do
	# Each round starts one leg later than the last: a leg's position
	# in the round (which leg ran just before it) biased it by up to 10%.
	read -r -a legs <<<"$LEGS"
	order=()
	for i in "${!legs[@]}"; do
		order+=("${legs[$(((i + round - 1) % ${#legs[@]}))]}")
	done
	for leg in "${order[@]}"; do
		note=
		case $leg in
		plain) fresh_audit OFF ;;
		*) fresh_audit ON ;;
		esac
		dd="${DAS_DATA_ROOT:-$WORK}/das-data.$leg.$round"
		if [ "$leg" = audit+dasB ] && [ -n "${DAS_B_DATA_ROOT:-}" ]; then
			dd="$DAS_B_DATA_ROOT/das-data.$leg.$round"
		fi
		if [ "${leg#audit+das}" != "$leg" ]; then
			rm -rf "$dd"
			start_das "$dd" "$leg"
		fi
		out="$WORK/$leg.$round.log"
		if ! sb "$BENCH_TIME" run >"$out" 2>&1; then
			cat "$out" >&2
			die "sysbench against $leg failed"
		fi
		qps=$(awk '/queries:/ {gsub(/\(/, "", $3); print $3}' "$out")
		p95=$(awk '/95th percentile:/ {print $3}' "$out")
		queries=$(awk '/queries:/ {print $2}' "$out")
		lines=-
		if [ "$leg" != plain ]; then
			lines=$(audit_lines)
		fi
		if [ "${leg#audit+das}" != "$leg" ]; then
			# How far behind das was the moment sysbench ended, then how long
			# it took to read the rest.
			read_at_end=$(counter "$dd" audit_lines)
			lag_bytes=$(counter "$dd" audit_lag_bytes)
			catchup=0
			if [ "$read_at_end" -lt "$lines" ]; then
				t0=$(date +%s.%N)
				for _ in $(seq 1 600); do
					[ "$(counter "$dd" audit_lines)" -ge "$lines" ] && break
					sleep 0.1
				done
				catchup=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
			fi
			lost=$(counter "$dd" audit_lost_bytes)
			# das's CPU time over its life (the leg and the catch-up), in
			# seconds: on a small machine this is what the QPS pays.
			cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$DAS_PID/stat")
			stop_pid "$DAS_PID"
			DAS_PID=
			# The stream holds every QUERY line of the log, once.
			logq=$(audit_queries)
			dasq=$(env -u DAS_CPUPROFILE "$DAS" consume --from "$dd" --data-dir "$dd" --command QUERY 2>"$dd.consume.err" | wc -l)
			note="behind at end: $((lines - read_at_end)) lines ($lag_bytes bytes), caught up in ${catchup}s; das CPU ${cpu}s ($(nproc) cores); lost bytes $lost; QUERY lines $logq, das QUERY events $dasq"
			printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$leg" "$round" "$((lines - read_at_end))" "$lag_bytes" "$catchup" "$((dasq - logq))" >>"$WORK/das.tsv"
		fi
		printf '%-10s %5s %10s %9s %12s %12s %s\n' "$leg" "$round" "$qps" "$p95" "$queries" "$lines" "$note"
		printf '%s\t%s\t%s\t%s\n' "$leg" "$round" "$qps" "$p95" >>"$RESULTS"
	done
done
sql "SET GLOBAL server_audit_logging=OFF"

echo
echo "means over $ROUNDS round(s), ${BENCH_TIME}s each, $WORKLOAD, $THREADS threads, server_audit events $EVENTS:"
awk -F'\t' '
	function median(a, m,   i, j, t) { # sorts a[1..m] in place
		for (i = 2; i <= m; i++)
			for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
		return m % 2 ? a[(m+1)/2] : (a[m/2] + a[m/2+1]) / 2
	}
	function perRound(k,   r, m, a, list) { # (k)/audit within each round
		m = 0; list = ""
		for (r = 1; r <= rounds; r++)
			if ((k, r) in qr && ("audit", r) in qr) { a[++m] = qr[k, r] / qr["audit", r]; list = list sprintf(" %.3f", a[m]) }
		if (m) printf "  (%s)/audit per round:%s; median %.3f\n", k, list, median(a, m)
	}
	{ q[$1] += $3; p[$1] += $4; n[$1]++; qr[$1, $2] = $3; if ($2 > rounds) rounds = $2 }
	END {
		nl = split("plain audit audit+das audit+dasB", legs, " ")
		for (i = 1; i <= nl; i++) {
			if (!n[legs[i]]) continue
			k = legs[i]; Q[k] = q[k] / n[k]; P[k] = p[k] / n[k]
			printf "  %-10s QPS %10.1f  p95 %7.3f ms\n", k, Q[k], P[k]
		}
		printf "  audit/plain          QPS %.3f  (the plugin'"'"'s own cost)\n", Q["audit"] / Q["plain"]
		printf "  (audit+das)/audit    QPS %.3f  (das'"'"'s cost; target >= 0.95)\n", Q["audit+das"] / Q["audit"]
		printf "  (audit+das)/plain    QPS %.3f\n", Q["audit+das"] / Q["plain"]
		if (n["audit+dasB"]) printf "  (audit+dasB)/audit   QPS %.3f  (das B: DAS_B_ARGS / DAS_B_BIN)\n", Q["audit+dasB"] / Q["audit"]
		# Legs of one round run minutes apart at most; rounds, further
		# apart, see the neighbours of the machine change: the median of the
		# per-round ratios is the steadier figure on a shared host.
		perRound("audit+das")
		if (n["audit+dasB"]) perRound("audit+dasB")
	}' "$RESULTS"
awk -F'\t' '{ printf "  %s round %s: %s lines behind (%s bytes) when sysbench ended, caught up in %ss; stream QUERY events - log QUERY lines = %s\n", $1, $2, $3, $4, $5, $6 }' "$WORK/das.tsv"
