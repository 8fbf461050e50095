#!/usr/bin/env bash
# s3-real.sh runs the object-storage tests against a real S3-compatible
# server, Versity's S3 gateway (Apache-2.0), instead of the in-process one
# that `make test` uses: it installs versitygw (v1.8.0, from the Go module
# proxy; a few minutes the first time) into bin/, serves a temporary folder
# with it on a local port, and points the tests at it through
# BATCHTRANS_S3TEST_ENDPOINT (see internal/s3test).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(pwd)/bin/versitygw
if [[ ! -x $BIN ]]; then
	GOBIN=$(pwd)/bin CGO_ENABLED=0 go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
fi
data=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
ROOT_ACCESS_KEY=batchtrans ROOT_SECRET_KEY=batchtrans-secret "$BIN" --port "127.0.0.1:$port" posix "$data" >"$data.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data" "$data.log"' EXIT
for _ in $(seq 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	sleep 0.1
done
export BATCHTRANS_S3TEST_ENDPOINT=http://127.0.0.1:$port
export BATCHTRANS_S3TEST_ACCESS_KEY=batchtrans BATCHTRANS_S3TEST_SECRET_KEY=batchtrans-secret
go test -count=1 ./io/blobstore ./io/source ./runner/mirror ./runner/shard
go test -count=1 -run 'Object|Storage' ./cmd/batchtrans
