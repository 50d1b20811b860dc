#!/usr/bin/env bash
# Regenerates the Go code in proto/shoalpb from proto/*.proto.
# Needs protoc (Debian's protobuf-compiler); the Go plugins are installed at
# the versions pinned below into a private GOBIN.
set -euo pipefail
cd "$(dirname "$0")/.."

PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.1

gobin="${SHOAL_TOOLS_BIN:-$(go env GOPATH)/shoal-tools/bin}"
mkdir -p "$gobin"
if ! "$gobin/protoc-gen-go" --version 2>/dev/null | grep -q "${PROTOC_GEN_GO_VERSION}"; then
  GOBIN="$gobin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@${PROTOC_GEN_GO_VERSION}"
fi
if ! "$gobin/protoc-gen-go-grpc" --version 2>/dev/null | grep -q "${PROTOC_GEN_GO_GRPC_VERSION#v}"; then
  GOBIN="$gobin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@${PROTOC_GEN_GO_GRPC_VERSION}"
fi
command -v protoc >/dev/null || { echo "genproto: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }

# Generate into a scratch directory first, so a failed run leaves the
# committed code untouched.
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
PATH="$gobin:$PATH" protoc -I proto \
  --go_out="$out" --go_opt=module=github.com/shoal-project/shoal \
  --go-grpc_out="$out" --go-grpc_opt=module=github.com/shoal-project/shoal \
  proto/*.proto
mkdir -p proto/shoalpb
rm -f proto/shoalpb/*.pb.go
cp "$out"/proto/shoalpb/*.pb.go proto/shoalpb/
