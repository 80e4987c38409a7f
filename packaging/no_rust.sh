#!/usr/bin/env bash
# Runs a command the way a user without Rust would: an empty environment, PATH of the
# system's own directories, a HOME of its own, and a check that no cargo or rustc is
# reachable. Usage: packaging/no_rust.sh SCRIPT [ARGS...]  (ROOT and VERSION are passed)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
home="$(mktemp -d /tmp/corral-norust.XXXXXX)"
trap 'rm -rf "$home"' EXIT
env -i PATH=/usr/bin:/bin HOME="$home" LANG=C.UTF-8 CORRAL_ROOT="$ROOT" \
    bash -c 'for t in cargo rustc rustup; do
                 if command -v "$t" >/dev/null; then echo "no-rust: $t is on PATH ($(command -v $t)); this test must run without Rust" >&2; exit 1; fi
             done
             echo "no-rust: no cargo, rustc or rustup on PATH=$PATH" >&2
             exec bash "$@"' bash "$@"
