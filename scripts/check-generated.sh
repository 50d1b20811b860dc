#!/usr/bin/env bash
# Fails when the committed protobuf code differs from what scripts/genproto.sh
# generates from proto/*.proto.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r proto/shoalpb "$tmp/before"
scripts/genproto.sh
if ! diff -r "$tmp/before" proto/shoalpb >/dev/null; then
  echo "check-generated: proto/shoalpb is stale; run scripts/genproto.sh and commit the result" >&2
  diff -r "$tmp/before" proto/shoalpb | head -40 >&2
  exit 1
fi
echo "check-generated: proto/shoalpb is up to date"
