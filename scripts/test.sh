#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need
# (scripts/install-test-deps.sh: Debian's MariaDB, sysbench, haproxy, and a
# real KMS API server, local-kms, pinned), then checks formatting, vets, and
# runs every test with the race detector. CI runs this through .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$(go env GOPATH)/bin:$PATH"
export CI="${CI:-}"

bash scripts/install-test-deps.sh

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== go test"
go test -race -count=1 -timeout 20m ./...
