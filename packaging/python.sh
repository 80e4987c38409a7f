#!/usr/bin/env bash
# dist/python (owned by the Python packaging): the abi3 wheel for x86_64 Linux with a
# manylinux_2_17 floor (zig links against glibc 2.17, so one wheel serves CPython >= 3.9
# on any glibc >= 2.17), and the sdist with every crate it needs vendored, so that
# `pip install corral-X.tar.gz` builds with no network (Rust still needed, crates.io not).
# Each artifact is checked here (auditwheel, twine --strict, the glibc floor, an offline
# build of the sdist); packaging/test_python.sh then installs the wheel without Rust.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

PKG="$ROOT/bindings/python"
OUT="$DIST/python"
WHEEL="$OUT/corral-$VERSION-cp39-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"
SDIST="$OUT/corral-$VERSION.tar.gz"
work="$(mktemp -d /tmp/corral-dist-python.XXXXXX)"
trap 'rm -rf "$work"' EXIT
# Archive timestamps from the last commit, so a rebuild of one commit packs the same bytes.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)}"

took() { say "$1 took $(($(date +%s) - $2)) s"; }

build_wheel() {
    local t0; t0=$(date +%s)
    (cd "$PKG" && maturin build --release --strip --zig --compatibility manylinux_2_17 \
        --target x86_64-unknown-linux-gnu --out "$work/wheel") \
        || die "maturin could not build the wheel (see above); a link error naming a GLIBC symbol means core/src/sys uses a libc function newer than $GLIBC_FLOOR"
    local built=("$work"/wheel/*.whl)
    if [ "${#built[@]}" != 1 ] || [ ! -f "${built[0]}" ]; then die "expected one wheel from maturin, got: ${built[*]}"; fi
    [ "$(basename "${built[0]}")" = "$(basename "$WHEEL")" ] \
        || die "maturin named the wheel $(basename "${built[0]}"), not $(basename "$WHEEL"): the abi3/manylinux tags changed"
    mv "${built[0]}" "$WHEEL"
    took "wheel build" "$t0"
}

check_wheel() {
    local shown tag
    shown="$(auditwheel show "$WHEEL" | tr '\n' ' ')" || die "auditwheel show failed on $WHEEL"
    tag="$(grep -o 'following platform tag: *"manylinux_2_[0-9]*_x86_64"' <<<"$shown" | grep -o 'manylinux_2_[0-9]*' || true)"
    [ -n "$tag" ] || die "auditwheel found no manylinux tag for the wheel: $shown"
    [ "${tag#manylinux_2_}" -le 17 ] || die "auditwheel says the wheel needs $tag, above manylinux_2_17: $shown"
    say "auditwheel: consistent with $tag (the wheel claims manylinux_2_17)"
    unzip -q -o "$WHEEL" 'corral/_corral*.so' -d "$work/unpacked" || die "the wheel has no corral/_corral*.so"
    local so=("$work"/unpacked/corral/_corral*.so)
    check_glibc_floor "${so[0]}"
    twine check --strict "$WHEEL" || die "twine check --strict failed on the wheel's metadata"
}

# maturin's sdist of a workspace member holds the trimmed workspace (core and this crate)
# but the root's Cargo.lock unchanged, which still lists the other members' crates. Here
# the core's dev-dependencies, tests, benches and examples go (the sdist builds the
# extension, not core's test suite), the lock is pruned to what is left (versions kept),
# and those crates are vendored with a source replacement that points cargo at them.
build_sdist() {
    local t0 src top; t0=$(date +%s)
    (cd "$PKG" && maturin sdist --out "$work/sdist") || die "maturin sdist failed (see above)"
    src="$work/src"; mkdir -p "$src"
    tar xzf "$work"/sdist/corral-"$VERSION".tar.gz -C "$src"
    top="$src/corral-$VERSION"
    [ -f "$top/Cargo.lock" ] || die "maturin's sdist has no Cargo.lock at its root; the vendored build needs one"
    rm -rf "$top/core/tests" "$top/core/benches" "$top/core/examples"
    python3 "$ROOT/packaging/python/trim_sdist.py" manifest "$top/core/Cargo.toml"
    (cd "$top" && cargo metadata --format-version 1 >/dev/null) || die "cargo could not read the sdist's manifests"
    (cd "$top" && cargo vendor --locked --quiet vendor >/dev/null) \
        || die "cargo vendor failed in the sdist (does its Cargo.lock still match the trimmed manifests?)"
    # The crates a build on Linux compiles, over the usual Linux targets; the others get emptied.
    local t linux=()
    for t in x86_64-unknown-linux-gnu i686-unknown-linux-gnu aarch64-unknown-linux-gnu \
        armv7-unknown-linux-gnueabihf powerpc64le-unknown-linux-gnu s390x-unknown-linux-gnu \
        riscv64gc-unknown-linux-gnu x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
        linux+=(--target "$t")
    done
    (cd "$top" && cargo tree --locked -p corral-python -e normal,build --prefix none --format '{p}' "${linux[@]}" \
        | awk '{print $1" "$2}' | sort -u >"$work/linux-crates") || die "cargo tree failed in the sdist"
    python3 "$ROOT/packaging/python/trim_sdist.py" stub-vendor "$top/vendor" "$work/linux-crates"
    mkdir -p "$top/.cargo"
    cat >"$top/.cargo/config.toml" <<'EOF'
# Every crate this build needs is in vendor/: no registry is asked.
[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "vendor"
EOF
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
        -C "$src" -cf - "corral-$VERSION" | gzip -9n >"$SDIST"
    twine check --strict "$SDIST" || die "twine check --strict failed on the sdist's metadata"
    say "sdist: $(find "$top/vendor" -mindepth 1 -maxdepth 1 -type d | wc -l) vendored crates"
    took "sdist" "$t0"
}

# The proof that the sdist builds offline: pip builds a wheel from it with the network
# closed to cargo (CARGO_NET_OFFLINE) and to pip (--no-index), an empty CARGO_HOME (no
# registry cache to fall back on), a fresh target dir and --locked (the lock is complete).
prove_sdist_offline() {
    local t0 d; t0=$(date +%s); d="$work/offline"
    mkdir -p "$d/cargo-home"
    CARGO_NET_OFFLINE=true CARGO_HOME="$d/cargo-home" CARGO_TARGET_DIR="$d/target" \
        MATURIN_PEP517_ARGS="--locked" \
        pip wheel --quiet --no-index --no-deps --no-build-isolation --wheel-dir "$d/wheel" "$SDIST" \
        || die "the sdist did not build offline from its vendored crates (see above)"
    local built=("$d"/wheel/corral-"$VERSION"-*.whl)
    [ -f "${built[0]}" ] || die "pip built no corral wheel from the sdist"
    say "sdist builds offline: $(basename "${built[0]}")"
    took "offline sdist build" "$t0"
}

rm -rf "$OUT"; mkdir -p "$OUT"
build_wheel
check_wheel
build_sdist
prove_sdist_offline
for f in "$WHEEL" "$SDIST"; do say "$(du -h "$f" | cut -f1)  ${f#"$ROOT"/}"; done
