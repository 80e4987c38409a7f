#!/usr/bin/env bash
# dist/SHA256SUMS: one line per artifact, paths relative to dist/ (`sha256sum -c` there).
source "$(dirname "$0")/lib.sh"
cd "$DIST"
find python npm c -type f | LC_ALL=C sort | xargs sha256sum > SHA256SUMS
say "SHA256SUMS: $(wc -l < SHA256SUMS) artifacts of version $VERSION"
cat SHA256SUMS >&2
