# Shared by the packaging scripts (sourced, not run): where things are and the one
# version number every artifact carries (the workspace's, from Cargo.toml).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)"
DIST="$ROOT/dist"
VENV="$ROOT/.venv"
# The glibc every binary artifact may need at most: manylinux_2_17, as the peers ship.
GLIBC_FLOOR=2.17
ZIG_TARGET="x86_64-unknown-linux-gnu.$GLIBC_FLOOR"
# One target directory for every zig-linked build, apart from the native one.
export CARGO_TARGET_DIR="$ROOT/target/dist"
# The dist tools (maturin, ziglang, cargo-zigbuild, auditwheel, twine) live in the
# repository's venv; `make dist-env` installs them from packaging/requirements.txt.
export PATH="$VENV/bin:$PATH"

say() { printf 'dist: %s\n' "$*" >&2; }
die() { printf 'dist: %s\n' "$*" >&2; exit 1; }

# The highest GLIBC_x.y symbol version an ELF file needs ("none" when it needs none).
glibc_needed() {
    readelf -V --wide "$1" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1 | grep . || echo none
}

# Fails when an ELF file needs a glibc above the floor.
check_glibc_floor() {
    local need
    need="$(glibc_needed "$1")"
    if [ "$need" != none ] && [ "$(printf '%s\n%s\n' "$need" "$GLIBC_FLOOR" | sort -V | tail -1)" != "$GLIBC_FLOOR" ]; then
        die "$1 needs GLIBC_$need, above the floor $GLIBC_FLOOR"
    fi
    say "$(basename "$1"): highest GLIBC symbol version $need (floor $GLIBC_FLOOR)"
}
