#!/usr/bin/env bash
# Installs what the integration tests and benchmarks need on a Debian machine:
# Debian's MariaDB server and client (the tests start their own mariadbd; see
# internal/testenv), sysbench and haproxy (bench/), local-kms (a KMS API
# server for tests) and kinesalite (a Kinesis API server, on Debian's
# nodejs). Idempotent: when everything is present it changes nothing and
# returns at once. Run as root (or through sudo) when packages are missing.
#
# It never leaves a system service running: Debian's maintainer scripts are
# told not to start services (policy-rc.d exit 101), and a mariadbd or haproxy
# that still came up during the install is stopped again.
set -euo pipefail

LOCAL_KMS_MODULE="github.com/nsmithuk/local-kms@v0.0.0-20260228092603-2a5e92d09ab6"

PACKAGES=(mariadb-server mariadb-client sysbench haproxy)
# kinesalite (below) runs on Node.js: Debian's nodejs and npm, unless a node
# and an npm are already on the PATH (nvm, NodeSource).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	PACKAGES+=(nodejs npm)
fi

installed() { dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null | grep -qx installed; }

missing=()
for pkg in "${PACKAGES[@]}"; do
	installed "$pkg" || missing+=("$pkg")
done

if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		if command -v sudo >/dev/null 2>&1; then
			SUDO=sudo
		else
			echo "install-test-deps: need root to install: ${missing[*]}" >&2
			exit 1
		fi
	else
		SUDO=
	fi
	echo "== install-test-deps: installing Debian packages: ${missing[*]}"

	# The packaged services write these pid files; remember who ran before,
	# so that only a daemon the install itself started is stopped afterwards
	# (never the tests' own mariadbd or the benchmark's haproxy).
	SERVICE_PIDFILES=(/run/mysqld/mysqld.pid /run/haproxy.pid)
	declare -A pre_pid=()
	for f in "${SERVICE_PIDFILES[@]}"; do
		pre_pid[$f]=$(cat "$f" 2>/dev/null || true)
	done

	# Forbid service starts from maintainer scripts for the duration of the
	# install; restore whatever policy-rc.d was there before.
	policy=/usr/sbin/policy-rc.d
	saved_policy=
	if [ -e "$policy" ]; then
		saved_policy=$(mktemp)
		$SUDO cp -p "$policy" "$saved_policy"
	fi
	restore_policy() {
		if [ -n "$saved_policy" ]; then
			$SUDO cp -p "$saved_policy" "$policy"
			rm -f "$saved_policy"
		else
			$SUDO rm -f "$policy"
		fi
	}
	trap restore_policy EXIT
	printf '#!/bin/sh\n# install-test-deps.sh: do not start services\nexit 101\n' | $SUDO tee "$policy" >/dev/null
	$SUDO chmod 0755 "$policy"

	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -q
	$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"

	restore_policy
	trap - EXIT

	# Belt and braces: stop a service the install started despite the policy.
	for f in "${SERVICE_PIDFILES[@]}"; do
		pid=$(cat "$f" 2>/dev/null || true)
		if [ -n "$pid" ] && [ "$pid" != "${pre_pid[$f]}" ] && kill -0 "$pid" 2>/dev/null; then
			echo "== install-test-deps: stopping the service in $f (pid $pid) that the install started"
			$SUDO kill -TERM "$pid" || true
		fi
	done
	# Keep the packaged services from starting at boot, where an init system exists.
	if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
		$SUDO systemctl disable --now mariadb.service haproxy.service >/dev/null 2>&1 || true
	fi
	echo "== install-test-deps: installed: ${missing[*]}"
fi

# What the tests and bench/ run; a package present but broken shows here.
for f in /usr/sbin/mariadbd /usr/bin/mariadb-install-db /usr/bin/mariadb \
	/usr/lib/mysql/plugin/server_audit.so /usr/bin/sysbench /usr/sbin/haproxy; do
	[ -e "$f" ] || { echo "install-test-deps: $f missing after install" >&2; exit 1; }
done

# local-kms (Go): PATH, then $(go env GOPATH)/bin.
GO=go
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	GO=/usr/local/go/bin/go
fi
if ! command -v local-kms >/dev/null 2>&1; then
	if ! command -v "$GO" >/dev/null 2>&1; then
		echo "install-test-deps: local-kms missing and no Go toolchain to build it" >&2
		exit 1
	fi
	gobin="$("$GO" env GOPATH | cut -d: -f1)/bin"
	if [ ! -x "$gobin/local-kms" ]; then
		echo "== install-test-deps: installing local-kms ($LOCAL_KMS_MODULE) into $gobin"
		"$GO" install "$LOCAL_KMS_MODULE"
	fi
fi

if [ "${#missing[@]}" -eq 0 ]; then
	echo "== install-test-deps: everything present"
fi

# --- kinesalite: a Kinesis API server for internal/sink/kinesis tests --------
# npm package, installed into $KINESALITE_DIR or $(go env GOPATH)/das-node
# (where internal/testenv looks for it). Needs Node.js (v18+) and npm. Install
# scripts are skipped: they only build leveldown, whose prebuilt binaries load
# without it (the tests that restart kinesalite keep its streams on disk
# through leveldown; the others keep them in memory).
KINESALITE_VERSION=3.3.3
kinesalite_dir="${KINESALITE_DIR:-$("$GO" env GOPATH | cut -d: -f1)/das-node}"
kinesalite_pkg="$kinesalite_dir/node_modules/kinesalite/package.json"
if ! grep -qs "\"version\": \"$KINESALITE_VERSION\"" "$kinesalite_pkg"; then
	if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
		echo "install-test-deps: kinesalite needs node and npm (Debian: apt-get install nodejs npm)" >&2
		exit 1
	fi
	echo "== install-test-deps: installing kinesalite@$KINESALITE_VERSION into $kinesalite_dir"
	mkdir -p "$kinesalite_dir"
	npm install --prefix "$kinesalite_dir" --no-audit --no-fund --omit=dev --ignore-scripts \
		"kinesalite@$KINESALITE_VERSION"
	grep -qs "\"version\": \"$KINESALITE_VERSION\"" "$kinesalite_pkg" ||
		{ echo "install-test-deps: kinesalite missing after install" >&2; exit 1; }
fi
# --- end kinesalite -----------------------------------------------------------
